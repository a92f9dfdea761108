"""Helpers shared by the GUI tests: waiting for runs, simulated mouse drags and drops, and a
GUI-thread heartbeat that measures the longest pause of the event loop."""
from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import QEvent, QMimeData, QPoint, QPointF, Qt, QTimer, QUrl
from PySide6.QtGui import QDropEvent, QMouseEvent
from PySide6.QtWidgets import QApplication

RUN_TIMEOUT_MS = 600_000


def wait_run_end(qtbot, window, start=None, timeout_ms: int = RUN_TIMEOUT_MS):
    """Call ``start()`` (if given) and wait for the run to end; returns ``("finished", outcome)``
    or ``("failed", (kind, message))``."""
    s = window.session
    got: list = []

    def on_done(o):
        got.append(("finished", o))

    def on_fail(k, m):
        got.append(("failed", (k, m)))

    s.runFinished.connect(on_done)
    s.runFailed.connect(on_fail)
    try:
        if start is not None:
            start()
        qtbot.waitUntil(lambda: bool(got), timeout=timeout_ms)
    finally:
        s.runFinished.disconnect(on_done)
        s.runFailed.disconnect(on_fail)
    return got[0]


def wait_export(qtbot, window, folder, timeout_ms: int = 300_000):
    s = window.session
    got: list = []

    def ok(f):
        got.append(("ok", f))

    def bad(m):
        got.append(("failed", m))

    s.exportFinished.connect(ok)
    s.exportFailed.connect(bad)
    try:
        assert window.export_to(folder)
        qtbot.waitUntil(lambda: bool(got), timeout=timeout_ms)
    finally:
        s.exportFinished.disconnect(ok)
        s.exportFailed.disconnect(bad)
    return got[0]


def send_mouse(widget, kind: QEvent.Type, pos: QPointF, button=Qt.MouseButton.LeftButton,
               buttons=Qt.MouseButton.LeftButton) -> None:
    """Deliver one mouse event to ``widget`` at local ``pos`` (with explicit button state)."""
    glob = QPointF(widget.mapToGlobal(pos.toPoint()))
    ev = QMouseEvent(kind, pos, glob, button, buttons, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, ev)


def mouse_drag(widget, start: QPointF, end: QPointF, steps: int = 12, pause_ms: int = 5) -> None:
    """Press at ``start``, move in ``steps`` to ``end``, release: a real drag as Qt delivers it."""
    left = Qt.MouseButton.LeftButton
    send_mouse(widget, QEvent.Type.MouseMove, start, Qt.MouseButton.NoButton, Qt.MouseButton.NoButton)
    QApplication.processEvents()
    send_mouse(widget, QEvent.Type.MouseButtonPress, start, left, left)
    for i in range(1, steps + 1):
        p = start + (end - start) * (i / steps)
        send_mouse(widget, QEvent.Type.MouseMove, p, Qt.MouseButton.NoButton, left)
        QApplication.processEvents()
        time.sleep(pause_ms / 1000.0)
    send_mouse(widget, QEvent.Type.MouseButtonRelease, end, left, Qt.MouseButton.NoButton)
    QApplication.processEvents()


def drop_on(widget, mime: QMimeData, pos: QPoint | None = None) -> None:
    """Simulate the drop of ``mime`` on ``widget`` (drag enter, move, drop)."""
    pos = pos or widget.rect().center()
    posf = QPointF(pos)
    for kind in (QEvent.Type.DragEnter, QEvent.Type.DragMove):
        from PySide6.QtGui import QDragEnterEvent, QDragMoveEvent

        cls = QDragEnterEvent if kind == QEvent.Type.DragEnter else QDragMoveEvent
        ev = cls(pos, Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
        QApplication.sendEvent(widget, ev)
    ev = QDropEvent(posf, Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, ev)


def file_mime(*paths) -> QMimeData:
    md = QMimeData()
    md.setUrls([QUrl.fromLocalFile(str(Path(p))) for p in paths])
    return md


class Heartbeat:
    """A QTimer on the GUI thread; :attr:`max_gap_ms` is the longest time between two ticks."""

    def __init__(self, interval_ms: int = 15):
        self.interval_ms = interval_ms
        self.timer = QTimer()
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self._tick)
        self.last: float | None = None
        self.gaps: list[float] = []

    def _tick(self) -> None:
        now = time.perf_counter()
        if self.last is not None:
            self.gaps.append((now - self.last) * 1000.0)
        self.last = now

    def start(self) -> None:
        self.last, self.gaps = None, []
        self.timer.start()

    def stop(self) -> None:
        self.timer.stop()

    @property
    def max_gap_ms(self) -> float:
        return max(self.gaps) if self.gaps else 0.0


def close_window(win) -> None:
    """Close ``win`` without the unsaved-corrections question (its corrections count as saved)."""
    from PySide6.QtTest import QTest

    win.session.undo_stack.setClean()
    win.close()
    QTest.qWait(50)


def answer_dialog(button, timeout_ms: int = 10_000) -> list:
    """Click ``button`` (a ``QMessageBox.StandardButton``) of the next modal message box as soon as
    it shows; returns a list that receives ``(title, text, informative text)`` of the box answered."""
    from PySide6.QtWidgets import QMessageBox

    seen: list = []
    deadline = time.perf_counter() + timeout_ms / 1000.0
    timer = QTimer()
    timer.setInterval(20)

    def poll():
        box = QApplication.activeModalWidget()
        if isinstance(box, QMessageBox):
            seen.append((box.windowTitle(), box.text(), box.informativeText()))
            timer.stop()
            box.button(button).click()
        elif time.perf_counter() > deadline:
            timer.stop()

    timer.timeout.connect(poll)
    timer.start()
    _KEEP[:] = [t for t in _KEEP if t.isActive()]
    _KEEP.append(timer)                  # the timer lives until it has answered
    return seen


_KEEP: list = []


class ModalGuard:
    """Closes a modal dialog that stays open longer than ``limit_s`` (a test that did not expect
    it would otherwise hang) and records its title in :attr:`closed`."""

    def __init__(self, limit_s: float = 8.0):
        self.closed: list[str] = []
        self._since: dict[int, float] = {}
        self._limit = limit_s
        self.timer = QTimer()
        self.timer.setInterval(250)
        self.timer.timeout.connect(self._poll)
        self.timer.start()

    def _poll(self) -> None:
        w = QApplication.activeModalWidget()
        if w is None:
            self._since.clear()
            return
        t0 = self._since.setdefault(id(w), time.perf_counter())
        if time.perf_counter() - t0 > self._limit:
            self.closed.append(w.windowTitle())
            w.close()
            if hasattr(w, "reject"):
                w.reject()

    def stop(self) -> None:
        self.timer.stop()

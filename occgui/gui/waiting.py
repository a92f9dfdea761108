"""Waiting for the worker without blocking the GUI: a local event loop that ends on a signal or
a timeout. Used by the self-test (tests use pytest-qt's ``qtbot.waitSignal``)."""
from __future__ import annotations

from PySide6.QtCore import QEventLoop, QTimer


def wait_for_signals(signals, timeout_s: float) -> tuple[int, tuple] | None:
    """Run the event loop until one of ``signals`` is emitted; returns ``(index, args)`` of the
    first one, or None on timeout."""
    loop = QEventLoop()
    got: list[tuple[int, tuple]] = []
    connections = []
    for i, sig in enumerate(signals):
        def slot(*args, i=i):
            if not got:
                got.append((i, args))
            loop.quit()
        sig.connect(slot)
        connections.append((sig, slot))
    timer = QTimer()
    timer.setSingleShot(True)
    timer.timeout.connect(loop.quit)
    timer.start(int(timeout_s * 1000))
    loop.exec()
    timer.stop()
    for sig, slot in connections:
        sig.disconnect(slot)
    return got[0] if got else None


def process_for(ms: int) -> None:
    """Keep the GUI running for ``ms`` milliseconds (lets paints and renders happen)."""
    loop = QEventLoop()
    QTimer.singleShot(int(ms), loop.quit)
    loop.exec()

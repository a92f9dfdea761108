"""Starting the desktop application: ``run_app`` is what ``occgui [PHOTO] [--self-test]`` calls."""
from __future__ import annotations

import os
import signal
import sys

# pyvistaqt goes through qtpy: make it use the same binding as the rest of the GUI.
os.environ.setdefault("QT_API", "pyside6")

from PySide6.QtCore import Qt, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from .theme import apply_dark_theme  # noqa: E402


def create_application(argv: list[str] | None = None) -> QApplication:
    """The QApplication (created once), named and themed."""
    app = QApplication.instance()
    if app is None:
        QApplication.setHighDpiScaleFactorRoundingPolicy(Qt.HighDpiScaleFactorRoundingPolicy.PassThrough)
        app = QApplication(argv if argv is not None else [sys.argv[0]])
    app.setOrganizationName("occgui")
    app.setApplicationName("occgui")
    app.setApplicationDisplayName("occgui")
    apply_dark_theme(app)
    import pyqtgraph as pg

    pg.setConfigOptions(antialias=True, imageAxisOrder="row-major")
    return app


def run_app(photo: str | None = None, self_test: bool = False, device: str | None = None) -> int:
    """Open the main window (with ``photo`` loaded and running), or run the self-test.
    Returns the process exit code."""
    app = create_application()
    if self_test:
        from .self_test import run_self_test

        return run_self_test(device=device)
    from .main_window import MainWindow

    window = MainWindow(device=device)
    window.show()
    if photo:
        QTimer.singleShot(0, lambda: window.open_photo(photo))
    # Ctrl+C in the terminal closes the window properly (settings saved, compute process ended);
    # the idle timer lets Python run its signal handler while Qt's event loop waits.
    signal.signal(signal.SIGINT, lambda *_: QApplication.closeAllWindows())
    wake = QTimer()
    wake.timeout.connect(lambda: None)
    wake.start(300)
    return int(app.exec())

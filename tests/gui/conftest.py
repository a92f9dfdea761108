"""GUI test set-up: a display is required (run under ``xvfb-run -a``), settings are isolated.

Without a display (``DISPLAY``/``WAYLAND_DISPLAY`` unset) every test marked ``gui`` is skipped
with a clear reason instead of letting Qt abort the process; the Qt-free tests here still run. Settings go to a
temporary folder so that the tests never touch the user's QSettings.
"""
from __future__ import annotations

import os

import pytest

os.environ.setdefault("QT_API", "pyside6")
os.environ.setdefault("PYTEST_QT_API", "pyside6")

HAS_DISPLAY = bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
NO_DISPLAY_REASON = ("GUI tests need a display: run them under a virtual X server, e.g. "
                     "xvfb-run -a -s \"-screen 0 1920x1200x24\" python -m pytest tests/gui "
                     "(note: pyvistaqt does not render with QT_QPA_PLATFORM=offscreen)")


def pytest_collection_modifyitems(config, items):
    if HAS_DISPLAY:
        return
    skip = pytest.mark.skip(reason=NO_DISPLAY_REASON)
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.fspath).startswith(here) and item.get_closest_marker("gui") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def gui_settings_dir(tmp_path_factory):
    """QSettings of the whole test session live here (never in the user's home)."""
    if not HAS_DISPLAY:
        pytest.skip(NO_DISPLAY_REASON)
    from PySide6.QtCore import QStandardPaths

    from occgui.gui.settings import use_settings_folder

    QStandardPaths.setTestModeEnabled(True)
    folder = tmp_path_factory.mktemp("qsettings")
    use_settings_folder(folder)
    return folder


@pytest.fixture(scope="session")
def gui_app(gui_settings_dir, qapp):
    """The themed QApplication (pytest-qt's ``qapp``, set up like ``occgui`` does)."""
    from occgui.gui.app import create_application

    return create_application()


@pytest.fixture(scope="session")
def sample():
    from occgui.resources import sample_photo

    p = sample_photo()
    assert p.exists(), p
    return p


@pytest.fixture
def window(gui_app, qtbot):
    """A fresh main window of its own (own session, worker and compute process) for one test.

    A dialog left open by a test is closed after a while and fails that test (see
    ``gui_helpers.ModalGuard``) instead of hanging the run; corrections a test leaves behind are
    marked saved before the window closes, so closing never asks."""
    from gui_helpers import ModalGuard, close_window
    from PySide6.QtTest import QTest

    from occgui.gui.main_window import MainWindow

    guard = ModalGuard()
    win = MainWindow()
    win.show()
    QTest.qWaitForWindowExposed(win)
    try:
        yield win
    finally:
        close_window(win)
        guard.stop()
    assert not guard.closed, f"a dialog was left open and had to be closed: {guard.closed}"


@pytest.fixture
def ran_window(window, qtbot, sample):
    """``window`` with the bundled sample photo opened and every stage run."""
    from gui_helpers import wait_run_end

    kind, outcome = wait_run_end(qtbot, window, lambda: window.open_photo(sample))
    assert kind == "finished", outcome
    return window

"""Entry script of the PyInstaller app (``build_app.spec``): the ``occgui`` command, frozen.

``occgui/__main__.py`` cannot be the frozen entry itself: PyInstaller runs its entry script as a
top-level ``__main__`` module, where that file's relative import has no package. This script
imports the same ``occgui.cli.main`` absolutely. ``multiprocessing.freeze_support()`` comes
first: the GUI's compute process (see ``occgui.gui.compute_host``) is this same executable
started again by ``multiprocessing``, and must run the child instead of the command line.
"""
import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()
    from occgui.cli import main

    sys.exit(main())

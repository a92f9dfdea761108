"""Entry of the desktop GUI from the ``occgui`` command: ``occgui [PHOTO] [--self-test]``.

Kept free of Qt imports itself; the GUI package is imported only here, on demand.
"""
from __future__ import annotations

import argparse
import sys


def build_gui_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="occgui", description="Open the occgui main window "
                                 "(headless commands: occgui run|train|eval|backends --help).")
    ap.add_argument("photo", nargs="?", help="photo to open; the pipeline starts at once")
    ap.add_argument("--self-test", action="store_true",
                    help="open the window, run the sample through the worker, edit a landmark, re-run, "
                         "check the 3D view and an export, then exit 0 (non-zero with a reason otherwise)")
    ap.add_argument("--device", choices=("auto", "cpu", "cuda"), help="override the saved device preference")
    return ap


def launch_gui(argv: list[str]) -> int:
    args = build_gui_parser().parse_args(argv)
    try:
        from .gui.app import run_app
    except ImportError as e:
        print(f"occgui: error: the GUI cannot start ({e})", file=sys.stderr)
        return 2
    return run_app(photo=args.photo, self_test=args.self_test, device=args.device)

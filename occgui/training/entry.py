"""The stand-alone entry of a trainer (``python -m occgui.training.X.train``): the same options and
run as its ``occgui train`` subcommand, with the CLI's one-line error and exit code 2."""
from __future__ import annotations

import argparse
import sys

from ..errors import OccguiError


def standalone_main(prog: str, description: str, add_arguments, run, argv=None) -> int:
    """Parse ``argv`` with ``add_arguments`` and call ``run(args)``; an :class:`OccguiError` prints
    ``error: ...`` on stderr and returns 2."""
    p = argparse.ArgumentParser(prog=prog, description=description)
    add_arguments(p)
    args = p.parse_args(argv)
    try:
        return run(args)
    except OccguiError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

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


def add_data_arguments(parser: argparse.ArgumentParser, *, cache_default, items: str, run_holds: str) -> None:
    """The data options every trainer shares: ``--data``, ``-o/--output`` (the run folder, which
    holds ``run_holds``), ``--occluders`` and ``--cache`` (where its ``items`` are cached)."""
    parser.add_argument("--data", help="shared data folder (with faces/lfw and occluders) or an LFW folder")
    parser.add_argument("-o", "--output", required=True, metavar="RUN", help=f"run folder ({run_holds})")
    parser.add_argument("--occluders", help="occluder folder (default: DATA/occluders)")
    parser.add_argument("--cache", default=str(cache_default),
                        help=f"cache folder of the {items} (default %(default)s)")


def add_schedule_arguments(parser: argparse.ArgumentParser, *, steps: int, val_every: int, checkpoint_every: float,
                           minutes_help: str = "stop after this much training wall time") -> None:
    """The run-schedule options every trainer shares: steps, wall-time limit, seed, resume,
    validation and checkpoint intervals, torch threads, progress bars, and the tests' interrupt."""
    parser.add_argument("--steps", type=int, default=steps, help="optimisation steps (default %(default)s)")
    parser.add_argument("--minutes", type=float, help=minutes_help)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true", help="continue the run in RUN from its last.pt")
    parser.add_argument("--val-every", type=int, default=val_every, help="steps between validations")
    parser.add_argument("--checkpoint-every", type=float, default=checkpoint_every,
                        help="minutes between last.pt saves")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for torch (default %(default)s)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--stop-after", type=int, help=argparse.SUPPRESS)   # interrupt after N steps (tests)


def checked_data_dirs(data, occluders=None):
    """(LFW folder, occluder folder) of ``--data`` / ``--occluders``, both required to exist:
    a one-line :class:`OccguiError` otherwise."""
    from .parsing.dataset import resolve_data_dirs

    lfw, occ = resolve_data_dirs(data, occluders)
    if not lfw.is_dir():
        raise OccguiError(f"LFW folder not found: {lfw}")
    if occ is None:
        raise OccguiError("occluder folder not found: give --occluders")
    return lfw, occ

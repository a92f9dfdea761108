"""``occgui eval occlusion|natural|scan|verify|real``: the evaluation suite's command line (paper §5).

Each subcommand writes ``OUT/report.json``, ``OUT/report.md``, PNG plots and a sample grid,
caches per-item results under ``OUT/cache/`` (an interrupted run continues; ``--shard K/N``
lets several processes share one run, after which a run without ``--shard`` writes the report;
``--report-only`` rewrites the report from the cache alone), and is deterministic for a given
``--seed``.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..errors import OccguiError


def _common(p: argparse.ArgumentParser, *, limit_help: str) -> None:
    from ..device import CHOICES

    p.add_argument("-o", "--output", required=True, metavar="OUT", help="report folder")
    p.add_argument("--limit", type=int, default=None, metavar="N", help=limit_help)
    p.add_argument("--seed", type=int, default=0, help="seed of the occluder choice and placement (default 0)")
    p.add_argument("--device", choices=CHOICES, default="auto")
    p.add_argument("--backend", action="append", metavar="STAGE=NAME",
                   help="override a stage backend of the full pipeline (see `occgui backends`)")
    p.add_argument("--shard", metavar="K/N", help="process only every N-th item from the K-th (0-based) into the "
                   "cache; run again without --shard to write the report")
    p.add_argument("--report-only", action="store_true", help="write the report from the cached results of an "
                   "earlier run (no model is loaded; photos not yet run are listed)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def _positive(value: int | None, name: str) -> None:
    if value is not None and value < 1:
        raise OccguiError(f"{name} must be at least 1")


def _default_occluders(anchor: Path, up: int) -> Path | None:
    """``<data>/occluders`` for the shared-data layout (``<data>/faces/lfw/<dir>``, ``<data>/scans/<scan>``)."""
    p = Path(anchor).resolve()
    for _ in range(up):
        p = p.parent
    cand = p / "occluders"
    return cand if cand.is_dir() else None


def _occluders(args, anchor: Path, up: int) -> Path:
    if args.occluders:
        return Path(args.occluders)
    found = _default_occluders(anchor, up)
    if found is None:
        raise OccguiError("give the occluder folder with --occluders DIR")
    return found


def _done(kind: str, out: Path, report: dict, t0: float, quiet: bool) -> int:
    if not quiet:
        if "shard" in report:
            print(f"{kind}: shard {report['shard']} cached {report['photos']} item(s) in {time.perf_counter() - t0:.0f} s; "
                  f"run without --shard to write the report")
        else:
            print(f"{kind}: wrote {out / 'report.md'} and {out / 'report.json'} ({time.perf_counter() - t0:.0f} s)")
    return 0


def cmd_occlusion(args) -> int:
    from . import harness as H
    from .occlusion import OcclusionSettings, run

    _positive(args.limit, "--limit")
    t0 = time.perf_counter()
    fams = tuple(f.strip() for f in args.families.split(",") if f.strip()) if args.families else ()
    s = OcclusionSettings(faces=Path(args.faces), occluders=Path(args.occluders), out=Path(args.output),
                          limit=args.limit, seed=args.seed, device=args.device,
                          backends=H.parse_backend_overrides(args.backend), families=fams, shard=args.shard,
                          quiet=args.quiet, samples=args.samples, report_only=args.report_only)
    return _done("occlusion", s.out, run(s), t0, args.quiet)


def cmd_natural(args) -> int:
    from . import harness as H
    from .natural import NaturalSettings, run

    _positive(args.limit, "--limit")
    t0 = time.perf_counter()
    s = NaturalSettings(faces=Path(args.faces), list=Path(args.list), out=Path(args.output), limit=args.limit,
                        seed=args.seed, device=args.device, backends=H.parse_backend_overrides(args.backend),
                        others=args.others, shard=args.shard, quiet=args.quiet, report_only=args.report_only)
    return _done("natural", s.out, run(s), t0, args.quiet)


def cmd_scan(args) -> int:
    from . import harness as H
    from .scan import ScanSettings, run

    _positive(args.limit, "--limit")
    t0 = time.perf_counter()
    fams = tuple(f.strip() for f in args.families.split(",") if f.strip()) if args.families else ()
    s = ScanSettings(scan=Path(args.scan), occluders=_occluders(args, Path(args.scan), 2), out=Path(args.output),
                     limit=args.limit, seed=args.seed, device=args.device,
                     backends=H.parse_backend_overrides(args.backend), families=fams, shard=args.shard,
                     quiet=args.quiet, report_only=args.report_only)
    return _done("scan", s.out, run(s), t0, args.quiet)


def cmd_verify(args) -> int:
    from . import harness as H
    from .verify import VerifySettings, run

    _positive(args.limit, "--limit")
    t0 = time.perf_counter()
    folds = tuple(int(f) for f in args.folds.split(",")) if args.folds else ()
    s = VerifySettings(faces=Path(args.faces), pairs=Path(args.pairs), occluders=_occluders(args, Path(args.faces), 3),
                       out=Path(args.output), limit=args.limit, folds=folds, seed=args.seed, device=args.device,
                       backends=H.parse_backend_overrides(args.backend), shard=args.shard, quiet=args.quiet,
                       report_only=args.report_only)
    return _done("verify", s.out, run(s), t0, args.quiet)


def cmd_real(args) -> int:
    from . import harness as H
    from .real import RealSettings, run

    _positive(args.limit, "--limit")
    t0 = time.perf_counter()
    listed = Path(args.list) if args.list else Path(args.faces).parent / "natural_occlusions.csv"
    s = RealSettings(faces=Path(args.faces), out=Path(args.output), labels=Path(args.labels) if args.labels else None,
                     split=args.split, limit=args.limit, clean=args.clean, others=args.others,
                     list=listed if listed.is_file() else None, seed=args.seed, device=args.device,
                     backends=H.parse_backend_overrides(args.backend), shard=args.shard, quiet=args.quiet,
                     report_only=args.report_only, samples=args.samples)
    return _done("real", s.out, run(s), t0, args.quiet)


def add_subcommands(eval_parser: argparse.ArgumentParser) -> None:
    """Add ``occlusion``, ``natural``, ``scan``, ``verify`` and ``real`` to the ``occgui eval`` parser."""
    sub = eval_parser.add_subparsers(dest="benchmark", required=True, metavar="BENCHMARK")

    o = sub.add_parser("occlusion", help="pasted occluders on face photos: landmarks, parsing, I_out, 3D, texture, "
                       "identity; raw vs full")
    o.add_argument("--faces", required=True, metavar="DIR", help="face photos (recursing into person folders)")
    o.add_argument("--occluders", required=True, metavar="DIR", help="occluder folder (noto_emoji/, maskthe_face/)")
    o.add_argument("--families", metavar="A,B,...", help="occlusion families (default: all of "
                   "occgui.occluders.EVAL_FAMILIES)")
    o.add_argument("--samples", type=int, default=8, metavar="N", help="cases in the sample grid (default 8)")
    _common(o, limit_help="at most N photos, spread over identities")
    o.set_defaults(func=cmd_occlusion)

    n = sub.add_parser("natural", help="real occlusions (LFW natural_occlusions.csv): identity vs the person's "
                       "other photos, shape consistency; raw vs full")
    n.add_argument("--faces", required=True, metavar="DIR", help="LFW photo folder (person/person_NNNN.jpg)")
    n.add_argument("--list", required=True, metavar="CSV", help="natural_occlusions.csv")
    n.add_argument("--others", type=int, default=5, metavar="K",
                   help="compare with at most K other photos of the same person (default 5)")
    _common(n, limit_help="at most N listed photos")
    n.set_defaults(func=cmd_natural)

    c = sub.add_parser("scan", help="ground-truth geometry: render a textured head scan, occlude, reconstruct, "
                       "align (similarity + ICP), per-vertex error heat maps")
    c.add_argument("--scan", required=True, metavar="DIR_OR_GLB", help="scan folder (one .glb + colour map) or .glb")
    c.add_argument("--occluders", metavar="DIR", help="occluder folder (default: <data>/occluders next to scans/)")
    c.add_argument("--families", metavar="A,B,...", help="occlusion families (default: all)")
    _common(c, limit_help="at most N render conditions (pose x lighting)")
    c.set_defaults(func=cmd_scan)

    r = sub.add_parser("real", help="the labelled real occlusions (resources/real_occlusions): occluder IoU, landmark "
                       "NME vs MediaPipe and dlib, identity; false occluder area on clean held-out photos")
    r.add_argument("--faces", required=True, metavar="DIR", help="LFW photo folder (person/person_NNNN.jpg)")
    r.add_argument("--labels", metavar="DIR", help="label set folder (default: the bundled resources/real_occlusions)")
    r.add_argument("--split", choices=("test", "dev", "all"), default="all", help="which labelled photos (default all; "
                   "the report shows the splits separately)")
    r.add_argument("--clean", type=int, default=200, metavar="N", help="clean held-out (Q-S) photos for the false "
                   "occluder area (default 200; 0 = skip)")
    r.add_argument("--others", type=int, default=3, metavar="K", help="other photos per person for the identity "
                   "distances (default 3; 0 = skip)")
    r.add_argument("--list", metavar="CSV", help="natural_occlusions.csv: its photos are kept out of the clean set "
                   "(default: <faces>/../natural_occlusions.csv when present)")
    r.add_argument("--samples", type=int, default=12, metavar="N", help="cases in the sample grid (default 12)")
    _common(r, limit_help="at most N labelled photos, spread over the types")
    r.set_defaults(func=cmd_real)

    v = sub.add_parser("verify", help="LFW verification like the paper's Table 1, with and without occluders")
    v.add_argument("--faces", required=True, metavar="DIR", help="LFW photo folder (person/person_NNNN.jpg)")
    v.add_argument("--pairs", required=True, metavar="FILE", help="LFW pairs list (pairs.txt format)")
    v.add_argument("--occluders", metavar="DIR", help="occluder folder (default: <data>/occluders of the LFW layout)")
    v.add_argument("--folds", metavar="I,J,...", help="only these folds (0-based; default all)")
    _common(v, limit_help="at most N pairs, taken alternately from the folds and same/different lists")
    v.set_defaults(func=cmd_verify)

"""``occgui eval occlusion|natural|scan|verify|verify-fit|real``: the evaluation suite's command line (paper §5).

Each subcommand writes ``OUT/report.json``, ``OUT/report.md``, PNG plots and a sample grid,
caches per-item results under ``OUT/cache/`` (an interrupted run continues; ``--report-only``
rewrites the report from the cache alone), and is deterministic for a given ``--seed``. ``--workers N``
runs the items in N local processes and ``--ray ADDRESS`` on a Ray cluster (:mod:`occgui.batch.executor`;
each worker loads the models once); the records come back to this process, which caches them and
writes the report.
"""
from __future__ import annotations

import argparse
import sys
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
    p.add_argument("--option", action="append", metavar="STAGE.SETTING=VALUE",
                   help="set a typed setting of a stage's backend (see `occgui backends`)")
    from ..batch.executor import add_arguments as add_executor_arguments

    add_executor_arguments(p, what="items (photos, cases, render conditions)")
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
        print(f"{kind}: wrote {out / 'report.md'} and {out / 'report.json'} ({time.perf_counter() - t0:.0f} s)")
    return 0


def _run(run, s, args) -> dict:
    """``run(s, executor)`` with the executor of ``--workers`` / ``--ray`` (none for ``--report-only``)."""
    if args.report_only:
        return run(s)
    from ..batch.executor import executor_from_args

    with executor_from_args(args) as executor:
        if not args.quiet and executor.workers > 1:
            print(f"{args.benchmark}: {executor.description}", file=sys.stderr)
        return run(s, executor)


def _backends(args) -> tuple[dict[str, str], dict]:
    """``--backend`` and ``--option`` parsed into backend names and typed settings."""
    from ..pipeline.backends import parse_backend_choices, parse_settings

    chosen = parse_backend_choices(args.backend)
    return chosen, parse_settings(args.option, chosen)


def cmd_occlusion(args) -> int:
    from .occlusion import OcclusionSettings, run

    _positive(args.limit, "--limit")
    chosen, settings = _backends(args)
    t0 = time.perf_counter()
    fams = tuple(f.strip() for f in args.families.split(",") if f.strip()) if args.families else ()
    s = OcclusionSettings(faces=Path(args.faces), occluders=Path(args.occluders), out=Path(args.output),
                          limit=args.limit, seed=args.seed, device=args.device,
                          backends=chosen, backend_settings=settings, families=fams,
                          quiet=args.quiet, samples=args.samples, report_only=args.report_only)
    return _done("occlusion", s.out, _run(run, s, args), t0, args.quiet)


def cmd_natural(args) -> int:
    from .natural import NaturalSettings, run

    _positive(args.limit, "--limit")
    chosen, settings = _backends(args)
    t0 = time.perf_counter()
    s = NaturalSettings(faces=Path(args.faces), list=Path(args.list), out=Path(args.output), limit=args.limit,
                        seed=args.seed, device=args.device, backends=chosen, backend_settings=settings,
                        others=args.others, quiet=args.quiet, report_only=args.report_only)
    return _done("natural", s.out, _run(run, s, args), t0, args.quiet)


def cmd_scan(args) -> int:
    from .scan import ScanSettings, run

    _positive(args.limit, "--limit")
    chosen, settings = _backends(args)
    t0 = time.perf_counter()
    fams = tuple(f.strip() for f in args.families.split(",") if f.strip()) if args.families else ()
    s = ScanSettings(scan=Path(args.scan), occluders=_occluders(args, Path(args.scan), 2), out=Path(args.output),
                     limit=args.limit, seed=args.seed, device=args.device,
                     backends=chosen, backend_settings=settings, families=fams,
                     quiet=args.quiet, report_only=args.report_only)
    return _done("scan", s.out, _run(run, s, args), t0, args.quiet)


def cmd_verify(args) -> int:
    from .fisn_variant import fisn_settings
    from .verify import VerifySettings, run

    _positive(args.limit, "--limit")
    chosen, settings = _backends(args)
    t0 = time.perf_counter()
    folds = tuple(int(f) for f in args.folds.split(",")) if args.folds else ()
    s = VerifySettings(faces=Path(args.faces), pairs=Path(args.pairs), occluders=_occluders(args, Path(args.faces), 3),
                       out=Path(args.output), limit=args.limit, folds=folds, seed=args.seed, device=args.device,
                       backends=chosen, backend_settings=settings, quiet=args.quiet,
                       report_only=args.report_only, fisn=None if args.report_only else fisn_settings(args.fisn))
    return _done("verify", s.out, _run(run, s, args), t0, args.quiet)


def cmd_verify_fit(args) -> int:
    from .verify_fit import VerifyFitSettings, run

    _positive(args.limit, "--limit")
    t0 = time.perf_counter()
    folds = tuple(int(f) for f in args.folds.split(",")) if args.folds else ()
    variants = tuple(v.strip() for v in args.variants.split(",") if v.strip())
    s = VerifyFitSettings(faces=Path(args.faces), pairs=Path(args.pairs),
                          occluders=_occluders(args, Path(args.faces), 3), out=Path(args.output),
                          limit=args.limit, folds=folds, seed=args.seed, variants=variants,
                          iout_landmarks=args.iout_landmarks, expression_prior=args.expression_prior,
                          quiet=args.quiet, collect_only=args.collect_only,
                          log=lambda m: print(m, file=sys.stderr, flush=True))
    report = run(s)
    if s.collect_only:
        print(f"verify-fit: collected {report['collected_cases']} fit inputs into {s.out / 'cases.npz'}")
        return 0
    return _done("verify-fit", s.out, report, t0, args.quiet)


def cmd_deocclusion(args) -> int:
    from . import deocclusion as D
    from .fisn_variant import fisn_settings

    _positive(args.per_family, "--per-family")
    chosen, settings = _backends(args)
    out = Path(args.output)
    t0 = time.perf_counter()

    def progress(fam, i, n):
        if not args.quiet:
            print(f"\r{fam}: {i}/{n}  ({time.perf_counter() - t0:.0f} s)", end="", flush=True)

    fams = tuple(f.strip() for f in args.families.split(",") if f.strip()) if args.families else D.FAMILIES
    rest = {k: v for k, v in chosen.items() if k not in ("parse", "landmarks", "synthesize")}
    report = D.run(Path(args.faces), Path(args.occluders), families=fams, per_family=args.per_family,
                   seed=args.seed, parser=chosen.get("parse", "auto"), landmarks=chosen.get("landmarks"),
                   synthesizer=chosen.get("synthesize"), backends=rest, settings=settings,
                   identities=args.identities, progress=progress, grid_dir=out / "grids" if args.grids else None,
                   fisn=fisn_settings(args.fisn))
    if not args.quiet:
        print()
    D.save_report(report, out / "report.json")
    p = report["protocol"]
    failed = {k: len(v) for k, v in report["failed"].items() if v}
    lines = ["# De-occlusion (I_out) against the occluded photo and Telea", "",
             f"parser {p['parser']}; landmarks {p['landmarks']}; synthesizer {p['synthesizer']}; seed {p['seed']}, "
             f"{p['per_family']} per family, identities {p['identities']}; settings {p['settings'] or 'defaults'}"
             + (f"; FISN {p['fisn']}" if p.get("fisn") else ""), "",
             D.format_table(report["table"]), "",
             f"photos skipped (no face after occlusion): {failed}" if failed else "no photo skipped",
             "targets met" if not report["violations"] else "targets missed: " + "; ".join(report["violations"])]
    (out / "report.md").write_text("\n".join(lines) + "\n")
    print(f"deocclusion: wrote {out / 'report.md'} and {out / 'report.json'} ({time.perf_counter() - t0:.0f} s)")
    return 0


def cmd_real(args) -> int:
    from .real import RealSettings, run

    _positive(args.limit, "--limit")
    chosen, settings = _backends(args)
    t0 = time.perf_counter()
    listed = Path(args.list) if args.list else Path(args.faces).parent / "natural_occlusions.csv"
    s = RealSettings(faces=Path(args.faces), out=Path(args.output), labels=Path(args.labels) if args.labels else None,
                     split=args.split, limit=args.limit, clean=args.clean, others=args.others,
                     list=listed if listed.is_file() else None, seed=args.seed, device=args.device,
                     backends=chosen, backend_settings=settings, quiet=args.quiet,
                     report_only=args.report_only, samples=args.samples)
    return _done("real", s.out, _run(run, s, args), t0, args.quiet)


def cmd_fisn_decision(args) -> int:
    from . import fisn_decision as F

    ev = F.evidence_from_reports(args.deocclusion, args.verify, args.texture_classical, args.texture_fisn,
                                 verify_subset=args.verify_subset)
    if args.output:
        from ..synthesis.fisn_backend import checkpoint_file
        from ..synthesis.settings import FISNSettings

        ckpt = checkpoint_file(FISNSettings(checkpoint=args.checkpoint or ""))
        sources = {k: str(Path(getattr(args, k)).resolve())
                   for k in ("deocclusion", "verify", "texture_classical", "texture_fisn")}
        decision = F.write_record(args.output, ev, ckpt, {**sources, "verify_subset": args.verify_subset})
        print(decision.summary())
        print(f"fisn-decision: wrote {args.output} (weights {ckpt.name})")
    else:
        print(F.decide(ev).summary())
    return 0


def add_subcommands(eval_parser: argparse.ArgumentParser) -> None:
    """Add ``occlusion``, ``natural``, ``scan``, ``verify``, ``deocclusion`` and ``real`` to the
    ``occgui eval`` parser."""
    from .fisn_variant import HELP as FISN_HELP

    sub = eval_parser.add_subparsers(dest="benchmark", required=True, metavar="BENCHMARK")

    o = sub.add_parser("occlusion", help="pasted occluders on face photos: landmarks, parsing, I_out, 3D, texture, "
                       "identity; raw vs full")
    o.add_argument("--faces", required=True, metavar="DIR", help="face photos (recursing into person folders)")
    o.add_argument("--occluders", required=True, metavar="DIR", help="occluder folder (noto_emoji/, maskthe_face/)")
    o.add_argument("--families", metavar="A,B,...", help="occlusion families (default: all of "
                   "occgui.training.occlusion.occluders.EVAL_FAMILIES)")
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
    v.add_argument("--fisn", default="auto", metavar="auto|off|PATH", help=FISN_HELP)
    _common(v, limit_help="at most N pairs, taken alternately from the folds and same/different lists")
    v.set_defaults(func=cmd_verify)

    w = sub.add_parser("verify-fit", help="Table 1's protocol with the morphable fit's identity coefficients as the "
                       "feature (cosine), with and without occluders")
    w.add_argument("--faces", required=True, metavar="DIR", help="LFW photo folder (person/person_NNNN.jpg)")
    w.add_argument("--pairs", required=True, metavar="FILE", help="LFW pairs list (pairs.txt format)")
    w.add_argument("--occluders", metavar="DIR", help="occluder folder (default: <data>/occluders of the LFW layout)")
    w.add_argument("--folds", metavar="I,J,...", help="only these folds (0-based; default all)")
    w.add_argument("--variants", default="full", metavar="full[,raw]", help="occluded pipelines whose fits are "
                   "features (default full; raw = no merge, no de-occlusion)")
    w.add_argument("--limit", type=int, default=None, metavar="N", help="at most N pairs")
    w.add_argument("--seed", type=int, default=0, help="seed of the occluder choice (default 0, as `verify`)")
    w.add_argument("--iout-landmarks", default=None, metavar="MODE", help="Eq. 12's landmarks re-detected on I_out "
                   "before each fit, as the morphable backend does: off|hidden|all|blend (default: the backend's, "
                   "geometry.iout_landmarks)")
    w.add_argument("--expression-prior", default=None, metavar="off|learned|FILE", help="the fit's expression "
                   "prior, as the morphable backend's geometry.expression_prior (default: the backend's)")
    w.add_argument("-o", "--output", required=True, metavar="OUT", help="report folder")
    w.add_argument("--collect-only", action="store_true", help="only run the pipeline and keep the fit inputs "
                   "(OUT/cases.npz); a later run fits them")
    w.add_argument("-q", "--quiet", action="store_true", help="no progress")
    w.set_defaults(func=cmd_verify_fit)

    from .deocclusion import DEFAULT_PER_FAMILY, DEFAULT_SEED, FAMILIES

    d = sub.add_parser("deocclusion", help="I_out against the occluded photo and Telea on pasted occluders over "
                       "held-out LFW identities (Q-S): identity distance, hidden-feature IoU, L1")
    d.add_argument("--faces", required=True, metavar="DIR", help="LFW photo folder (person/person_NNNN.jpg)")
    d.add_argument("--occluders", required=True, metavar="DIR", help="occluder folder")
    d.add_argument("--families", metavar="A,B,...", help=f"occluder families (default: {','.join(FAMILIES)})")
    d.add_argument("--per-family", type=int, default=DEFAULT_PER_FAMILY, metavar="N",
                   help=f"cases per family (default {DEFAULT_PER_FAMILY})")
    d.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"seed of the photo choice and the occluders "
                   f"(default {DEFAULT_SEED})")
    d.add_argument("--identities", metavar="LETTERS", help="first letters of the LFW identities to use instead of "
                   "the held-out Q-S (development runs: A-P)")
    d.add_argument("--grids", action="store_true", help="also write before/after PNG grids under OUT/grids/")
    d.add_argument("--fisn", default="auto", metavar="auto|off|PATH", help=FISN_HELP)
    d.add_argument("-o", "--output", required=True, metavar="OUT", help="report folder")
    d.add_argument("--backend", action="append", metavar="STAGE=NAME", help="override a stage backend (a parsing "
                   "checkpoint: --option parse.checkpoint=PATH)")
    d.add_argument("--option", action="append", metavar="STAGE.SETTING=VALUE",
                   help="set a typed setting of a stage's backend (see `occgui backends`)")
    d.add_argument("-q", "--quiet", action="store_true", help="no progress")
    d.set_defaults(func=cmd_deocclusion)

    f = sub.add_parser("fisn-decision", help="issue 16's default-selection rule: does FISN beat the classical "
                       "de-occlusion? (reads the reports of deocclusion, verify and occlusion runs)")
    f.add_argument("--deocclusion", required=True, metavar="JSON", help="report.json of `occgui eval deocclusion "
                   "--fisn ...` (classical backend as `ours`)")
    f.add_argument("--verify", required=True, metavar="JSON", help="report.json of `occgui eval verify --fisn ...`")
    f.add_argument("--texture-classical", required=True, metavar="JSON",
                   help="report.json of `occgui eval occlusion` with the classical backend")
    f.add_argument("--texture-fisn", required=True, metavar="JSON",
                   help="report.json of `occgui eval occlusion --backend synthesize=fisn`")
    f.add_argument("--verify-subset", choices=("all", "held-out"), default="all",
                   help="verification pairs: all (default) or only the held-out Q-S pairs")
    f.add_argument("--checkpoint", metavar="PATH", help="the FISN weights measured (default: the shipped "
                   "checkpoints/fisn_generator.safetensors); its digest goes into the record")
    f.add_argument("-o", "--output", metavar="JSON", help="write the decision record here (the shipped one: "
                   "checkpoints/fisn_decision.json); without it only print the decision")
    f.set_defaults(func=cmd_fisn_decision)

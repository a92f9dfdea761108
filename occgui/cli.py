"""Command line: ``occgui run|train|eval|backends``; a bare ``occgui [PHOTO]`` opens the GUI.

Every user error is one line on stderr with a non-zero exit code, never a traceback (set
``OCCGUI_DEBUG=1`` to see tracebacks of unexpected errors).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import OccguiError

SUBCOMMANDS = ("run", "train", "eval", "backends")


def _err(msg: str) -> None:
    print(f"occgui: error: {msg}", file=sys.stderr)


def collect_photos(inputs: list[str]) -> list[Path]:
    """Expand files and folders (recursively, sorted) into photo paths; missing paths are kept so
    that they are reported as failures."""
    from .imageio import is_image_path

    out: list[Path] = []
    for s in inputs:
        p = Path(s)
        if p.is_dir():
            out.extend(sorted(f for f in p.rglob("*") if f.is_file() and is_image_path(f)))
        else:
            out.append(p)
    return out


def cmd_run(args) -> int:
    from .batch.executor import executor_from_args
    from .batch.photos import FAILURES_FILE, RunSpec, run_photos
    from .pipeline.backends import parse_backend_choices, parse_settings
    from .pipeline.runner import PipelineConfig

    photos = collect_photos(args.inputs)
    if not photos:
        _err("no photos found in the given inputs")
        return 2
    from .corrections import read_corrections
    from .landmarks.landmarks_json import read_landmarks_json

    if args.landmarks and args.corrections:
        _err("give either --landmarks or --corrections (a corrections file holds the landmarks too)")
        return 2
    if args.workers is not None and args.workers < 1:
        _err("--workers must be at least 1")
        return 2
    landmarks = read_landmarks_json(args.landmarks) if args.landmarks else None
    corrections = read_corrections(args.corrections) if args.corrections else None
    if (landmarks is not None or corrections is not None) and len(photos) != 1:
        _err(f"{'--landmarks' if args.landmarks else '--corrections'} applies to exactly one photo")
        return 2
    if corrections is not None and args.face is None:
        args.face = corrections.face_index
    chosen = parse_backend_choices(geometry_backend_items(args.backend, args.geometry))
    config = PipelineConfig(device=args.device, face_index=args.face or 0, crop_size=args.crop_size,
                            texture_size=args.texture_size, backends=chosen,
                            settings=parse_settings(args.option, chosen))
    spec = RunSpec(config, landmarks=landmarks, corrections=corrections)
    outdir = Path(args.output)
    batch = len(photos) > 1
    if not batch and not args.ray:
        args.workers = None               # one photo: no worker process to start
    with executor_from_args(args) as executor:
        if batch and not args.quiet and (args.workers or args.ray):
            print(f"{len(photos)} photos on {executor.description}", file=sys.stderr)
        ship = bool(args.ray) and args.ray != "local"
        summary = run_photos(photos, outdir, spec, executor, skip_existing=args.skip_existing, ship=ship,
                             failures_file=batch, quiet=not batch or args.quiet)
    if not batch:
        if summary.failures:
            photo, msg = summary.failures[0]
            _err(f"{photo}: {msg}")
            return 3 if msg.startswith("internal error") else 2
        if summary.done and not args.quiet:
            print(f"wrote {summary.done[0]} ({summary.seconds:.2f} s on {summary.device})")
        elif summary.skipped and not args.quiet:
            print(f"skipped {summary.skipped[0]}: {outdir} already holds its complete result")
        return 0
    skipped = f" ({len(summary.skipped)} skipped: already done)" if summary.skipped else ""
    print(f"{len(summary.done) + len(summary.skipped)}/{len(photos)} photos reconstructed into {outdir}{skipped} "
          f"in {summary.seconds:.1f} s")
    if summary.failures:
        print(f"{len(summary.failures)} failed (listed in {outdir / FAILURES_FILE}):", file=sys.stderr)
        for p, msg in summary.failures:
            print(f"  {p}: {msg}", file=sys.stderr)
        return 1
    return 0


#: ``--geometry`` choices -> geometry backends (sugar for ``--backend geometry=NAME``).
GEOMETRY_CHOICES = {"morphable": "morphable", "mediapipe": "mediapipe-mesh"}


def geometry_backend_items(items: list[str] | None, geometry: str | None) -> list[str]:
    """``--backend`` items with ``--geometry`` added as ``geometry=NAME`` (both naming the geometry
    backend is an error unless they agree)."""
    out = list(items or [])
    if geometry is None:
        return out
    name = GEOMETRY_CHOICES[geometry]
    given = [it.split("=", 1)[1].strip() for it in out if it.split("=", 1)[0].strip() == "geometry" and "=" in it]
    if any(g != name for g in given):
        raise OccguiError(f"--geometry {geometry} contradicts --backend geometry={given[0]}")
    return out + [f"geometry={name}"]


def cmd_backends(args) -> int:
    from .pipeline.backends import describe_all

    for stage, items in describe_all().items():
        print(stage)
        for it in items:
            flag = "" if it["available"] else "  (not available)"
            print(f"  {it['name']:<18} {it['description']}{flag}")
            for st in it["settings"]:
                unit = f" [{st['unit']}]" if st["unit"] else ""
                print(f"      {stage}.{st['name']}={st['default']!r} ({st['type']}{unit}): {st['doc']}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .device import CHOICES

    ap = argparse.ArgumentParser(prog="occgui", description="Occlusion-robust 3D face reconstruction from one photo.")
    sub = ap.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="reconstruct photos headless (files or folders)")
    r.add_argument("inputs", nargs="+", metavar="PHOTO_OR_FOLDER")
    r.add_argument("-o", "--output", required=True, metavar="OUTDIR")
    r.add_argument("--device", choices=CHOICES, default="auto")
    r.add_argument("--landmarks", metavar="FILE.json",
                   help="corrected 68 landmarks (photo pixels); re-runs from M_beta")
    r.add_argument("--corrections", metavar="FILE.json",
                   help="corrections saved by the GUI (corrections.json): landmarks and/or the painted occluder; "
                        "re-runs from M_beta / the merge")
    r.add_argument("--face", type=int, default=None, metavar="N",
                   help="which face: 0 = largest (default, or the corrections file's), 1 = next, ...")
    r.add_argument("--crop-size", type=int, default=256, choices=(256, 512))
    r.add_argument("--texture-size", type=int, default=1024, choices=(1024, 2048))
    r.add_argument("--backend", action="append", metavar="STAGE=NAME", help="choose a backend (see `occgui backends`)")
    r.add_argument("--option", action="append", metavar="STAGE.SETTING=VALUE",
                   help="set a typed setting of a stage's backend, e.g. synthesize.dilate_px=3 (see `occgui backends`)")
    from .batch.executor import add_arguments as add_executor_arguments

    add_executor_arguments(r, what="photos")
    r.add_argument("--skip-existing", action="store_true",
                   help="skip photos whose output folder already holds a complete report.json (resume a batch)")
    r.add_argument("--geometry", choices=tuple(GEOMETRY_CHOICES), default=None,
                   help="the 3D face: 'morphable' fits the morphable model to the de-occluded face (paper §3.4-3.5; "
                        "also writes coefficients.json), 'mediapipe' is MediaPipe's mesh (the default); "
                        "same as --backend geometry=morphable|mediapipe-mesh")
    r.add_argument("-q", "--quiet", action="store_true")
    r.set_defaults(func=cmd_run)

    t = sub.add_parser("train", help="train the project's networks")
    tsub = t.add_subparsers(dest="network", required=True)
    from .training import export_command
    from .training.fisn import train as fisn_train
    from .training.landmarks import train_refiner
    from .training.parsing import train as parsing_train
    from .training.recon import train as recon_train
    from .training.texture_gcn import train as texture_gcn_train

    for name, help_, module in (
            ("parsing", "train the parsing U-Net N_alpha (paper §3.2)", parsing_train),
            ("landmarks", "train the occlusion-aware landmark refiner (paper §3.1, Eq. 1)", train_refiner),
            ("fisn", "train FISN, the face image synthesis network (paper §3.3)", fisn_train),
            ("recon", "train the R-Net coefficient regressor, distilled from morphable fits (paper §3.4)",
             recon_train),
            ("texture-gcn", "train the texture refinement graph convolutional network (paper §3.4, after "
                            "Lin et al. 2020)", texture_gcn_train),
            ("export-onnx", "(re-)export the parser or the refiner as the ONNX file inference runs", export_command)):
        tp = tsub.add_parser(name, help=help_)
        module.add_arguments(tp)
        tp.set_defaults(func=module.run)

    e = sub.add_parser("eval", help="evaluation suite (occlusion robustness, paper §5)")
    try:
        from .eval import cli as eval_cli
    except ImportError:
        eval_cli = None
    if eval_cli is not None:
        eval_cli.add_subcommands(e)

    b = sub.add_parser("backends", help="list the stage backends and which are available")
    b.set_defaults(func=cmd_backends)
    return ap


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in SUBCOMMANDS and argv[0] not in ("-h", "--help"):
        from .gui_launcher import launch_gui

        return launch_gui(argv)
    try:
        args = build_parser().parse_args(argv)
        return int(args.func(args) or 0)
    except OccguiError as e:
        _err(str(e))
        return 2
    except KeyboardInterrupt:
        _err("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""Measure the default de-occlusion (I_out, paper §3.3) against the occluded photo and Telea.

Builds the seeded pasted-occluder set from the held-out LFW identities (Q-S), runs the product's
stages on every occluded photo and prints, per occluder family, the identity distance (dlib
embedding, lower is better), the hidden-feature IoU of the parsed I_out against M_gamma and the
L1 ratio to Telea; the full per-case record is written as JSON (see occgui/eval/deocclusion.py
for the protocol and docs/deocclusion.md for the latest table).

    python tools/measure_deocclusion.py --data ../shared/data --out /tmp/deocclusion.json
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from occgui.eval import deocclusion as D  # noqa: E402
from occgui.parsing.dataset import resolve_data_dirs  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"), help="shared data folder (or LFW folder)")
    ap.add_argument("--occluders", default=None, help="occluder folder (default: <data>/occluders)")
    ap.add_argument("--families", default=",".join(D.FAMILIES), help="comma-separated occluder families")
    ap.add_argument("--per-family", type=int, default=D.DEFAULT_PER_FAMILY)
    ap.add_argument("--seed", type=int, default=D.DEFAULT_SEED)
    ap.add_argument("--parser", default="auto",
                    help="auto | oracle | a parse backend name | path of a parsing checkpoint (.onnx)")
    ap.add_argument("--landmarks", default=None,
                    help="landmark backend name (default: the product's) or a landmark refiner checkpoint (.onnx)")
    ap.add_argument("--identities", default=None,
                    help="first letters of the LFW identities to use instead of the held-out Q-S (development runs: A-P)")
    ap.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                    help="synthesis backend option (development), e.g. synth_template_strength=0.5")
    ap.add_argument("--out", default=None, help="write the JSON report here")
    ap.add_argument("--grids", default=None, help="folder for before/after PNG grids (clean, occluded, Telea, ours)")
    args = ap.parse_args(argv)
    lfw, occ = resolve_data_dirs(args.data, args.occluders)
    if occ is None:
        print("occluder folder not found; pass --occluders", file=sys.stderr)
        return 2
    t0 = time.time()

    def progress(fam, i, n):
        print(f"\r{fam}: {i}/{n}  ({time.time() - t0:.0f} s)", end="", file=sys.stderr, flush=True)

    report = D.run(lfw, occ, families=tuple(args.families.split(",")), per_family=args.per_family, seed=args.seed,
                   parser=args.parser, landmarks=args.landmarks, identities=args.identities,
                   synth_options={k: float(v) for k, v in (o.split("=", 1) for o in args.option)}, progress=progress, grid_dir=args.grids)
    print(file=sys.stderr)
    p = report["protocol"]
    print(f"parser: {p['parser']}; landmarks: {p['landmarks']}; synthesizer: {p['synthesizer']}; seed {p['seed']}, {p['per_family']} per family; "
          f"{time.time() - t0:.0f} s")
    print(D.format_table(report["table"]))
    failed = {k: len(v) for k, v in report["failed"].items() if v}
    if failed:
        print(f"photos skipped (no face after occlusion): {failed}")
    print("targets met" if not report["violations"] else "targets missed:\n  " + "\n  ".join(report["violations"]))
    if args.out:
        D.save_report(report, args.out)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Build the embedded default morphable model ``resources/morphable/ict_face_reduced.npz``.

Source: ICT-FaceKit's ``FaceXModel`` (MIT licence; ``../shared/data/ict-facekit/FaceXModel.tar.xz``,
commit da5f95a of https://github.com/ICT-VGL/ICT-FaceKit). The archive is unpacked into a temporary
folder (never into the repository); :func:`occgui.morphable.ict.load_ict_folder` keeps the narrow
face area (6706 vertices, the 68 landmark vertices inside it), re-derives the identity PCA on it
and keeps the leading ``--identity`` components and all 53 expression blendshapes; the bases are
stored in float16.

    python tools/build_ict_reduced.py [--archive PATH | --folder FaceXModel] [--identity 80]
"""
from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from occgui.morphable.ict import load_ict_folder  # noqa: E402
from occgui.morphable.model import load_npz_model  # noqa: E402

DEFAULT_ARCHIVE = REPO.parent / "shared" / "data" / "ict-facekit" / "FaceXModel.tar.xz"
OUTPUT = REPO / "resources" / "morphable" / "ict_face_reduced.npz"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archive", type=Path, default=DEFAULT_ARCHIVE)
    ap.add_argument("--folder", type=Path, help="an unpacked FaceXModel folder (skips the archive)")
    ap.add_argument("--identity", type=int, default=80, help="identity components kept")
    ap.add_argument("--area", default="narrow", choices=("narrow", "full"))
    ap.add_argument("--output", type=Path, default=OUTPUT)
    args = ap.parse_args(argv)
    tmp = None
    try:
        folder = args.folder
        if folder is None:
            tmp = Path(tempfile.mkdtemp(prefix="ict-facekit-"))
            with tarfile.open(args.archive) as tar:
                tar.extractall(tmp, filter="data")
            folder = tmp
        model = load_ict_folder(folder, area=args.area, num_identity=args.identity)
        model = type(model)(**{**model.__dict__, "name": f"ict-facekit-{args.area}-reduced",
                               "source": "ICT-FaceKit FaceXModel (commit da5f95a), tools/build_ict_reduced.py "
                                         f"--identity {args.identity} --area {args.area}"})
        args.output.parent.mkdir(parents=True, exist_ok=True)
        model.save_npz(args.output)
        back = load_npz_model(args.output)
        digest = hashlib.sha256(args.output.read_bytes()).hexdigest()[:16]
        print(f"{args.output}: {args.output.stat().st_size / 1e6:.2f} MB, sha256 {digest}; "
              f"{back.num_vertices} vertices, {len(back.triangles)} triangles, {back.num_identity} identity "
              f"({float(model.notes['identity_variance_kept']) * 100:.2f} % of the face-area variance), "
              f"{back.num_expression} expressions, {back.num_albedo} albedo components, "
              f"face region {int(back.face_mask.sum())} vertices")
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

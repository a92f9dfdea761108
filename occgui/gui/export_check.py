"""Checking an exported per-photo folder by loading its files back (self-test and tests).

Free of Qt. The mesh files are reloaded with trimesh (the OBJ must come back textured), the
images with Pillow, ``landmarks.json`` with the reader ``occgui run --landmarks`` uses.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

#: Files the export writes (the same as ``occgui run``).
REQUIRED_FILES = ("landmarks.json", "parsing_alpha.png", "parsing_beta.png", "parsing_gamma.png",
                  "deoccluded.png", "mesh.obj", "mesh.mtl", "texture.png", "mesh.ply", "mesh.glb", "report.json")


def _load_mesh(path: Path):
    import trimesh

    return trimesh.load(str(path), force="mesh", process=False)


def check_export_folder(folder, expected_landmarks: np.ndarray | None = None) -> list[str]:
    """Problems found in an exported folder (empty list = every file is present and loads)."""
    folder = Path(folder)
    problems: list[str] = []
    missing = [f for f in REQUIRED_FILES if not (folder / f).is_file()]
    if missing:
        problems.append(f"missing files: {', '.join(missing)}")
    from PIL import Image

    for png in sorted(folder.glob("*.png")):
        try:
            with Image.open(png) as im:
                im.load()
                if min(im.size) < 8:
                    problems.append(f"{png.name}: image too small {im.size}")
        except Exception as e:  # noqa: BLE001 -- report any unreadable file
            problems.append(f"{png.name}: not a readable image ({type(e).__name__})")
    if (folder / "mesh.obj").is_file():
        try:
            m = _load_mesh(folder / "mesh.obj")
            uv = getattr(m.visual, "uv", None)
            image = getattr(getattr(m.visual, "material", None), "image", None)
            if len(m.vertices) < 100 or len(m.faces) < 100:
                problems.append(f"mesh.obj: too few vertices/faces ({len(m.vertices)}/{len(m.faces)})")
            if uv is None or len(uv) != len(m.vertices):
                problems.append("mesh.obj: no texture coordinates")
            if image is None:
                problems.append("mesh.obj: the material has no texture image")
        except Exception as e:  # noqa: BLE001
            problems.append(f"mesh.obj: does not load ({type(e).__name__}: {e})")
    for name in ("mesh.ply", "mesh.glb"):
        if (folder / name).is_file():
            try:
                m = _load_mesh(folder / name)
                if len(m.faces) < 100:
                    problems.append(f"{name}: too few faces ({len(m.faces)})")
            except Exception as e:  # noqa: BLE001
                problems.append(f"{name}: does not load ({type(e).__name__}: {e})")
    if (folder / "landmarks.json").is_file():
        from ..errors import OccguiError
        from ..landmarks.landmarks_json import read_landmarks_json

        try:
            pts = read_landmarks_json(folder / "landmarks.json")
            if expected_landmarks is not None and not np.allclose(pts, expected_landmarks, atol=0.01):
                err = float(np.abs(pts - expected_landmarks).max())
                problems.append(f"landmarks.json: points differ from the edited ones (max {err:.3f} px)")
        except OccguiError as e:
            problems.append(str(e))
    return problems

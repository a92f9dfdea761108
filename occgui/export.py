"""Writing results: textured meshes (OBJ + MTL + PNG, PLY, GLB) and the per-photo output folder.

Every file is written atomically: to a temporary file in the destination folder, then renamed
into place, so a reader never sees half a file. :func:`export_result` builds the whole
``OUTDIR/<stem>/`` folder in a temporary sibling folder and renames it into place (an older
folder is replaced only once the new one is complete); on any failure nothing new is left behind
and :class:`~occgui.errors.ExportError` carries one line.

Folder contents (issue point 12)::

    landmarks.json            {"points": [[x, y], ...68], ...} in photo pixels
    parsing_alpha.png         M_alpha label ids (single channel, ids from occgui.labels), as the
                              later stages used it: with the user's painted occluder when there is one
    parsing_beta.png          M_beta label ids
    parsing_gamma.png         M_gamma label ids
    parsing_*_color.png       the same maps colourised, with a legend
    deoccluded.png            I_out, the de-occluded face crop
    mesh.obj, mesh.mtl        the textured mesh (vt, mtllib, usemtl, map_Kd), millimetres
    texture.png               the UV texture
    mesh.ply                  the mesh with per-vertex colours (sampled from the texture), millimetres
    mesh.glb                  binary glTF with the texture embedded, metres (glTF's unit)
    report.json               backends, per-stage seconds, warnings, texture provenance, and for
                              the morphable geometry its head pose and fit loss ("geometry_fit"), ...
    coefficients.json         only when the morphable geometry ran: the fitted identity, expression,
                              albedo, SH lighting and pose, and the model's id (coefficients_document)
    texture_albedo.png        only when the morphable geometry ran: the UV texture de-lit by the fitted
                              SH shading (texture.png, the lit one, stays the mesh's material)
    corrections.json          only when the run had corrections (edited landmarks, painted occluder):
                              ``occgui run --corrections`` and the GUI read it back (occgui.corrections)

Mesh frame: X right, Y up, Z towards the viewer (the photo's camera frame, see
:class:`~occgui.results.Camera`), which is also glTF's "+Z is the front" convention.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from . import labels
from .errors import ExportError
from .results import FaceMesh, ParsingMap, Texture

MESH_FILES = ("mesh.obj", "mesh.mtl", "texture.png", "mesh.ply", "mesh.glb")
MATERIAL_NAME = "face"
GLB_SCALE = 0.001               # millimetres -> metres
PNG_COMPRESSION = 1             # zlib level of the PNGs written (fastest; photo-like data barely gains from more)
OBJ_DIGITS = 5                  # decimals in the OBJ text (1e-5 mm, 1e-5 of the texture side)
LEGEND_WIDTH = 190
_TRIMESH_IMPORT = threading.Lock()


def import_trimesh():
    """``trimesh``, imported without networkx when nothing has loaded networkx yet.

    trimesh treats networkx as optional (``trimesh.graph``/``repair``/``poses`` keep an
    ``ExceptionWrapper`` in its place and raise only when a networkx-engine function is called;
    the exporters here call none). Importing it costs 0.3-0.5 s of a CLI cold start on the 2-core
    machine, so it is hidden during trimesh's own import and visible again right after.
    """
    import sys

    with _TRIMESH_IMPORT:                           # the exporters run in parallel threads
        hide = "trimesh" not in sys.modules and "networkx" not in sys.modules
        if hide:
            sys.modules["networkx"] = None         # makes `import networkx` raise ImportError
        try:
            import trimesh
        finally:
            if hide and sys.modules.get("networkx", 0) is None:
                del sys.modules["networkx"]
    return trimesh


# --------------------------------------------------------------------------------------------
# Atomic single files
# --------------------------------------------------------------------------------------------

def atomic_write_bytes(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename.

    The temporary file is created like any other file (so it gets the user's umask permissions).
    """
    path = Path(path)
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        with open(tmp, "xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if tmp.exists():
            tmp.unlink()
        raise
    return path


def atomic_write_text(path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path, obj) -> Path:
    return atomic_write_text(path, json.dumps(_jsonable(obj), indent=2) + "\n")


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of an RGB (HxWx3) or single-channel (HxW) uint8 array."""
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        raise ValueError(f"PNG export needs uint8 data, got {arr.dtype}")
    if arr.ndim == 3:
        arr = np.ascontiguousarray(arr[:, :, ::-1])
    ok, buf = cv2.imencode(".png", arr, [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION])
    if not ok:
        raise ValueError("PNG encoding failed")
    return buf.tobytes()


def atomic_write_png(path, image: np.ndarray) -> Path:
    return atomic_write_bytes(path, encode_png(image))


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj


# --------------------------------------------------------------------------------------------
# Meshes
# --------------------------------------------------------------------------------------------
def textured_trimesh(mesh: FaceMesh, texture: Texture | None, *, scale: float = 1.0):
    """A ``trimesh.Trimesh`` with ``TextureVisuals``: UVs and a white material carrying the texture
    (``texture=None``: the material without an image, for writing the OBJ text alone)."""
    trimesh = import_trimesh()
    from PIL import Image

    image = None
    if texture is not None:
        image = Image.fromarray(np.ascontiguousarray(texture.image))
        # Pillow merges an image's ``encoderinfo`` into the options of its next ``save``: a faster
        # zlib level for the PNG trimesh encodes (only a speed hint; ignored by other Pillows)
        image.encoderinfo = {"compress_level": PNG_COMPRESSION}
    material = trimesh.visual.material.SimpleMaterial(
        image=image, name=MATERIAL_NAME,
        diffuse=[255, 255, 255, 255], ambient=[255, 255, 255, 255], specular=[0, 0, 0, 255], glossiness=1.0)
    visual = trimesh.visual.TextureVisuals(uv=np.asarray(mesh.uv, dtype=np.float64), material=material)
    return trimesh.Trimesh(np.asarray(mesh.vertices, dtype=np.float64) * scale, np.asarray(mesh.faces),
                           visual=visual, process=False, validate=False)


def vertex_colours(mesh: FaceMesh, texture: Texture) -> np.ndarray:
    """(N,4) uint8 RGBA: the texture bilinearly sampled at every vertex's UV."""
    t = texture.image.shape[0]
    uv = np.asarray(mesh.uv, dtype=np.float32)
    mx = (uv[:, 0] * t - 0.5).reshape(1, -1)
    my = ((1.0 - uv[:, 1]) * t - 0.5).reshape(1, -1)
    rgb = cv2.remap(np.ascontiguousarray(texture.image), mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    rgb = rgb.reshape(-1, 3)
    return np.column_stack([rgb, np.full(len(rgb), 255, dtype=np.uint8)])


def obj_files(mesh: FaceMesh, texture: Texture, *, name: str = "mesh",
              texture_name: str = "texture.png") -> dict[str, bytes]:
    """``{name}.obj``, ``{name}.mtl`` and the texture PNG as bytes.

    The OBJ text (``v``, ``vn``, ``vt``, ``f v/vt/vn``, ``mtllib``, ``usemtl``) is trimesh's; the
    material is written here so that it is white (``Kd 1``: viewers multiply it with ``map_Kd``)
    and names ``texture_name``; the PNG is encoded once, with OpenCV.
    """
    trimesh = import_trimesh()

    tm = textured_trimesh(mesh, None)
    tm.vertex_normals  # noqa: B018  (computed and cached, so the OBJ carries smooth normals)
    text, _ = trimesh.exchange.obj.export_obj(tm, include_normals=True, include_texture=True, return_texture=True,
                                              write_texture=False, mtl_name=f"{name}.mtl", digits=OBJ_DIGITS)
    mtl = "\n".join([
        "# occgui face material: the texture only (white diffuse, no specular)",
        f"newmtl {MATERIAL_NAME}",
        "Ka 1.00000000 1.00000000 1.00000000",
        "Kd 1.00000000 1.00000000 1.00000000",
        "Ks 0.00000000 0.00000000 0.00000000",
        "Ns 1.00000000",
        "illum 1",
        f"map_Kd {texture_name}",
        "",
    ])
    return {f"{name}.obj": text.encode("utf-8"), f"{name}.mtl": mtl.encode("utf-8"),
            texture_name: encode_png(texture.image)}


def ply_bytes(mesh: FaceMesh, texture: Texture) -> bytes:
    """Binary PLY with per-vertex RGBA colours sampled from the texture."""
    trimesh = import_trimesh()

    tm = trimesh.Trimesh(np.asarray(mesh.vertices, dtype=np.float64), np.asarray(mesh.faces),
                         vertex_colors=vertex_colours(mesh, texture), process=False, validate=False)
    return trimesh.exchange.ply.export_ply(tm, encoding="binary")


def glb_bytes(mesh: FaceMesh, texture: Texture) -> bytes:
    """Binary glTF 2.0 with the texture embedded (PNG), in metres."""
    trimesh = import_trimesh()

    tm = textured_trimesh(mesh, texture, scale=GLB_SCALE)
    return trimesh.exchange.gltf.export_glb(trimesh.Scene(tm), include_normals=True)


def mesh_file_bytes(mesh: FaceMesh, texture: Texture) -> dict[str, bytes]:
    """All of :data:`MESH_FILES` as bytes (encoded on two threads: the PNG encoders release the GIL)."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        glb = pool.submit(glb_bytes, mesh, texture)
        files = obj_files(mesh, texture)
        files["mesh.ply"] = ply_bytes(mesh, texture)
        files["mesh.glb"] = glb.result()
    return files


def write_mesh_files(mesh: FaceMesh, texture: Texture, folder) -> list[Path]:
    """Write ``mesh.obj``, ``mesh.mtl``, ``texture.png``, ``mesh.ply`` and ``mesh.glb`` into ``folder``.

    Everything is encoded first and staged in a hidden temporary folder inside ``folder``; the
    files are then renamed into place one by one. On failure the staged files are removed and
    :class:`ExportError` is raised (files of an earlier export are replaced only by complete ones).
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        files = mesh_file_bytes(mesh, texture)
        stage = folder / f".occgui-export-{uuid.uuid4().hex[:8]}.tmp"
        stage.mkdir()
        try:
            for name, data in files.items():
                (stage / name).write_bytes(data)
            out = []
            for name in files:
                os.replace(stage / name, folder / name)
                out.append(folder / name)
            return out
        finally:
            shutil.rmtree(stage, ignore_errors=True)
    except ExportError:
        raise
    except Exception as e:
        raise ExportError(f"could not write the mesh files to {folder}: {_one_line(e)}") from e


# --------------------------------------------------------------------------------------------
# Label maps
# --------------------------------------------------------------------------------------------
def colorize_with_legend(label_map: np.ndarray, *, height: int = 512) -> np.ndarray:
    """The colourised label map, upscaled (nearest) to ``height``, with a legend strip on the right."""
    lab = np.asarray(label_map)
    img = labels.colorize(lab)
    scale = max(1, int(round(height / max(lab.shape[0], 1))))
    img = cv2.resize(img, (lab.shape[1] * scale, lab.shape[0] * scale), interpolation=cv2.INTER_NEAREST)
    h = img.shape[0]
    legend = np.full((h, LEGEND_WIDTH, 3), 255, dtype=np.uint8)
    items = labels.legend_items()
    row = max(14, min(34, (h - 10) // max(len(items), 1)))
    present = set(np.unique(lab).tolist())
    for k, (i, name, rgb) in enumerate(items):
        y = 6 + k * row
        if y + row > h:
            break
        cv2.rectangle(legend, (8, y), (8 + row - 6, y + row - 6), tuple(int(c) for c in rgb), -1)
        cv2.rectangle(legend, (8, y), (8 + row - 6, y + row - 6), (0, 0, 0), 1)
        colour = (0, 0, 0) if i in present else (150, 150, 150)
        cv2.putText(legend, f"{i} {name}", (row + 10, y + row - 10), cv2.FONT_HERSHEY_SIMPLEX,
                    0.45 * row / 34 + 0.15, colour, 1, cv2.LINE_AA)
    return np.hstack([img, legend])


# --------------------------------------------------------------------------------------------
# The per-photo folder
# --------------------------------------------------------------------------------------------
_REQUIRED = ("image", "crop", "landmarks", "alpha", "beta", "gamma", "synthesis", "mesh", "texture")


def safe_stem(stem: str) -> str:
    """A folder name from a photo's stem (path separators and control characters replaced)."""
    s = re.sub(r"[\x00-\x1f/\\:]+", "_", str(stem)).strip().strip(".")
    return s or "photo"


def result_stem(result) -> str | None:
    src = getattr(result.image, "source", "") or ""
    if not src or src.startswith("<"):
        return None
    return Path(src).stem


def texture_fractions(texture: Texture) -> dict[str, float]:
    counts = np.bincount(np.asarray(texture.source).ravel(), minlength=len(Texture.SOURCE_NAMES))
    total = max(int(counts.sum()), 1)
    return {name: round(float(counts[i]) / total, 5) for i, name in enumerate(Texture.SOURCE_NAMES)}


def landmarks_file_document(result) -> dict:
    """``landmarks.json``: the shared document (:mod:`occgui.landmarks.landmarks_json`, readable by
    ``occgui run --landmarks``) plus the detector's own points when the landmarks were corrected."""
    from .landmarks.landmarks_json import landmarks_document

    lm = result.landmarks
    doc = landmarks_document(result.landmarks_in_photo(), edited=bool(lm.edited), source=str(result.image.source))
    doc["backend"] = lm.backend
    doc["photo_size"] = list(result.image.photo_size)
    if lm.edited and lm.detected_points is not None:
        detected = result.image.working_to_photo(result.crop.crop_to_working(lm.detected_points))
        doc["detected_points"] = [[round(float(x), 3), round(float(y), 3)] for x, y in detected]
    return doc


def photo_to_crop_matrix(result) -> np.ndarray:
    """2x3 affine from photo pixels to the crop in which the parsing maps and I_out live."""
    from .corrections import photo_to_crop

    return photo_to_crop(result.image, result.crop)


def report_document(result, files: list[str], total_seconds: float | None = None) -> dict:
    mesh, tex = result.mesh, result.texture
    cam = mesh.camera
    return {
        "total_seconds": None if total_seconds is None else round(float(total_seconds), 4),
        "source": result.image.source,
        "photo_size": list(result.image.photo_size),
        "working_scale": result.image.scale,
        "face_index": result.crop.face_index,
        "face_count": result.crop.num_faces,
        "crop": {"size": int(result.crop.size),
                 "photo_to_crop": [[round(float(v), 6) for v in row] for row in photo_to_crop_matrix(result)],
                 "note": "2x3 affine: [u, v] = M @ [x, y, 1] maps photo pixels (x, y) to the crop pixels of "
                         "parsing_*.png and deoccluded.png"},
        "device": result.device,
        "backends": dict(result.backends),
        "seconds": {k: round(float(v), 4) for k, v in result.seconds.items()},
        "cached_stages": list(result.cached),
        "warnings": list(result.warnings),
        "landmarks_edited": bool(result.landmarks.edited),
        "occluder_painted": (None if getattr(result, "alpha_edit", None) is None else result.alpha_edit.counts()),
        "mesh": {"vertices": int(len(mesh.vertices)), "faces": int(len(mesh.faces)), "backend": mesh.backend,
                 "units": {"mesh.obj": "mm", "mesh.ply": "mm", "mesh.glb": "m"},
                 "frame": "X right, Y up, Z towards the viewer; photo pixel u = u0 + k X, v = v0 - k Y",
                 "camera": {"k_px_per_mm": cam.k, "u0": cam.u0, "v0": cam.v0}},
        "texture": {"size": int(tex.image.shape[0]), "backend": tex.backend,
                    "source_fractions": texture_fractions(tex)},
        "geometry_fit": None if getattr(mesh, "fit", None) is None else fit_summary(mesh.fit),
        "files": files,
    }


def fit_summary(fit) -> dict:
    """The ``geometry_fit`` entry of ``report.json``: model, pose, loss, landmark error, timing."""
    return {"model": fit.model, "pose": fit.pose.to_dict(),
            "pose_note": "photo frame: R = Rz(roll) Ry(yaw) Rx(pitch), X right, Y up, Z towards the viewer; "
                         "(tx, ty) = photo pixel of the model origin",
            "loss": {k: float(v) for k, v in fit.loss.items()},
            "loss_note": "Eq. 16 terms of the fit's last step, unweighted (total is the weighted sum)",
            "landmark_error_iod": float(fit.landmark_error), "iterations": int(fit.iterations),
            "warm_start": bool(fit.warm_start), "seconds": round(float(fit.seconds), 4)}


def coefficients_document(mesh: FaceMesh) -> dict:
    """``coefficients.json``: the fitted coefficient vector y of the morphable model (paper §3.4)."""
    fit = mesh.fit
    p = np.asarray(fit.crop_pose, np.float64)
    return {"format": "occgui-morphable-coefficients-1", "model": fit.model,
            "identity": np.asarray(fit.identity).tolist(), "expression": np.asarray(fit.expression).tolist(),
            "albedo": np.asarray(fit.albedo).tolist(), "sh_gamma_rgb": np.asarray(fit.gamma).tolist(),
            "pose": fit.pose.to_dict(),
            "crop_pose": {"pitch_rad": p[0], "yaw_rad": p[1], "roll_rad": p[2], "scale_px_per_mm": p[3],
                          "tx_px": p[4], "ty_px": p[5]},
            "notes": {"identity": "normalised: shape = mean + sum_k identity[k] * id_basis[k] (basis scaled by its "
                                  "standard deviation, mm)",
                      "expression": "blendshape weights of the model's expression basis",
                      "sh_gamma_rgb": "3 x 9 second-order SH coefficients per colour channel (Eq. 11), camera frame",
                      "pose": "photo frame (see report.json geometry_fit.pose_note)",
                      "crop_pose": "the fit's own frame (the face crop of report.json crop.photo_to_crop); "
                                   "R = Rz(roll) Ry(yaw) Rx(pitch), u = f (RX)_x + tx, v = -f (RX)_y + ty"},
            "loss": {k: float(v) for k, v in fit.loss.items()}}


def folder_files(result, total_seconds: float | None = None) -> dict[str, bytes]:
    """Every file of the per-photo folder (:func:`export_result`), encoded: name -> bytes."""
    files: dict[str, bytes] = {}
    with ThreadPoolExecutor(max_workers=2) as pool:
        mesh_job = pool.submit(mesh_file_bytes, result.mesh, result.texture)
        alpha = result.effective_alpha() if hasattr(result, "effective_alpha") else result.alpha
        for pm in (alpha, result.beta, result.gamma):
            files.update(_parsing_files(pm))
        files["deoccluded.png"] = encode_png(np.asarray(result.synthesis.image))
        files["landmarks.json"] = (json.dumps(_jsonable(landmarks_file_document(result)), indent=2) + "\n").encode()
        from .corrections import FILE_NAME, corrections_json, result_corrections

        corrections = result_corrections(result)
        if corrections is not None:
            files[FILE_NAME] = corrections_json(corrections).encode("utf-8")
        if getattr(result.mesh, "fit", None) is not None:
            doc = coefficients_document(result.mesh)
            files["coefficients.json"] = (json.dumps(_jsonable(doc), indent=2) + "\n").encode()
        if getattr(result.texture, "albedo", None) is not None:
            files["texture_albedo.png"] = encode_png(np.asarray(result.texture.albedo))
        files.update(mesh_job.result())
    names = sorted(files) + ["report.json"]
    report = report_document(result, names, total_seconds)
    files["report.json"] = (json.dumps(_jsonable(report), indent=2) + "\n").encode()
    return files


def _parsing_files(pm: ParsingMap) -> dict[str, bytes]:
    lab = np.asarray(pm.labels)
    if lab.ndim != 2:
        raise ValueError(f"parsing map {pm.kind} has shape {lab.shape}, expected HxW")
    lab = lab.astype(np.uint8)
    return {f"parsing_{pm.kind}.png": encode_png(lab),
            f"parsing_{pm.kind}_color.png": encode_png(colorize_with_legend(lab))}


def export_result(result, outdir, *, stem: str | None = None, total_seconds: float | None = None) -> Path:
    """Write the complete ``outdir/<stem>/`` folder of one photo's result and return its path.

    ``stem`` defaults to the photo file's stem; it is required when the photo came from an array.
    ``total_seconds`` (the caller's wall time for the photo) is recorded in ``report.json``.
    The folder is assembled in a temporary sibling folder and renamed into place; an existing
    folder of the same name is replaced only after the new one is complete. Any failure removes
    the temporary folder and raises :class:`ExportError` (one line).
    """
    missing = [name for name in _REQUIRED if getattr(result, name, None) is None]
    if missing:
        raise ExportError(f"nothing to export: the run has no {', '.join(missing)} result")
    stem = stem if stem is not None else result_stem(result)
    if stem is None:
        raise ExportError("the photo came from an array: give the output folder's name (stem)")
    return write_folder(lambda: folder_files(result, total_seconds), outdir, stem)


def write_folder(files, outdir, stem: str) -> Path:
    """Write ``outdir/<stem>/`` from ``files`` (name -> bytes, e.g. :func:`folder_files` computed in a
    batch worker; or a callable returning them, called once the output folder exists): assembled in a
    temporary sibling folder and renamed into place (see :func:`export_result`)."""
    outdir = Path(outdir)
    target = outdir / safe_stem(stem)
    tag = uuid.uuid4().hex[:8]
    tmp = outdir / f".{target.name}.tmp-{tag}"
    old = outdir / f".{target.name}.old-{tag}"
    try:
        outdir.mkdir(parents=True, exist_ok=True)
        if callable(files):
            files = files()
        tmp.mkdir()
        for name, data in files.items():
            atomic_write_bytes(tmp / name, data)
        if target.exists():
            os.replace(target, old)
        try:
            os.replace(tmp, target)
        except BaseException:
            if old.exists():
                os.replace(old, target)
            raise
        shutil.rmtree(old, ignore_errors=True)
        return target
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, ExportError):
            raise
        if not isinstance(e, Exception):
            raise
        raise ExportError(f"could not export {target}: {_one_line(e)}") from e


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__

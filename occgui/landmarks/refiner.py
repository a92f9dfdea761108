"""Occlusion-aware landmark refinement: the learned part of the landmark stage (paper §3.1, Eq. 1).

The paper's N_lmk regresses the landmarks from the face crop and is trained on occluded faces so
that the points it cannot see are still placed well. Here a small network does the part a
face-mesh tracker cannot: MediaPipe's Face Mesh places the visible points very well but guesses
the hidden ones with a systematic bias (under a surgical mask the chin comes out about 0.17
inter-ocular distances too high, under sunglasses the eyes 0.035 too low; docs/landmarks.md).
The refiner sees MediaPipe's 478 points *and* where the face is hidden (M_alpha's occluder
mask), and outputs corrected 2-D positions of all 478 points:

    x   = [ p_occ (478x2, canonical frame),  v (478, occluded fraction at each point),
            G (32x32, the occluder mask resampled on a canonical grid) ]
    p^  = p_occ + MLP(x)                               (Eq. 1's L2 landmark loss on p^ in training)

"Canonical frame": the similarity transform (Procrustes, all 468 surface points) that maps
MediaPipe's points onto a mean face whose inter-ocular distance is 1; the output is mapped back
to crop pixels with its inverse. ``z`` is MediaPipe's, unchanged. Training (``train_refiner``)
uses photos of identities A-P with pasted occluders; the targets are MediaPipe's points on the
same crop before the occluder was pasted. The network ships as one ONNX file
(``checkpoints/landmark_refiner.onnx``, written by :mod:`occgui.training.onnx_export`): three
linear layers and the mirror average, run by onnxruntime; the mean face that defines the
canonical frame is in the file's header.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from ..errors import OccguiError

N_POINTS = 478
SURFACE = 468
#: Side of the canonical occluder grid fed to the network.
GRID = 32
#: The canonical grid spans [-GRID_HALF_WIDTH, GRID_HALF_WIDTH] x [GRID_TOP, GRID_BOTTOM]
#: inter-ocular distances around the mean face's centre (eyes' midpoint at y = 0).
GRID_HALF_WIDTH = 1.6
GRID_TOP, GRID_BOTTOM = -1.4, 2.2
#: Gaussian blur (in inter-ocular distances) of the occluder mask before it is read at the points.
POINT_BLUR = 0.04
CHECKPOINT = "landmark_refiner.onnx"
FORMAT = "occgui.landmark_refiner"
#: 1 was the safetensors file (``landmark_refiner.safetensors``); 2 is the ONNX file.
FORMAT_VERSION = 2


# ----------------------------------------------------------------------------- canonical frame
def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (2x3) mapping ``src`` (N,2) onto ``dst`` (N,2)
    (Umeyama, :func:`occgui.landmarks.alignment.fit_similarity`)."""
    from .alignment import fit_similarity

    return fit_similarity(src, dst).matrix()[:2]


def apply(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return np.asarray(pts, dtype=np.float64) @ m[:, :2].T + m[:, 2]


def invert(m: np.ndarray) -> np.ndarray:
    a = np.vstack([m, [0.0, 0.0, 1.0]])
    return np.linalg.inv(a)[:2]


def grid_to_canonical(n: int = GRID) -> np.ndarray:
    """2x3 affine: pixel centres of the canonical grid sampled n x n -> canonical coordinates."""
    sx = 2 * GRID_HALF_WIDTH / n
    sy = (GRID_BOTTOM - GRID_TOP) / n
    return np.array([[sx, 0.0, -GRID_HALF_WIDTH + 0.5 * sx], [0.0, sy, GRID_TOP + 0.5 * sy]])


def occluder_features(occluder: np.ndarray, to_canonical: np.ndarray,
                      mesh_xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The occluder mask read in the canonical frame: per-point occluded fraction (478,) and the
    GRID x GRID canonical grid (float32 in [0, 1])."""
    occ = np.asarray(occluder, dtype=np.float32)
    scale = float(np.sqrt(abs(np.linalg.det(to_canonical[:, :2]))))   # canonical units per crop pixel
    sigma = POINT_BLUR / max(scale, 1e-9)
    blurred = cv2.GaussianBlur(occ, (0, 0), sigma) if sigma > 0.3 else occ
    h, w = occ.shape
    xy = np.asarray(mesh_xy, dtype=np.float64)
    xi = np.clip(np.rint(xy[:, 0]).astype(int), 0, w - 1)
    yi = np.clip(np.rint(xy[:, 1]).astype(int), 0, h - 1)
    inside = (xy[:, 0] >= 0) & (xy[:, 0] < w) & (xy[:, 1] >= 0) & (xy[:, 1] < h)
    v = np.where(inside, blurred[yi, xi], 0.0).astype(np.float32)
    # the grid is sampled at 4x its resolution (fine pixel centres -> canonical -> crop), then area-averaged
    up = 4
    fine_to_crop = np.vstack([invert(to_canonical), [0, 0, 1]]) @ np.vstack([grid_to_canonical(GRID * up), [0, 0, 1]])
    g = cv2.warpAffine(occ, fine_to_crop[:2], (GRID * up, GRID * up), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                       borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    g = cv2.resize(g, (GRID, GRID), interpolation=cv2.INTER_AREA)
    return v, g.astype(np.float32)


def network_input(mesh_xy: np.ndarray, occluder: np.ndarray, mean_xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(input vector, crop->canonical 2x3) for one face."""
    xy = np.asarray(mesh_xy, dtype=np.float64)[:, :2]
    to_can = similarity(xy[:SURFACE], mean_xy[:SURFACE])
    can = apply(to_can, xy) - mean_xy
    v, g = occluder_features(occluder, to_can, xy)
    return np.concatenate([can.ravel().astype(np.float32), v, g.ravel()]), to_can


def flip_input(x: np.ndarray, mirror: np.ndarray) -> np.ndarray:
    """The input of the horizontally mirrored face (canonical x -> -x, points swapped with their
    mirror partners, grid flipped). The mean face is symmetric, so offsets flip the same way."""
    n2 = 2 * N_POINTS
    can = x[:n2].reshape(N_POINTS, 2)[mirror] * [-1.0, 1.0]
    v = x[n2:n2 + N_POINTS][mirror]
    g = x[n2 + N_POINTS:].reshape(GRID, GRID)[:, ::-1]
    return np.concatenate([can.ravel(), v, g.ravel()]).astype(np.float32)


def flip_offsets(d: np.ndarray, mirror: np.ndarray) -> np.ndarray:
    """(..., 478, 2) canonical offsets of the mirrored face."""
    return d[..., mirror, :] * np.array([-1.0, 1.0], dtype=d.dtype)


INPUT_DIM = 2 * N_POINTS + N_POINTS + GRID * GRID


# ----------------------------------------------------------------------------- inference
@dataclass(frozen=True)
class RefinerWeights:
    """The loaded refiner: its onnxruntime session (created once) and the frame it expects."""
    mean_xy: np.ndarray          # (478, 2) symmetric mean face, canonical units (IOD 1)
    session: object              # onnxruntime.InferenceSession: (B, INPUT_DIM) -> (B, 478, 2) offsets
    version: str
    input_name: str = "features"


def _check_header(header: dict, path) -> dict:
    if (header.get("format") != FORMAT or header.get("format_version") != FORMAT_VERSION
            or header.get("input_dim") != INPUT_DIM or header.get("n_points") != N_POINTS or header.get("grid") != GRID
            or np.shape(header.get("mean_xy")) != (N_POINTS, 2)):
        raise OccguiError(f"{Path(path).name} is not a landmark refiner checkpoint of this version")
    return header


def read_header(path) -> dict:
    """The checked header of a refiner file, read without onnxruntime (torch paths)."""
    from ..onnx_runtime import read_header_file

    return _check_header(read_header_file(path, "landmark refiner"), path)


def load_weights(path) -> RefinerWeights:
    from ..onnx_runtime import open_session
    from ..resources import checkpoint_digest

    session, header = open_session(path, "landmark refiner")
    _check_header(header, path)
    return RefinerWeights(np.asarray(header["mean_xy"], np.float64), session, checkpoint_digest(path),
                          header.get("input", "features"))


def forward(weights: RefinerWeights, x: np.ndarray) -> np.ndarray:
    """(B, INPUT_DIM) inputs -> (B, 478, 2) canonical offsets: the mean of the network's answers for
    the face and for its mirror image (mapped back)."""
    x = np.ascontiguousarray(np.asarray(x, dtype=np.float32).reshape(-1, INPUT_DIM))
    return weights.session.run(None, {weights.input_name: x})[0]


def refine(weights: RefinerWeights, mesh: np.ndarray, occluder: np.ndarray) -> np.ndarray:
    """MediaPipe's (478,3) mesh in crop pixels and the crop's occluder mask -> the refined mesh
    (x, y corrected; z unchanged). The offsets are the mean of the network's answers for the face
    and for its mirror image (mapped back). A face with no occluder pixel near it is returned as is."""
    mesh = np.asarray(mesh, dtype=np.float64)
    x, to_can = network_input(mesh[:, :2], occluder, weights.mean_xy)
    if not np.any(x[2 * N_POINTS:] > 0):
        return mesh.copy()
    d = forward(weights, x[None])[0].astype(np.float64)
    can = x[:2 * N_POINTS].reshape(N_POINTS, 2).astype(np.float64) + weights.mean_xy + d
    out = mesh.copy()
    out[:, :2] = apply(invert(to_can), can)
    return out


@lru_cache(maxsize=2)
def default_weights(path: str | None = None) -> RefinerWeights:
    from ..resources import checkpoint_path

    return load_weights(path or checkpoint_path(CHECKPOINT))


def checkpoint_exists() -> bool:
    from ..resources import checkpoint_path

    return checkpoint_path(CHECKPOINT).exists()

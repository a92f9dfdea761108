"""The morphable face model: a typed, validated container (issue 15, point 1).

Conventions (every source is converted to them on loading):

* model frame: millimetres, X to the subject's left (the image's right in a frontal view), Y up,
  Z towards the viewer (the face looks along +Z), right-handed -- the mesh frame of
  :class:`occgui.results.FaceMesh`;
* ``shape(α̃, β̃) = mean_shape + Σ_k α̃_k id_basis[k] + Σ_k β̃_k exp_basis[k]``: the bases are stored
  *scaled* -- ``id_basis[k]`` is the k-th principal direction times its standard deviation (mm per
  unit of the normalised coefficient α̃_k ~ N(0, 1), the paper's α̃ of Eq. 14); ``id_std[k]`` is that
  standard deviation (the norm of ``id_basis[k]`` for an orthonormal PCA) and is informational.
  Expressions likewise (for blendshape models the coefficient is the blendshape weight and
  ``exp_std`` the norm of the blendshape's displacement);
* optional albedo: ``albedo_mean`` (N, 3) in [0, 1] and ``albedo_basis`` (K, N, 3) per unit of the
  normalised coefficient δ̃; a model without one is rendered with ``albedo_mean`` only, or with a
  uniform skin reflectance when that is absent too;
* ``landmarks``: the 68 iBUG / Multi-PIE vertex indices; ``face_mask``: the vertices of the face
  region (the reprojected region M of Eq. 13); ``vertex_labels``: an ``occgui.labels`` id per vertex
  (skin, brows, eyes, nose, lips) -- used for the attention P_i of Eq. 13 and for region albedos.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..errors import OccguiError

#: Number of landmark vertices every model has (iBUG 300-W / Multi-PIE markup).
NUM_LANDMARKS = 68
#: Format tag of the occgui ``.npz`` model files.
NPZ_FORMAT = "occgui-morphable-1"


class MorphableModelError(OccguiError):
    """A morphable-model file is missing, malformed or inconsistent (one line)."""


@dataclass(frozen=True, eq=False)
class MorphableModel:
    """A linear 3D face model (see the module docstring for units and conventions)."""

    name: str
    mean_shape: np.ndarray                 # (N, 3) float32, mm
    id_basis: np.ndarray                   # (K_id, N, 3) float32, mm per unit α̃
    id_std: np.ndarray                     # (K_id,) float32, mm
    exp_basis: np.ndarray                  # (K_exp, N, 3) float32, mm per unit β̃
    exp_std: np.ndarray                    # (K_exp,) float32, mm
    triangles: np.ndarray                  # (F, 3) int64, counter-clockwise seen from the front
    landmarks: np.ndarray                  # (68,) int64 vertex ids
    face_mask: np.ndarray                  # (N,) bool
    uv: np.ndarray | None = None           # (N, 2) float32 in [0, 1]
    vertex_labels: np.ndarray | None = None  # (N,) uint8, occgui.labels ids
    albedo_mean: np.ndarray | None = None  # (N, 3) float32 in [0, 1]
    albedo_basis: np.ndarray | None = None  # (K_alb, N, 3) float32
    albedo_std: np.ndarray | None = None   # (K_alb,) float32
    expression_names: tuple[str, ...] = ()
    source: str = ""
    licence: str = ""
    notes: dict = field(default_factory=dict)

    # ------------------------------------------------------------------ sizes
    @property
    def num_vertices(self) -> int:
        return int(self.mean_shape.shape[0])

    @property
    def num_identity(self) -> int:
        return int(self.id_basis.shape[0])

    @property
    def num_expression(self) -> int:
        return int(self.exp_basis.shape[0])

    @property
    def num_albedo(self) -> int:
        return 0 if self.albedo_basis is None else int(self.albedo_basis.shape[0])

    def validate(self) -> "MorphableModel":
        """Check shapes, dtypes, finiteness and index ranges; a one-line
        :class:`MorphableModelError` on the first problem. Returns ``self``."""
        def fail(msg):
            raise MorphableModelError(f"morphable model {self.name!r}: {msg}")

        def finite(name, a):
            if not np.isfinite(a).all():
                fail(f"{name} has non-finite values")

        n = self.mean_shape.shape[0] if self.mean_shape.ndim == 2 else -1
        if self.mean_shape.ndim != 2 or self.mean_shape.shape[1] != 3 or n < 3:
            fail(f"mean shape must be (N, 3), got {self.mean_shape.shape}")
        finite("the mean shape", self.mean_shape)
        for name, basis, std in (("identity", self.id_basis, self.id_std),
                                 ("expression", self.exp_basis, self.exp_std)):
            if basis.ndim != 3 or basis.shape[1:] != (n, 3):
                fail(f"the {name} basis must be (K, {n}, 3), got {basis.shape}")
            if std.shape != (basis.shape[0],):
                fail(f"the {name} standard deviations must be ({basis.shape[0]},), got {std.shape}")
            finite(f"the {name} basis", basis)
        if self.id_basis.shape[0] < 1:
            fail("the identity basis is empty")
        if self.expression_names and len(self.expression_names) != self.exp_basis.shape[0]:
            fail(f"{len(self.expression_names)} expression names for {self.exp_basis.shape[0]} expressions")
        t = self.triangles
        if t.ndim != 2 or t.shape[1] != 3 or t.shape[0] < 1:
            fail(f"triangles must be (F, 3), got {t.shape}")
        if t.min() < 0 or t.max() >= n:
            fail(f"triangle indices out of range [0, {n}): {t.min()}..{t.max()}")
        if self.landmarks.shape != (NUM_LANDMARKS,):
            fail(f"expected {NUM_LANDMARKS} landmark vertex ids, got shape {self.landmarks.shape}")
        if self.landmarks.min() < 0 or self.landmarks.max() >= n:
            fail(f"landmark vertex ids out of range [0, {n})")
        if self.face_mask.shape != (n,) or self.face_mask.dtype != bool or not self.face_mask.any():
            fail(f"the face mask must be a non-empty ({n},) bool array, "
                 f"got {self.face_mask.dtype} {self.face_mask.shape}")
        if self.uv is not None:
            if self.uv.shape != (n, 2):
                fail(f"UVs must be ({n}, 2), got {self.uv.shape}")
            finite("the UVs", self.uv)
            if self.uv.min() < -1e-4 or self.uv.max() > 1 + 1e-4:
                fail("UVs outside [0, 1]")
        if self.vertex_labels is not None and self.vertex_labels.shape != (n,):
            fail(f"vertex labels must be ({n},), got {self.vertex_labels.shape}")
        if self.albedo_mean is not None:
            if self.albedo_mean.shape != (n, 3):
                fail(f"the mean albedo must be ({n}, 3), got {self.albedo_mean.shape}")
            finite("the mean albedo", self.albedo_mean)
        if self.albedo_basis is not None:
            if self.albedo_mean is None:
                fail("an albedo basis needs a mean albedo")
            if self.albedo_basis.ndim != 3 or self.albedo_basis.shape[1:] != (n, 3):
                fail(f"the albedo basis must be (K, {n}, 3), got {self.albedo_basis.shape}")
            if self.albedo_std is None or self.albedo_std.shape != (self.albedo_basis.shape[0],):
                fail("the albedo basis needs one standard deviation per component")
            finite("the albedo basis", self.albedo_basis)
        return self

    # ------------------------------------------------------------------ evaluation
    def shape(self, id_coeffs=None, exp_coeffs=None) -> np.ndarray:
        """(N, 3) float64 vertices (mm) for normalised coefficients (missing ones are zero)."""
        v = self.mean_shape.astype(np.float64)
        if id_coeffs is not None:
            a = np.asarray(id_coeffs, np.float64)
            v = v + np.tensordot(a, self.id_basis[:len(a)].astype(np.float64), axes=1)
        if exp_coeffs is not None:
            b = np.asarray(exp_coeffs, np.float64)
            v = v + np.tensordot(b, self.exp_basis[:len(b)].astype(np.float64), axes=1)
        return v

    def truncated(self, num_identity: int | None = None, num_expression: int | None = None,
                  num_albedo: int | None = None) -> "MorphableModel":
        """The model with only the leading components."""
        kw = {}
        if num_identity is not None:
            kw.update(id_basis=self.id_basis[:num_identity], id_std=self.id_std[:num_identity])
        if num_expression is not None:
            kw.update(exp_basis=self.exp_basis[:num_expression], exp_std=self.exp_std[:num_expression],
                      expression_names=self.expression_names[:num_expression])
        if num_albedo is not None and self.albedo_basis is not None:
            kw.update(albedo_basis=self.albedo_basis[:num_albedo], albedo_std=self.albedo_std[:num_albedo])
        return replace(self, **kw).validate()

    # ------------------------------------------------------------------ storage
    def save_npz(self, path, dtype=np.float16) -> None:
        """Write the occgui ``.npz`` format (bases in ``dtype``; no pickled objects)."""
        arrays = {"format": np.array(NPZ_FORMAT), "name": np.array(self.name), "source": np.array(self.source),
                  "licence": np.array(self.licence),
                  "expression_names": np.array(self.expression_names, dtype=str),
                  "notes_keys": np.array(list(self.notes.keys()), dtype=str),
                  "notes_values": np.array([str(v) for v in self.notes.values()], dtype=str)}
        n = self.num_vertices
        arrays["mean_shape"] = self.mean_shape.astype(np.float32)
        arrays["id_basis"] = self.id_basis.astype(dtype)
        arrays["id_std"] = self.id_std.astype(np.float32)
        arrays["exp_basis"] = self.exp_basis.astype(dtype)
        arrays["exp_std"] = self.exp_std.astype(np.float32)
        arrays["triangles"] = self.triangles.astype(np.uint16 if n <= 65535 else np.int32)
        arrays["landmarks"] = self.landmarks.astype(np.int32)
        arrays["face_mask"] = self.face_mask.astype(bool)
        for name in ("uv", "albedo_mean", "albedo_basis"):
            a = getattr(self, name)
            if a is not None:
                arrays[name] = a.astype(np.float32 if name == "uv" else dtype)
        if self.albedo_std is not None:
            arrays["albedo_std"] = self.albedo_std.astype(np.float32)
        if self.vertex_labels is not None:
            arrays["vertex_labels"] = self.vertex_labels.astype(np.uint8)
        np.savez_compressed(path, **arrays)


_REQUIRED = ("mean_shape", "id_basis", "id_std", "exp_basis", "exp_std", "triangles", "landmarks", "face_mask")


def read_npz(path, what: str) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` (never unpickled); a missing or unreadable file raises a one-line
    :class:`MorphableModelError` naming ``what`` it should have been."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise MorphableModelError(f"{what} not found: {path}") from None
    except (ValueError, OSError, EOFError) as e:
        raise MorphableModelError(f"not a readable {what}: {path} ({str(e).splitlines()[0]})") from None


def load_npz_model(path) -> MorphableModel:
    """Read a model written by :meth:`MorphableModel.save_npz` (never unpickles anything)."""
    path = Path(path)
    data = read_npz(path, "morphable-model .npz")
    if str(data.get("format", "")) != NPZ_FORMAT:
        raise MorphableModelError(f"{path.name} is not an occgui morphable model (format tag "
                                  f"{str(data.get('format', 'missing'))!r}, expected {NPZ_FORMAT!r})")
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise MorphableModelError(f"{path.name} lacks {', '.join(missing)}")

    def f32(k):
        return data[k].astype(np.float32) if k in data else None

    keys = [str(k) for k in data.get("notes_keys", [])]
    vals = [str(v) for v in data.get("notes_values", [])]
    model = MorphableModel(
        name=str(data["name"]), mean_shape=f32("mean_shape"), id_basis=f32("id_basis"), id_std=f32("id_std"),
        exp_basis=f32("exp_basis"), exp_std=f32("exp_std"), triangles=data["triangles"].astype(np.int64),
        landmarks=data["landmarks"].astype(np.int64), face_mask=data["face_mask"].astype(bool),
        uv=f32("uv"), vertex_labels=data["vertex_labels"].astype(np.uint8) if "vertex_labels" in data else None,
        albedo_mean=f32("albedo_mean"), albedo_basis=f32("albedo_basis"), albedo_std=f32("albedo_std"),
        expression_names=tuple(str(s) for s in data.get("expression_names", ())),
        source=str(data.get("source", "")), licence=str(data.get("licence", "")),
        notes=dict(zip(keys, vals)))
    return model.validate()


def orient_front(vertices: np.ndarray, triangles: np.ndarray, front_ids: np.ndarray) -> np.ndarray:
    """``triangles`` wound counter-clockwise seen from +Z: flipped when most of those touching the
    ``front_ids`` vertices (e.g. the landmarks) face away from the viewer."""
    v = np.asarray(vertices, np.float64)
    t = np.asarray(triangles, np.int64)
    a, b, c = (v[t[:, i]] for i in range(3))
    nz = np.cross(b - a, c - a)[:, 2]
    sel = np.isin(t, front_ids).any(1)
    return t[:, ::-1].copy() if nz[sel].sum() < 0 else t

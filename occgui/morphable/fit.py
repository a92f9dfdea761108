"""Per-photo fit of the morphable model to the de-occluded face I_out (analysis by synthesis,
paper §3.4-3.5, issue 15 point 5).

Inputs are crop pixels (:class:`FitTarget`; :meth:`FitTarget.from_pipeline` takes the pipeline's
typed results). Everything is computed in a *reference frame*: the crop resampled to
:data:`~occgui.morphable.losses.REFERENCE_SIZE`² (224, the R-Net input size the paper's λ's
were tuned for); the returned pose is in crop pixels again.

1. **Initial value**: a coefficient vector (a regressor's output, or the previous solution after a
   landmark edit) when given; otherwise :func:`~occgui.morphable.init.initialise_from_landmarks`
   (pose + identity + expression least squares), followed in both cases by a linear least-squares
   estimate of the SH lighting (Eq. 11) from the visible vertices' colours.
2. **Vertex stage** (``iterations`` Adam steps): Eq. 16 without its identity term, with Eq. 13
   evaluated per vertex -- I_out sampled (bilinear, differentiable in the vertex positions) at every
   visible face-region vertex, compared with the vertex's Eq. 11 colour, weighted by the attention
   P_i sampled from M_γ / M_α and by the vertex's projected area (so the sum approximates Eq. 13's
   sum over pixels). Visibility (z-buffer + facing the camera) is recomputed every
   ``visibility_every`` steps by a low-resolution pytorch3d rasterisation.
3. **Image stage** (``image_iterations`` Adam steps): the complete Eq. 16 -- Eq. 13 over the pixels
   of an image rendered by pytorch3d (at ``render_size``² with a coarse topology on CPU, the
   model's own triangles with ``full_topology``) and Eq. 15, the identity embedding of I_out against
   that of the render composited over I_out.

Both stages work on a *coarse working mesh* (``coarse_cell_mm``: the model's vertices nearest to a
5 mm grid over the frontal view, about 1000 vertices / 2000 triangles for the ICT face, re-
triangulated; :func:`~occgui.morphable.render.coarse_topology`) -- its vertices are samples of the
exact model surface, its normals and renders an approximation. pytorch3d's naive CPU rasterizer
makes every render cost ∝ pixels x faces, hence the coarse mesh and the vertex stage; on CUDA use
``coarse_cell_mm=0`` (the model's own triangles). The returned vertices are the full model's.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import OccguiError
from .camera import Pose
from .coefficients import CoefficientLayout, Coefficients
from .dense import dense_loss
from .expression_prior import ExpressionPrior
from .init import initialise_from_landmarks
from .lighting import SH_BANDS, ambient_gamma, irradiance_basis
from .losses import (
    REFERENCE_SIZE,
    FaceIdentityFeatures,
    LossTerms,
    LossWeights,
    attention_weights,
    identity_loss,
    landmark_loss,
    photometric_loss,
    regularisation_loss,
    total_loss,
)
from .model import NUM_LANDMARKS, MorphableModel
from .render import coarse_topology, interpolate, rasterize, vertex_normals, vertex_visibility
from .torch_model import TorchMorphableModel, linear_shape, screen

#: Eq. 16's weights of the per-photo fit (not the paper's λ's, which were tuned for training a
#: regressor over a data set; docs/morphable.md, "Occlusion drift"): the landmark and
#: regularisation terms 10x and 40x the paper's λ3 / λ5 against the photometric and identity terms
#: -- so the crude region albedo cannot drag pose and shape --, a prior on the shape 4x the
#: paper's relative to Eq. 12, and an expression prior ω_β = 1 (a unit normal prior on the ICT
#: blendshape weights; the paper's 1.75e-3 is for Deep3DFaceRecon's PCA expression basis and
#: leaves the blendshapes nearly unconstrained). Measured on development photos (A-P).
FIT_WEIGHTS = LossWeights(landmark=1.6e-2, regularisation=1.5e-2, omega_beta=1.0)
#: The per-photo weights with the learned expression prior (:mod:`.expression_prior`, not in the
#: paper): its Mahalanobis term replaces ω_β ||β̃||² at ω_β = PRIOR_OMEGA_BETA (docs/morphable.md,
#: chosen on development photos A-P against occlusion drift and the clean landmark error).
PRIOR_OMEGA_BETA = 10.0
PRIOR_FIT_WEIGHTS = LossWeights(landmark=1.6e-2, regularisation=1.5e-2, omega_beta=PRIOR_OMEGA_BETA)
#: With the learned prior, the landmarks M_alpha's occluder hides weigh this much in Eq. 12: the
#: prior infers them from the visible ones (``FitSettings.occluded_landmark_weight``).
PRIOR_OCCLUDED_LANDMARK_WEIGHT = 0.0


@dataclass(frozen=True)
class FitSettings:
    iterations: int = 60              # vertex-stage Adam steps
    image_iterations: int = 2         # image-stage Adam steps (0: skip the stage and Eq. 15)
    use_identity: bool = True         # Eq. 15 in the image stage
    visibility_every: int = 15
    visibility_size: int = 96         # rasterisation size of the visibility passes
    render_size: int = 112            # image-stage render size
    coarse_cell_mm: float = 5.0       # grid of the coarse topology (image stage); 0: full topology
    fit_expression: bool = True
    fit_albedo: bool = True
    learning_rate: float = 0.1        # Adam step of the normalised coefficients
    pose_learning_rate: float = 0.005  # rad, and log-scale
    translation_learning_rate: float = 0.3  # reference pixels
    light_learning_rate: float = 0.02
    #: Prior on the second SH band (not in the paper): ``light_prior * ||γ_band2||²`` is added to
    #: Eq. 16, and a ridge of the same size to the initial least squares. Natural light has little
    #: energy there, and with the crude region albedo of a model without an albedo basis (ICT) the
    #: band-2 terms otherwise absorb what the albedo cannot explain -- irradiance swinging from
    #: below 0 to 1.8 over one face, which makes the de-lit texture useless.
    light_prior: float = 0.05
    weights: LossWeights = FIT_WEIGHTS
    device: str = "cpu"
    #: Weight in Eq. 12 and in the landmark initialisation of a landmark that lies on (or within
    #: ``OCCLUDED_LANDMARK_MARGIN`` reference pixels of) an occluder pixel of M_α (not in the paper,
    #: whose Eq. 12 weighs all 68 equally): such points are the landmark stage's guesses.
    occluded_landmark_weight: float = 1.0
    #: Whether the image terms (Eq. 13, and Eq. 15, which compares a render) move the shape
    #: (identity and expression), as in the paper. False (an ablation, not in the paper): they fit
    #: pose, light and albedo only and the shape follows Eq. 12 and Eq. 14 -- slightly less drift on
    #: development photos, but then de-occlusion no longer changes the shape (docs/morphable.md).
    photometric_shape: bool = True
    #: Weight of the dense MediaPipe term (:mod:`occgui.morphable.dense`, not in the paper) relative
    #: to Eq. 12, per point: 0 turns it off; it acts only when the target carries MediaPipe's mesh
    #: and the model has a dense map.
    dense_weight: float = 0.0
    #: Weight of the dense term's depths relative to its 2-D positions.
    dense_depth_weight: float = 0.5


@dataclass(frozen=True)
class FitTarget:
    """What the fit reads, in crop pixels: I_out, its 68 landmarks, and the parsing maps."""

    image: np.ndarray                       # SxSx3 uint8, I_out
    landmarks: np.ndarray                   # (68, 2) float, crop pixels
    gamma_labels: np.ndarray | None = None  # SxS uint8, M_γ (merged map)
    alpha_labels: np.ndarray | None = None  # SxS uint8, M_α (occluders)
    #: MediaPipe's face mesh on the same image ((468+, 3) crop pixels, z in x's units, larger =
    #: farther), the dense term's target; None: no dense term
    dense: np.ndarray | None = None
    #: (68,) bool: points the user placed; ``occluded_landmark_weight`` never lowers their weight
    #: (a correction always counts); None: none
    trusted: np.ndarray | None = None

    def __post_init__(self):
        img = np.asarray(self.image)
        if self.trusted is not None and np.asarray(self.trusted).shape != (NUM_LANDMARKS,):
            raise OccguiError(f"the fit's trusted points must be a (68,) mask, got {np.asarray(self.trusted).shape}")
        if img.ndim != 3 or img.shape[2] != 3 or img.shape[0] != img.shape[1] or img.dtype != np.uint8:
            raise OccguiError(f"the fit needs a square RGB uint8 image, got {img.dtype} {img.shape}")
        lm = np.asarray(self.landmarks, np.float64)
        if lm.shape != (NUM_LANDMARKS, 2) or not np.isfinite(lm).all():
            raise OccguiError(f"the fit needs 68 finite landmarks, got shape {lm.shape}")
        if self.dense is not None:
            from .dense import MESH_POINTS

            d = np.asarray(self.dense)
            if d.ndim != 2 or d.shape[0] < MESH_POINTS or d.shape[1] != 3 or not np.isfinite(d).all():
                raise OccguiError(f"the fit's dense target must be MediaPipe's (468+, 3) mesh, got {d.shape}")
        for name in ("gamma_labels", "alpha_labels"):
            m = getattr(self, name)
            if m is not None and np.asarray(m).shape != img.shape[:2]:
                raise OccguiError(f"{name} has shape {np.asarray(m).shape}, the image {img.shape[:2]}")

    @property
    def size(self) -> int:
        return int(self.image.shape[0])

    @classmethod
    def from_pipeline(cls, synthesis, landmarks, gamma=None, alpha=None) -> "FitTarget":
        """From the pipeline's ``Synthesis`` (I_out), ``Landmarks`` and ``ParsingMap``s (M_γ, M_α)."""
        return cls(image=synthesis.image, landmarks=np.asarray(landmarks.points, np.float64),
                   gamma_labels=None if gamma is None else gamma.labels,
                   alpha_labels=None if alpha is None else alpha.labels)


@dataclass(frozen=True)
class FitResult:
    model_name: str
    coefficients: Coefficients        # pose in crop pixels
    vertices: np.ndarray              # (N, 3) mm, model frame (identity + expression, unrotated)
    landmarks2d: np.ndarray           # (68, 2) crop pixels, the fitted model's landmarks
    history: tuple[LossTerms, ...]
    seconds: float
    stages: dict = field(default_factory=dict)

    @property
    def camera_vertices(self) -> np.ndarray:
        """(N, 3) mm, rotated into the camera frame (X right, Y up, Z to the viewer)."""
        return self.vertices @ self.coefficients.pose.rotation().T

    def photo_pose(self, crop_to_photo: np.ndarray) -> tuple[float, float, float, float, float, float]:
        """The pose in the photo's frame: (pitch, yaw, roll) in degrees of the rotation composed
        with the crop's in-plane rotation, the model origin's photo pixel (tx, ty) and the scale
        (photo pixels per mm); ``crop_to_photo`` as in :meth:`face_mesh`."""
        from .init import angles_from_rotation

        a = np.asarray(crop_to_photo, np.float64)
        s = float(np.sqrt(abs(np.linalg.det(a[:, :2]))))
        flip = np.diag([1.0, -1.0])
        rz = np.eye(3)
        rz[:2, :2] = flip @ (a[:, :2] / s) @ flip
        p = self.coefficients.pose
        pitch, yaw, roll = (float(np.degrees(x)) for x in angles_from_rotation(rz @ p.rotation()))
        tx, ty = a @ np.array([p.tx, p.ty, 1.0])
        return pitch, yaw, roll, float(tx), float(ty), s * p.scale

    def vertex_shading(self, model: MorphableModel) -> np.ndarray:
        """(N, 3) float32: the fitted SH irradiance (Eq. 11 without the albedo) at every vertex of
        the full model, normals in the fit's camera frame -- what a texture is divided by to de-light it."""
        cam = torch.as_tensor(self.camera_vertices, dtype=torch.float64)
        normals = vertex_normals(cam, torch.as_tensor(model.triangles, dtype=torch.int64))
        irr = irradiance_basis(normals) @ torch.as_tensor(self.coefficients.gamma, dtype=torch.float64).T
        return irr.float().numpy()

    def landmark_error(self, landmarks: np.ndarray) -> float:
        """Mean distance between the fitted model's 68 landmarks and ``landmarks`` (crop pixels),
        in inter-ocular distances (outer eye corners, points 36 and 45)."""
        lm = np.asarray(landmarks, np.float64)
        iod = float(np.linalg.norm(lm[36] - lm[45]))
        return float(np.linalg.norm(self.landmarks2d - lm, axis=1).mean() / max(iod, 1e-9))

    def face_mesh(self, model: MorphableModel, crop_to_photo: np.ndarray, backend: str = "morphable"):
        """The fit as a :class:`occgui.results.FaceMesh`: vertices in the photo's camera frame
        (mm) and its scaled-orthographic :class:`Camera`; ``crop_to_photo`` is the (2, 3) similarity
        from crop to photo pixels (``FaceCrop.from_crop`` divided by ``LoadedImage.scale``)."""
        from ..results import Camera, FaceMesh

        a = np.asarray(crop_to_photo, np.float64)
        lin = a[:, :2]
        s = float(np.sqrt(abs(np.linalg.det(lin))))
        rot2 = lin / s                                   # in-plane rotation, image axes (y down)
        flip = np.diag([1.0, -1.0])
        rz = flip @ rot2 @ flip                          # the same rotation in model axes (y up)
        v = self.camera_vertices.copy()
        v[:, :2] = v[:, :2] @ rz.T
        p = self.coefficients.pose
        u0, v0 = a @ np.array([p.tx, p.ty, 1.0])
        if model.uv is None:
            raise OccguiError(f"the morphable model {model.name!r} has no texture coordinates")
        return FaceMesh(vertices=v, faces=model.triangles.copy(), uv=model.uv.astype(np.float64),
                        camera=Camera(k=s * p.scale, u0=float(u0), v0=float(v0)),
                        landmark_vertices=model.landmarks.copy(), backend=backend)


#: Dilation (reference pixels) of M_α's occluder when deciding which landmarks it hides.
OCCLUDED_LANDMARK_MARGIN = 4.0


def occluded_landmarks(points: np.ndarray, alpha_labels: np.ndarray, margin_px: float) -> np.ndarray:
    """(68,) bool: the landmarks (crop pixels) on an occluder pixel of M_α dilated by ``margin_px``."""
    import cv2

    from .. import labels as L

    occ = L.mask_of(np.asarray(alpha_labels), L.OCCLUDING).astype(np.uint8)
    k = int(np.ceil(max(margin_px, 0.0)))
    if k > 0:
        occ = cv2.dilate(occ, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1, 2 * k + 1)))
    h, w = occ.shape
    p = np.rint(np.asarray(points, np.float64)).astype(np.int64)
    inside = (p[:, 0] >= 0) & (p[:, 0] < w) & (p[:, 1] >= 0) & (p[:, 1] < h)
    out = np.zeros(len(p), bool)
    out[inside] = occ[p[inside, 1], p[inside, 0]] > 0
    return out


#: Depth tolerance of the visibility test (the coarse working mesh departs from the surface by ~1 mm).
VISIBILITY_TOLERANCE_MM = 3.0


def _terms(*values) -> LossTerms:
    return LossTerms(*[float(v.detach()) if torch.is_tensor(v) else float(v) for v in values])


def _resize(img: torch.Tensor, size: int, mode: str = "bilinear") -> torch.Tensor:
    """Resample a square (1, C, S, S) image to ``size``² (pixel centres map as in :func:`_rescale`)."""
    if img.shape[-1] == size:
        return img
    if mode == "nearest":
        return F.interpolate(img, size=(size, size), mode="nearest-exact")
    return F.interpolate(img, size=(size, size), mode=mode, align_corners=False, antialias=size < img.shape[-1])


def _rescale(points, ratio: float):
    """Pixel coordinates (centres at integers) of an image resampled by ``ratio``."""
    return (points + 0.5) * ratio - 0.5


def _sample(image: torch.Tensor, uv: torch.Tensor, size: int, mode: str = "bilinear") -> torch.Tensor:
    """Sample (1, C, S, S) at (N, 2) pixel positions (centres at integers) -> (N, C)."""
    grid = (2.0 * uv + 1.0) / size - 1.0
    out = F.grid_sample(image, grid[None, None], mode=mode, padding_mode="border", align_corners=False)
    return out[0, :, 0].T


def _vertex_areas(cam: torch.Tensor, tris: torch.Tensor) -> torch.Tensor:
    """Projected (image-plane) area of each vertex's triangles / 3, in mm² (front-facing only)."""
    a, b, c = (cam[tris[:, i]] for i in range(3))
    cross = torch.cross(b - a, c - a, dim=-1)
    area = 0.5 * cross[:, 2].clamp_min(0.0)
    out = torch.zeros(cam.shape[0], dtype=cam.dtype, device=cam.device)
    for i in range(3):
        out = out.index_add(0, tris[:, i], area / 3.0)
    return out


_BAND2 = torch.tensor([1.0 if b == 2 else 0.0 for b in SH_BANDS], dtype=torch.float64)


class Adam:
    """Adam (Kingma & Ba; torch's defaults: betas 0.9 / 0.999, eps 1e-8, bias-corrected, no weight
    decay) over parameter groups ``[{"params": [...], "lr": ...}]``.

    ``torch.optim.Adam`` is not used: its first construction imports ``torch._dynamo``, which loads
    triton's LLVM; in a process that already has Mesa's LLVM loaded (any process with a display:
    MediaPipe's GL context, the GUI's compute process under X) that import crashes the process
    (SIGSEGV, measured under xvfb). These few lines compute the same steps."""

    def __init__(self, groups: list[dict], betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        self.groups = [(list(g["params"]), float(g["lr"])) for g in groups]
        self.betas, self.eps, self.t = betas, eps, 0
        self.state = {id(p): (torch.zeros_like(p), torch.zeros_like(p)) for ps, _ in self.groups for p in ps}

    def zero_grad(self, set_to_none: bool = True) -> None:
        for ps, _ in self.groups:
            for p in ps:
                p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        self.t += 1
        b1, b2 = self.betas
        c1, c2 = 1.0 - b1 ** self.t, 1.0 - b2 ** self.t
        for ps, lr in self.groups:
            for p in ps:
                if p.grad is None:
                    continue
                m, v = self.state[id(p)]
                m.mul_(b1).add_(p.grad, alpha=1.0 - b1)
                v.mul_(b2).addcmul_(p.grad, p.grad, value=1.0 - b2)
                p.addcdiv_(m, (v / c2).sqrt_().add_(self.eps), value=-lr / c1)


def light_prior_loss(gamma: torch.Tensor) -> torch.Tensor:
    """``||γ_band2||²`` of (3, 9) SH coefficients (see ``FitSettings.light_prior``)."""
    return (gamma[..., 4:] ** 2).sum()


def solve_lighting(colours: torch.Tensor, albedo: torch.Tensor, normals: torch.Tensor, weights: torch.Tensor,
                   ridge: float = 1e-3, band2_ridge: float = 0.0) -> torch.Tensor:
    """Weighted linear least squares of γ (3, 9) in ``colour ≈ albedo ⊙ Φ(n) γ`` (Eq. 11), with a
    small ridge towards a white ambient light."""
    phi = irradiance_basis(normals).double()                       # (N, 9)
    w = weights.double()
    prior = ambient_gamma(dtype=torch.float64)[0]
    out = []
    for c in range(3):
        a = phi * albedo[:, c:c + 1].double()
        h = (a * w[:, None]).T @ a + w.sum() * torch.diag(ridge + band2_ridge * _BAND2)
        g = (a * w[:, None]).T @ colours[:, c].double() + ridge * w.sum() * prior
        out.append(torch.linalg.solve(h, g))
    return torch.stack(out).to(colours.dtype)


class MorphableFitter:
    """Fits one model; holds its torch tensors, the coarse topology and (lazily) the identity
    network, so repeated fits (e.g. after landmark edits) pay for them once."""

    def __init__(self, model: MorphableModel, settings: FitSettings = FitSettings(),
                 expression_prior: ExpressionPrior | None = None):
        """``expression_prior``: the learned expression term
        (:mod:`occgui.morphable.expression_prior`) in place of Eq. 14's ``ω_β ||β̃||²``."""
        self.model = model
        self.settings = settings
        self.expression_prior = None if expression_prior is None else expression_prior.check(model)
        self.layout = CoefficientLayout.of(model)
        if settings.coarse_cell_mm > 0:
            ids, tri = coarse_topology(model.mean_shape[:, :2], model.triangles, model.landmarks,
                                       settings.coarse_cell_mm)
            self.tm = TorchMorphableModel(model, device=settings.device, vertex_ids=ids, triangles=tri)
            self.working_ids = ids
        else:
            self.tm = TorchMorphableModel(model, device=settings.device)
            self.working_ids = np.arange(model.num_vertices)
        self.full = TorchMorphableModel(model, device="cpu", dtype=torch.float64)
        self._identity: FaceIdentityFeatures | None = None
        self.dense_map = None
        if settings.dense_weight > 0:
            from .dense import default_dense_map

            self.dense_map = default_dense_map(model)

    def identity_features(self) -> FaceIdentityFeatures:
        if self._identity is None:
            self._identity = FaceIdentityFeatures(self.settings.device)
        return self._identity

    # ------------------------------------------------------------------ main entry
    def fit(self, target: FitTarget, initial: Coefficients | np.ndarray | None = None, *,
            iterations: int | None = None, image_iterations: int | None = None) -> FitResult:
        """Fit ``target`` from ``initial`` (else the landmarks); ``iterations`` / ``image_iterations``
        override the settings' step counts for this call (a warm-started re-fit needs fewer)."""
        st = self.settings
        n_vertex = st.iterations if iterations is None else int(iterations)
        n_image = st.image_iterations if image_iterations is None else int(image_iterations)
        t0 = time.perf_counter()
        dev = st.device
        size = target.size
        r = REFERENCE_SIZE / size                                   # crop px -> reference px
        img = torch.as_tensor(target.image, device=dev).permute(2, 0, 1)[None].float() / 255.0
        img_ref = _resize(img, REFERENCE_SIZE)
        lm_ref_np = _rescale(np.asarray(target.landmarks, np.float64), r)
        lm_ref = torch.as_tensor(lm_ref_np, dtype=torch.float32, device=dev)
        if target.gamma_labels is not None:
            att = attention_weights(target.gamma_labels, target.alpha_labels)
        else:
            att = np.full((size, size), 0.1, np.float32)
            if target.alpha_labels is not None:
                att = attention_weights(np.zeros((size, size), np.uint8), target.alpha_labels)
        att_ref = _resize(torch.as_tensor(att, device=dev)[None, None], REFERENCE_SIZE, mode="nearest")

        lmk_w_np = np.ones(NUM_LANDMARKS)
        if target.alpha_labels is not None and st.occluded_landmark_weight != 1.0:
            hidden = occluded_landmarks(target.landmarks, target.alpha_labels, OCCLUDED_LANDMARK_MARGIN / r)
            if target.trusted is not None:
                hidden &= ~np.asarray(target.trusted, bool)
            lmk_w_np[hidden] = st.occluded_landmark_weight
        lmk_w = torch.as_tensor(lmk_w_np, dtype=torch.float32, device=dev)
        dense = None
        if self.dense_map is not None and target.dense is not None:
            dm = self.dense_map
            d_ref = np.asarray(target.dense, np.float64)[dm.points]
            d_ref = np.concatenate([_rescale(d_ref[:, :2], r), d_ref[:, 2:3] * r], axis=1)
            dense = (torch.as_tensor(self.model.mean_shape[dm.vertices], dtype=torch.float32, device=dev),
                     torch.as_tensor(self.model.id_basis[:, dm.vertices].reshape(self.model.num_identity, -1),
                                     dtype=torch.float32, device=dev),
                     torch.as_tensor(self.model.exp_basis[:, dm.vertices].reshape(self.model.num_expression, -1),
                                     dtype=torch.float32, device=dev),
                     torch.as_tensor(d_ref, dtype=torch.float32, device=dev))

        # ---- initial value (reference frame)
        if initial is None:
            pose, ident, expr = initialise_from_landmarks(self.model, lm_ref_np, st.weights, point_weights=lmk_w_np,
                                                          expression_prior=self.expression_prior)
            coeffs = Coefficients(identity=ident, expression=expr, albedo=np.zeros(self.layout.num_albedo),
                                  gamma=ambient_gamma(dtype=torch.float64).numpy(), pose=pose)
            light_init = True
        else:
            c = initial if isinstance(initial, Coefficients) else Coefficients.from_vector(initial, self.layout)
            if c.layout != self.layout:
                raise OccguiError(f"initial coefficients {c.layout} do not match the model {self.layout}")
            p = c.pose
            coeffs = Coefficients(c.identity, c.expression, c.albedo, c.gamma,
                                  Pose(p.pitch, p.yaw, p.roll, p.scale * r, _rescale(p.tx, r), _rescale(p.ty, r)))
            light_init = False
        t_init = time.perf_counter() - t0

        def param(a, grad=True):
            return torch.tensor(np.asarray(a, np.float32), device=dev, requires_grad=grad)

        exp_prior = None
        if self.expression_prior is not None:
            ep = self.expression_prior
            exp_prior = (torch.as_tensor(ep.mean, dtype=torch.float32, device=dev),
                         torch.as_tensor(ep.whiten, dtype=torch.float32, device=dev))
        ident = param(coeffs.identity)
        expr = param(coeffs.expression, st.fit_expression)
        alb = param(coeffs.albedo, st.fit_albedo)
        gamma = param(coeffs.gamma)
        angles = param(coeffs.pose.as_array()[:3])
        log_f = param([np.log(coeffs.pose.scale)])
        trans = param(coeffs.pose.as_array()[4:6])
        tris = self.tm.triangles
        face = self.tm.face_mask

        def pose_vec():
            return torch.cat([angles, log_f.exp(), trans])

        def geometry():
            v = self.tm.vertices(ident, expr)
            scr, cam = self.tm.screen(v, pose_vec())
            return v, scr, cam

        def dense_term():
            """The dense MediaPipe term (:func:`occgui.morphable.dense.dense_loss`), in Eq. 12's units."""
            if dense is None:
                return torch.zeros(())
            mean, b_id, b_exp, d_target = dense
            scr_d, _ = screen(linear_shape(mean, b_id, b_exp, ident, expr), pose_vec())
            pred = torch.cat([scr_d[:, :2], scr_d[:, 2:3] * log_f.exp()], -1)   # depth in pixels, larger nearer
            return dense_loss(pred, d_target, st.dense_depth_weight)

        def image_geometry(scr, cam):
            """What the image terms see: the geometry, or (``photometric_shape`` off) the same with
            the shape coefficients detached, so that only pose reaches them."""
            if st.photometric_shape:
                return scr, cam
            return self.tm.screen(self.tm.vertices(ident.detach(), expr.detach()), pose_vec())

        def vertex_weights(scr, cam):
            vis = vertex_visibility(scr, tris, st.visibility_size, normals=self.tm.normals(cam),
                                    tolerance=VISIBILITY_TOLERANCE_MM, scale=st.visibility_size / REFERENCE_SIZE)[0]
            return (vis & face).float() * _vertex_areas(cam.detach(), tris)

        with torch.no_grad():
            _v, scr, cam = geometry()
            area_w = vertex_weights(scr, cam)
            if light_init:
                w = area_w * _sample(att_ref, scr[:, :2], REFERENCE_SIZE, "nearest")[:, 0]
                gamma.copy_(solve_lighting(_sample(img_ref, scr[:, :2], REFERENCE_SIZE),
                                           self.tm.albedo(alb), self.tm.normals(cam), w, band2_ridge=st.light_prior))

        groups = [{"params": [ident], "lr": st.learning_rate},
                  {"params": [angles, log_f], "lr": st.pose_learning_rate},
                  {"params": [trans], "lr": st.translation_learning_rate},
                  {"params": [gamma], "lr": st.light_learning_rate}]
        if st.fit_expression and self.layout.num_expression:
            groups.append({"params": [expr], "lr": st.learning_rate})
        if st.fit_albedo and self.layout.num_albedo:
            groups.append({"params": [alb], "lr": st.learning_rate})
        opt = Adam(groups)
        history: list[LossTerms] = []
        wts = st.weights

        # ---- vertex stage
        t1 = time.perf_counter()
        for it in range(n_vertex):
            if it and it % st.visibility_every == 0:
                with torch.no_grad():
                    _v, scr, cam = geometry()
                    area_w = vertex_weights(scr, cam)
            opt.zero_grad(set_to_none=True)
            _v, scr, cam = geometry()
            l_lmk = landmark_loss(scr[self.tm.landmarks, :2], lm_ref, lmk_w)
            if dense is not None:
                l_lmk = l_lmk + st.dense_weight * dense_term()
            scr, cam = image_geometry(scr, cam)
            colours = self.tm.colours(cam, self.tm.albedo(alb), gamma)
            observed = _sample(img_ref, scr[:, :2], REFERENCE_SIZE)
            with torch.no_grad():
                p_i = _sample(att_ref, scr[:, :2], REFERENCE_SIZE, "nearest")[:, 0] * area_w
            l_pix = photometric_loss(observed, colours, p_i, p_i > 0)
            l_reg = regularisation_loss(ident, expr, alb, wts, exp_prior)
            loss = total_loss(l_lmk, l_pix, l_reg, 0.0, wts) + st.light_prior * light_prior_loss(gamma)
            loss.backward()
            opt.step()
            history.append(_terms(loss, l_lmk, l_pix, l_reg, 0.0))
        t2 = time.perf_counter()

        # ---- image stage
        if n_image > 0:
            rs = st.render_size
            k = rs / REFERENCE_SIZE
            img_r = _resize(img, rs)
            att_r = _resize(torch.as_tensor(att, device=dev)[None, None], rs, mode="nearest")[0, 0]
            use_id = st.use_identity and wts.identity > 0
            if use_id:
                ident_net = self.identity_features()
                affine = FaceIdentityFeatures.chip_affine(_rescale(lm_ref_np, k))
                with torch.no_grad():
                    emb_out = ident_net.embed(img_r, affine)
            face_attr = face.float()[:, None]
            for _ in range(n_image):
                opt.zero_grad(set_to_none=True)
                _v, scr, cam = geometry()
                l_lmk = landmark_loss(scr[self.tm.landmarks, :2], lm_ref, lmk_w)
                if dense is not None:
                    l_lmk = l_lmk + st.dense_weight * dense_term()
                scr, cam = image_geometry(scr, cam)
                colours = self.tm.colours(cam, self.tm.albedo(alb), gamma)
                scr_r = torch.cat([_rescale(scr[:, :2], k), scr[:, 2:]], -1)
                ras = rasterize(scr_r, tris, rs)
                rendered = interpolate(ras, tris, colours)[0]                            # (rs, rs, 3)
                region = (interpolate(ras, tris, face_attr)[0, ..., 0] > 0.5) & ras.mask[0]
                target_px = img_r[0].permute(1, 2, 0)
                l_pix = photometric_loss(target_px.reshape(-1, 3), rendered.reshape(-1, 3), att_r.reshape(-1),
                                         region.reshape(-1))
                l_reg = regularisation_loss(ident, expr, alb, wts, exp_prior)
                l_ff = torch.zeros(())
                if use_id:
                    cov = ras.mask[0, ..., None].float()
                    composite = (cov * rendered + (1 - cov) * target_px).permute(2, 0, 1)[None]
                    l_ff = identity_loss(ident_net.embed(composite, affine), emb_out)[0]
                loss = total_loss(l_lmk, l_pix, l_reg, l_ff, wts) + st.light_prior * light_prior_loss(gamma)
                loss.backward()
                opt.step()
                history.append(_terms(loss, l_lmk, l_pix, l_reg, l_ff))
        t3 = time.perf_counter()

        with torch.no_grad():
            _v, scr, _cam = geometry()
            lm2d = _rescale(scr[self.tm.landmarks, :2].double().cpu().numpy(), 1.0 / r)
            v = self.full.vertices(ident.detach().double().cpu(), expr.detach().double().cpu())
            pose = Pose(*[float(x) for x in angles], float(log_f.exp()) / r, _rescale(float(trans[0]), 1.0 / r),
                        _rescale(float(trans[1]), 1.0 / r))
            result = Coefficients(identity=ident.detach().double().numpy(),
                                  expression=expr.detach().double().numpy(),
                                  albedo=alb.detach().double().numpy(), gamma=gamma.detach().double().numpy(),
                                  pose=pose)
        return FitResult(model_name=self.model.name, coefficients=result, vertices=v.double().numpy(),
                         landmarks2d=lm2d, history=tuple(history), seconds=time.perf_counter() - t0,
                         stages={"init_s": t_init, "vertex_stage_s": t2 - t1, "image_stage_s": t3 - t2,
                                 "working_vertices": int(self.tm.num_working),
                                 "working_triangles": int(self.tm.triangles.shape[0])})


def fit_morphable(model: MorphableModel, target: FitTarget, initial=None,
                  settings: FitSettings = FitSettings()) -> FitResult:
    """One fit (see the module docstring); ``initial``: a :class:`Coefficients` or a flat vector in
    the :class:`CoefficientLayout` of ``model`` (pose in crop pixels), e.g. a regressor's output."""
    return MorphableFitter(model, settings).fit(target, initial)

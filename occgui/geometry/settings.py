"""Typed settings of the ``geometry`` backends (torch-free: ``occgui backends`` and the CLI read
them without loading any model). ``--option geometry.FIELD=VALUE`` sets one field."""
from __future__ import annotations

from dataclasses import dataclass

from ..settings import setting


@dataclass(frozen=True)
class MorphableSettings:
    """Settings of the morphable-model fit (:class:`occgui.geometry.morphable_mesh.MorphableGeometry`,
    :class:`occgui.morphable.fit.FitSettings`)."""

    model: str = setting("", "morphable model: an occgui .npz, a BFM .mat (Deep3DFaceRecon's layout) or an "
                             "ICT-FaceKit folder; empty = the reduced ICT-FaceKit model shipped in resources/morphable")
    iterations: int = setting(60, "vertex-stage Adam steps of a first fit (Eq. 16 without Eq. 15, Eq. 13 per "
                                  "vertex)", "steps")
    image_iterations: int = setting(2, "image-stage Adam steps (Eq. 13 on a pytorch3d render, Eq. 15); 0 skips "
                                       "the stage and the identity network", "steps")
    warm_start: bool = setting(True, "a re-fit of the same photo and crop (after a landmark edit or a painted "
                                     "occluder) starts from the previous solution")
    refit_iterations: int = setting(25, "vertex-stage steps of a warm-started re-fit", "steps")
    refit_image_iterations: int = setting(1, "image-stage steps of a warm-started re-fit", "steps")
    use_identity: bool = setting(True, "Eq. 15 (dlib face-embedding identity term) in the image stage")
    render_size: int = setting(112, "side of the image-stage render", "px")
    visibility_size: int = setting(96, "side of the z-buffer passes that decide vertex visibility", "px")
    coarse_cell_mm: float = setting(5.0, "grid of the coarse working mesh the CPU fit renders (pytorch3d's CPU "
                                         "rasterizer is naive); 0 = the model's own triangles", "mm")
    cuda_full_topology: bool = setting(True, "on CUDA, render the model's own triangles whatever coarse_cell_mm")
    device: str = setting("", "device of the fit: cpu, cuda, or empty = the pipeline's device")
    initial: str = setting("landmarks", "initial value of a first fit: 'landmarks' (least squares from the 68 "
                                        "points), 'rnet' (the trained R-Net's coefficients regressed from I_out) or "
                                        "'rnet-pose' (the R-Net's shape and light, the pose re-estimated from the "
                                        "landmarks)")
    rnet_weights: str = setting("", "R-Net weights (.safetensors from `occgui train recon`); empty = the shipped "
                                    "checkpoints/recon_regressor.safetensors")
    iout_landmarks: str = setting("all", "Eq. 12's landmarks re-detected on I_out (MediaPipe's face mesh, 68 points) "
                                         "after de-occlusion: 'off' (the landmark stage's points), 'hidden' (the "
                                         "re-detected points replace those M_alpha's occluder covers), 'all', or "
                                         "'blend' (the hidden ones, the others averaged with the stage's)")
    expression_prior: str = setting("off", "prior of the expression coefficients, not in the paper: 'off' (Eq. 14's "
                                           "omega_beta ||beta||^2), 'learned' (the mean and covariance of clean "
                                           "fits of LFW photos shipped for the default model, "
                                           "occgui.morphable.expression_prior) or the path of such a .npz")
    dense_weight: float = setting(0.0, "weight (per point, relative to Eq. 12) of MediaPipe's dense face mesh as a "
                                       "fitting target, not in the paper: its points on I_out (re-detected like "
                                       "iout_landmarks, else the landmark stage's) pull the model vertices under "
                                       "them, 2-D and depth; 0 = off. Not used once a landmark was edited by hand")

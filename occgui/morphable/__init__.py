"""3D morphable-model reconstruction of the paper's §3.4-3.5 (issue 15), inference only.

* :mod:`.model` -- :class:`MorphableModel` (typed, validated) and the occgui ``.npz`` format;
* :mod:`.ict` / :mod:`.bfm` -- loaders of the full ICT-FaceKit folder and of Deep3DFaceRecon's
  ``BFM_model_front.mat``; :func:`load_default_model` -- the reduced ICT model shipped in
  ``resources/morphable/`` (MIT); :func:`load_model` -- any of them by path;
* :mod:`.regions` -- vertex labels and the face region from the 68 landmark vertices;
* :mod:`.regressor` (the R-Net, trained by ``occgui train recon``), :mod:`.camera` (Eq. 10),
  :mod:`.lighting` (Eq. 11), :mod:`.render` (pytorch3d), :mod:`.losses` (Eq. 12-16),
  :mod:`.expression_prior` (a learned expression prior, not in the paper), :mod:`.coefficients`
  (the vector y), :mod:`.init` (landmark least squares), :mod:`.fit` (the per-photo analysis-by-synthesis fit).
"""
from __future__ import annotations

from pathlib import Path

from .camera import Pose
from .coefficients import CoefficientLayout, Coefficients
from .model import MorphableModel, MorphableModelError, load_npz_model

DEFAULT_MODEL = "morphable/ict_face_reduced.npz"
#: The learned expression prior of the default model (``tools/derive_expression_prior.py``).
DEFAULT_EXPRESSION_PRIOR = "morphable/ict_face_reduced_expression_prior.npz"


def load_default_model() -> MorphableModel:
    """The embedded reduced ICT-FaceKit face model (see ``resources/morphable/README.md``)."""
    from ..resources import resource_path

    return load_npz_model(resource_path(DEFAULT_MODEL))


def default_expression_prior_path() -> Path:
    """The shipped learned expression prior of the default model (see ``resources/morphable/README.md``)."""
    from ..resources import resource_path

    return Path(resource_path(DEFAULT_EXPRESSION_PRIOR))


def load_model(path) -> MorphableModel:
    """A model from an occgui ``.npz``, a BFM ``.mat`` (Deep3DFaceRecon layout) or an ICT-FaceKit
    folder (``FaceXModel`` or its parent)."""
    p = Path(path)
    if p.is_dir():
        from .ict import load_ict_folder

        return load_ict_folder(p)
    if p.suffix.lower() == ".mat":
        from .bfm import load_bfm_mat

        return load_bfm_mat(p)
    if p.suffix.lower() == ".npz":
        return load_npz_model(p)
    raise MorphableModelError(f"unknown morphable-model source {p} (expected a .npz, a BFM .mat or an ICT folder)")


__all__ = ["CoefficientLayout", "Coefficients", "MorphableModel", "MorphableModelError", "Pose",
           "default_expression_prior_path", "load_default_model", "load_model", "load_npz_model"]

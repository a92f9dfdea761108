"""FISN, the face image synthesis network of paper §3.3 (inference side).

* :mod:`.generator` -- Pix2PixHD-style encoder, SEAN residual blocks, decoder (:class:`FISNGenerator`);
* :mod:`.sft` -- spatial feature transform, Eq. 2 (M_alpha modulates the features of I_fac);
* :mod:`.sean` -- region-adaptive normalisation, Eq. 3-5 (style codes of the visible regions of
  I_fac broadcast on M_gamma's layout);
* :mod:`.composite` -- 256 px crop <-> network resolution, and the output pasted inside the hole only;
* :mod:`.checkpoint` -- safetensors weights with shape validation;
* :mod:`.inpainter` -- one face: crop + M_alpha + M_gamma -> I_out.

The trainer is ``occgui.training.fisn``; nothing here imports it. See docs/fisn.md.
"""
from .checkpoint import CHECKPOINT_NAME, load_generator, save_generator
from .generator import FISNConfig, FISNGenerator, parameter_count
from .inpainter import FISNInpainter, FISNOutput

__all__ = ["CHECKPOINT_NAME", "FISNConfig", "FISNGenerator", "FISNInpainter", "FISNOutput", "load_generator",
           "parameter_count", "save_generator"]

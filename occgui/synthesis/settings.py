"""Typed settings of the ``synthesize`` backends: every tuning number of the de-occlusion, named.

Lengths given in "inter-ocular distances" are multiples of the distance between the outer eye
corners (points 36 and 45) of the crop's landmarks; "px" are crop pixels at the crop's size
unless a field says "at a 256 px crop". ``--option synthesize.FIELD=VALUE`` sets one field.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..settings import setting


@dataclass(frozen=True)
class SymmetricSettings:
    """Settings of the default I_out backend (:class:`occgui.synthesis.symmetric.SymmetricDeocclusion`)."""

    dilate_px: int = setting(2, "dilation of M_alpha's occluder mask (anti-aliased borders), scaled with the crop "
                                "size; 2 px is also the Telea baseline's mask, so both fill the same pixels",
                             "px at a 256 px crop")
    log_domain: bool = setting(True, "Poisson-blend in the log domain (a multiplicative lighting correction) "
                                     "rather than an additive one")
    template_strength: float = setting(1.0, "contrast of the template's features drawn where both sides are "
                                             "hidden (1 = the template as it is)", "ratio")
    region_style: float = setting(1.0, "weight of the region-wise style step (SEAN's per-region normalisation "
                                       "on pixels; 0 = off)", "ratio")
    appearance: bool = setting(True, "fit the face appearance model to the visible face and draw the hidden "
                                     "features from it; off: the plain mean face, colour-matched")
    appearance_noise: float = setting(200.0, "effective noise standard deviation of a visible value in the "
                                             "appearance fit: larger keeps the fit closer to the mean face. Far "
                                             "above the model's own residual (about 12) because neighbouring "
                                             "pixels are not independent and the warp through guessed landmarks "
                                             "misaligns them; smaller lets the high components overshoot (dark eye "
                                             "sockets, bared teeth). Chosen on development photos (identities M-P, "
                                             "model built from A-L): identity distance under sunglasses / a "
                                             "mask 0.466 / 0.524 at 50, 0.453 / 0.504 at 200, 0.459 / 0.512 at "
                                             "400, 0.484 / 0.540 with the plain mean face", "0-255 levels")
    appearance_huber: float = setting(2.0, "Huber threshold of the re-weighted appearance fit",
                                      "model residual standard deviations")
    appearance_iterations: int = setting(2, "Huber re-weighting passes of the appearance fit", "passes")
    align_brows: bool = setting(True, "move a hidden brow's mirror sources by the offset between the visible "
                                      "brow as parsed (M_alpha) and as drawn (M_beta)")
    align_eyes: bool = setting(False, "the same alignment for a hidden eye")
    align_max_iod: float = setting(0.15, "largest feature-alignment offset", "inter-ocular distances")
    align_min_span_iod: float = setting(0.1, "the visible and the drawn brow must share columns over at least this "
                                             "width for the alignment offset to be measured", "inter-ocular distances")
    align_feather_iod: float = setting(0.08, "feathering radius of the feature-alignment offset",
                                       "inter-ocular distances")
    crossfade_iod: float = setting(0.04, "cross-fade width between the sources (mirror, template, smooth fill)",
                                   "inter-ocular distances")
    crossfade_min_px: float = setting(1.5, "smallest cross-fade width", "px")
    visible_margin_px: float = setting(2.5, "pixels nearer the hole than this are not used as sources "
                                            "(the occluder's fringe)", "px")
    colour_near_iod: float = setting(0.6, "the plain mean face is colour-matched to the visible skin within "
                                          "this distance of the hole", "inter-ocular distances")
    gain_sigma_iod: float = setting(0.08, "smoothing of the mean face's local light gain", "inter-ocular distances")
    style_min_fraction: float = setting(0.5, "region style only when the visible part of a feature is at least "
                                             "this fraction of its hidden part", "ratio")
    style_gain_min: float = setting(0.5, "smallest Lab contrast gain of the region style", "ratio")
    style_gain_max: float = setting(1.5, "largest Lab contrast gain of the region style", "ratio")


@dataclass(frozen=True)
class TeleaSettings:
    """Settings of the Telea inpainting baseline (:class:`occgui.synthesis.baselines.TeleaInpaint`)."""

    dilate_px: int = setting(2, "dilation of M_alpha's occluder mask before inpainting", "px")
    radius_px: int = setting(5, "neighbourhood radius of cv2.inpaint (INPAINT_TELEA)", "px")


#: The shipped FISN generator (``checkpoints/``); the name lives here, torch-free, so that the
#: registry, the GUI and the evaluation can look for it without importing the network.
FISN_CHECKPOINT_NAME = "fisn_generator.safetensors"


@dataclass(frozen=True)
class FISNSettings:
    """Settings of the FISN backend (:class:`occgui.synthesis.fisn_backend.FISNDeocclusion`)."""

    checkpoint: str = setting("", "FISN generator checkpoint to load (.safetensors, `occgui train fisn`); empty: "
                                  f"the shipped checkpoints/{FISN_CHECKPOINT_NAME}", "path")
    threads: int = setting(0, "torch CPU threads while the generator runs; 0 = automatic: 1 thread when the "
                              "machine is loaded (1-minute load average at least the number of cores minus one: "
                              "oversubscribed OpenMP threads made inference 10x slower, docs/fisn.md), else up to "
                              "4. Ignored on CUDA", "threads")

"""A loaded FISN generator applied to one face: crop + M_alpha + M_gamma -> I_out.

The ``fisn`` backend of the ``synthesize`` stage (:mod:`occgui.synthesis.fisn_backend`) wraps
:meth:`FISNInpainter.synthesize`, whose inputs are those of the stage.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .composite import composite, hole_mask, image_to_network, network_inputs, network_to_image


@dataclass(frozen=True)
class FISNOutput:
    """I_out in crop pixels, the pixels re-synthesized, and the raw network image (R x R)."""

    image: np.ndarray       # SxSx3 uint8
    filled: np.ndarray      # SxS bool
    raw: np.ndarray         # RxRx3 uint8, the generator's whole image before compositing


class FISNInpainter:
    """``FISNInpainter(checkpoint, device)`` or ``FISNInpainter.from_generator(generator)``."""

    def __init__(self, checkpoint=None, device: str = "cpu", *, generator=None):
        if generator is None:
            from .checkpoint import load_generator

            generator, self.header = load_generator(checkpoint, device)
        else:
            self.header = {}
        self.generator = generator
        self.device = next(generator.parameters()).device

    @classmethod
    def from_generator(cls, generator) -> FISNInpainter:
        return cls(generator=generator)

    def synthesize(self, crop_rgb: np.ndarray, alpha: np.ndarray, gamma: np.ndarray) -> FISNOutput:
        import torch

        crop_rgb = np.asarray(crop_rgb, np.uint8)[:, :, :3]
        size = self.generator.config.size
        hole = hole_mask(alpha)
        if not hole.any():              # nothing hidden: the photo itself, without preparing the inputs
            raw = np.clip(network_to_image(image_to_network(crop_rgb, size), size) + 0.5, 0, 255).astype(np.uint8)
            return FISNOutput(crop_rgb.copy(), hole, raw)
        x = network_inputs(crop_rgb, alpha, gamma, size, hole)
        t = lambda a: torch.from_numpy(a)[None].to(self.device)
        was_training = self.generator.training
        self.generator.eval()
        with torch.inference_mode():
            out = self.generator(t(x.masked), t(x.hole), t(x.alpha), t(x.gamma))[0].float().cpu().numpy()
        self.generator.train(was_training)
        generated = network_to_image(out, crop_rgb.shape[0])
        raw = np.clip(network_to_image(out, size) + 0.5, 0, 255).astype(np.uint8)
        return FISNOutput(composite(crop_rgb, generated, x.hole_crop), x.hole_crop, raw)

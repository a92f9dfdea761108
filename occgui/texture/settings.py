"""Typed settings of the ``texture`` backends (torch-free: ``occgui backends`` and the CLI read them
without loading any network). ``--option texture.FIELD=VALUE`` sets one field."""
from __future__ import annotations

from dataclasses import dataclass

from ..settings import setting


@dataclass(frozen=True)
class UVSamplerSettings:
    """Settings of :class:`occgui.texture.uv_sampler.UVTextureBuilder`."""

    gcn_refine: str = setting("auto", "refine the completed texels with the graph convolutional network of "
                                      "checkpoints/texture_gcn.safetensors (paper §3.4, after Lin et al. 2020): "
                                      "auto = for a morphable mesh (--geometry morphable), others unchanged; "
                                      "on = also refuse a mesh without a fit; off = never")
    gcn_checkpoint: str = setting("", "texture GCN weights (.safetensors); empty = checkpoints/texture_gcn.safetensors")

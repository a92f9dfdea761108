"""The texture refinement network of the paper's §3.4 (after Lin et al., CVPR 2020): graph
convolutions on the morphable mesh turn per-vertex evidence into a refined per-vertex albedo,
which corrects the low frequencies of the completed (not observed) texels of the UV texture.

* :class:`TextureGCN` -- graph convolutions only (``pytorch3d.ops.GraphConv`` on the mesh's
  undirected edges): an input convolution, ``blocks`` residual convolutions (``h + relu(conv(h))``)
  and an output convolution (zero-initialised) whose 3 channels are *added* to the unrefined
  per-vertex albedo (:attr:`~occgui.texture.vertex_features.VertexInputs.base`). No dense or image
  convolution layers (the paper: "we do not adopt any fully-connected layers or convolutional
  layers in the refinement network").
* :func:`load_refiner` / :func:`save_refiner` -- fp16 safetensors with the architecture in the
  metadata; a missing or malformed file is a one-line :class:`~occgui.errors.OccguiError`.
* :func:`refine_texture` -- the texture-space step: the refined albedo minus the texture's own
  low-pass albedo at every vertex, interpolated to the texels, is added to the texels that were not
  observed (mirrored, re-synthesised, filled), faded in over :data:`FADE` of the side from their
  border with the observed ones; observed texels -- visible, clean skin -- keep the photo exactly.
  The lit display texture gets the same correction times the irradiance.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from pytorch3d.ops import GraphConv

from ..errors import OccguiError
from .completion import push_pull
from .gcn_checkpoint import FORMAT, check_header, default_checkpoint
from .vertex_features import NUM_FEATURES, VertexInputs

MASK_KEY = "vertex_mask"
HIDDEN = 32
BLOCKS = 6
#: Fraction of the texture side over which the correction fades in inside the completed region,
#: from 0 at the nearest observed texel (observed texels are never changed). Fading out into the
#: observed texels instead was worse outside the occluder on development photos (docs/morphable.md).
FADE = 0.012
LOWPASS = 0.004       # sigma (fraction of the side) of the texture's low-pass sampled at the vertices


class MeshGraphConv(GraphConv):
    """pytorch3d's :class:`~pytorch3d.ops.GraphConv` (``w0 x_i + sum_{j ~ i} a_ij w1 x_j``), which
    also takes the graph as a sparse (V, V) adjacency matrix ``a`` (:func:`adjacency`): with 0/1
    entries exactly pytorch3d's sum (about 3x faster than its CPU gather/scatter), with the
    default 1/degree entries the neighbours' mean. An (E, 2) edge tensor runs pytorch3d's own
    forward (the sum)."""

    def forward(self, verts, edges):
        if edges.layout == torch.strided:
            return super().forward(verts, edges)
        return self.w0(verts) + torch.sparse.mm(edges, self.w1(verts))


def adjacency(edges: np.ndarray, num_vertices: int, copies: int = 1, *, mean: bool = True) -> torch.Tensor:
    """Sparse (V, V) adjacency of undirected ``edges`` (each once), for ``copies`` meshes packed one
    after the other (V = copies x num_vertices). ``mean``: row i holds 1 / degree(i) (the layer
    averages its neighbours, as normalised graph convolutions do -- a sum over the 4-8 neighbours
    of a mesh vertex swamps a vertex's own features); else 0/1 (pytorch3d's sum)."""
    e = torch.as_tensor(np.asarray(edges, np.int64))
    e = torch.cat([e + i * int(num_vertices) for i in range(int(copies))])
    idx = torch.cat([e, e.flip(1)]).T
    v = int(num_vertices) * int(copies)
    values = torch.ones(idx.shape[1])
    if mean and idx.shape[1]:
        degree = torch.bincount(idx[0], minlength=v).clamp(min=1).float()
        values = 1.0 / degree[idx[0]]
    with torch.sparse.check_sparse_tensor_invariants(enable=True):   # checked once here (and no warning)
        return torch.sparse_coo_tensor(idx, values, (v, v)).coalesce()


class TextureGCN(torch.nn.Module):
    """Per-vertex features (V, NUM_FEATURES) + base albedo (V, 3) -> refined albedo (V, 3); the graph
    is an (E, 2) edge list or its :func:`adjacency` (faster)."""

    def __init__(self, in_dim: int = NUM_FEATURES, hidden: int = HIDDEN, blocks: int = BLOCKS):
        super().__init__()
        self.in_dim, self.hidden, self.num_blocks = int(in_dim), int(hidden), int(blocks)
        self.inp = MeshGraphConv(in_dim, hidden)
        self.blocks = torch.nn.ModuleList(MeshGraphConv(hidden, hidden) for _ in range(blocks))
        self.out = MeshGraphConv(hidden, 3, init="zero")
        #: (V,) bool: the vertices whose output was trained (the model's face region; None: all).
        #: Not a parameter: saved beside the weights as ``vertex_mask`` (:func:`save_refiner`).
        self.vertex_mask: np.ndarray | None = None
        with torch.no_grad():          # GraphConv's "zero" init leaves nn.Linear's random biases
            self.out.w0.bias.zero_()
            self.out.w1.bias.zero_()
        gen = torch.Generator().manual_seed(0)
        for conv in [self.inp, *self.blocks]:
            # GraphConv's default N(0, 0.01) shrinks the signal ~10x per layer; He's scale by fan-in
            # (the vertex and its neighbours' mean) instead
            std = (1.0 / conv.input_dim) ** 0.5
            for lin in (conv.w0, conv.w1):
                with torch.no_grad():
                    lin.weight.normal_(0.0, std, generator=gen)

    def forward(self, features: torch.Tensor, edges: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.inp(features, edges))
        for conv in self.blocks:
            h = h + torch.relu(conv(h, edges))
        return base + self.out(h, edges)


def parameter_count(net: torch.nn.Module) -> int:
    return int(sum(p.numel() for p in net.parameters()))


def save_refiner(net: TextureGCN, path, **meta) -> Path:
    """fp16 safetensors with the architecture (and ``meta``, e.g. training facts) in the metadata
    and ``net.vertex_mask`` (when set) as the uint8 tensor ``vertex_mask``."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to(torch.float16).contiguous() for k, v in net.state_dict().items()}
    if net.vertex_mask is not None:
        tensors[MASK_KEY] = torch.from_numpy(np.asarray(net.vertex_mask, np.uint8))
    info = {"format": FORMAT, "in_dim": str(net.in_dim), "hidden": str(net.hidden), "blocks": str(net.num_blocks)}
    info.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in meta.items()})
    save_file(tensors, str(path), metadata=info)
    return path


def load_refiner(path=None) -> tuple[TextureGCN, str]:
    """(the network in eval mode, a short digest of the file); one-line errors for a bad file."""
    from safetensors import safe_open

    path = Path(path) if path else default_checkpoint()
    if not path.is_file():
        raise OccguiError(f"texture GCN weights not found: {path} (train them with `occgui train texture-gcn`)")
    meta = check_header(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:   # safetensors raises its own error types for a corrupt file
        raise OccguiError(f"{path}: unreadable texture GCN weights ({type(e).__name__})") from None
    try:
        net = TextureGCN(int(meta["in_dim"]), int(meta["hidden"]), int(meta["blocks"]))
    except (KeyError, ValueError):
        raise OccguiError(f"{path}: the texture GCN metadata lacks a valid in_dim / hidden / blocks") from None
    if net.in_dim != NUM_FEATURES:
        raise OccguiError(f"{path} takes {net.in_dim} input features, this version makes {NUM_FEATURES}")
    mask = tensors.pop(MASK_KEY, None)
    if mask is not None:
        net.vertex_mask = mask.numpy().astype(bool).reshape(-1)
    try:
        net.load_state_dict({k: v.float() for k, v in tensors.items()}, strict=True)
    except RuntimeError as e:
        raise OccguiError(f"{path}: the texture GCN weights do not match their architecture "
                          f"({str(e).splitlines()[0]})") from None
    if not all(torch.isfinite(p).all() for p in net.parameters()):
        raise OccguiError(f"{path}: the texture GCN weights are not finite")
    net.eval()
    return net, hashlib.sha1(path.read_bytes()).hexdigest()[:8]


def trained_vertices(net: TextureGCN, inputs: VertexInputs) -> np.ndarray:
    """(N,) bool: where the network's output means something -- the vertices it was trained on
    (``net.vertex_mask``) that the photo shows (the training targets were visible vertices only);
    elsewhere the texture keeps its own completion. One-line error for another topology."""
    n = len(inputs.features)
    if net.vertex_mask is None:
        return inputs.visible.copy()
    if len(net.vertex_mask) != n:
        raise OccguiError(f"the texture GCN was trained on a {len(net.vertex_mask)}-vertex mesh, this mesh has {n} "
                          f"vertices (the weights belong to the shipped morphable model)")
    return net.vertex_mask & inputs.visible


def run_refiner(net: TextureGCN, inputs: VertexInputs, edges: np.ndarray) -> np.ndarray:
    """(N, 3) float32 refined per-vertex albedo (albedo units: colour / 255 / irradiance)."""
    with torch.no_grad():
        out = net(torch.from_numpy(np.ascontiguousarray(inputs.features, np.float32)),
                  adjacency(edges, len(inputs.features)),
                  torch.from_numpy(np.ascontiguousarray(inputs.base, np.float32)))
    return out.numpy().astype(np.float32)


@dataclass(frozen=True)
class Refined:
    """The texture after refinement (float, 0-255 units)."""

    colour: np.ndarray      # (T, T, 3) lit
    albedo: np.ndarray      # (T, T, 3) de-lit
    weight: np.ndarray      # (T, T) how much of the correction each texel received (0 = untouched)


def refine_texture(colour: np.ndarray, albedo: np.ndarray, shading_field: np.ndarray, observed: np.ndarray,
                   inside: np.ndarray, interp, rows: np.ndarray, cols: np.ndarray, uv: np.ndarray,
                   refined: np.ndarray, trained: np.ndarray | None = None) -> Refined:
    """Apply the per-vertex ``refined`` albedo (N, 3, albedo units) to a texture (module docstring).

    ``colour`` / ``albedo``: (T, T, 3) float 0-255 lit and de-lit textures; ``shading_field``: the
    (T, T, 3) irradiance the albedo was divided by; ``observed``: (T, T) bool, the texels that
    show the photo (the others inside the chart are corrected); ``inside``, ``interp``, ``rows``,
    ``cols``: the UV raster (``uv_sampler.UVRaster``); ``uv``: the mesh's (N, 2) texture
    coordinates; ``trained``: (N,) bool, the vertices whose output counts
    (:func:`trained_vertices`; the others contribute no correction)."""
    t = colour.shape[0]
    low = cv2.GaussianBlur(np.ascontiguousarray(albedo, np.float32), (0, 0), max(1.0, LOWPASS * t))
    px = np.asarray(uv[:, 0], np.float32) * t - 0.5
    py = (1.0 - np.asarray(uv[:, 1], np.float32)) * t - 0.5
    at_vertex = cv2.remap(low, px[None], py[None], interpolation=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)[0]
    delta = refined * 255.0 - at_vertex                                   # (N, 3), 0-255 albedo units
    if trained is not None:
        delta = np.where(np.asarray(trained, bool)[:, None], delta, 0.0).astype(np.float32)
    field = np.zeros((t, t, 3), np.float32)
    field[rows, cols] = np.asarray(interp @ delta, np.float32)
    observed = observed & inside
    corrected = inside & ~observed
    fade = max(1.0, FADE * t)
    if not corrected.any():
        weight = np.zeros((t, t), np.float32)
    elif observed.any():
        d = cv2.distanceTransform((~observed).astype(np.uint8), cv2.DIST_L2, 3)
        weight = np.clip(d / fade, 0.0, 1.0).astype(np.float32) * corrected
    else:
        weight = corrected.astype(np.float32)
    # extended beyond the chart as the colours are (push-pull), so texture filtering at the chart's
    # edges sees no step
    corr = push_pull(field * weight[:, :, None], inside.astype(np.float32))
    return Refined(colour=colour + corr * shading_field, albedo=albedo + corr, weight=weight)

"""Export of the trained networks to ONNX: the one file each network ships as.

A shipped network is one ``.onnx`` file (``checkpoints/parsing_unet.onnx``,
``checkpoints/landmark_refiner.onnx``) holding the graph, the weights and, in ``metadata_props``
under :data:`occgui.parsing.checkpoint.HEADER_KEY`, a JSON header (format, version, what the
inference code needs besides the graph, and the training record). CPU inference runs it with
onnxruntime (no torch); the torch code (CUDA inference, fine-tuning) reads its initialisers back
into the torch module's ``state_dict`` by name (:func:`occgui.parsing.checkpoint.read_initialisers`).

* parser: ``image`` (N,S,S,3) uint8 RGB at the network's input size -> ``logits`` (N,C,S,S)
  float32; the graph holds the input normalisation and the U-Net with its BatchNorm layers
  (running statistics included, so a fine-tuning run starts from exactly the shipped network;
  onnxruntime folds them into the convolutions when it loads the graph). Initialiser
  ``unet.<key>`` is the U-Net's ``state_dict()[<key>]``.
* refiner: ``features`` (N, INPUT_DIM) float32 -> ``offsets`` (N,478,2) float32 canonical offsets,
  the mean of the MLP's answers for the face and for its mirror image (the mirror map is the
  int64 initialiser ``mirror``). Initialisers ``layers.<i>.weight`` (out, in) and
  ``layers.<i>.bias``; the mean face (``mean_xy``) is in the header, as the frame the inputs are
  expressed in.

Weights are stored as fp16 (each followed by a ``Cast`` to float32, which onnxruntime folds at
load time), as the safetensors checkpoints did: half the size in git, the same network.

The legacy exporter (``torch.onnx.export(dynamo=False)``) is used: it needs no onnxscript and
keeps the parameters' names as initialiser names.

Command line (``python -m occgui.training.onnx_export``, see :func:`main`): re-export a shipped
ONNX file or convert a pre-ONNX training run's ``.safetensors`` checkpoint.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .. import labels as L
from ..errors import CheckpointError, OccguiError
from ..landmarks import refiner as R
from ..parsing import checkpoint as C
from ..parsing.unet import UNet, to_input

OPSET = 17
#: Suffix of the float32 value a ``Cast`` makes of an fp16 initialiser.
CAST_SUFFIX = "::float"


# ----------------------------------------------------------------------------- graphs
class ParserGraph(nn.Module):
    """The exported parser: uint8 NHWC RGB -> U-Net logits (NCHW)."""

    def __init__(self, unet: UNet):
        super().__init__()
        self.unet = unet

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.unet(to_input(image))


class RefinerGraph(nn.Module):
    """The exported landmark refiner: MLP (GELU-tanh between layers) with the mirror average.

    ``layers`` are ``(W (in,out), b)`` arrays as :func:`occgui.training.train_refiner.train`
    returns them; the module itself is the torch reference of the shipped graph."""

    def __init__(self, layers, mirror: np.ndarray):
        super().__init__()
        self.layers = nn.ModuleList()
        for w, b in layers:
            lin = nn.Linear(w.shape[0], w.shape[1])
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(np.array(w, np.float32).T.copy()))
                lin.bias.copy_(torch.from_numpy(np.array(b, np.float32)))
            self.layers.append(lin)
        self.register_buffer("mirror", torch.from_numpy(np.array(mirror, np.int64)))
        n = R.N_POINTS
        # the mirrored input is a signed permutation of the input (refiner.flip_input)
        m = np.asarray(mirror, np.int64)
        can = (2 * m[:, None] + np.arange(2)).ravel()
        grid = (np.arange(R.GRID * R.GRID).reshape(R.GRID, R.GRID)[:, ::-1]).ravel()
        perm = np.concatenate([can, 2 * n + m, 3 * n + grid])
        sign = np.ones(R.INPUT_DIM, np.float32)
        sign[0:2 * n:2] = -1.0
        self.register_buffer("flip_perm", torch.from_numpy(perm), persistent=False)
        self.register_buffer("flip_sign", torch.from_numpy(sign), persistent=False)

    def mlp(self, x: torch.Tensor) -> torch.Tensor:
        for i, lin in enumerate(self.layers):
            x = lin(x)
            if i < len(self.layers) - 1:
                x = F.gelu(x, approximate="tanh")
        return x.view(-1, R.N_POINTS, 2)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        d = self.mlp(features)
        mirrored = self.mlp(features[:, self.flip_perm] * self.flip_sign)
        sign = torch.tensor([-1.0, 1.0], dtype=d.dtype, device=d.device)
        return 0.5 * (d + mirrored[:, self.mirror] * sign)


# ----------------------------------------------------------------------------- export
def _export(module: nn.Module, example: torch.Tensor, input_name: str, output_name: str):
    """Trace ``module`` (eval mode, BatchNorm kept, one initialiser per parameter, named as in its
    ``state_dict``) -> ``onnx.ModelProto`` with a dynamic batch axis."""
    import io

    import onnx

    buf = io.BytesIO()
    module = module.eval().cpu()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")              # the legacy exporter's deprecation notice
        torch.onnx.export(module, (example,), buf, dynamo=False, opset_version=OPSET,
                          input_names=[input_name], output_names=[output_name],
                          dynamic_axes={input_name: {0: "batch"}, output_name: {0: "batch"}},
                          training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=True,
                          keep_initializers_as_inputs=True)
    model = onnx.load_from_string(buf.getvalue())
    # initialisers as graph inputs switch off the exporter's merging of equal-valued parameters (each
    # parameter keeps its own name); as inputs they would stop onnxruntime from folding them: drop them there
    inits = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    del model.graph.input[:]
    model.graph.input.extend(inputs)
    return model


def _store_half(model, names) -> None:
    """Store the float32 initialisers ``names`` as fp16, each read through a ``Cast`` to float32."""
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    renamed, casts = {}, []
    for init in graph.initializer:
        if init.name in names and init.data_type == TensorProto.FLOAT:
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), init.name))
            renamed[init.name] = init.name + CAST_SUFFIX
            casts.append(helper.make_node("Cast", [init.name], [renamed[init.name]], to=TensorProto.FLOAT))
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in renamed:
                node.input[i] = renamed[name]
    nodes = casts + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)


def _save(model, path, header: dict) -> None:
    """Write ``model`` with ``header`` in its metadata, checked, atomically (tmp + rename)."""
    import onnx
    from onnx import helper

    helper.set_model_props(model, {C.HEADER_KEY: json.dumps(header)})
    model.producer_name, model.producer_version = "occgui", _version()
    onnx.checker.check_model(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(model.SerializeToString())
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def _version() -> str:
    from .. import __version__

    return str(__version__)


def export_parser(model: UNet, path, *, input_size: int, meta: dict, half: bool = True) -> None:
    """Write the shipping ONNX file of the U-Net ``model`` at ``input_size`` px (fp16 weights)."""
    if input_size % 16:
        raise OccguiError("the parser's input size must be a multiple of 16")
    model = model.float().cpu().eval()
    proto = _export(ParserGraph(model), torch.zeros(1, input_size, input_size, 3, dtype=torch.uint8), "image", "logits")
    keys = {"unet." + k for k, v in model.state_dict().items() if v.is_floating_point()}
    missing = keys - {i.name for i in proto.graph.initializer}
    if missing:                                      # torch.onnx renamed or folded a parameter
        raise CheckpointError(f"the exported parser lacks {len(missing)} parameters by name, e.g. {min(missing)}")
    if half:
        _store_half(proto, keys)
    header = {"format": C.FORMAT, "format_version": C.FORMAT_VERSION, "widths": [int(w) for w in model.widths],
              "num_classes": L.NUM_CLASSES, "labels": list(L.NAMES), "input_size": int(input_size),
              "input": "image", "output": "logits", "meta": meta}
    _save(proto, path, header)


def update_parser_header(src, dst, updates: dict) -> None:
    """Copy the parser checkpoint ``src`` to ``dst`` with ``updates`` merged into its JSON header
    (e.g. the calibrated ``occluder_threshold``); the graph and the weights are copied unchanged."""
    import onnx

    from ..parsing.checkpoint import check_parser_header, read_header_file

    header = dict(check_parser_header(read_header_file(src, "parsing"), src))
    header.update(updates)
    model = onnx.load(str(src))
    del model.metadata_props[:]
    _save(model, dst, header)


def export_refiner(path, mean_xy: np.ndarray, mirror: np.ndarray, layers, meta: dict, *, half: bool = True) -> None:
    """Write the shipping ONNX file of the landmark refiner (fp16 weight matrices, float32 biases)."""
    graph = RefinerGraph(layers, mirror)
    proto = _export(graph, torch.zeros(2, R.INPUT_DIM), "features", "offsets")
    weights = {f"layers.{i}.weight" for i in range(len(graph.layers))}
    names = {i.name for i in proto.graph.initializer}
    expected = weights | {f"layers.{i}.bias" for i in range(len(graph.layers))} | {"mirror"}
    if expected - names:
        raise CheckpointError(f"the exported refiner lacks {sorted(expected - names)}")
    if half:
        _store_half(proto, weights)
    header = {"format": R.FORMAT, "format_version": R.FORMAT_VERSION, "input_dim": R.INPUT_DIM,
              "n_points": R.N_POINTS, "grid": R.GRID, "input": "features", "output": "offsets",
              "mean_xy": np.asarray(mean_xy, np.float32).astype(np.float64).tolist(), "meta": meta}
    _save(proto, path, header)


# ----------------------------------------------------------------------------- reading back into torch
def refiner_from_onnx(path) -> tuple[RefinerGraph, np.ndarray, dict]:
    """The shipped refiner as its torch module -> ``(module in eval mode, mean_xy (478,2), header)``."""
    from ..landmarks.refiner import read_header

    header = read_header(path)
    arrays = C.read_initialisers(path)
    n = 0
    layers = []
    while f"layers.{n}.weight" in arrays:
        layers.append((arrays[f"layers.{n}.weight"].T, arrays[f"layers.{n}.bias"]))
        n += 1
    if not layers or "mirror" not in arrays:
        raise CheckpointError(f"{path} does not hold the refiner's layers")
    module = RefinerGraph(layers, arrays["mirror"]).eval()
    C.load_state_dict_checked(module, {k: v for k, v in arrays.items() if k.startswith("layers.") or k == "mirror"},
                              path)
    return module, np.asarray(header["mean_xy"], np.float64), header


# ----------------------------------------------------------------------------- pre-ONNX checkpoints
def _read_safetensors(path) -> tuple[dict[str, np.ndarray], dict]:
    """Arrays and string metadata of a pre-ONNX ``.safetensors`` checkpoint (float32 arrays)."""
    try:
        from safetensors import safe_open
    except ImportError:
        raise OccguiError("converting a .safetensors checkpoint needs the safetensors package") from None
    with safe_open(str(path), framework="numpy") as f:
        meta = dict(f.metadata() or {})
        arrays = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (a safe_open handle, not a dict)
    return {k: (v.astype(np.float32) if np.issubdtype(v.dtype, np.floating) else v) for k, v in arrays.items()}, meta


def convert_parser(src, dst) -> None:
    """Re-export a parser checkpoint (``.onnx``, or a format-2 ``.safetensors`` of a pre-ONNX run) as ONNX."""
    src = Path(src)
    if src.suffix == ".safetensors":
        arrays, raw = _read_safetensors(src)
        header = json.loads(raw.get("header", "{}"))
        if header.get("format") != C.FORMAT or header.get("labels") != list(L.NAMES):
            raise CheckpointError(f"{src} is not an occgui parsing checkpoint for this label set")
        model = UNet(L.NUM_CLASSES, header["widths"])
        C.load_state_dict_checked(model, arrays, src)
    else:
        from ..parsing.unet_parser import load_checkpoint

        model, header = load_checkpoint(src)
    export_parser(model, dst, input_size=int(header["input_size"]), meta=header.get("meta", {}))


def convert_refiner(src, dst) -> None:
    """Re-export a refiner checkpoint (``.onnx``, or a pre-ONNX ``.safetensors``) as ONNX."""
    src = Path(src)
    if src.suffix == ".safetensors":
        t, raw = _read_safetensors(src)
        layers, n = [], 0
        while f"w{n}" in t:
            layers.append((t[f"w{n}"], t[f"b{n}"]))
            n += 1
        if not layers or "mean_xy" not in t or "mirror" not in t:
            raise CheckpointError(f"{src} is not a landmark refiner checkpoint")
        export_refiner(dst, t["mean_xy"], t["mirror"], layers, json.loads(raw.get("occgui", "{}")))
        return
    module, mean_xy, header = refiner_from_onnx(src)
    layers = [(lin.weight.detach().numpy().T, lin.bias.detach().numpy()) for lin in module.layers]
    export_refiner(dst, mean_xy, module.mirror.numpy(), layers, header.get("meta", {}))


def export(network: str, source: Path, output: Path | None = None) -> Path:
    """(Re-)export ``network`` ("parser" | "refiner") from ``source`` as the ONNX file inference runs
    (default: the shipped file in checkpoints/); :class:`OccguiError` on a bad source."""
    from ..resources import checkpoint_path

    default = C.CHECKPOINT_NAME if network == "parser" else R.CHECKPOINT
    out = Path(output) if output is not None else checkpoint_path(default)
    (convert_parser if network == "parser" else convert_refiner)(Path(source), out)
    return out


def main(argv=None) -> int:
    """``python -m occgui.training.onnx_export {parser,refiner} SRC [-o DST]`` (also
    ``occgui train export-onnx``)."""
    from .export_command import add_arguments, run

    p = argparse.ArgumentParser(prog="occgui train export-onnx", description="(re-)export a network as ONNX")
    add_arguments(p)
    try:
        return run(p.parse_args(argv))
    except OccguiError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

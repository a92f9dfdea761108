"""Reader of dlib's binary DNN serialisation (``dlib::serialize(net, out)``), numpy only.

Written from the format's definition in dlib's sources (``dlib/serialize.h``,
``dlib/float_details.h``, ``dlib/dnn/core.h``, ``dlib/dnn/layers.h``, ``dlib/dnn/loss.h``,
``dlib/dnn/input.h``, ``dlib/dnn/tensor.h``):

* integers: one control byte (low 4 bits: number of value bytes; bit 7: negative), then the
  magnitude in that many little-endian bytes (zero is ``01 00``);
* floating point numbers (scalars): ``float_details`` -- an integer mantissa then an integer
  exponent, value ``mantissa * 2**exponent`` (exponents 32000/32001/32002 mean +inf/-inf/NaN);
* strings: an integer length then the bytes; ``bool``: the character ``'1'`` or ``'0'``;
* ``resizable_tensor`` version 2: integer version, ``num_samples, k, nr, nc``, then the floats as
  4-byte little-endian IEEE values (version 1 wrote them one by one as ``float_details``);
* ``alias_tensor``: version 1 and its ``num_samples, k, nr, nc`` (a view into a layer's params);
* a network: ``add_loss_layer`` writes its version, the loss details, then its sub-network; every
  ``add_layer`` writes its version and its *sub-network first*, then its layer details and state
  (three bools and the cached tensors); ``add_tag_layer``/``add_skip_layer`` write a version (1)
  and their sub-network only. The file is therefore a run of version numbers from the top of the
  network down to the input layer, then the layers' details from the bottom up.

The file does not name the graph's tags and skips (a ``tagN`` and a ``skipN`` both serialise as
``version 1`` and nothing else): the topology is the C++ type the network was declared with, as
it is in dlib. :func:`read_dlib_network` returns the flat bottom-up sequence of layers; the
caller checks it against the network it expects (see :mod:`occgui.identity.network`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import CheckpointError


class DlibFormatError(CheckpointError):
    """The file is not a dlib DNN of the expected kind, or it is truncated or corrupt."""


# ----------------------------------------------------------------------------- layer records

@dataclass(frozen=True)
class InputRGBImage:
    """``input_rgb_image_sized<NR,NC>`` (or ``input_rgb_image``): per-channel means subtracted,
    then divided by 256 (dlib's ``to_tensor``)."""
    mean_rgb: tuple[float, float, float]
    rows: int  # 0 when the input is not sized
    cols: int


@dataclass(frozen=True)
class Conv:
    """``con_``: cross-correlation; ``weight`` (out, in, kh, kw) and ``bias`` (out,)."""
    weight: np.ndarray
    bias: np.ndarray | None
    stride: tuple[int, int]   # (y, x)
    padding: tuple[int, int]  # (y, x)


@dataclass(frozen=True)
class Affine:
    """``affine_`` (a batch-norm folded into a per-channel scale and shift)."""
    gamma: np.ndarray
    beta: np.ndarray
    conv_mode: bool  # per channel (CONV_MODE) rather than per element (FC_MODE)


@dataclass(frozen=True)
class Relu:
    pass


@dataclass(frozen=True)
class AddPrev:
    """``add_prev_``: element-wise sum with a tagged layer's output (tag id not stored)."""


@dataclass(frozen=True)
class Pool:
    """``max_pool_`` / ``avg_pool_``; a window of 0 means the whole input (``*_pool_everything``)."""
    kind: str  # "max" | "avg"
    window: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]


@dataclass(frozen=True)
class FullyConnected:
    """``fc_``: ``out = flatten(x) @ weight (+ bias)``; ``weight`` is (num_inputs, num_outputs)."""
    weight: np.ndarray
    bias: np.ndarray | None


@dataclass(frozen=True)
class TagOrSkip:
    """An ``add_tag_layer`` or ``add_skip_layer`` (indistinguishable in the file)."""


Layer = Conv | Affine | Relu | AddPrev | Pool | FullyConnected | TagOrSkip


@dataclass(frozen=True)
class LossMetric:
    """``loss_metric_`` details."""
    margin: float
    distance_threshold: float


@dataclass(frozen=True)
class DlibNetwork:
    """A parsed file: the loss, the input layer and the layers from the bottom (next to the
    input) to the top (under the loss)."""
    loss: LossMetric
    input: InputRGBImage
    layers: tuple[Layer, ...]

    def kinds(self) -> list[str]:
        """A short name per layer, bottom-up (``con``, ``affine``, ``relu``, ``add_prev``,
        ``max_pool``, ``avg_pool``, ``fc``, ``tag/skip``)."""
        out = []
        for layer in self.layers:
            if isinstance(layer, Pool):
                out.append(f"{layer.kind}_pool")
            else:
                out.append({Conv: "con", Affine: "affine", Relu: "relu", AddPrev: "add_prev",
                            FullyConnected: "fc", TagOrSkip: "tag/skip"}[type(layer)])
        return out


# ----------------------------------------------------------------------------- byte stream

_FLOAT_INF, _FLOAT_NINF, _FLOAT_NAN = 32000, 32001, 32002


class _Reader:
    def __init__(self, data: bytes, name: str):
        self.buf = memoryview(data)
        self.pos = 0
        self.name = name

    def fail(self, what: str) -> DlibFormatError:
        return DlibFormatError(f"{self.name}: {what} (at byte {self.pos} of {len(self.buf)})")

    def _take(self, n: int, what: str) -> memoryview:
        if self.pos + n > len(self.buf):
            raise DlibFormatError(f"{self.name}: the file is truncated (it ends inside {what}, "
                                  f"byte {len(self.buf)}; {self.pos + n - len(self.buf)} more bytes were expected)")
        out = self.buf[self.pos:self.pos + n]
        self.pos += n
        return out

    def int(self, what: str = "an integer") -> int:
        ctrl = self._take(1, what)[0]
        size = ctrl & 0x0F
        if size > 8 or ctrl & 0x70:
            self.pos -= 1
            raise self.fail(f"not a dlib integer where {what} was expected (control byte 0x{ctrl:02x})")
        value = int.from_bytes(self._take(size, what), "little")
        return -value if ctrl & 0x80 else value

    def float(self, what: str = "a number") -> float:
        mantissa = self.int(what)
        exponent = self.int(what)
        if exponent == _FLOAT_INF:
            return math.inf
        if exponent == _FLOAT_NINF:
            return -math.inf
        if exponent == _FLOAT_NAN:
            return math.nan
        return math.ldexp(mantissa, exponent)

    def bool(self, what: str = "a flag") -> bool:
        ch = self._take(1, what)[0]
        if ch not in (0x30, 0x31):
            self.pos -= 1
            raise self.fail(f"not a dlib bool where {what} was expected (byte 0x{ch:02x})")
        return ch == 0x31

    def string(self, what: str = "a name", max_len: int = 256) -> str:
        n = self.int(what)
        if not 0 <= n <= max_len:
            raise self.fail(f"not a dlib string where {what} was expected (length {n})")
        raw = bytes(self._take(n, what))
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            raise self.fail(f"not a dlib string where {what} was expected (non-ASCII bytes)") from None

    def peek_string(self) -> str | None:
        """The string at the current position when there plausibly is one, else None; the
        position is not moved."""
        pos = self.pos
        try:
            s = self.string()
        except DlibFormatError:
            s = None
        self.pos = pos
        if s is None or len(s) < 3 or not all(c.isalnum() or c == "_" for c in s):
            return None
        return s

    def tensor(self, what: str) -> np.ndarray:
        """A ``resizable_tensor``, returned as a float32 array of shape (n, k, nr, nc)."""
        version = self.int(what)
        if version not in (1, 2):
            raise self.fail(f"unexpected tensor version {version} in {what}")
        dims = [self.int(what) for _ in range(4)]
        if version == 1:
            # version 1 stored (num_samples, nr, nc, k) and each float as float_details
            n, nr, nc, k = dims
            if min(dims) < 0 or n * nr * nc * k > len(self.buf):
                raise self.fail(f"implausible tensor size {dims} in {what}")
            return np.array([self.float(what) for _ in range(n * k * nr * nc)],
                            dtype=np.float32).reshape(n, k, nr, nc)
        n, k, nr, nc = dims
        count = n * k * nr * nc
        if min(dims) < 0 or count * 4 > len(self.buf):
            raise self.fail(f"implausible tensor size {dims} in {what}")
        raw = self._take(4 * count, what)
        return np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(n, k, nr, nc)

    def alias(self, what: str) -> tuple[int, int, int, int]:
        version = self.int(what)
        if version != 1:
            raise self.fail(f"unexpected alias_tensor version {version} in {what}")
        return tuple(self.int(what) for _ in range(4))  # type: ignore[return-value]


# ----------------------------------------------------------------------------- layers

def _read_input(r: _Reader) -> InputRGBImage:
    kind = r.string("the input layer's name")
    if kind not in ("input_rgb_image_sized", "input_rgb_image"):
        raise r.fail(f"the input layer is {kind!r}, not an RGB image input")
    means = (r.float("the red mean"), r.float("the green mean"), r.float("the blue mean"))
    rows = cols = 0
    if kind == "input_rgb_image_sized":
        rows, cols = r.int("the input rows"), r.int("the input columns")
    return InputRGBImage(mean_rgb=means, rows=rows, cols=cols)


def _read_conv(r: _Reader) -> Conv:
    params = r.tensor("a con_ layer's parameters").reshape(-1)
    num_filters = r.int()
    nr, nc = r.int(), r.int()
    stride = (r.int(), r.int())
    padding = (r.int(), r.int())
    filt = r.alias("a con_ layer's filters")
    bias = r.alias("a con_ layer's biases")
    for _ in range(4):  # learning-rate and weight-decay multipliers
        r.float()
    n_f = int(np.prod(filt))
    n_b = int(np.prod(bias))
    if filt[0] != num_filters or filt[2:] != (nr, nc) or n_f + n_b != params.size or n_b not in (0, num_filters):
        raise r.fail(f"a con_ layer's parameter block does not match its shape (filters {filt}, params {params.size})")
    weight = params[:n_f].reshape(filt)
    return Conv(weight=weight, bias=params[n_f:].copy() if n_b else None, stride=stride, padding=padding)


def _read_affine(r: _Reader) -> Affine:
    params = r.tensor("an affine_ layer's parameters").reshape(-1)
    g = r.alias("an affine_ layer's gamma")
    b = r.alias("an affine_ layer's beta")
    mode = r.int("an affine_ layer's mode")
    n_g, n_b = int(np.prod(g)), int(np.prod(b))
    if n_g + n_b != params.size or n_g != n_b:
        raise r.fail("an affine_ layer's parameter block does not match its shape")
    return Affine(gamma=params[:n_g].copy(), beta=params[n_g:].copy(), conv_mode=(mode == 0))


def _read_bn_as_affine(r: _Reader, conv_mode: bool) -> Affine:
    """``bn_con2``/``bn_fc2`` folded into an affine layer exactly as dlib's ``affine_(bn_)``."""
    params = r.tensor("a bn_ layer's parameters").reshape(-1)
    g = r.alias("a bn_ layer's gamma")
    r.alias("a bn_ layer's beta")
    for name in ("means", "invstds"):
        r.tensor(f"a bn_ layer's {name}")
    running_means = r.tensor("a bn_ layer's running means").reshape(-1)
    running_vars = r.tensor("a bn_ layer's running variances").reshape(-1)
    r.int(), r.int()  # num_updates, running_stats_window_size
    for _ in range(4):
        r.float()
    eps = r.float("a bn_ layer's eps")
    n_g = int(np.prod(g))
    gamma = params[:n_g] / np.sqrt(running_vars + np.float32(eps))
    beta = params[n_g:] - gamma * running_means
    return Affine(gamma=gamma.astype(np.float32), beta=beta.astype(np.float32), conv_mode=conv_mode)


def _read_pool(r: _Reader, kind: str) -> Pool:
    window = (r.int(), r.int())
    stride = (r.int(), r.int())
    padding = (r.int(), r.int())
    return Pool(kind=kind, window=window, stride=stride, padding=padding)


def _read_fc(r: _Reader) -> FullyConnected:
    num_outputs = r.int()
    num_inputs = r.int()
    params = r.tensor("an fc_ layer's parameters").reshape(-1)
    w = r.alias("an fc_ layer's weights")
    r.alias("an fc_ layer's biases")  # read past the biases' shape; their count follows from the weights'
    bias_mode = r.int()
    for _ in range(4):
        r.float()
    n_w = int(np.prod(w))
    if w[:2] != (num_inputs, num_outputs) or n_w > params.size:
        raise r.fail("an fc_ layer's parameter block does not match its shape")
    weight = params[:n_w].reshape(num_inputs, num_outputs)
    bias = params[n_w:n_w + num_outputs].copy() if bias_mode == 0 else None
    return FullyConnected(weight=weight, bias=bias)


def _read_layer_details(r: _Reader) -> Layer:
    start = r.pos
    kind = r.string("a layer's name")
    if kind == "con_4":
        return _read_conv(r)
    if kind == "affine_":
        return _read_affine(r)
    if kind in ("bn_con2", "bn_fc2"):
        return _read_bn_as_affine(r, conv_mode=(kind == "bn_con2"))
    if kind == "relu_":
        return Relu()
    if kind == "add_prev_":
        return AddPrev()
    if kind == "max_pool_2":
        return _read_pool(r, "max")
    if kind == "avg_pool_2":
        return _read_pool(r, "avg")
    if kind == "fc_2":
        return _read_fc(r)
    r.pos = start
    raise r.fail(f"unsupported dlib layer {kind!r}")


def _read_layer_state(r: _Reader, version: int, input_adjacent: bool) -> None:
    """The bookkeeping an ``add_layer`` writes after its details (flags and cached tensors)."""
    for _ in range(3):
        r.bool("a layer's flags")
    names = ["x_grad", "cached_output"]
    if input_adjacent:
        names.append("grad_final")
    elif version >= 2:
        names.append("params_grad")
    for n in names:
        r.tensor(f"a layer's {n}")
    if input_adjacent and version >= 3:
        r.int("the sample expansion factor")


# ----------------------------------------------------------------------------- file

def parse_dlib_network(data: bytes, name: str = "dlib network") -> DlibNetwork:
    """Parse the bytes of a dlib DNN file whose loss is ``loss_metric`` (see the module doc)."""
    r = _Reader(data, name)
    if len(data) < 16:
        raise DlibFormatError(f"{name}: the file is truncated or empty ({len(data)} bytes)")
    try:
        version = r.int()
    except DlibFormatError:
        raise DlibFormatError(f"{name}: not a dlib network file (it does not start with a dlib integer)") from None
    loss_name = r.peek_string()
    if version != 1 or loss_name is None or not loss_name.startswith("loss_"):
        raise DlibFormatError(f"{name}: not a dlib DNN file (no loss layer at its start; another dlib model "
                              "such as a shape predictor, or another file)")
    loss_name = r.string()
    if loss_name != "loss_metric_2":
        raise DlibFormatError(f"{name}: a dlib network with loss {loss_name!r}, not the metric-learning "
                              "(loss_metric) face-recognition network")
    loss = LossMetric(margin=r.float("the loss margin"), distance_threshold=r.float("the loss threshold"))

    # versions from the top of the network down: 1 = tag/skip, 2 = add_layer; the layer on the input
    # is recognised by the input layer's name following its version.
    chain: list[int] = []
    while True:
        v = r.int("a layer's version")
        if r.peek_string() is not None:
            input_version = v
            break
        if v not in (1, 2):
            raise r.fail(f"unexpected layer version {v} in the network's layer chain")
        chain.append(v)
        if len(chain) > 100_000:
            raise r.fail("no input layer found")
    if input_version not in (2, 3):
        raise r.fail(f"unexpected version {input_version} of the layer on the input")
    inp = _read_input(r)
    layers: list[Layer] = [_read_layer_details(r)]
    _read_layer_state(r, input_version, input_adjacent=True)
    for v in reversed(chain):
        if v == 1:
            layers.append(TagOrSkip())
            continue
        layers.append(_read_layer_details(r))
        _read_layer_state(r, v, input_adjacent=False)
    if r.pos != len(data):
        raise r.fail(f"{len(data) - r.pos} unexpected bytes after the network")
    return DlibNetwork(loss=loss, input=inp, layers=tuple(layers))


def read_dlib_network(path: str | Path) -> DlibNetwork:
    """Read a dlib ``loss_metric`` network file (e.g. ``dlib_face_recognition_resnet_model_v1.dat``)."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise DlibFormatError(f"cannot read the dlib network file {p}: {e.strerror or e}") from None
    return parse_dlib_network(data, name=p.name)

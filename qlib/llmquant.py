"""Quantizing a real language model: chapter 10's methods on SmolLM2-135M.

Every method plugs into :mod:`qlib.llm` in one of three places: a new
model whose linear weights are quantized (:func:`qlib.llm.transform_weights`),
a ``linear=`` hook that quantizes each linear layer's input on the fly, or a
:class:`qlib.llm.KVCache` subclass.  The quantizers themselves are the
course's own: :func:`qlib.ptq.quantize_weight` (groups, via
:mod:`qlib.linear`), :mod:`qlib.mx` and :mod:`qlib.floats`.

* **Weights, round to nearest**: :func:`rtn_model` and
  :func:`rtn_bits_per_weight` (every fp16 scale and zero point counted, over
  the :func:`linear_weights`);
  chapter 05's formats: :func:`format_model`, :func:`format_bits_per_weight`
  (FP8 E4M3 per tensor, MX, NVFP4).
* **Activations**: dynamic int8 per tensor or per token,
  :func:`quantize_activation`, :func:`w8a8_linear`; **LLM.int8** (Dettmers
  et al. 2022): :func:`outlier_columns`, :func:`llm_int8_matmul`,
  :func:`llm_int8_linear`.
* The methods that learn from a calibration text (:func:`calibration_text`,
  cut into :func:`token_windows`), from ``qlib._llm_calibrated`` and
  ``qlib._llm_gptq``, re-exported: what the layers see, :func:`input_absmax`
  (per-channel maxima: the outlier channels) and :func:`capture_inputs`;
  **SmoothQuant** (Xiao et al. 2023): :func:`smooth_scales`,
  :func:`smoothquant`; **AWQ** (Lin et al. 2024): :func:`awq_search`,
  :func:`awq`; **GPTQ** (Frantar et al. 2023): :func:`hessian`,
  :func:`gptq_quantize`, :func:`gptq`.  Each measures a quantized layer by
  chapter 08's output error, :func:`qlib.adaround.output_mse`.
* **KV cache** (``qlib._llm_kvcache``, re-exported):
  :class:`QuantizedKVCache`, :func:`kv_bytes_per_token`,
  :func:`cache_perplexity`.
* :func:`load_results`: the chapter's measured table (``tools/llm_results.py``),
  :func:`results_table` to print it.
* :func:`toy_model`: a tiny random model of the same architecture, for
  examples that run at once.

Integer arithmetic is simulated in float32 ("fake quantization"): codes
times their scales, then the float matrix product, which equals the integer
product rescaled up to float32 rounding.  Taught in
``notebooks/10_llm_quantization.ipynb``.
"""

from __future__ import annotations

import json
import math
import numbers
from importlib import resources

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import llm
from ._llm_calibrated import (
    SHARED_INPUTS,
    AWQResult,
    awq,
    awq_search,
    capture_inputs,
    input_absmax,
    smooth_scales,
    smoothquant,
)
from ._llm_gguf import _shapes
from ._llm_gptq import gptq, gptq_quantize, hessian
from ._llm_kvcache import QuantizedKVCache, cache_perplexity, kv_bytes_per_token
from .floats import FORMATS
from .linear import _integer, linear_qparams
from .mx import MX_ELEMENTS, mx_quantize, nvfp4_quantize, per_tensor_quantize
from .ptq import Granularity, fake_quantize, quantize_weight, weight_bits

__all__ = [
    "SHARED_INPUTS",
    "WEIGHT_FORMATS",
    "AWQResult",
    "QuantizedKVCache",
    "awq",
    "awq_search",
    "cache_perplexity",
    "calibration_text",
    "capture_inputs",
    "format_bits_per_weight",
    "format_model",
    "format_quantize",
    "gptq",
    "gptq_quantize",
    "hessian",
    "input_absmax",
    "kv_bytes_per_token",
    "linear_weights",
    "llm_int8_linear",
    "llm_int8_matmul",
    "load_results",
    "outlier_columns",
    "quantize_activation",
    "results_table",
    "rtn_bits_per_weight",
    "rtn_model",
    "smooth_scales",
    "smoothquant",
    "token_windows",
    "toy_model",
    "w8a8_linear",
]


def calibration_text() -> str:
    """The course's calibration text (written for the course, plain English
    on rivers, bread, clocks, trains, gardens, bees and maps: nothing about
    quantization, unlike :func:`qlib.llm.evaluation_text`, which it never
    overlaps), stripped of its final newline.

    Example:
        >>> calibration_text()[:35]
        'The river begins as a thin stream h'
    """
    path = resources.files("qlib") / "models" / "llm_calibration.txt"
    return path.read_text(encoding="utf-8").strip()


def token_windows(token_ids: ArrayLike, length: int = 64) -> list[NDArray[np.int64]]:
    """``token_ids`` cut into consecutive windows of ``length`` tokens (the
    last one shorter), for :func:`capture_inputs` and :func:`input_absmax`
    to run one at a time, each from position 0: how the chapter calibrates,
    on ``token_windows(encode(model, calibration_text()))`` (22 windows).

    The papers calibrate on many windows too (GPTQ 128 of 2048 tokens, AWQ
    128 of 512).  How many matters here: the first token of every window
    becomes an attention sink with activations unlike any other token's,
    and a calibration set with a single first token leaves that direction
    unconstrained (GPTQ at 3 bits, g128: perplexity 298 on one window of
    1359 tokens, 91 on 22 windows of 64; ``tools/llm_results.py``).

    Example:
        >>> [w.tolist() for w in token_windows(np.arange(7), 3)]
        [[0, 1, 2], [3, 4, 5], [6]]
    """
    n = _integer(length, "length", 1, 2**31)
    ids = np.asarray(token_ids)
    if ids.ndim != 1 or ids.dtype.kind not in "iu":
        raise TypeError(f"token_ids must be a 1-D array of integers; got {ids.dtype}")
    return [ids[i : i + n] for i in range(0, ids.size, n)]


def load_results(which: str = "table") -> dict:
    """The chapter's measured results.

    ``"table"``: written by ``tools/llm_results.py``, each entry's method,
    weights, activations and KV cache, its perplexity on the evaluation text
    and its bits per weight; AWQ's and GPTQ's per-layer searches; the
    per-channel maxima of the activations.  ``"held_out"``: written by
    ``tools/llm_window.py``, GPTQ and AWQ at 3 bits calibrated on part of
    the calibration text and measured on the rest.

    Example:
        >>> t = load_results()["entries"]
        >>> t["float"]["perplexity"], t["rtn-w4-g32-asym"]["bits_per_weight"]
        (26.053, 4.625)
        >>> load_results("held_out")["held_out_tokens"]
        463
    """
    files = {"table": "llm_results.json", "held_out": "llm_window.json"}
    if which not in files:
        raise ValueError(f"which must be one of {sorted(files)}; got {which!r}")
    path = resources.files("qlib") / "models" / files[which]
    return json.loads(path.read_text(encoding="utf-8"))


def results_table(markdown: bool = False, results: dict | None = None) -> str:
    """The chapter's table as text: every entry of :func:`load_results`
    with a perplexity, in the table's order: its method, weights, bits per
    weight and perplexity, then its activations, KV cache and calibration
    where there are any; ``markdown`` gives the README's table
    (``tools/readme_tables.py``).

    Example:
        >>> print(results_table().splitlines()[1][:51])
        float       Q4_1 as shipped, dequantized to float32
        >>> print(results_table(markdown=True).splitlines()[2])
        | float | Q4_1 as shipped, dequantized to float32 | 5.0000 | 26.053 |  |
    """
    entries = [e for e in (results or load_results())["entries"].values()]
    entries = [e for e in entries if "perplexity" in e]

    def notes(e: dict) -> str:
        kinds = {"activations": "activations", "kv_cache": "KV cache"}
        out = [f"{v} {e[k]}" for k, v in kinds.items() if e[k] != "float"]
        if "calibration" in e:
            out.append(f"calibrated on {e['calibration']}")
        return "; ".join(out)

    if markdown:
        lines = [
            "| method | weights | bits/weight | perplexity | activations, KV cache |",
            "|---|---|---:|---:|---|",
        ]
        for e in entries:
            cells = [e["method"], e["weights"], f"{e['bits_per_weight']:.4f}"]
            cells += [f"{e['perplexity']:.5g}", notes(e).replace("|", "\\|")]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)
    wide = max(len(e["weights"]) for e in entries) + 2
    lines = [f"{'method':<12}{'weights':<{wide}}{'bits':>7}{'perplexity':>12}"]
    for e in entries:
        row = f"{e['method']:<12}{e['weights']:<{wide}}{e['bits_per_weight']:>7.3f}"
        lines.append(f"{row}{e['perplexity']:>12.5g}  {notes(e)}".rstrip())
    return "\n".join(lines)


def toy_model(seed: int = 0) -> llm.Model:
    """A random model with SmolLM2's architecture, scaled down: 2 layers,
    d 64, 4 query and 2 key/value heads of 16, d_ff 96, 256 tokens; one
    input channel of each layer's ``attn_norm`` is 40 times the others (an
    outlier channel).  No tokenizer: feed it token ids.

    Example:
        >>> model = toy_model()
        >>> llm.forward(model, [1, 2, 3]).shape
        (3, 256)
    """
    rng = np.random.default_rng(seed)
    c = llm.Config(2, 64, 4, 2, 16, 96, 256, 512, 10000.0, 1e-5, True, 0)
    shapes = {
        "attn_q": (64, 64),
        "attn_k": (32, 64),
        "attn_v": (32, 64),
        "attn_output": (64, 64),
        "ffn_gate": (96, 64),
        "ffn_up": (96, 64),
        "ffn_down": (64, 96),
    }
    layers = []
    for _ in range(c.n_layers):
        layer = {
            n: rng.standard_normal(s).astype(np.float32) / 8 for n, s in shapes.items()
        }
        layer["attn_norm"] = np.where(np.arange(64) == 5, 40, 1).astype(np.float32)
        layer["ffn_norm"] = np.ones(64, np.float32)
        layers.append(layer)
    embedding = rng.standard_normal((256, 64)).astype(np.float32)
    return llm.Model(
        c, embedding, tuple(layers), np.ones(64, np.float32), embedding, None
    )


def linear_weights(config: llm.Config) -> int:
    """How many weights the linear layers of all blocks hold (what
    ``bits_per_weight`` counts; the embedding and the norms are not quantized).

    Example:
        >>> linear_weights(toy_model().config)  # 2 (2 4096 + 2 2048 + 3 6144)
        61440
    """
    shapes = _shapes(config)
    return sum(
        int(np.prod(shape))
        for name, shape in shapes.items()
        if name.startswith("blk.") and name.split(".")[2] in llm.LINEAR_LAYERS
    )


def _sizes(model: llm.Model) -> list[tuple[int, int]]:
    return [w[n].shape for w in model.layers for n in llm.LINEAR_LAYERS]


# ------------------------------------------------------------------ weights


def rtn_model(
    model: llm.Model,
    bits: int,
    granularity: Granularity = 128,
    *,
    symmetric: bool = False,
) -> llm.Model:
    """Every linear weight rounded to nearest by
    :func:`qlib.ptq.quantize_weight`: ``bits``-bit codes, one scale (and,
    asymmetric, a zero point) per ``granularity`` -- a group size (groups of
    consecutive inputs of each output row; the last group of a row is
    shorter when the size does not divide it, as 128 does not divide 576),
    ``"channel"`` (per row) or ``"tensor"``.

    Example:
        >>> q = rtn_model(toy_model(), 2, 32, symmetric=True)
        >>> [len(np.unique(row)) <= 3 for row in q.layers[0]["attn_q"][:, :32]][:4]
        [True, True, True, True]
    """
    return llm.transform_weights(
        model,
        lambda w, i, n: quantize_weight(w, bits, granularity, symmetric=symmetric),
    )


def rtn_bits_per_weight(
    model: llm.Model,
    bits: int,
    granularity: Granularity = 128,
    *,
    symmetric: bool = False,
    scale_bits: int = 16,
) -> float:
    """Storage of :func:`rtn_model`'s linear weights per weight: the codes,
    an fp16 scale per group and, asymmetric, a ``bits``-bit zero point
    (:func:`qlib.ptq.weight_bits` summed over every linear layer).

    Example:
        >>> rtn_bits_per_weight(toy_model(), 4, 32)  # 4 + (16 + 4) / 32
        4.625
    """
    options = {"symmetric": symmetric, "scale_bits": scale_bits}
    sizes = _sizes(model)
    total = sum(weight_bits(s, bits, granularity, **options) for s in sizes)
    return total / sum(a * b for a, b in sizes)


#: Chapter 05's formats for whole weight matrices: FP8 E4M3 with one FP32
#: scale per tensor (:func:`qlib.mx.per_tensor_quantize`), the MX formats in
#: blocks of 32 along each row, NVFP4 in blocks of 16.
WEIGHT_FORMATS = ("fp8_e4m3fn", *MX_ELEMENTS, "nvfp4")


def _format(fmt: object) -> str:
    if fmt not in WEIGHT_FORMATS:
        raise ValueError(f"fmt must be one of {WEIGHT_FORMATS}; got {fmt!r}")
    return str(fmt)


def format_quantize(W: ArrayLike, fmt: str) -> NDArray[np.float32]:
    """``W`` (out, in) stored in ``fmt`` (one of :data:`WEIGHT_FORMATS`;
    blocks run along the rows, over the inputs) and read back, float32.

    Example:
        >>> W = np.array([[0.3, -1.0, 2.5, 7.0]], np.float32)
        >>> format_quantize(W, "mxfp4")  # E2M1 elements times 2^(2 - 2)
        array([[ 0.5, -1. ,  2. ,  6. ]], dtype=float32)
    """
    fmt = _format(fmt)
    if fmt == "fp8_e4m3fn":
        back = per_tensor_quantize(W, fmt)
    elif fmt == "nvfp4":
        back = nvfp4_quantize(W).dequantize()
    else:
        back = mx_quantize(W, fmt, 32).dequantize()
    return back.astype(np.float32)


def format_model(model: llm.Model, fmt: str) -> llm.Model:
    """Every linear weight through :func:`format_quantize`.

    Example:
        >>> q = format_model(toy_model(), "nvfp4")
        >>> len(np.unique(q.layers[0]["attn_q"][0, :16])) <= 15
        True
    """
    fmt = _format(fmt)
    return llm.transform_weights(model, lambda w, i, n: format_quantize(w, fmt))


def format_bits_per_weight(model: llm.Model, fmt: str) -> float:
    """Storage per weight in ``fmt``: the element's bits, plus an 8-bit
    block scale per block (E8M0 per 32 for MX, E4M3 per 16 for NVFP4), plus
    an FP32 scale per tensor (FP8 per tensor and NVFP4).

    Example:
        >>> format_bits_per_weight(toy_model(), "mxfp4")  # 4 + 8 / 32
        4.25
    """
    fmt = _format(fmt)
    sizes = _sizes(model)
    total = 0
    for out, n_in in sizes:
        if fmt == "fp8_e4m3fn":
            total += 8 * out * n_in + 32
        elif fmt == "nvfp4":
            total += 4 * out * n_in + 8 * out * math.ceil(n_in / 16) + 32
        else:
            element = MX_ELEMENTS[fmt]
            bits = 8 if element == "int8" else FORMATS[element].bits
            total += bits * out * n_in + 8 * out * math.ceil(n_in / 32)
    return total / sum(a * b for a, b in sizes)


# -------------------------------------------------------------- activations


_ACTIVATIONS = ("tensor", "token")


def quantize_activation(
    x: ArrayLike, granularity: str = "token", bits: int = 8
) -> NDArray[np.floating]:
    """``x`` (tokens, channels) fake-quantized to symmetric ``bits``-bit
    codes with a scale computed from ``x`` itself (dynamic): one
    ``max|x| / (2**(bits-1) - 1)`` per tensor, or one per token (row).

    Example:
        >>> x = np.array([[0.3, 1.27], [60.0, -127.0]], np.float32)
        >>> quantize_activation(x, "tensor")  # one step of 1: the small row is lost
        array([[   0.,    1.],
               [  60., -127.]], dtype=float32)
        >>> quantize_activation(x, "token")[0].round(4)  # its own step of 0.01
        array([0.3 , 1.27], dtype=float32)
    """
    if granularity not in _ACTIVATIONS:
        raise ValueError(
            f"granularity must be one of {_ACTIVATIONS}; got {granularity!r}"
        )
    a = np.asarray(x)
    axis = 0 if granularity == "token" else None
    s, z = linear_qparams(a, bits, symmetric=True, axis=axis)
    return fake_quantize(a, s, z, bits, axis=axis)


def w8a8_linear(
    granularity: str = "token",
    bits: int = 8,
    input_scales: dict[tuple[int, str], np.ndarray] | None = None,
) -> llm.Linear:
    """A ``linear=`` hook: each layer's input through
    :func:`quantize_activation`, then ``x_q @ W.T`` with the model's weights
    (quantize those with :func:`rtn_model`, e.g. ``rtn_model(model, 8,
    "channel", symmetric=True)``: W8A8).  ``input_scales[(layer, name)]``,
    when given, divides that layer's input first (SmoothQuant's explicit
    ``X / s``).

    Example:
        >>> hook = w8a8_linear("tensor")
        >>> x = np.array([[0.1, 0.2], [60.0, -127.0]], np.float32)
        >>> hook(x, np.eye(2, dtype=np.float32), 0, "attn_q")[0]
        array([0., 0.], dtype=float32)
    """
    if granularity not in _ACTIVATIONS:
        raise ValueError(
            f"granularity must be one of {_ACTIVATIONS}; got {granularity!r}"
        )
    scales = input_scales or {}

    def linear(x, w, layer, name):
        if (layer, name) in scales:
            x = x / scales[layer, name]
        return quantize_activation(x, granularity, bits) @ w.T

    return linear


def outlier_columns(x: ArrayLike, threshold: float = 6.0) -> NDArray[np.bool_]:
    """LLM.int8's outlier feature dimensions: the input columns (channels)
    of ``x`` (tokens, channels) with ``|x| > threshold`` in at least one
    token.

    Example:
        >>> outlier_columns(np.array([[1.0, -7.0, 0.0], [6.0, 2.0, 0.5]]))
        array([False,  True, False])
    """
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real):
        raise TypeError(f"threshold must be a real number > 0; got {threshold!r}")
    if not threshold > 0:
        raise ValueError(f"threshold must be > 0; got {threshold}")
    return (np.abs(np.asarray(x)) > threshold).any(axis=0)


def llm_int8_matmul(
    x: ArrayLike, W: ArrayLike, threshold: float = 6.0, bits: int | None = 8
) -> NDArray[np.floating]:
    """LLM.int8's ``x @ W.T``: the :func:`outlier_columns` of ``x`` and the
    matching columns of ``W`` multiplied in float, the rest in int8 with
    vector-wise scales (one per token of ``x``, one per output row of ``W``,
    each from the non-outlier columns only), the two parts added.
    ``bits=None`` multiplies the rest in float too (the split alone).

    Example:
        >>> x = np.array([[0.5, 100.0, -1.0]], np.float32)
        >>> W = np.array([[1.0, 0.01, 0.3], [0.2, -0.02, 1.0]], np.float32)
        >>> x @ W.T, llm_int8_matmul(x, W, bits=None)  # the split alone: exact here
        (array([[ 1.2, -2.9]], dtype=float32), array([[ 1.2, -2.9]], dtype=float32))
        >>> llm_int8_matmul(x, W)  # the outlier 100 in float, the rest in int8
        array([[ 1.2047244, -2.9007998]], dtype=float32)
    """
    a, w = np.asarray(x), np.asarray(W)
    big = outlier_columns(a, threshold)
    y = a[:, big] @ w[:, big].T
    rest, w_rest = a[:, ~big], w[:, ~big]
    if bits is not None and rest.size:
        rest = quantize_activation(rest, "token", bits)
        w_rest = quantize_weight(w_rest, bits, "channel", symmetric=True)
    return y + rest @ w_rest.T


def llm_int8_linear(threshold: float = 6.0) -> llm.Linear:
    """A ``linear=`` hook running every layer through :func:`llm_int8_matmul`
    on the model's float weights; the outliers are found in each call's
    whole sequence.

    Example:
        >>> y = llm.forward(toy_model(), [1, 2, 3], linear=llm_int8_linear())
        >>> y.shape
        (3, 256)
    """
    outlier_columns(np.zeros((1, 1)), threshold)  # check it now, not per call
    return lambda x, w, layer, name: llm_int8_matmul(x, w, threshold)

"""Post-training quantization of a whole network: how to choose ``S`` and ``Z``.

Chapter 07 quantized LeNet-300-100 to int8 with one recipe.  This module
varies the recipe, in floating point (fake quantization: quantize, then
dequantize, through :mod:`qlib.linear`), so that any bit width can be tried:

* **weights** at a **granularity**: one scale per tensor (``"tensor"``),
  per output channel (``"channel"``: one per row of ``W``), or per group of
  ``g`` consecutive inputs of a row (an ``int``, e.g. 32: the blocks of
  :func:`~qlib.linear.quantize_linear`'s ``block_size``); symmetric or
  asymmetric -- :func:`quantize_weight`, :func:`quantize_model`;
* what that costs: :func:`bits_per_weight`, :func:`model_bytes`, counting
  every scale (fp16 by default) and zero point;
* **activations** (the ReLU outputs between layers) at ``b`` bits on the
  ranges a calibrator chose -- :func:`activation_ranges`,
  :func:`simulate`, :func:`error_rate`; :func:`calibrators` lists the
  chapter's calibrators (:mod:`qlib.calibrate`) set up for ``b``-bit codes.

The input pixels stay exact (uint8, as in chapter 07) and the logits stay
float: the argmax of 2-bit logits would be mostly ties.

Taught in ``notebooks/08_post_training_quantization.ipynb``.
"""

from __future__ import annotations

import copy
import functools
import math
import numbers

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import calibrate
from .linear import _integer, dequantize_linear, linear_qparams, quantize_linear
from .nn import MLP, Dense, ReLU, _check_images, _check_labels
from .quantnet import Calibrator

__all__ = [
    "Granularity",
    "activation_ranges",
    "bits_per_weight",
    "calibrators",
    "error_rate",
    "fake_quantize",
    "model_bytes",
    "quantize_model",
    "quantize_weight",
    "simulate",
    "weight_bits",
]

#: ``"tensor"``, ``"channel"`` or a group size (an int >= 1)
Granularity = str | int


def _granularity(granularity: object) -> str | int:
    if isinstance(granularity, str) and granularity in ("tensor", "channel"):
        return granularity
    if isinstance(granularity, numbers.Integral) and not isinstance(granularity, bool):
        if granularity >= 1:
            return int(granularity)
    raise ValueError(
        f"granularity must be 'tensor', 'channel' or a group size >= 1; "
        f"got {granularity!r}"
    )


def _weight(W: ArrayLike) -> np.ndarray:
    a = np.asarray(W)
    if a.ndim != 2 or a.size == 0 or not np.issubdtype(a.dtype, np.floating):
        raise ValueError(
            f"W must be a non-empty 2-D float array (out, in); got shape {a.shape}, "
            f"dtype {a.dtype}"
        )
    return a


def fake_quantize(
    x: ArrayLike,
    scale: ArrayLike,
    zero_point: ArrayLike,
    bits: int,
    *,
    signed: bool = True,
    axis: int | None = None,
    block_size: int | None = None,
) -> np.ndarray:
    """``dequantize_linear(quantize_linear(x, ...))``: ``x`` rounded to its
    nearest code (saturating) and mapped back, in ``scale``'s dtype.

    Example:
        >>> fake_quantize(np.array([0.1, 0.26, 9.0], np.float32), 0.25, 0, 4)
        array([0.  , 0.25, 1.75], dtype=float32)
    """
    kw = {"axis": axis, "block_size": block_size}
    q = quantize_linear(x, scale, zero_point, bits=bits, signed=signed, **kw)
    return dequantize_linear(q, scale, zero_point, **kw)


def quantize_weight(
    W: ArrayLike,
    bits: int = 8,
    granularity: Granularity = "channel",
    *,
    symmetric: bool = True,
) -> NDArray[np.floating]:
    """``W`` (out, in) fake-quantized to ``bits``-bit signed codes, one
    scale (and zero point) per tensor, per row, or per group of
    ``granularity`` inputs of a row.

    The scales come from :func:`~qlib.linear.linear_qparams` (symmetric:
    ``max|w| / (2**(bits-1) - 1)``, ``Z = 0``; asymmetric: the group's
    ``[min(w, 0), max(w, 0)]`` on all ``2**bits`` codes).  When the group
    size does not divide the row (LeNet's 784, 300 and 100 inputs are not
    multiples of 32), the last group of each row is shorter; zeros pad it
    for the computation, which changes nothing, since every range holds 0.

    Example:
        >>> W = np.array([[2.09, -0.98, 1.48, 0.09], [0.05, -0.14, -1.08, 2.12]])
        >>> quantize_weight(W, 2, "tensor")
        array([[ 2.12,  0.  ,  2.12,  0.  ],
               [ 0.  ,  0.  , -2.12,  2.12]])
    """
    a = _weight(W)
    g = _granularity(granularity)
    sym = bool(symmetric)
    if g == "tensor":
        s, z = linear_qparams(a, bits, symmetric=sym)
        return fake_quantize(a, s, z, bits)
    if g == "channel":
        s, z = linear_qparams(a, bits, symmetric=sym, axis=0)
        return fake_quantize(a, s, z, bits, axis=0)
    n_in = a.shape[1]
    padded = np.pad(a, ((0, 0), (0, -n_in % g)))
    s, z = linear_qparams(padded, bits, symmetric=sym, axis=1, block_size=g)
    return fake_quantize(padded, s, z, bits, axis=1, block_size=g)[:, :n_in]


def _n_params(shape: tuple[int, int], granularity: str | int) -> int:
    out, n_in = shape
    if granularity == "tensor":
        return 1
    if granularity == "channel":
        return out
    return out * math.ceil(n_in / granularity)


def weight_bits(
    shape: tuple[int, int],
    bits: int,
    granularity: Granularity = "channel",
    *,
    symmetric: bool = True,
    scale_bits: int = 16,
) -> int:
    """Bits to store a ``shape`` (out, in) matrix: ``bits`` per code plus
    ``scale_bits`` per scale (fp16 by default) and, if asymmetric, ``bits``
    per zero point, one of each per tensor, row or group.

    Example:
        >>> weight_bits((300, 784), 4, 32)  # 25 groups per row (the last of 16)
        1060800
    """
    out, n_in = (_integer(v, "shape", 1, 2**62) for v in shape)
    b = _integer(bits, "bits", 1, 32)
    per_param = _integer(scale_bits, "scale_bits", 0, 64) + (0 if symmetric else b)
    return (
        b * out * n_in + _n_params((out, n_in), _granularity(granularity)) * per_param
    )


def bits_per_weight(
    shape: tuple[int, int],
    bits: int,
    granularity: Granularity = "channel",
    *,
    symmetric: bool = True,
    scale_bits: int = 16,
) -> float:
    """:func:`weight_bits` per weight: the code's ``bits`` plus its share of
    the scales and zero points.

    Example:
        >>> bits_per_weight((300, 768), 4, 32)  # 4 + 16/32
        4.5
        >>> bits_per_weight((300, 768), 4, 32, symmetric=False)  # 4 + 20/32
        4.625
    """
    total = weight_bits(
        shape, bits, granularity, symmetric=symmetric, scale_bits=scale_bits
    )
    return total / (shape[0] * shape[1])


def quantize_model(
    model: MLP,
    bits: int = 8,
    granularity: Granularity = "channel",
    *,
    symmetric: bool = True,
) -> MLP:
    """A copy of ``model`` with every Dense layer's weights fake-quantized
    by :func:`quantize_weight` (biases kept: they are int32 at ``S_x S_w``
    in an integer network, chapter 07, far finer than the weights).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> model = MLP([Dense(4, 3, rng=rng), ReLU(), Dense(3, 2, rng=rng)])
        >>> q = quantize_model(model, 2, "tensor")
        >>> [len(np.unique(d.W)) <= 3 for d in q.dense]
        [True, True]
    """
    if not isinstance(model, MLP):
        raise TypeError(f"model must be a qlib.nn.MLP; got {type(model).__name__}")
    layers = []
    for layer in model.layers:
        if isinstance(layer, Dense):
            w = quantize_weight(layer.W, bits, granularity, symmetric=symmetric)
            layer = Dense.from_arrays(w.astype(layer.W.dtype), layer.b.copy())
        else:
            layer = copy.copy(layer)
        layers.append(layer)
    return MLP(layers, model.recipe)


def model_bytes(
    model: MLP,
    bits: int | None = None,
    granularity: Granularity = "channel",
    *,
    symmetric: bool = True,
    scale_bits: int = 16,
) -> float:
    """Bytes to store ``model``'s weights and biases: each weight matrix at
    :func:`bits_per_weight`, biases float32; ``bits=None``: float32 weights.

    Example:
        >>> model = MLP([Dense(784, 300, rng=np.random.default_rng(0)), ReLU(),
        ...              Dense(300, 10, rng=np.random.default_rng(0))])
        >>> model_bytes(model) / 1e3, model_bytes(model, 8, "tensor") / 1e3
        (954.04, 239.444)
    """
    if not isinstance(model, MLP):
        raise TypeError(f"model must be a qlib.nn.MLP; got {type(model).__name__}")
    total = 0
    for d in model.dense:
        if bits is None:
            total += 32 * d.W.size + 32 * d.b.size
        else:
            options = {"symmetric": symmetric, "scale_bits": scale_bits}
            total += (
                weight_bits(d.W.shape, bits, granularity, **options) + 32 * d.b.size
            )
    return total / 8


# ---------------------------------------------------------------- activations


def _steps(model: MLP) -> list[tuple[Dense, bool]]:
    """(Dense, followed by a ReLU) for each Dense layer of ``model``."""
    if not isinstance(model, MLP):
        raise TypeError(f"model must be a qlib.nn.MLP; got {type(model).__name__}")
    steps: list[tuple[Dense, bool]] = []
    for layer in model.layers:
        if isinstance(layer, Dense):
            steps.append((layer, False))
        elif isinstance(layer, ReLU) and steps and not steps[-1][1]:
            steps[-1] = (steps[-1][0], True)
        else:
            raise ValueError(
                "model must be Dense layers, each followed by at most one ReLU"
            )
    return steps


def activation_ranges(
    model: MLP, x: ArrayLike, calibrator: Calibrator = calibrate.minmax
) -> list[tuple[float, float]]:
    """``calibrator``'s range for each hidden activation (a Dense layer's
    output after its ReLU, every layer but the last) of the float ``model``
    on the float inputs ``x`` (N, in_features), e.g.
    ``preprocess(calibration_images())``.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> model = MLP([Dense(4, 3, rng=rng), ReLU(), Dense(3, 2, rng=rng)])
        >>> r = activation_ranges(model, rng.uniform(0, 1, (100, 4)).astype(np.float32))
        >>> [tuple(round(v, 3) for v in pair) for pair in r]
        [(0.0, 1.378)]
    """
    steps = _steps(model)
    a = _check_images(x, steps[0][0].in_features, "x")
    ranges = []
    for dense, relu in steps[:-1]:
        a = dense.forward(a)
        a = np.maximum(a, 0) if relu else a
        lo, hi = (float(v) for v in calibrator(a))
        if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
            raise ValueError(
                f"calibrator must return finite (r_min, r_max); got {(lo, hi)}"
            )
        ranges.append((lo, hi))
    return ranges


def _act_qparams(lo: float, hi: float, bits: int) -> tuple[np.ndarray, np.ndarray]:
    return linear_qparams(np.array([lo, hi], np.float32), bits, signed=False)


def simulate(
    model: MLP,
    x: ArrayLike,
    act_bits: int | None = None,
    ranges: list[tuple[float, float]] | None = None,
) -> NDArray[np.float32]:
    """Logits of ``model`` on float inputs ``x`` with every hidden activation
    fake-quantized to ``act_bits``-bit unsigned codes on its range
    (:func:`~qlib.linear.linear_qparams` of ``ranges[i]``: ``[0, t]`` on all
    ``2**act_bits`` codes, ``Z = 0``, for a ReLU output).  ``act_bits=None``
    is the float forward pass.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> model = MLP([Dense(4, 3, rng=rng), ReLU(), Dense(3, 2, rng=rng)])
        >>> x = rng.uniform(0, 1, (5, 4)).astype(np.float32)
        >>> y = simulate(model, x, 16, [(0.0, 2.0)])
        >>> bool(np.allclose(y, model.forward(x), atol=1e-4))
        True
    """
    steps = _steps(model)
    a = _check_images(x, steps[0][0].in_features, "x")
    hidden = len(steps) - 1
    if act_bits is not None:
        act_bits = _integer(act_bits, "act_bits", 1, 16)
        if ranges is None or len(ranges) != hidden:
            raise ValueError(
                f"ranges must hold one (r_min, r_max) per hidden layer ({hidden})"
            )
    for i, (dense, relu) in enumerate(steps):
        a = dense.forward(a)
        a = np.maximum(a, 0) if relu else a
        if act_bits is not None and i < hidden:
            s, z = _act_qparams(*ranges[i], act_bits)
            a = fake_quantize(a, s, z, act_bits, signed=False)
    return a


def error_rate(
    model: MLP,
    x: ArrayLike,
    labels: ArrayLike,
    act_bits: int | None = None,
    ranges: list[tuple[float, float]] | None = None,
) -> float:
    """Fraction of ``x`` misclassified by :func:`simulate` (``act_bits=None``:
    :func:`qlib.nn.error_rate`'s float network).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> model = MLP([Dense(4, 3, rng=rng), ReLU(), Dense(3, 2, rng=rng)])
        >>> error_rate(model, np.zeros((4, 4), np.float32), [0, 0, 1, 1])
        0.5
    """
    logits = simulate(model, x, act_bits, ranges)
    y = _check_labels(labels, len(logits), logits.shape[1], "labels")
    return float(np.mean(logits.argmax(axis=1) != y)) if len(y) else 0.0


def calibrators(bits: int) -> dict[str, Calibrator]:
    """The chapter's activation calibrators, set up for ReLU outputs on
    ``bits``-bit unsigned codes (the ``2**bits`` levels of ``[0, t]``):

    ``min-max``; ``EMA`` (:func:`~qlib.calibrate.ema_minmax`, batches of 100,
    ``momentum=0.9``); ``99.9 %`` and ``99.99 %`` (percentiles of ``|x|``,
    zeros included); ``MSE`` (the threshold minimizing this very quantizer's
    error: ``symmetric=False``); ``KL`` (TensorRT's entropy calibration with
    ``2**bits`` levels, i.e. ``bits + 1`` signed bits, on the non-zero
    activations: a ReLU's exact zeros are one spike in the first bin that
    KL would otherwise spend every level on, and 0 is a code anyway).

    Example:
        >>> list(calibrators(4))
        ['min-max', 'EMA', '99.9 %', '99.99 %', 'MSE', 'KL']
    """
    b = _integer(bits, "bits", 2, 15)
    return {
        "min-max": calibrate.minmax,
        "EMA": functools.partial(calibrate.ema_minmax, momentum=0.9, batch_size=100),
        "99.9 %": functools.partial(calibrate.percentile, p=99.9),
        "99.99 %": functools.partial(calibrate.percentile, p=99.99),
        "MSE": functools.partial(calibrate.mse, bits=b, symmetric=False),
        "KL": functools.partial(calibrate.entropy, bits=b + 1, skip_zeros=True),
    }

"""Integer-only inference: requantization and quantized layers.

An int8 layer multiplies and adds codes in int32 and brings the accumulator
back to int8 codes with one fixed-point multiplier ``M = S_x S_w / S_y``
(Jacob et al. 2018).

* :func:`quantize_multiplier`, :func:`multiply_by_quantized_multiplier` --
  gemmlowp/TFLite requantization (the double-rounding variant), built on
  :func:`saturating_rounding_doubling_high_mul` and
  :func:`rounding_divide_by_pot`.
* :class:`QuantizedLinear`, :class:`QuantizedConv2d` (via :func:`im2col`) --
  integer-only layers (eqs. 4-7) and their fake-quantized float simulation.
* :func:`accumulate_narrow` -- a layer's sums in a 16-bit register: why the
  accumulator is int32.

A whole network (LeNet-300-100, from pixels to logits) is
:class:`qlib.quantnet.QuantizedMLP`.

The codes come from :mod:`qlib.linear`; the multiplier's arithmetic from
:mod:`qlib.fixedpoint`.  Taught in ``notebooks/07_linear_quantization.ipynb``.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import fixedpoint, integers
from .linear import (
    _codes_range,
    _integer,
    _layout,
    _scale,
    _zero_point,
    dequantize_linear,
    linear_qparams,
    quantize_linear,
)

__all__ = [
    "INT32_MAX",
    "INT32_MIN",
    "QuantizedConv2d",
    "QuantizedLinear",
    "accumulate_narrow",
    "im2col",
    "multiply_by_quantized_multiplier",
    "quantize_multiplier",
    "rounding_divide_by_pot",
    "saturating_rounding_doubling_high_mul",
]

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


# ----------------------------------------------- requantization (gemmlowp)


def _int32(v: ArrayLike, name: str) -> np.ndarray:
    c = np.asarray(v)
    if c.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integers; got dtype {c.dtype}")
    if c.size and (int(c.min()) < INT32_MIN or int(c.max()) > INT32_MAX):
        raise ValueError(f"{name} must be in int32's [{INT32_MIN}, {INT32_MAX}]")
    return c.astype(np.int64)


def saturating_rounding_doubling_high_mul(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """gemmlowp's SaturatingRoundingDoublingHighMul: ``a * b / 2**31``
    rounded to nearest, ties toward +inf, for int32 ``a``, ``b``; only
    ``INT32_MIN * INT32_MIN`` saturates (to INT32_MAX).

    Example:
        >>> saturating_rounding_doubling_high_mul([3, -3, INT32_MIN], [2**30, 2**30, INT32_MIN])
        array([         2,         -1, 2147483647], dtype=int32)
    """  # noqa: E501
    x, y = np.broadcast_arrays(_int32(a, "a"), _int32(b, "b"))
    ab = x * y  # |ab| <= 2**62: exact in int64
    t = ab + np.where(ab >= 0, 2**30, 1 - 2**30)
    high = np.where(t >= 0, t >> 31, -(-t >> 31))  # C's division truncates
    overflow = (x == INT32_MIN) & (y == INT32_MIN)
    return np.where(overflow, INT32_MAX, high).astype(np.int32)


def rounding_divide_by_pot(x: ArrayLike, exponent: ArrayLike) -> np.ndarray:
    """gemmlowp's RoundingDivideByPOT: ``x / 2**exponent`` rounded to
    nearest, ties away from zero, for int32 ``x`` and ``0 <= exponent <= 31``.

    Example:
        >>> rounding_divide_by_pot([5, -5, 6, -6], 1)
        array([ 3, -3,  3, -3], dtype=int32)
    """
    v = _int32(x, "x")
    e = _int32(exponent, "exponent")
    if e.size and (e.min() < 0 or e.max() > 31):
        raise ValueError("exponent must be in [0, 31]")
    mask = (np.int64(1) << e) - 1
    threshold = (mask >> 1) + (v < 0)
    return ((v >> e) + ((v & mask) > threshold)).astype(np.int32)


def quantize_multiplier(real_multiplier: float) -> tuple[int, int]:
    """gemmlowp/TFLite's QuantizeMultiplier: ``real_multiplier ~=
    quantized_multiplier * 2**(shift - 31)`` with a 31-bit
    ``quantized_multiplier`` in ``[2**30, 2**31)``.

    The arithmetic is :func:`qlib.fixedpoint.quantize_multiplier` (its
    ``(m0, s)`` means ``m0 * 2**-s``): here ``shift = 31 - s``, TFLite's
    convention (> 0 shifts left, for multipliers >= 1).  As TFLite, a
    multiplier below ``2**-32`` becomes ``(0, 0)``; it must be below ``2**30``.

    Example:
        >>> quantize_multiplier(0.0072474), quantize_multiplier(1.5)
        ((1992150143, -7), (1610612736, 1))
    """
    m = real_multiplier
    if isinstance(m, bool) or not (isinstance(m, numbers.Real) and 0 < m):
        raise ValueError(f"real_multiplier must be > 0; got {real_multiplier!r}")
    if not real_multiplier < 2**30:
        raise ValueError(f"real_multiplier must be < 2**30; got {real_multiplier!r}")
    m0, s = fixedpoint.quantize_multiplier(float(real_multiplier), bits=31)
    return (0, 0) if 31 - s < -31 else (m0, 31 - s)


def multiply_by_quantized_multiplier(
    acc: ArrayLike, m0: ArrayLike, shift: ArrayLike
) -> NDArray[np.int32]:
    """``acc * m0 * 2**(shift - 31)`` rounded as TFLite's
    MultiplyByQuantizedMultiplier (gemmlowp's double rounding).

    ``acc * 2**max(shift, 0)`` (the left shift for multipliers >= 1; it must
    stay in int32, where C++ would overflow), then
    :func:`saturating_rounding_doubling_high_mul` by ``m0`` (a first rounding,
    ties toward +inf), then :func:`rounding_divide_by_pot` by
    ``max(-shift, 0)`` (a second, ties away from zero).  Arrays broadcast
    (per-channel ``m0``, ``shift``); ``shift`` in ``[-31, 30]``.

    This is gemmlowp's double-rounding variant, not TFLite's
    ``TFLITE_SINGLE_ROUNDING`` (one rounding of the exact product, ties
    toward +inf; qlib's one exact rounding is
    :func:`qlib.fixedpoint.multiply_by_constant`).  With a right shift
    ``r > 0`` they differ by one step on ties and near them:

    * an exact tie of a negative product goes away from zero here (toward
      +inf in single rounding);
    * a product within ``2**-(r+1)`` of a step below a tie, on the side of
      zero, is rounded onto the tie by the first rounding and then away from
      zero by the second, where one rounding goes toward zero: about
      ``2**-(r+1)`` of random accumulators (0.39 % for ``r = 7``).

    Without a right shift the one rounding is SRDHM's, ties toward +inf.

    Example:
        >>> m0, shift = quantize_multiplier(1 / 32)        # (2**30, -4)
        >>> multiply_by_quantized_multiplier([15, 16, -16, -17], m0, shift)
        array([ 1,  1, -1, -1], dtype=int32)
        >>> fixedpoint.multiply_by_constant([15, 16, -16, -17], m0, 31 - shift)
        array([ 0,  1, -1, -1])
    """
    x = _int32(acc, "acc")
    sh = _int32(shift, "shift")
    if sh.size and (sh.min() < -31 or sh.max() > 30):
        raise ValueError("shift must be in [-31, 30]")
    x = x << np.maximum(sh, 0)
    if x.size and (x.min() < INT32_MIN or x.max() > INT32_MAX):
        raise ValueError("acc * 2**shift leaves int32 (the left shift for M >= 1)")
    high = saturating_rounding_doubling_high_mul(x, m0)
    return rounding_divide_by_pot(high, np.maximum(-sh, 0))


# ------------------------------------------------------ integer-only layers


@dataclass(frozen=True, eq=False)
class QuantizedLinear:
    """``y = x @ weight.T + bias`` in integers only (Jacob et al. 2018, eqs. 4-7).

    With ``K`` inputs, output ``j`` is ``Z_y + M_j * acc_j``, where
    ``acc_j = sum_k (q_x[k] - Z_x)(q_w[j,k] - Z_w) + q_b[j]`` expands into
    ``sum_k q_x[k] q_w[j,k] - Z_w sum_k q_x[k] + offset_j`` with the constant
    ``offset_j = q_b[j] - Z_x sum_k q_w[j,k] + K Z_x Z_w`` precomputed.  The
    bias is int32 at scale ``S_x * S_w`` (zero point 0), ``acc`` must fit in
    int32, and ``M_j = S_x S_w / S_y`` is applied by
    :func:`multiply_by_quantized_multiplier`; ReLU is the clamp to
    ``[Z_y, q_max]``.  ``weight_scale``/``weight_zero_point`` are scalars
    (per tensor) or one per output (per channel).  Weights are signed
    ``bits``-bit codes, activations signed or not (``signed``: int8 or
    uint8 for ``bits=8``); ``bits`` from 2 to 8.

    Example:
        >>> W, b = np.array([[0.5, -0.25], [1.0, 0.75]]), np.array([0.1, -0.2])
        >>> layer = QuantizedLinear.from_float(W, b, (0.02, 0), (0.03, -10))
        >>> q_x = quantize_linear([[1.0, 2.0]], 0.02, 0)
        >>> layer.forward(q_x), layer.simulate(q_x)
        (array([[-7, 67]], dtype=int8), array([[-7, 67]], dtype=int8))
    """

    weight: NDArray[np.integer]
    weight_scale: NDArray[np.floating]
    weight_zero_point: NDArray[np.integer]
    bias: NDArray[np.int32]
    x_scale: float
    x_zero_point: int
    y_scale: float
    y_zero_point: int
    bits: int = 8
    signed: bool = True
    relu: bool = False
    multiplier: NDArray[np.int64] = field(init=False, repr=False)
    shift: NDArray[np.int64] = field(init=False, repr=False)
    offset: NDArray[np.int64] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # up to 8 bits, float64 sums the products exactly (see accumulate)
        _integer(self.bits, "bits", 2, 8)
        w_lo, w_hi, _ = _codes_range(self.bits, True)  # weights are signed
        w = np.asarray(self.weight)
        if w.ndim != 2 or w.dtype.kind not in "iu":
            raise TypeError("weight must be a 2-D array of integer codes (N, K)")
        if w.size and (int(w.min()) < w_lo or int(w.max()) > w_hi):
            raise ValueError(f"weight must hold codes in [{w_lo}, {w_hi}]")
        s_w = _scale(self.weight_scale, "weight_scale")
        _layout(s_w.shape, w.shape, 0 if s_w.ndim else None, None, "weight_scale")
        z_w = _zero_point(
            self.weight_zero_point, s_w.shape, w_lo, w_hi, "weight_zero_point"
        )
        lo, hi, _ = _codes_range(self.bits, self.signed)
        s_x = _scale(self.x_scale, "x_scale").reshape(())
        s_y = _scale(self.y_scale, "y_scale").reshape(())
        z_x = int(_zero_point(self.x_zero_point, (), lo, hi, "x_zero_point"))
        z_y = int(_zero_point(self.y_zero_point, (), lo, hi, "y_zero_point"))
        s_b = float(s_x) * s_w.astype(np.float64)  # exact: two float32 (or one 64)
        q_b = _int32(self.bias, "bias")
        if q_b.shape != (w.shape[0],):
            raise ValueError(f"bias must have shape ({w.shape[0]},); got {q_b.shape}")
        m = np.broadcast_to(s_b / float(s_y), (w.shape[0],))
        # one multiplier per output channel: a loop over parameters, not data
        m0, shift = np.array([quantize_multiplier(float(v)) for v in m]).T
        zw = np.broadcast_to(z_w, (w.shape[0],))
        offset = q_b - z_x * w.sum(axis=1, dtype=np.int64) + w.shape[1] * z_x * zw
        fields = {
            "weight": w, "weight_scale": s_w, "weight_zero_point": z_w,
            "bias": q_b.astype(np.int32), "x_scale": s_x, "x_zero_point": z_x,
            "y_scale": s_y, "y_zero_point": z_y, "multiplier": m0, "shift": shift,
            "offset": offset,
        }  # fmt: skip
        for name, value in fields.items():
            object.__setattr__(self, name, value)

    @classmethod
    def from_float(
        cls,
        weight: ArrayLike,
        bias: ArrayLike | None,
        x_qparams: tuple[float, int],
        y_qparams: tuple[float, int],
        *,
        per_channel: bool = False,
        symmetric: bool = True,
        bits: int = 8,
        signed: bool = True,
        relu: bool = False,
    ) -> QuantizedLinear:
        """Quantize a float layer: weights (N, K) by :func:`linear_qparams`
        (``symmetric`` weights have ``Z_w = 0``; ``per_channel``: one scale per
        output), bias at ``S_x * S_w`` into int32; activations by the given
        ``(scale, zero_point)`` pairs."""
        w = np.asarray(weight, dtype=np.float32)
        axis = 0 if per_channel else None
        s_w, z_w = linear_qparams(w, bits, symmetric=symmetric, axis=axis)
        q_w = quantize_linear(w, s_w, z_w, bits=bits, axis=axis)
        s_b = float(_scale(x_qparams[0], "x_scale")) * np.asarray(s_w, np.float64)
        b = np.zeros(w.shape[0]) if bias is None else np.asarray(bias, np.float64)
        q_b = quantize_linear(b, s_b, bits=32, axis=axis)
        return cls(q_w, s_w, z_w, q_b, *x_qparams, *y_qparams, bits, signed, relu)

    @property
    def _axis(self) -> int | None:
        return 0 if np.ndim(self.weight_scale) else None

    def accumulate(self, q_x: ArrayLike) -> NDArray[np.int32]:
        """The int32 accumulators ``acc`` (..., N) of codes ``q_x`` (..., K)."""
        lo, hi, _ = _codes_range(self.bits, self.signed)
        c = _int32(q_x, "q_x")
        if c.size and (c.min() < lo or c.max() > hi):
            raise ValueError(f"q_x must hold codes in [{lo}, {hi}]")
        # exact in float64: every partial sum is an integer below K * 2**15
        dot = (c.astype(np.float64) @ self.weight.T.astype(np.float64)).astype(np.int64)
        zw = np.broadcast_to(self.weight_zero_point, self.offset.shape).astype(np.int64)
        acc = dot - c.sum(axis=-1, keepdims=True) * zw + self.offset
        if acc.size and (acc.min() < INT32_MIN or acc.max() > INT32_MAX):
            raise ValueError("the accumulator overflows int32: use fewer inputs")
        return acc.astype(np.int32)

    def requantize(self, acc: ArrayLike) -> NDArray[np.integer]:
        """``clamp(Z_y + M * acc)`` into the output codes, integers only."""
        lo, hi, dtype = _codes_range(self.bits, self.signed)
        y = multiply_by_quantized_multiplier(acc, self.multiplier, self.shift)
        y = y.astype(np.int64) + self.y_zero_point
        lo = self.y_zero_point if self.relu else lo
        return np.clip(y, lo, hi).astype(dtype)

    def forward(self, q_x: ArrayLike) -> NDArray[np.integer]:
        """Output codes (..., N) of input codes (..., K), integers only."""
        return self.requantize(self.accumulate(q_x))

    def real(self, x: ArrayLike) -> NDArray[np.float64]:
        """The float layer on real ``x`` with dequantized weights and bias."""
        s_b = float(self.x_scale) * np.asarray(self.weight_scale, np.float64)
        w = dequantize_linear(
            self.weight, self.weight_scale.astype(np.float64), self.weight_zero_point,
            axis=self._axis,
        )  # fmt: skip
        b = dequantize_linear(self.bias, s_b, axis=self._axis)
        y = np.asarray(x, dtype=np.float64) @ w.T + b
        return np.maximum(y, 0.0) if self.relu else y

    def simulate(self, q_x: ArrayLike) -> NDArray[np.integer]:
        """The fake-quantized float simulation: dequantize, the float layer in
        float64, quantize (round half to even).  It equals :meth:`forward`
        but where the rounding rules differ, by one step."""
        x = dequantize_linear(q_x, np.float64(self.x_scale), self.x_zero_point)
        return quantize_linear(
            self.real(x), np.float64(self.y_scale), self.y_zero_point,
            bits=self.bits, signed=self.signed,
        )  # fmt: skip


def im2col(
    x: ArrayLike,
    kernel_size: tuple[int, int],
    stride: int = 1,
    padding: int = 0,
    pad_value: float = 0,
) -> np.ndarray:
    """Patches of an NCHW ``x`` as rows: shape (N, H_out, W_out, C*kh*kw),
    ordered as ``weight.reshape(C_out, -1)`` of a (C_out, C, kh, kw) kernel.

    Pad codes with the zero point (``pad_value=Z_x``): it stands for 0.

    Example:
        >>> im2col(np.arange(9).reshape(1, 1, 3, 3), (2, 2))[0, :, :, :]
        array([[[0, 1, 3, 4],
                [1, 2, 4, 5]],
        <BLANKLINE>
               [[3, 4, 6, 7],
                [4, 5, 7, 8]]])
    """
    a = np.asarray(x)
    if a.ndim != 4:
        raise ValueError(f"x must be NCHW (4-D); got shape {a.shape}")
    kh, kw = (_integer(k, "kernel_size", 1, 2**31) for k in kernel_size)
    s = _integer(stride, "stride", 1, 2**31)
    p = _integer(padding, "padding", 0, 2**31)
    a = np.pad(a, ((0, 0), (0, 0), (p, p), (p, p)), constant_values=pad_value)
    if kh > a.shape[2] or kw > a.shape[3]:
        raise ValueError(f"kernel_size {(kh, kw)} exceeds the padded input")
    win = np.lib.stride_tricks.sliding_window_view(a, (kh, kw), axis=(2, 3))
    win = win[:, :, ::s, ::s]  # (N, C, H_out, W_out, kh, kw)
    return win.transpose(0, 2, 3, 1, 4, 5).reshape(*win.shape[:1], *win.shape[2:4], -1)


@dataclass(frozen=True, eq=False)
class QuantizedConv2d:
    """A 2-D convolution (NCHW, square stride and padding) in integers only:
    :func:`im2col` of the codes padded with ``Z_x``, then a
    :class:`QuantizedLinear` over the patches (weight (C_out, C*kh*kw)).

    Example:
        >>> W = np.ones((1, 1, 2, 2)) / 4
        >>> conv = QuantizedConv2d.from_float(W, None, (0.1, 0), (0.1, 0))
        >>> conv.forward(np.array([[[[4, 8], [12, 16]]]], dtype=np.int8))
        array([[[[10]]]], dtype=int8)
    """

    linear: QuantizedLinear
    kernel_size: tuple[int, int]
    stride: int = 1
    padding: int = 0

    @classmethod
    def from_float(
        cls,
        weight: ArrayLike,
        bias: ArrayLike | None,
        x_qparams: tuple[float, int],
        y_qparams: tuple[float, int],
        *,
        stride: int = 1,
        padding: int = 0,
        **options,
    ) -> QuantizedConv2d:
        """A float kernel (C_out, C, kh, kw); ``options`` as
        :meth:`QuantizedLinear.from_float` (``per_channel``, ``relu``, ...)."""
        w = np.asarray(weight)
        if w.ndim != 4:
            raise ValueError(f"weight must be (C_out, C, kh, kw); got shape {w.shape}")
        linear = QuantizedLinear.from_float(
            w.reshape(w.shape[0], -1), bias, x_qparams, y_qparams, **options
        )
        return cls(linear, (w.shape[2], w.shape[3]), stride, padding)

    def _nchw(self, rows: np.ndarray) -> np.ndarray:
        return np.moveaxis(rows, -1, 1)

    def _cols(self, x: ArrayLike, pad_value: float) -> np.ndarray:
        return im2col(x, self.kernel_size, self.stride, self.padding, pad_value)

    def accumulate(self, q_x: ArrayLike) -> NDArray[np.int32]:
        """int32 accumulators (N, C_out, H_out, W_out)."""
        zx = int(self.linear.x_zero_point)
        return self._nchw(self.linear.accumulate(self._cols(q_x, zx)))

    def forward(self, q_x: ArrayLike) -> NDArray[np.integer]:
        """Output codes (N, C_out, H_out, W_out), integers only."""
        zx = int(self.linear.x_zero_point)
        return self._nchw(self.linear.forward(self._cols(q_x, zx)))

    def simulate(self, q_x: ArrayLike) -> NDArray[np.integer]:
        """The fake-quantized float simulation (float input padded with 0)."""
        lin = self.linear
        x = dequantize_linear(q_x, np.float64(lin.x_scale), lin.x_zero_point)
        y = lin.real(self._cols(x, 0.0))
        q = quantize_linear(
            y, np.float64(lin.y_scale), lin.y_zero_point, bits=lin.bits,
            signed=lin.signed,
        )  # fmt: skip
        return self._nchw(q)


# ------------------------------------------ a narrow accumulator (a demo)


def accumulate_narrow(
    layer: QuantizedLinear,
    q_x: ArrayLike,
    bits: int = 16,
    overflow: Literal["wrap", "saturate"] = "wrap",
) -> NDArray[np.int64]:
    """``layer``'s accumulators (..., N) summed in a ``bits``-bit register
    instead of int32: why 8-bit layers accumulate in 32 bits.

    The register starts at the bias ``q_b[j]`` and adds the products
    ``(q_x[k] - Z_x)(q_w[j, k] - Z_w)`` for ``k = 0 .. K-1`` in order, each
    partial sum brought back into range by :func:`qlib.integers.accumulate`
    (``"wrap"`` as integer adders do, ``"saturate"`` as DSP adders do).
    Wrapping is modular, so the wrapped result is the int32 accumulator
    modulo ``2**bits``: right only where that fits.  It holds all ``N * K``
    products at once: a demonstration for a few inputs, not an inference
    path.

    Example:
        >>> layer = QuantizedLinear(np.full((1, 4), 127, np.int8), 0.01, 0,
        ...                         np.zeros(1, np.int32), 0.01, 0, 0.1, 0)
        >>> q_x = np.full((1, 4), 100, np.int8)
        >>> layer.accumulate(q_x), accumulate_narrow(layer, q_x)
        (array([[50800]], dtype=int32), array([[-14736]]))
        >>> accumulate_narrow(layer, q_x, overflow="saturate")
        array([[32767]])
    """
    if overflow not in ("wrap", "saturate"):
        raise ValueError(f"overflow must be 'wrap' or 'saturate'; got {overflow!r}")
    n = _integer(bits, "bits", 2, 32)
    lo, hi, _ = _codes_range(layer.bits, layer.signed)
    c = _int32(q_x, "q_x")
    if c.ndim < 1 or c.shape[-1] != layer.weight.shape[1]:
        raise ValueError(
            f"q_x must have shape (..., {layer.weight.shape[1]}); got {c.shape}"
        )
    if c.size and (c.min() < lo or c.max() > hi):
        raise ValueError(f"q_x must hold codes in [{lo}, {hi}]")
    zw = np.broadcast_to(layer.weight_zero_point, layer.offset.shape).astype(np.int64)
    dw = layer.weight.astype(np.int64) - zw[:, None]  # (N, K)
    products = (c - layer.x_zero_point)[..., None, :] * dw  # (..., N, K)
    bias = np.broadcast_to(
        layer.bias.astype(np.int64)[:, None], (*products.shape[:-1], 1)
    )
    terms = np.concatenate([bias, products], axis=-1)
    return integers.accumulate(terms, n, overflow)[..., -1]

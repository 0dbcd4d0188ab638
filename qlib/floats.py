"""Floating-point formats, any ExMy: fields, values, rounding, specials.

A format has a sign bit (except E8M0), ``exp_bits`` exponent bits with a
``bias`` and ``man_bits`` mantissa bits.  A code with exponent field ``e`` and
mantissa field ``m`` stands for

    (-1)^s * 2^(e - bias) * (1 + m / 2^M)      if e > 0   (normal)
    (-1)^s * 2^(1 - bias) * (m / 2^M)          if e == 0  (subnormal)

except where the format reserves codes for specials.  Formats differ in those
reservations (``specials``), following ml_dtypes' names:

* ``"ieee"``: the top exponent is infinity (m = 0) or NaN (m != 0):
  fp64, fp32, tf32, fp16, bf16, fp8_e5m2;
* ``"fn"`` (finite, NaN at the extremes): no infinity; only the all-ones
  exponent *and* mantissa is NaN: fp8_e4m3fn;
* ``"fnuz"`` (finite, NaN, unsigned zero): no infinity, no -0; the code
  ``100...0`` is the only NaN: fp8_e4m3fnuz, fp8_e5m2fnuz;
* ``"none"``: every code is a number: fp6_e2m3fn, fp6_e3m2fn, fp4_e2m1fn;
* ``"e8m0"``: no sign, no mantissa: a power of two ``2^(e - 127)``, and the
  all-ones code is NaN.

:meth:`FloatFormat.encode` rounds to nearest, ties to even (E8M0: ties away
from zero on a linear scale, as ml_dtypes 0.7 and later do), and handles
overflow, NaN and infinities the way ml_dtypes' ``astype`` from float32 does;
``saturate=True`` first clamps to ``[-max, max]`` as ONNX's ``saturate=1``.
The rounding itself lives in ``qlib/_float_codec.py``.

Taught in ``notebooks/04_ieee754.ipynb`` and
``notebooks/05_low_precision_floats.ipynb``.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._float_codec import (
    _encode,
    _encode_e8m0,
    _encode_float32,
    _encode_rational,
    _float32_path,
    _keep_payload,
)

__all__ = ["FORMATS", "SPECIALS", "FloatFormat", "flushed"]

SPECIALS = ("ieee", "fn", "fnuz", "none", "e8m0")
Specials = Literal["ieee", "fn", "fnuz", "none", "e8m0"]


def _int(value: object, name: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer in [{lo}, {hi}]; got {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be in [{lo}, {hi}]; got {value}")
    return int(value)


@dataclass(frozen=True)
class FloatFormat:
    """A binary floating-point format with ``exp_bits`` and ``man_bits``.

    ``nan_payload=True`` makes :meth:`encode` keep the top bits of a NaN's
    payload as NumPy's own casts do (fp16/fp32/fp64); otherwise NaN is written
    as one canonical code, as ml_dtypes does.

    Example:
        >>> fmt = FloatFormat("fp8_e4m3fn", 4, 3, specials="fn")
        >>> fmt.bits, fmt.bias, fmt.max, fmt.min_normal, fmt.min_subnormal
        (8, 7, 448.0, 0.015625, 0.001953125)

    Taught in ``notebooks/04_ieee754.ipynb``.
    """

    name: str
    exp_bits: int
    man_bits: int
    bias: int | None = None
    specials: Specials = "ieee"
    nan_payload: bool = False

    def __post_init__(self) -> None:
        if self.specials not in SPECIALS:
            raise ValueError(
                f"specials must be one of {SPECIALS}; got {self.specials!r}"
            )
        lowest = 2 if self.specials == "ieee" else 1
        _int(self.exp_bits, "exp_bits", lowest, 11)
        _int(self.man_bits, "man_bits", 0 if self.specials == "e8m0" else 1, 52)
        if self.specials == "e8m0" and self.man_bits != 0:
            raise ValueError("specials='e8m0' needs man_bits=0")
        if self.bias is None:
            default = 2 ** (self.exp_bits - 1) - (0 if self.specials == "fnuz" else 1)
            object.__setattr__(self, "bias", default)
        _int(self.bias, "bias", -(2**11), 2**11)

    # ------------------------------------------------------------ layout

    @property
    def signed(self) -> bool:
        return self.specials != "e8m0"

    @property
    def bits(self) -> int:
        return int(self.signed) + self.exp_bits + self.man_bits

    @property
    def code_dtype(self) -> np.dtype:
        for dtype in (np.uint8, np.uint16, np.uint32, np.uint64):
            if self.bits <= 8 * np.dtype(dtype).itemsize:
                return np.dtype(dtype)
        raise AssertionError("unreachable")

    @property
    def _e_max_field(self) -> int:
        return 2**self.exp_bits - 1

    # ------------------------------------------------------------ limits

    @property
    def max(self) -> float:
        """The largest finite value."""
        m_all = 2**self.man_bits - 1
        if self.specials == "ieee":
            e, m = self._e_max_field - 1, m_all
        elif self.specials == "fn":
            e, m = self._e_max_field, m_all - 1
        elif self.specials == "e8m0":
            e, m = self._e_max_field - 1, 0
        else:
            e, m = self._e_max_field, m_all
        return float(np.ldexp(2.0**self.man_bits + m, e - self.bias - self.man_bits))

    @property
    def min_normal(self) -> float:
        """The smallest positive normal value, ``2^(1 - bias)`` (finfo's ``tiny``);
        for E8M0, which has no zero, its smallest value ``2^-bias``."""
        if self.specials == "e8m0":
            return float(np.ldexp(1.0, -self.bias))
        return float(np.ldexp(1.0, 1 - self.bias))

    @property
    def min_subnormal(self) -> float:
        """The smallest positive value, ``2^(1 - bias - M)``."""
        if self.specials == "e8m0":
            return self.min_normal
        return float(np.ldexp(1.0, 1 - self.bias - self.man_bits))

    @property
    def eps(self) -> float:
        """The gap between 1 and the next larger value, ``2^-M``."""
        return float(np.ldexp(1.0, -self.man_bits))

    @property
    def binades(self) -> float:
        """The dynamic range in binades, ``log2(max / min_subnormal)``.

        Example:
            >>> round(FORMATS["fp8_e4m3fn"].binades, 2), FORMATS["e8m0fnu"].binades
            (17.81, 254.0)

        Taught in ``notebooks/05_low_precision_floats.ipynb``.
        """
        return float(np.log2(self.max) - np.log2(self.min_subnormal))

    # ------------------------------------------------------------ specials

    @property
    def has_inf(self) -> bool:
        """Whether some codes are infinities (the IEEE-style formats only)."""
        return self.specials == "ieee"

    @property
    def has_nan(self) -> bool:
        """Whether some code is NaN (all but FP6/FP4, whose codes are numbers)."""
        return self.specials != "none"

    @property
    def has_negative_zero(self) -> bool:
        """Whether -0 has a code (not in FNUZ, whose -0 code is NaN, nor E8M0)."""
        return self.specials in ("ieee", "fn", "none")

    # ------------------------------------------------------------ fields

    def _codes(self, codes: ArrayLike) -> np.ndarray:
        c = np.asarray(codes)
        if c.dtype.kind not in "iu":
            raise TypeError(f"codes must be integers; got an array of dtype {c.dtype}")
        if c.size and (c.min() < 0 or int(c.max()) > 2**self.bits - 1):
            raise ValueError(
                f"codes must be in [0, 2**{self.bits} - 1] for {self.name}; "
                f"got {int(c.min()) if c.min() < 0 else int(c.max())}"
            )
        return c.astype(np.uint64)

    def fields(self, codes: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(sign, exponent field, mantissa field)`` of each code, as uint64.

        Example:
            >>> FORMATS["bf16"].fields(0x3FC0)  # 1.5
            (np.uint64(0), np.uint64(127), np.uint64(64))
        """
        c = self._codes(codes)
        em = self.exp_bits + self.man_bits
        sign = (c >> np.uint64(em)) & np.uint64(1) if self.signed else c * np.uint64(0)
        exponent = (c >> np.uint64(self.man_bits)) & np.uint64(self._e_max_field)
        mantissa = c & np.uint64(2**self.man_bits - 1)
        return sign[()], exponent[()], mantissa[()]

    def _is_nan(self, s, e, m) -> np.ndarray:
        top = e == self._e_max_field
        if self.specials == "ieee":
            return top & (m != 0)
        if self.specials == "fn":
            return top & (m == 2**self.man_bits - 1)
        if self.specials == "fnuz":
            return (s == 1) & (e == 0) & (m == 0)
        if self.specials == "e8m0":
            return top
        return np.zeros(np.shape(e), bool)

    # ------------------------------------------------------------ decode

    def decode(self, codes: ArrayLike) -> NDArray[np.float64]:
        """The value of each code, as float64 (exact: every format here fits).

        Example:
            >>> FORMATS["fp8_e4m3fn"].decode([0x7E, 0x7F, 0x01]).tolist()
            [448.0, nan, 0.001953125]
        """
        s, e, m = (np.asarray(f) for f in self.fields(codes))
        M = self.man_bits
        if self.specials == "e8m0":
            value = np.ldexp(1.0, e.astype(np.int64) - self.bias)
        else:
            normal = e > 0
            significand = m.astype(np.float64) + np.where(normal, 2.0**M, 0.0)
            exponent = np.maximum(e.astype(np.int64), 1) - self.bias - M
            with np.errstate(over="ignore"):  # the top exponent: specials, below
                value = np.ldexp(significand, exponent)
            if self.specials == "ieee":
                value = np.where((e == self._e_max_field) & (m == 0), np.inf, value)
            value = np.where(s == 1, -value, value)
        value = np.where(self._is_nan(s, e, m), np.nan, value)
        return value[()] if np.ndim(codes) == 0 else value

    # ------------------------------------------------------------ encode

    def encode(
        self,
        x: ArrayLike,
        saturate: bool = False,
        *,
        rounding: str = "nearest",
        seed: int | None = None,
    ) -> np.ndarray:
        """Round ``x`` to a value of this format; return the codes.

        ``rounding="nearest"`` (the default) rounds to nearest, ties to even.
        ``rounding="stochastic"`` rounds up with probability equal to the
        fraction of the gap that ``x`` covers, so that the rounding is unbiased
        on average (seeded by ``seed``; not for E8M0).

        Example:
            >>> fp8 = FORMATS["fp8_e4m3fn"]
            >>> fp8.encode([1.0, 0.1, 460.0, 1000.0]).tolist()  # 1000 overflows
            [56, 29, 126, 127]
            >>> fp8.encode([1000.0], saturate=True).tolist()
            [126]

        Taught in ``notebooks/05_low_precision_floats.ipynb``.
        """
        given = np.asarray(x)
        if given.dtype.kind not in "biuf":
            raise TypeError(
                f"x must be real numbers; got an array of dtype {given.dtype}"
            )
        shape = given.shape
        if given.dtype == np.float32 and rounding == "nearest" and _float32_path(self):
            out = _encode_float32(self, given.reshape(-1), saturate).reshape(shape)
            return out[()] if len(shape) == 0 else out
        with np.errstate(invalid="ignore"):  # signalling NaNs are fine here
            x = given.astype(np.float64).reshape(-1)
        if saturate:
            x = np.clip(x, -self.max, self.max)  # NaN stays NaN
        if rounding not in ("nearest", "stochastic"):
            raise ValueError(
                f"rounding must be 'nearest' or 'stochastic'; got {rounding!r}"
            )
        if self.specials == "e8m0":
            if rounding != "nearest":
                raise ValueError("e8m0fnu only rounds to nearest")
            out = _encode_e8m0(self, x)
        else:
            rng = np.random.default_rng(seed) if rounding == "stochastic" else None
            out = _encode(self, x, rng)
            if self.nan_payload and given.dtype.kind == "f":
                out = _keep_payload(self, out, given.reshape(-1))
        out = out.astype(self.code_dtype).reshape(shape)
        return out[()] if len(shape) == 0 else out

    def encode_rational(self, value: numbers.Rational, saturate: bool = False) -> int:
        """The code of the exact number ``value`` (a Fraction or an integer),
        rounded once, as :meth:`encode` rounds.

        ``encode(float(value))`` rounds twice, to float64 and then to this
        format, and is wrong when the first rounding lands on a midpoint of
        this format that ``value`` is not: ``1 + 2**-8 + 10**-30`` is nearer
        bf16's 1.0078125 than its 1.0, yet float64 makes it ``1 + 2**-8``,
        whose tie goes to 1.0.  That is the only case (this format's
        midpoints and overflow thresholds are float64 numbers, and rounding
        to float64 never carries ``value`` past one): there ``value`` lies
        strictly between the float64 number and its neighbour on
        ``value``'s side, and rounds as that neighbour does.

        Example:
            >>> from fractions import Fraction
            >>> bf16 = FORMATS["bf16"]
            >>> q = 1 + Fraction(1, 2**8) + Fraction(1, 10**30)
            >>> bf16.decode(bf16.encode(float(q))), bf16.decode(bf16.encode_rational(q))
            (np.float64(1.0), np.float64(1.0078125))
        """
        return _encode_rational(self, value, saturate)

    def quantize(
        self, x: ArrayLike, saturate: bool = False, **kw
    ) -> NDArray[np.float64]:
        """``decode(encode(x))``: ``x`` rounded to this format, as float64.

        Example:
            >>> FORMATS["fp4_e2m1fn"].quantize([0.3, 2.6, 100.0])
            array([0.5, 3. , 6. ])
        """
        return self.decode(self.encode(x, saturate, **kw))

    def classify(self, codes: ArrayLike) -> NDArray[np.str_]:
        """``"zero"``, ``"subnormal"``, ``"normal"``, ``"inf"`` or ``"nan"`` per code.

        Example:
            >>> FORMATS["fp8_e5m2"].classify([0x00, 0x01, 0x3C, 0x7C, 0x7E]).tolist()
            ['zero', 'subnormal', 'normal', 'inf', 'nan']
        """
        _s, e, m = (np.asarray(f) for f in self.fields(codes))
        value = np.asarray(self.decode(codes))
        kind = np.where(e == 0, np.where(m == 0, "zero", "subnormal"), "normal")
        if self.specials == "e8m0":
            kind = np.full(value.shape, "normal")
        kind = np.where(np.isinf(value), "inf", kind)
        kind = np.where(np.isnan(value), "nan", kind).astype("<U9")
        return kind[()] if np.ndim(codes) == 0 else kind

    def ulp(self, x: ArrayLike) -> NDArray[np.float64]:
        """The gap between ``x`` (rounded to this format) and the next value up
        in magnitude: ``2^(max(e, 1 - bias) - M)`` for a value in binade ``e``.

        Example:
            >>> FORMATS["fp8_e4m3fn"].ulp([1.0, 300.0, 0.0]).tolist()
            [0.125, 32.0, 0.001953125]
        """
        q = np.abs(np.asarray(self.quantize(x), dtype=np.float64))
        _, e2 = np.frexp(np.where(np.isfinite(q) & (q > 0), q, 0.0))
        if self.specials == "e8m0":
            gap = np.where(np.isfinite(q), q, np.nan)
        else:  # zero sits in the subnormal binade
            exponent = np.maximum(e2.astype(np.int64) - 1, 1 - self.bias)
            exponent = np.where(q == 0, 1 - self.bias, exponent)
            gap = np.where(
                np.isfinite(q), np.ldexp(1.0, exponent - self.man_bits), np.nan
            )
        return gap[()] if np.ndim(x) == 0 else gap

    def _step(self, x: ArrayLike, up: bool) -> NDArray[np.float64]:
        x = np.asarray(x, dtype=np.float64)
        beyond = np.inf if self.specials == "ieee" else np.nan
        if self.specials == "e8m0":
            q = np.asarray(self.quantize(np.where(x > 0, x, np.nan)), dtype=np.float64)
            done = (q > x) if up else (q < x)
            moved = q * (2.0 if up else 0.5)
            moved = np.where(
                (moved > self.max) | (moved < self.min_normal), np.nan, moved
            )
            out = np.where(done, q, moved)
        else:
            # order the values by a signed integer key: +-magnitude code
            mask = 2 ** (self.bits - 1) - 1
            top_key = int(self.encode(self.max)) & mask
            inside = np.clip(x, -self.max, self.max)
            q = np.asarray(self.quantize(inside), dtype=np.float64)
            done = (q > x) if up else (q < x)
            code = np.asarray(self.encode(q)).astype(np.int64)
            key = np.where(np.signbit(q), -(code & mask), code & mask)
            old, key = key, key + (1 if up else -1)
            sign_bit = np.uint64(1) << np.uint64(self.bits - 1)
            inside_key = np.clip(key, -top_key, top_key)  # beyond: replaced below
            magnitude = np.abs(inside_key).astype(np.uint64)
            code = np.where(inside_key < 0, sign_bit | magnitude, magnitude)
            if self.specials != "fnuz":  # up from below zero arrives at -0
                code = np.where((key == 0) & (old < 0), sign_bit, code)
            moved = self.decode(code)
            moved = np.where(key > top_key, beyond, moved)
            moved = np.where(key < -top_key, -beyond, moved)
            out = np.where(done, q, moved)
            above, below = x >= self.max, x <= -self.max
            if up:
                out = np.where(above, beyond, np.where(x < -self.max, -self.max, out))
            else:
                out = np.where(below, -beyond, np.where(x > self.max, self.max, out))
        out = np.where(np.isnan(x), np.nan, out)
        return out[()] if out.ndim == 0 else out

    def next_up(self, x: ArrayLike) -> NDArray[np.float64]:
        """The smallest value of this format greater than ``x`` (inf, or NaN for
        formats without inf, past the largest).

        Example:
            >>> FORMATS["fp4_e2m1fn"].next_up([1.0, 2.5, -0.5, 0.0]).tolist()
            [1.5, 3.0, -0.0, 0.5]
        """
        return self._step(x, up=True)

    def next_down(self, x: ArrayLike) -> NDArray[np.float64]:
        """The largest value of this format less than ``x``.

        Example:
            >>> FORMATS["fp4_e2m1fn"].next_down([1.0, 2.5, 0.5]).tolist()
            [0.5, 2.0, 0.0]
        """
        return self._step(x, up=False)

    def all_values(self) -> NDArray[np.float64]:
        """The value of every code, in code order (formats of at most 16 bits).

        Example:
            >>> FORMATS["fp4_e2m1fn"].all_values()[:8].tolist()
            [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]
        """
        if self.bits > 16:
            raise ValueError(
                f"all_values lists at most 2**16 codes; {self.name} has 2**{self.bits}"
            )
        return self.decode(np.arange(2**self.bits, dtype=np.uint64))

    def positive_values(self) -> NDArray[np.float64]:
        """The positive finite values, in increasing order (at most 16 bits).

        Example:
            >>> FORMATS["fp4_e2m1fn"].positive_values().tolist()
            [0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]

        Taught in ``notebooks/05_low_precision_floats.ipynb``.
        """
        values = self.all_values()
        return np.unique(values[np.isfinite(values) & (values > 0)])


def flushed(x: ArrayLike, x_q: ArrayLike) -> float:
    """The share of the values of ``x`` that are not zero but became zero in
    ``x_q``, their rounded copy: the underflow of a cast or a scaled cast.

    Example:
        >>> x = [1.0, 1e-3, 0.0, -1e-5]
        >>> flushed(x, FORMATS["fp8_e4m3fn"].quantize(x))  # 0 was 0 already
        0.25

    Taught in ``notebooks/05_low_precision_floats.ipynb``.
    """
    x, x_q = np.asarray(x), np.asarray(x_q)
    if x.shape != x_q.shape:
        raise ValueError(f"x and x_q must have one shape; got {x.shape}, {x_q.shape}")
    return float(np.mean((x != 0) & (x_q == 0))) if x.size else 0.0


FORMATS: dict[str, FloatFormat] = {
    f.name: f
    for f in (
        FloatFormat("fp64", 11, 52, nan_payload=True),
        FloatFormat("fp32", 8, 23, nan_payload=True),
        FloatFormat("tf32", 8, 10, nan_payload=True),
        FloatFormat("fp16", 5, 10, nan_payload=True),
        FloatFormat("bf16", 8, 7),
        FloatFormat("fp8_e4m3fn", 4, 3, specials="fn"),
        FloatFormat("fp8_e5m2", 5, 2),
        FloatFormat("fp8_e4m3fnuz", 4, 3, specials="fnuz"),
        FloatFormat("fp8_e5m2fnuz", 5, 2, specials="fnuz"),
        FloatFormat("fp6_e2m3fn", 2, 3, specials="none"),
        FloatFormat("fp6_e3m2fn", 3, 2, specials="none"),
        FloatFormat("fp4_e2m1fn", 2, 1, specials="none"),
        FloatFormat("e8m0fnu", 8, 0, specials="e8m0"),
    )
}
"""The formats of the course, named as ml_dtypes names them."""

"""Fixed point: fractions on integer hardware, in the Qm.n formats.

A Qm.n number is an integer code ``q`` read as ``q * 2**-n``: ``n`` fraction
bits fix the step (the *resolution*, ``2**-n``) and ``m`` integer bits the
range.  This module follows **TI's convention** (its C6000 DSP manuals):
``m = int_bits`` counts the integer bits *without* the sign bit, so a signed
Qm.n word has ``1 + m + n`` bits (Q15 = Q0.15 is a 16-bit word) and an
unsigned UQm.n word ``m + n``.  ARM's convention (CMSIS-DSP's ``q15_t`` is
"1.15") counts the sign bit in ``m``: ARM's Q1.15 is Q0.15 here.  Both agree
that Q15 means 15 fraction bits; check which one a data sheet uses.

=================  ==================================  =======================
format             codes ``q``                         values ``q * 2**-n``
=================  ==================================  =======================
signed Qm.n        ``[-2**(m+n), 2**(m+n) - 1]``       ``[-2**m, 2**m - 2**-n]``
unsigned UQm.n     ``[0, 2**(m+n) - 1]``               ``[0, 2**m - 2**-n]``
=================  ==================================  =======================

:func:`to_fixed` turns reals into codes with one of six rounding modes and
one of three overflow rules, exactly: ``x * 2**n`` is exact in float64, and
every rounding and wrap is done on exact values, never on ``x + 0.5``.
:func:`rescale`, :func:`add`, :func:`multiply` and
:func:`multiply_by_constant` are integer-only arithmetic with explicit result
formats; :func:`quantize_multiplier` writes a real multiplier as ``m0 *
2**-shift``, the requantization step of integer-only inference.  The exact
rounding and overflow kernels live in ``qlib/_fixed_rounding.py``.

Taught in ``notebooks/03_fixed_point.ipynb``.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._fixed_rounding import (
    _codes,
    _fit,
    _nonfinite,
    _overflow,
    _overflow_error,
    _round_real,
    _round_shift,
)

__all__ = [
    "OVERFLOWS",
    "ROUNDINGS",
    "QFormat",
    "add",
    "from_fixed",
    "multiply",
    "multiply_by_constant",
    "product_format",
    "quantize",
    "quantize_multiplier",
    "rescale",
    "sum_format",
    "to_fixed",
]

ROUNDINGS = (
    "floor",
    "ceil",
    "toward_zero",
    "nearest_away",
    "nearest_even",
    "stochastic",
)
OVERFLOWS = ("saturate", "wrap", "error")
Rounding = Literal[
    "floor", "ceil", "toward_zero", "nearest_away", "nearest_even", "stochastic"
]
Overflow = Literal["saturate", "wrap", "error"]


def _count(value: object, name: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer in [{lo}, {hi}]; got {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be in [{lo}, {hi}]; got {value}")
    return int(value)


def _choice(value: object, name: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
    return str(value)


@dataclass(frozen=True)
class QFormat:
    """A fixed-point format Qm.n (TI's convention: ``int_bits`` excludes the sign).

    Args:
        int_bits: integer bits m, not counting the sign bit (>= 0).
        frac_bits: fraction bits n (>= 0).
        signed: two's-complement codes if True, unsigned (UQm.n) if False.

    The word has ``1 + m + n`` bits (signed, at most 64) or ``m + n`` bits
    (unsigned, 1 to 63: codes are int64).

    Example:
        >>> f = QFormat(3, 4)
        >>> f.word_bits, f.resolution, f.min, f.max
        (8, 0.0625, -8.0, 7.9375)
    """

    int_bits: int
    frac_bits: int
    signed: bool = True

    def __post_init__(self) -> None:
        # stored as Python ints: numpy integers would overflow in 2**word_bits
        object.__setattr__(self, "int_bits", _count(self.int_bits, "int_bits", 0, 64))
        object.__setattr__(
            self, "frac_bits", _count(self.frac_bits, "frac_bits", 0, 64)
        )
        if not isinstance(self.signed, bool):
            raise TypeError(f"signed must be True or False; got {self.signed!r}")
        top = 64 if self.signed else 63
        if not 1 <= self.word_bits <= top:
            kind = (
                "signed: 1 + int_bits + frac_bits"
                if self.signed
                else ("unsigned: int_bits + frac_bits")
            )
            raise ValueError(
                f"the word ({kind}) must have 1 to {top} bits; got {self.word_bits}"
            )

    @property
    def word_bits(self) -> int:
        return self.int_bits + self.frac_bits + int(self.signed)

    @property
    def resolution(self) -> float:
        """The step between neighbouring values, ``2**-frac_bits``."""
        return math.ldexp(1.0, -self.frac_bits)

    @property
    def min_code(self) -> int:
        return -(2 ** (self.word_bits - 1)) if self.signed else 0

    @property
    def max_code(self) -> int:
        return 2 ** (self.word_bits - int(self.signed)) - 1

    @property
    def min(self) -> float:
        """The most negative value (0 for unsigned formats)."""
        return math.ldexp(float(self.min_code), -self.frac_bits)

    @property
    def max(self) -> float:
        """The largest value, ``2**int_bits - 2**-frac_bits`` (to float64)."""
        return math.ldexp(float(self.max_code), -self.frac_bits)

    @property
    def name(self) -> str:
        return f"{'' if self.signed else 'U'}Q{self.int_bits}.{self.frac_bits}"

    def __str__(self) -> str:
        return self.name


def _check_format(fmt: object, name: str = "fmt") -> QFormat:
    if not isinstance(fmt, QFormat):
        raise TypeError(f"{name} must be a QFormat; got {type(fmt).__name__}")
    return fmt


def _out(result: np.ndarray, like: np.ndarray):
    return result[()] if like.ndim == 0 else result


# ------------------------------------------------------------- reals -> codes


def to_fixed(
    x: ArrayLike,
    fmt: QFormat,
    rounding: Rounding = "nearest_even",
    overflow: Overflow = "saturate",
    rng: np.random.Generator | int | None = None,
) -> NDArray[np.int64]:
    """The codes ``q`` (int64) whose values ``q * 2**-frac_bits`` stand for ``x``.

    Args:
        x: real values (converted to float64). NaN has no code and raises;
            +-inf saturates to the ends, and raises with ``"wrap"``/``"error"``.
        fmt: the :class:`QFormat`.
        rounding: ``"floor"``, ``"ceil"``, ``"toward_zero"``, ``"nearest_away"``
            (ties away from zero), ``"nearest_even"`` (ties to even, IEEE's
            default), or ``"stochastic"`` (up with probability equal to the
            fraction: unbiased; draws from ``rng``).
        overflow: ``"saturate"`` (clip to the range), ``"wrap"`` (keep the low
            word_bits bits, as integer hardware does) or ``"error"``.
        rng: a Generator or seed for ``"stochastic"``; None draws a fresh one.

    Example:
        >>> f = QFormat(0, 3)        # Q0.3: codes -8..7, step 1/8
        >>> to_fixed([0.3, 0.3125, -1.5, 0.99], f)
        array([ 2,  2, -8,  7])
        >>> to_fixed(0.99, f, overflow="wrap")
        np.int64(-8)
    """
    fmt = _check_format(fmt)
    _choice(rounding, "rounding", ROUNDINGS)
    _choice(overflow, "overflow", OVERFLOWS)
    a = np.asarray(x)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"x must hold real numbers; got dtype {a.dtype}")
    with np.errstate(over="ignore", invalid="ignore"):
        # exact, or inf beyond float64; a fresh 1-d array, rounded in place
        s = a.astype(np.float64, copy=False).ravel() * math.ldexp(1.0, fmt.frac_bits)
        if not math.isfinite(np.add.reduce(s)):  # a NaN, an inf or a huge value
            s = _nonfinite(a, s, overflow)
        r = _round_real(s, rounding, rng)
    return _out(_overflow(r, fmt, overflow).reshape(a.shape), a)


def from_fixed(q: ArrayLike, fmt: QFormat) -> NDArray[np.float64]:
    """The values ``q * 2**-frac_bits`` of codes ``q`` (float64; exact for
    words of up to 53 bits, rounded to nearest beyond).

    Example:
        >>> from_fixed([2, -8, 7], QFormat(0, 3))
        array([ 0.25 , -1.   ,  0.875])
    """
    fmt = _check_format(fmt)
    c = _codes(q, "q", fmt)
    return _out(np.ldexp(c.astype(np.float64), -fmt.frac_bits), c)


def quantize(
    x: ArrayLike,
    fmt: QFormat,
    rounding: Rounding = "nearest_even",
    overflow: Overflow = "saturate",
    rng: np.random.Generator | int | None = None,
) -> NDArray[np.float64]:
    """``from_fixed(to_fixed(x, fmt, ...), fmt)``: ``x`` on ``fmt``'s grid.

    Example:
        >>> quantize([0.3, 2.0], QFormat(0, 3))
        array([0.25 , 0.875])
    """
    return from_fixed(to_fixed(x, fmt, rounding, overflow, rng), fmt)


# ----------------------------------------------------- integer-only arithmetic


def rescale(
    q: ArrayLike,
    fmt: QFormat,
    out_fmt: QFormat,
    rounding: Rounding = "nearest_even",
    overflow: Overflow = "saturate",
    rng: np.random.Generator | int | None = None,
) -> NDArray[np.int64]:
    """Codes of ``fmt`` re-expressed in ``out_fmt``, in integers only: fewer
    fraction bits round (``rounding``), more shift left; then ``overflow``.

    Example:
        >>> rescale([3, 5, -3], QFormat(0, 3), QFormat(0, 1))   # 3/8, 5/8, -3/8
        array([ 1,  1, -1])
    """
    fmt, out_fmt = _check_format(fmt), _check_format(out_fmt, "out_fmt")
    _choice(rounding, "rounding", ROUNDINGS)
    _choice(overflow, "overflow", OVERFLOWS)
    c = _codes(q, "q", fmt)
    k = fmt.frac_bits - out_fmt.frac_bits
    if k >= 0:
        _count(k, "the fraction bits dropped", 0, 63)
        r = _round_shift(c, k, rounding, rng)
    elif overflow == "wrap":  # a uint64 shift keeps the low 64 bits, exactly
        r = (c.astype(np.uint64) << np.uint64(-k)).astype(np.int64)
    else:  # codes that leave out_fmt are known before the shift overflows
        hi, lo = out_fmt.max_code >> -k, -(-out_fmt.min_code >> -k)
        if overflow == "error" and c.size and (c.max() > hi or c.min() < lo):
            raise _overflow_error("the result", out_fmt)
        r = np.clip(c, lo, hi) << np.int64(-k)
        r = np.where(c > hi, out_fmt.max_code, np.where(c < lo, out_fmt.min_code, r))
    return _out(_fit(r, out_fmt, overflow, "the result"), c)


def sum_format(fa: QFormat, fb: QFormat) -> QFormat:
    """The format that holds every exact sum of a ``fa`` and a ``fb`` value:
    one more integer bit than the wider, the finer resolution.

    Example:
        >>> str(sum_format(QFormat(3, 4), QFormat(1, 6)))
        'Q4.6'
    """
    fa, fb = _check_format(fa, "fa"), _check_format(fb, "fb")
    return QFormat(
        max(fa.int_bits, fb.int_bits) + 1,
        max(fa.frac_bits, fb.frac_bits),
        fa.signed or fb.signed,
    )


def product_format(fa: QFormat, fb: QFormat) -> QFormat:
    """The format that holds every exact product: fraction bits add, and so
    do the words (a signed Qa.b times a signed Qc.d is Q(a+c+1).(b+d): only
    (-2**a) * (-2**c) needs the extra bit).

    Example:
        >>> str(product_format(QFormat(0, 15), QFormat(0, 15)))
        'Q1.30'
    """
    fa, fb = _check_format(fa, "fa"), _check_format(fb, "fb")
    signed = fa.signed or fb.signed
    word = fa.word_bits + fb.word_bits
    if word > (64 if signed else 63):
        raise ValueError(
            f"the exact product of {fa} and {fb} needs a {word}-bit word: more than "
            "int64 holds; rescale the operands first"
        )
    frac = fa.frac_bits + fb.frac_bits
    return QFormat(word - frac - int(signed), frac, signed)


def add(
    a: ArrayLike,
    fa: QFormat,
    b: ArrayLike,
    fb: QFormat,
    out_fmt: QFormat | None = None,
    rounding: Rounding = "nearest_even",
    overflow: Overflow = "saturate",
) -> NDArray[np.int64]:
    """Codes of ``a`` (in ``fa``) plus ``b`` (in ``fb``): the exact sum in
    :func:`sum_format`, then rescaled into ``out_fmt`` (default: exact).

    Example:
        >>> add([12], QFormat(3, 4), [-5], QFormat(1, 2))   # 0.75 - 1.25
        array([-8])
    """
    full = sum_format(fa, fb)
    if full.word_bits > 63:
        raise ValueError(f"the exact sum format {full} is too wide for int64")
    x = _codes(a, "a", fa) << np.int64(full.frac_bits - fa.frac_bits)
    y = _codes(b, "b", fb) << np.int64(full.frac_bits - fb.frac_bits)
    exact = x + y
    if out_fmt is None:
        return exact
    return rescale(exact, full, out_fmt, rounding, overflow)


def multiply(
    a: ArrayLike,
    fa: QFormat,
    b: ArrayLike,
    fb: QFormat,
    out_fmt: QFormat | None = None,
    rounding: Rounding = "nearest_even",
    overflow: Overflow = "saturate",
    rng: np.random.Generator | int | None = None,
) -> NDArray[np.int64]:
    """Codes of ``a * b``: the full-precision product in :func:`product_format`,
    then rescaled into ``out_fmt`` with ``rounding`` and ``overflow``.

    Example:
        >>> q15 = QFormat(0, 15)
        >>> multiply([2**14], q15, [2**14], q15, out_fmt=q15)   # 0.5 * 0.5
        array([8192])
    """
    full = product_format(fa, fb)
    x, y = _codes(a, "a", fa), _codes(b, "b", fb)
    exact = x * y  # fits: full has at most 64 bits
    if out_fmt is None:
        return exact
    return rescale(exact, full, out_fmt, rounding, overflow, rng)


def quantize_multiplier(real: float, bits: int = 31) -> tuple[int, int]:
    """A positive real multiplier as ``m0 * 2**-shift`` with ``m0`` an integer
    of exactly ``bits`` bits (``2**(bits-1) <= m0 < 2**bits``), rounded to
    nearest (ties away, as gemmlowp's QuantizeMultiplier).

    Example:
        >>> quantize_multiplier(0.0072474)
        (1992150143, 38)
    """
    _count(bits, "bits", 2, 62)
    if not (isinstance(real, numbers.Real) and math.isfinite(real) and real > 0):
        raise ValueError(f"real must be a finite number > 0; got {real!r}")
    mantissa, exponent = math.frexp(float(real))  # real = mantissa * 2**exponent
    m = int(math.ldexp(mantissa, 53))  # the 53-bit significand, exactly
    m0 = m << (bits - 53) if bits >= 53 else (m + 2 ** (52 - bits)) >> (53 - bits)
    if m0 == 2**bits:  # rounded up to the next power of two
        m0, exponent = m0 // 2, exponent + 1
    return m0, bits - exponent


def multiply_by_constant(
    q: ArrayLike,
    m0: int,
    shift: int,
    rounding: Rounding = "nearest_away",
    out_fmt: QFormat | None = None,
    overflow: Overflow = "saturate",
) -> NDArray[np.int64]:
    """``q * m0 * 2**-shift`` rounded once, exactly, in integers: a real
    multiplier applied as an integer multiply and a right shift.

    Args:
        q: int64 codes; ``|q| * m0`` must stay below 2**63.
        m0, shift: from :func:`quantize_multiplier` (``0 <= shift <= 63``).
        rounding: as in :func:`to_fixed`, except ``"stochastic"``.
        out_fmt: if given, the result is fitted into it by ``overflow``.

    Example:
        >>> m0, shift = quantize_multiplier(0.0072474)
        >>> multiply_by_constant([1000, -1000, 69], m0, shift)
        array([ 7, -7,  1])
    """
    _choice(rounding, "rounding", ROUNDINGS[:-1])
    if isinstance(m0, bool) or not isinstance(m0, numbers.Integral) or m0 < 0:
        raise ValueError(f"m0 must be a non-negative integer; got {m0!r}")
    _count(shift, "shift", 0, 63)
    c = _codes(q, "q")
    if c.size and max(-int(c.min()), int(c.max())) * int(m0) >= 2**63:
        raise ValueError("q * m0 does not fit in int64: use fewer multiplier bits")
    r = _round_shift(c * np.int64(m0), shift, rounding)
    if out_fmt is not None:
        r = _fit(r, _check_format(out_fmt, "out_fmt"), overflow, "the product")
    return _out(r, c)

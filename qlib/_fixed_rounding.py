"""Exact rounding and overflow: the machinery behind :mod:`qlib.fixedpoint`.

Reals are rounded to integers with six rounding modes on exact float64 values
(``x * 2**n`` is exact, and no mode adds 0.5 before rounding), codes are
brought into a format by saturating, wrapping modulo ``2**word_bits`` or
refusing, and integer codes are shifted right with the same six modes on
their exact remainders.  Kept out of ``qlib/fixedpoint.py`` so that the
chapter module reads in one sitting.

Learners import from :mod:`qlib.fixedpoint`; rounding and overflow are taught
in ``notebooks/03_fixed_point.ipynb``.
"""

from __future__ import annotations

import math
import numbers
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike, NDArray

if TYPE_CHECKING:
    from .fixedpoint import QFormat


# ------------------------------------------------------------- reals -> codes


def _rng(rng: object) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or (isinstance(rng, numbers.Integral) and not isinstance(rng, bool)):
        return np.random.default_rng(rng)
    raise TypeError(
        f"rng must be a numpy Generator, an integer seed or None; got {rng!r}"
    )


def _round_real(s: np.ndarray, rounding: str, rng: object) -> np.ndarray:
    """Round exact float64 values to integers (as float64), exactly, in place
    where it can (``s`` is the caller's scratch array)."""
    if rounding == "floor":
        return np.floor(s, out=s)
    if rounding == "ceil":
        return np.ceil(s, out=s)
    if rounding == "toward_zero":
        return np.trunc(s, out=s)
    if rounding == "nearest_even":
        return np.rint(s, out=s)  # IEEE roundTiesToEven, exact
    with np.errstate(invalid="ignore"):  # inf - inf: infinities stay put
        if rounding == "nearest_away":
            r = np.rint(s)  # right except at ties, where it picked the even one
            d = np.subtract(s, r, out=s)  # exact: s and rint(s) are that close
            tie = np.flatnonzero((d == 0.5) | (d == -0.5))
            p = r[tie] + d[tie]  # the tie k + 1/2 itself
            r[tie] = p + np.copysign(0.5, p)  # the neighbour away from zero
            return r
        low = np.floor(s)
        frac = np.subtract(s, low, out=s)  # within 2**-54 of the exact fraction
        up = _rng(rng).random(s.shape) < frac  # P(up) = frac
        return np.add(low, up, out=low)


def _nonfinite(a: np.ndarray, s: np.ndarray, overflow: str) -> np.ndarray:
    """``s = x * 2**frac_bits`` checked for NaN and infinities of ``x``."""
    if np.isnan(s).any():
        raise ValueError("x holds NaN, which no fixed-point code stands for")
    if overflow != "saturate" and np.isinf(a.astype(np.float64, copy=False)).any():
        raise ValueError(
            f"x holds an infinity, which overflow={overflow!r} cannot map to a "
            "code; use overflow='saturate'"
        )
    if overflow == "wrap":
        # |s| >= 2**1024 means its last bit is worth >= 2**971: 0 mod 2**64
        s = np.where(np.isinf(s), 0.0, s)
    return s


def _wrap(q: np.ndarray, fmt: QFormat) -> np.ndarray:
    """int64 codes taken modulo 2**word_bits into the format's code range."""
    w = fmt.word_bits
    if w == 64:
        return q
    u = q.astype(np.uint64) & np.uint64(2**w - 1)
    if fmt.signed:
        negative = (u >> np.uint64(w - 1)).astype(bool)
        signed = u.astype(np.int64)
        return np.where(negative, signed - 2 ** (w - 1) - 2 ** (w - 1), signed)
    return u.astype(np.int64)


def _overflow(
    r: np.ndarray, fmt: QFormat, overflow: str, name: str = "x"
) -> NDArray[np.int64]:
    """Integer-valued float64 ``r`` -> int64 codes of ``fmt``, by ``overflow``."""
    w, top = fmt.word_bits, fmt.word_bits - int(fmt.signed)
    if w <= 53 and overflow != "wrap":  # the codes are exact in float64
        lo, hi = fmt.min_code, fmt.max_code
        if overflow == "saturate":
            return np.clip(r, lo, hi, out=r).astype(np.int64)
        if r.size == 0 or (r.min() >= lo and r.max() <= hi):
            return r.astype(np.int64)
    high = r >= math.ldexp(1.0, top)  # above max_code = 2**top - 1
    low = r < (-math.ldexp(1.0, w - 1) if fmt.signed else 0.0)
    if overflow == "error" and (high.any() or low.any()):
        bad = r[high | low].flat[0]
        raise ValueError(
            f"{name} holds a value outside {fmt} (codes [{fmt.min_code}, "
            f"{fmt.max_code}]): code {bad:.17g}; use overflow='saturate' or 'wrap'"
        )
    if overflow == "wrap":
        # exact residue mod 2**w, taken in floats first for huge values
        big = np.abs(r) >= 2.0**63
        r = np.where(big, np.fmod(r, math.ldexp(1.0, w)), r)
        r = np.where(
            r >= 2.0**63, r - 2.0**64, np.where(r < -(2.0**63), r + 2.0**64, r)
        )
        return _wrap(r.astype(np.int64), fmt)
    q = np.where(high | low, 0.0, r).astype(np.int64)
    q = np.where(high, fmt.max_code, q)
    return np.where(low, fmt.min_code, q)


# ----------------------------------------------------- integer-only arithmetic


def _codes(q: ArrayLike, name: str, fmt: QFormat | None = None) -> np.ndarray:
    """int64 codes from ``q``; ValueError unless integers (in ``fmt``'s range)."""
    c = np.asarray(q)
    if c.dtype.kind == "O" and all(isinstance(v, numbers.Integral) for v in c.flat):
        c = c.astype(np.int64)
    if c.dtype.kind not in "biu":
        raise ValueError(f"{name} must hold integer codes; got dtype {c.dtype}")
    if c.dtype == np.uint64 and c.size and c.max() > 2**63 - 1:
        raise ValueError(f"{name} holds codes beyond int64")
    c = c.astype(np.int64)
    if (
        fmt is not None
        and c.size
        and (c.min() < fmt.min_code or c.max() > fmt.max_code)
    ):
        raise ValueError(
            f"{name} holds codes outside {fmt}'s [{fmt.min_code}, {fmt.max_code}]"
        )
    return c


def _round_shift(
    q: np.ndarray, k: int, rounding: str, rng: object = None
) -> np.ndarray:
    """``q * 2**-k`` rounded to an integer, exactly, for int64 ``q`` and
    ``0 <= k <= 63``."""
    if k == 0:
        return q
    low = q >> np.int64(k)  # floor
    rem = q & np.int64(2**k - 1)  # q - low * 2**k, in [0, 2**k)
    half = np.int64(2 ** (k - 1))
    if rounding == "floor":
        up = np.zeros(q.shape, dtype=bool)
    elif rounding == "ceil":
        up = rem != 0
    elif rounding == "toward_zero":
        up = (rem != 0) & (q < 0)
    elif rounding == "nearest_away":
        up = (rem > half) | ((rem == half) & (q >= 0))
    elif rounding == "nearest_even":
        up = (rem > half) | ((rem == half) & (low & 1).astype(bool))
    else:  # stochastic: up with probability rem / 2**k
        draw = _rng(rng).integers(0, 2**k, size=q.shape, dtype=np.uint64)
        up = draw < rem.astype(np.uint64)
    return low + up


def _overflow_error(name: str, fmt: QFormat) -> ValueError:
    return ValueError(
        f"{name} does not fit in {fmt} (codes [{fmt.min_code}, {fmt.max_code}]); "
        "use overflow='saturate' or 'wrap'"
    )


def _fit(r: np.ndarray, fmt: QFormat, overflow: str, name: str) -> np.ndarray:
    """int64 codes into ``fmt``'s code range by ``overflow``."""
    high, low = r > fmt.max_code, r < fmt.min_code
    if overflow == "error" and (high.any() or low.any()):
        raise _overflow_error(name, fmt)
    if overflow == "wrap":
        return _wrap(r, fmt)
    return np.clip(r, fmt.min_code, fmt.max_code)

"""The bit-level machinery behind :mod:`qlib.integers`.

Argument checks (widths, integer arrays, codes in range), the smallest
unsigned dtype of a width, the n-bit wrap and sign extension, and the
encoders of the two schemes that need more than a wrap (sign-magnitude and
ones' complement, each with its own kind of overflow), kept out of
``qlib/integers.py`` so that the chapter module reads in one sitting.

Learners import from :mod:`qlib.integers`; the encodings are taught in
``notebooks/02_integer_encodings.ipynb``.
"""

from __future__ import annotations

import numbers

import numpy as np
from numpy.typing import ArrayLike

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _check_bits(bits: object, name: str = "bits", lo: int = 1, hi: int = 64) -> int:
    if isinstance(bits, bool) or not isinstance(bits, numbers.Integral):
        raise TypeError(f"{name} must be an integer in [{lo}, {hi}]; got {bits!r}")
    if not lo <= bits <= hi:
        raise ValueError(f"{name} must be in [{lo}, {hi}]; got {bits}")
    return int(bits)


def _as_int_array(values: ArrayLike, name: str = "values") -> np.ndarray:
    """Return ``values`` as an int64 array, or uint64 when it needs the top bit.

    Floats are accepted when they hold whole numbers; NaN, infinities,
    fractions, strings and complex numbers raise.
    """
    v = np.asarray(values)
    kind = v.dtype.kind
    if kind == "b":
        return v.astype(np.int64)
    if kind == "i":
        return v.astype(np.int64, copy=False)
    if kind == "u":
        if v.dtype.itemsize < 8 or v.size == 0 or v.max() <= _INT64_MAX:
            return v.astype(np.int64)
        return v
    if kind == "f":
        bad = ~np.isfinite(v)
        if bad.any():
            raise ValueError(f"{name} must be integers; got {v[bad].flat[0]}")
        frac = v != np.floor(v)
        if frac.any():
            raise ValueError(f"{name} must be integers; got {v[frac].flat[0]}")
        if v.size == 0 or (v.min() >= -(2.0**63) and v.max() < 2.0**63):
            return v.astype(np.int64)
        if v.min() >= 0 and v.max() < 2.0**64:
            return v.astype(np.uint64)
        raise ValueError(f"{name} must lie in [-2**63, 2**64 - 1]; got {v.max()}")
    if kind == "O":
        for dtype in (np.int64, np.uint64):
            try:
                return v.astype(dtype)
            except (OverflowError, TypeError, ValueError):
                continue
        raise ValueError(
            f"{name} must be integers in [-2**63, 2**64 - 1] "
            "(all within int64, or all within uint64)"
        )
    raise TypeError(f"{name} must be integers; got an array of dtype {v.dtype}")


def _as_codes(codes: ArrayLike, bits: int, name: str = "codes") -> np.ndarray:
    """Return ``codes`` as an unsigned array after checking 0 <= code < 2**bits.

    Unsigned input keeps its dtype (no copy); other integers become uint64.
    """
    c = np.asarray(codes)
    if c.dtype.kind != "u":
        c = _as_int_array(c, name)
    if c.size and not (c.dtype.kind == "u" and 8 * c.dtype.itemsize <= bits):
        lo, hi = (0, c.max()) if c.dtype.kind == "u" else (c.min(), c.max())
        if lo < 0 or int(hi) > 2**bits - 1:
            bad = int(lo) if lo < 0 else int(hi)
            raise ValueError(
                f"{name} must be in [0, 2**bits - 1] = [0, {2**bits - 1}] "
                f"for bits={bits}; got {bad}"
            )
    return c if c.dtype.kind == "u" else c.astype(np.uint64)


def _scalar_or_array(result: np.ndarray, like: np.ndarray) -> np.ndarray:
    """Give ``result`` the shape of ``like``; a NumPy scalar if ``like`` is 0-d."""
    result = np.asarray(result).reshape(np.shape(like))
    return result[()] if np.ndim(like) == 0 else result


def _code_dtype(n: int) -> np.dtype:
    """The smallest unsigned dtype of at least ``n`` bits (``n`` already checked)."""
    for dtype in (np.uint8, np.uint16, np.uint32, np.uint64):
        if n <= 8 * np.dtype(dtype).itemsize:
            return np.dtype(dtype)
    raise AssertionError("unreachable")


def _low_bits(v: np.ndarray, n: int) -> np.ndarray:
    """``v mod 2**n`` as an n-bit pattern (two's-complement wrap)."""
    dtype = _code_dtype(n)
    if n == 8 * dtype.itemsize:
        return v.astype(dtype)  # a narrowing cast keeps exactly the low n bits
    return (v & (2**n - 1)).astype(dtype)


def _clip(v: np.ndarray, lo: int, hi: int) -> np.ndarray:
    info = np.iinfo(v.dtype)
    lo, hi = max(lo, int(info.min)), min(hi, int(info.max))
    if v.size and (v.min() < lo or v.max() > hi):
        v = np.clip(v, np.array(lo, v.dtype), np.array(hi, v.dtype))
    if v.dtype == np.uint64 and hi <= _INT64_MAX:
        v = v.astype(np.int64)
    return v


def _check_in_range(v: np.ndarray, lo: int, hi: int, bits: int, scheme: str) -> None:
    if v.size == 0:
        return
    vmin, vmax = int(v.min()), int(v.max())
    if vmin < lo or vmax > hi:
        bad = vmin if vmin < lo else vmax
        raise ValueError(
            f"values must be in [{lo}, {hi}] for bits={bits}, scheme={scheme!r} "
            f"with overflow='error'; got {bad} "
            "(pass overflow='wrap' or overflow='saturate' to allow it)"
        )


def _encode_sign_magnitude(v: np.ndarray, n: int, wrap: bool) -> np.ndarray:
    dtype = _code_dtype(n)
    top = dtype.type(n - 1)
    if not wrap:  # in range: start from the n-bit two's-complement code t
        t = _low_bits(v, n)
        neg = t >> top  # 1 for negative values, else 0
        mag = ((t ^ (-neg)) + neg) & dtype.type(2**n - 1)  # negate where neg
        return mag | (neg << top)
    if v.dtype == np.uint64:
        neg = np.zeros(v.shape, bool)
        mag = v
    else:
        neg = v < 0
        # abs(-2**63) stays -2**63 in int64, whose uint64 view is 2**63: exact.
        mag = np.abs(v).view(np.uint64)
    mag = mag & np.uint64(2 ** (n - 1) - 1)  # wrap: keep the magnitude bits
    out = mag.astype(dtype)
    out |= (neg & (mag != 0)).astype(dtype) << top  # never write -0
    return out


def _encode_ones_complement(v: np.ndarray, n: int, wrap: bool) -> np.ndarray:
    dtype = _code_dtype(n)
    if not wrap:
        # -y is stored as ~y = 2**n - 1 - y: the two's-complement code minus one
        t = _low_bits(v, n)
        return (t - (t >> dtype.type(n - 1))) & dtype.type(2**n - 1)
    # ones' complement arithmetic is arithmetic modulo 2**n - 1 (end-around carry)
    m = 2**n - 1
    if v.dtype == np.uint64:
        r = v % np.uint64(m)
    elif n < 64:
        r = np.mod(v, m)
    else:
        u = v.view(np.uint64)
        r = np.where(v < 0, u - np.uint64(1), u)
    return r.astype(dtype)


def _sign_extend(c: np.ndarray, n: int) -> np.ndarray:
    """Read n-bit patterns (any unsigned dtype) as two's complement, giving int64."""
    if 8 * c.dtype.itemsize == n:  # the pattern fills the word: reinterpret it
        return c.view(f"int{n}").astype(np.int64)
    out = c.astype(np.int64) if n < 64 else c.astype(np.uint64).view(np.int64)
    shift = np.int64(64 - n)
    out <<= shift  # move the sign bit to the top, then shift back arithmetically
    out >>= shift
    return out

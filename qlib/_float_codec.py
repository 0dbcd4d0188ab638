"""How :meth:`qlib.floats.FloatFormat.encode` turns reals into codes.

The rounding machinery behind that one method, kept out of ``qlib/floats.py``
so that the chapter module reads in one sitting: the general rounding on
float64 (to nearest even, or stochastic; any ExMy format), a fast path on
float32 bit patterns for the formats narrower than float32, E8M0's rounding on
a linear scale, and the codes written for overflow, NaN and NaN payloads.
Every function takes the :class:`~qlib.floats.FloatFormat` as its first
argument.

Learners import from :mod:`qlib.floats`; the rounding is taught in
``notebooks/04_ieee754.ipynb`` and ``notebooks/05_low_precision_floats.ipynb``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .floats import FloatFormat


def _nan_code(fmt: FloatFormat, sign: np.ndarray) -> np.ndarray:
    top = fmt.exp_bits + fmt.man_bits
    if fmt.specials == "ieee":  # a quiet NaN: top mantissa bit set
        body = (fmt._e_max_field << fmt.man_bits) | (1 << (fmt.man_bits - 1))
        return (sign << np.uint64(top)) | np.uint64(body)
    if fmt.specials == "fn":
        return (sign << np.uint64(top)) | np.uint64(2**top - 1)
    if fmt.specials == "fnuz":
        return np.full(sign.shape, 2**top, np.uint64)
    if fmt.specials == "e8m0":
        return np.full(sign.shape, 2**fmt.bits - 1, np.uint64)
    # no NaN at all: ml_dtypes writes a zero with the sign bit inverted
    return (sign ^ np.uint64(1)) << np.uint64(top)


def _encode(
    fmt: FloatFormat, x: np.ndarray, rng: np.random.Generator | None = None
) -> np.ndarray:
    M = fmt.man_bits
    sign = np.signbit(x).astype(np.uint64)
    a = np.abs(x)
    finite = np.isfinite(a)
    a_fin = np.where(finite, a, 0.0)
    _, e2 = np.frexp(a_fin)  # a = f * 2**e2, f in [0.5, 1)
    emin = 1 - fmt.bias
    e_eff = np.maximum(e2.astype(np.int64) - 1, emin)  # binade (subnormals: emin)
    scaled = np.ldexp(a_fin, M - e_eff)  # in units of the ulp: exact
    if rng is None:
        r = np.rint(scaled)  # ties to even
    else:  # up with probability frac(scaled)
        r = np.floor(scaled) + (rng.random(scaled.shape) < scaled % 1)
    carry = r >= 2.0 ** (M + 1)  # rounded up into the next binade
    r = np.where(carry, r / 2, r)
    e_eff = e_eff + carry
    normal = r >= 2.0**M
    field_e = np.where(normal, e_eff + fmt.bias, 0).astype(np.uint64)
    field_m = (r - np.where(normal, 2.0**M, 0.0)).astype(np.uint64)
    top = np.uint64(fmt.exp_bits + fmt.man_bits)
    code = (sign << top) | (field_e << np.uint64(M)) | field_m
    if fmt.specials == "fnuz":  # no negative zero
        code = np.where((field_e == 0) & (field_m == 0), np.uint64(0), code)
    too_big = ~finite | (np.ldexp(r, e_eff - M) > fmt.max)
    if too_big.any():
        code = np.where(too_big & ~np.isnan(x), _overflow_code(fmt, sign), code)
    nan = np.isnan(x)
    if nan.any():
        code = np.where(nan, _nan_code(fmt, sign), code)
    return code


def _fits_float32(fmt: FloatFormat) -> bool:
    """Narrower than float32 in range and precision (fp32 itself excluded)."""
    return (
        fmt.specials != "e8m0"
        and fmt.man_bits < 23
        and 1 - fmt.bias >= -126
        and fmt._e_max_field - fmt.bias <= 127
        and not fmt.nan_payload
    )


def _encode_float32(fmt: FloatFormat, x: np.ndarray) -> np.ndarray:
    """The same rounding as :func:`_encode`, done on float32 bit patterns.

    In the normal range the exponent is re-biased and the mantissa rounded
    to nearest-even with integer arithmetic.  Below it, adding the constant
    ``C = 2^(23 + 1 - bias - M)`` makes the float32 adder itself round to
    the format's subnormal step (the ulp of ``C``), and the low bits of the
    sum count the steps.
    """
    M, shift = fmt.man_bits, 23 - fmt.man_bits
    u = x.view(np.uint32)
    magnitude = u & np.uint32(0x7FFFFFFF)
    mag = magnitude.view(np.int32) - np.int32((127 - fmt.bias) << 23)
    lsb = mag >> shift
    lsb &= 1
    mag += np.int32((1 << (shift - 1)) - 1)
    mag += lsb
    mag >>= shift
    c = np.float32(2.0 ** (23 + 1 - fmt.bias - M))
    small = magnitude < np.uint32((127 + 1 - fmt.bias) << 23)
    steps = (magnitude.view(np.float32) + c).view(np.int32) - c.view(np.int32)
    mag = np.where(small, steps, mag)
    top = _magnitude_code_of_max(fmt)
    nan = magnitude > np.uint32(0x7F800000)
    any_nan = bool(nan.any())
    dtype = fmt.code_dtype
    sign = (u >> np.uint32(31)).astype(dtype)
    if fmt.specials == "fnuz":
        bad = (mag > top) | (magnitude >= np.uint32(0x7F800000))
        sign[mag == 0] = 0  # no negative zero
        code = mag.astype(dtype) | (sign << dtype.type(fmt.bits - 1))
        code[bad] = 2 ** (fmt.bits - 1)  # the only NaN
        return code
    # ieee: past the top is infinity; fn: the NaN code; none: saturate
    np.minimum(mag, top + (0 if fmt.specials == "none" else 1), out=mag)
    code = mag.astype(dtype) | (sign << dtype.type(fmt.bits - 1))
    if any_nan:
        code[nan] = _nan_code(fmt, sign[nan].astype(np.uint64)).astype(dtype)
    return code


def _magnitude_code_of_max(fmt: FloatFormat) -> int:
    return int(_encode(fmt, np.array([fmt.max]))[0])  # max is positive


def _keep_payload(fmt: FloatFormat, code: np.ndarray, given: np.ndarray) -> np.ndarray:
    """NumPy's rule: a NaN keeps the top bits of its payload (and stays a NaN)."""
    nan = np.isnan(given)
    if not nan.any():
        return code
    width = 8 * given.dtype.itemsize
    man_in = {16: 10, 32: 23, 64: 52}[width]
    raw = given.view(f"uint{width}").astype(np.uint64)
    payload = raw & np.uint64(2**man_in - 1)
    shift = man_in - fmt.man_bits
    if shift >= 0:
        payload = payload >> np.uint64(shift)
    else:
        payload = payload << np.uint64(-shift)
    payload = np.where(payload == 0, np.uint64(1), payload)
    sign = (raw >> np.uint64(width - 1)) & np.uint64(1)
    top = np.uint64(fmt.exp_bits + fmt.man_bits)
    body = np.uint64(fmt._e_max_field << fmt.man_bits)
    return np.where(nan, (sign << top) | body | payload, code)


def _overflow_code(fmt: FloatFormat, sign: np.ndarray) -> np.ndarray:
    top = np.uint64(fmt.exp_bits + fmt.man_bits)
    if fmt.specials == "ieee":  # infinity
        return (sign << top) | np.uint64(fmt._e_max_field << fmt.man_bits)
    if fmt.specials == "none":  # saturate: every code is a number
        return (sign << top) | np.uint64(2 ** int(top) - 1)
    return _nan_code(fmt, sign)


def _encode_e8m0(fmt: FloatFormat, x: np.ndarray) -> np.ndarray:
    f, e2 = np.frexp(np.where(x > 0, x, 1.0))
    k = e2.astype(np.int64) - 1 + (2 * f >= 1.5)  # ties up, on a linear scale
    # below 2**-127 there is no smaller code: 2**-127 itself (ml_dtypes >= 0.7;
    # 0.6 rounded float32 subnormals on their bit pattern instead)
    code = np.clip(k + fmt.bias, 0, None)
    bad = ~(x > 0) | ~np.isfinite(x) | (code > fmt._e_max_field - 1)
    return np.where(bad, np.int64(fmt._e_max_field), code).astype(np.uint64)

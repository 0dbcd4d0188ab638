"""How :meth:`qlib.floats.FloatFormat.encode` turns reals into codes.

The rounding machinery behind that one method, kept out of ``qlib/floats.py``
so that the chapter module reads in one sitting: the general rounding on
float64 (to nearest even, or stochastic; any ExMy format), E8M0's rounding on
a linear scale, the codes written for overflow, NaN and NaN payloads, and fast
paths for float32 input, the common case (data and weights are float32).  The
fast paths work on the float32 bit pattern with integer arithmetic, block by
block: a lookup table on the top bits for the formats of at most 6 mantissa
bits and for E8M0, integer round-to-nearest-even for bf16, tf32 and fp16.
They give the general rounding's codes (``tests/test_float_codec.py`` checks
every float32 class against ml_dtypes and NumPy) faster than ml_dtypes' and
NumPy's own casts (``benchmarks/bench_floats.py``).

Learners import from :mod:`qlib.floats`; the rounding is taught in
``notebooks/04_ieee754.ipynb`` and ``notebooks/05_low_precision_floats.ipynb``.
"""

from __future__ import annotations

import functools
import math
import numbers
from fractions import Fraction
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
    with np.errstate(over="ignore"):  # a carry past 2**1023 is inf: too big
        too_big = ~finite | (np.ldexp(r, e_eff - M) > fmt.max)
    if too_big.any():
        code = np.where(too_big & ~np.isnan(x), _overflow_code(fmt, sign), code)
    nan = np.isnan(x)
    if nan.any():
        code = np.where(nan, _nan_code(fmt, sign), code)
    return code


def _float32_path(fmt: FloatFormat) -> str:
    """Which float32 fast path encodes ``fmt`` ("" for none: the float64 path).

    * ``"copy"``: fp32 itself; the codes are the input's bits.
    * ``"widen"``: fp64; every float32 is exact in it (NumPy's widening cast).
    * ``"table"``: at most 6 mantissa bits: a lookup table on the top 16 bits.
    * ``"prefix"``: 8 exponent bits, bias 127, IEEE specials (bf16, tf32): the
      code is the top of the float32 pattern, rounded to nearest even.
    * ``"bits"``: any other format inside float32's range (fp16): rounding on
      the bit pattern with a re-biased exponent, subnormals by the adder.
    * ``"e8m0"``: E8M0 with bias 127: a table on the top 11 bits.

    Example:
        >>> from qlib.floats import FORMATS
        >>> [_float32_path(FORMATS[n]) for n in ("fp16", "bf16", "fp8_e4m3fn")]
        ['bits', 'prefix', 'table']
    """
    layout = (fmt.exp_bits, fmt.man_bits, fmt.bias, fmt.specials, fmt.nan_payload)
    if layout == (8, 23, 127, "ieee", True):
        return "copy"
    if layout == (11, 52, 1023, "ieee", True):
        return "widen"
    if fmt.specials == "e8m0":
        return "e8m0" if (fmt.exp_bits, fmt.bias) == (8, 127) else ""
    top_binade = fmt._e_max_field - fmt.bias - (fmt.specials == "ieee")
    if fmt.man_bits >= 23 or 1 - fmt.bias < -126 or top_binade > 127:
        return ""
    if fmt.man_bits <= 6 and not fmt.nan_payload:
        return "table"
    if (fmt.exp_bits, fmt.bias, fmt.specials) == (8, 127, "ieee"):
        return "prefix"
    return "bits"


# Elements per block: a block's int32 temporaries stay in the CPU's cache, and
# the few NumPy calls per block cost little next to the work.
_BLOCK = 2**18


def _encode_float32(fmt: FloatFormat, x: np.ndarray, saturate: bool) -> np.ndarray:
    """The codes of a 1-d float32 array, equal to :func:`_encode`'s (tested bit
    for bit on every float32 class that can round differently).

    Every path works on the float32 bit pattern ``u`` with integer operations
    on whole blocks, in place where it can; NaN, rare in data, is found by one
    reduction (the ``max`` is NaN) and its codes are written afterwards.
    """
    path = _float32_path(fmt)
    if path == "table":  # saturation is tabulated too
        table = _table(fmt, bool(saturate))
        return _blockwise(_take_table, x, fmt.code_dtype, table)
    if path == "widen":
        with np.errstate(invalid="ignore"):  # the CPU quiets signalling NaNs
            wide = x.astype(np.float64)
        if saturate:
            np.clip(wide, -fmt.max, fmt.max, out=wide)
        return wide.view(np.uint64)
    if saturate:
        x = np.clip(x, np.float32(-fmt.max), np.float32(fmt.max))  # NaN stays
    if path == "copy":
        return x.view(np.uint32).copy()
    if path == "e8m0":
        code = _blockwise(_take_table_e8m0, x, fmt.code_dtype, _e8m0_table(fmt))
        if x.size and code.min() == 0:  # +0 shares its class with 0 < x < 2^-127
            code[x.view(np.uint32) == 0] = 2**fmt.bits - 1
        return code
    kernel = _round_prefix if path == "prefix" else _round_bits
    with np.errstate(invalid="ignore"):  # signalling NaNs
        code = _blockwise(kernel, x, fmt.code_dtype, fmt)
        any_nan = x.size and np.isnan(np.max(x))
    if any_nan:
        where = np.flatnonzero(np.isnan(x))
        given = x[where]
        if fmt.nan_payload:
            nan = _keep_payload(fmt, np.zeros(where.size, np.uint64), given)
        else:
            nan = _nan_code(fmt, np.signbit(given).astype(np.uint64))
        code[where] = nan
    return code


def _blockwise(kernel, x: np.ndarray, dtype: np.dtype, arg) -> np.ndarray:
    """``kernel(u, out, arg)`` on each block of the bit patterns of ``x``."""
    u = x.view(np.uint32)
    out = np.empty(u.shape, dtype)
    for start in range(0, u.size, _BLOCK):
        block = slice(start, start + _BLOCK)
        kernel(u[block], out[block], arg)
    return out


def _take_table(u: np.ndarray, out: np.ndarray, table: np.ndarray) -> None:
    """Look up ``2 * (u >> 16) + (low 16 bits != 0)`` in :func:`_table`.

    With at most 6 mantissa bits the rounding bit of every float32 lies in the
    top 16 bits, so the low 16 bits only say whether the value is above a tie
    (or a NaN rather than an infinity): whether they are zero is all that
    counts.  That bit is carried into bit 15 before the shift.
    """
    key = np.bitwise_and(u, np.uint32(0x7FFF))
    key += np.uint32(0x7FFF)  # bit 15 set if any of bits 0-14 is
    key |= u
    key >>= np.uint32(15)
    table.take(key, mode="wrap", out=out)


@functools.cache
def _table(fmt: FloatFormat, saturate: bool) -> np.ndarray:
    """The code of every key of :func:`_take_table`, by the general rounding:
    the key's top 16 bits, and low 16 bits of 0 or 1."""
    key = np.arange(2**17, dtype=np.uint32)
    pattern = ((key >> np.uint32(1)) << np.uint32(16)) | (key & np.uint32(1))
    with np.errstate(invalid="ignore"):  # signalling NaN patterns
        x = pattern.view(np.float32).astype(np.float64)
    if saturate:
        x = np.clip(x, -fmt.max, fmt.max)
    table = _encode(fmt, x).astype(fmt.code_dtype)
    table.flags.writeable = False
    return table


def _take_table_e8m0(u: np.ndarray, out: np.ndarray, table: np.ndarray) -> None:
    np.take(table, np.right_shift(u, np.uint32(21)), mode="wrap", out=out)


@functools.cache
def _e8m0_table(fmt: FloatFormat) -> np.ndarray:
    """E8M0's code of every float32 by its top 11 bits (sign, exponent, two
    mantissa bits: enough for the ties at 1.5 * 2^k and for the subnormals),
    from a pattern with its lowest bit set: not +0, the one exception."""
    pattern = (np.arange(2**11, dtype=np.uint32) << np.uint32(21)) | np.uint32(1)
    with np.errstate(invalid="ignore"):  # signalling NaN patterns
        x = pattern.view(np.float32).astype(np.float64)
    table = _encode_e8m0(fmt, x).astype(fmt.code_dtype)
    table.flags.writeable = False
    return table


def _round_prefix(u: np.ndarray, out: np.ndarray, fmt: FloatFormat) -> None:
    """bf16, tf32: the top ``1 + 8 + M`` bits of the pattern, rounded to nearest
    even by adding ``2^(s-1) - 1`` plus the lowest kept bit before the shift by
    ``s``.  A carry runs into the exponent, and past the largest value into
    infinity, as it should."""
    shift = np.uint32(23 - fmt.man_bits)
    t = np.right_shift(u, shift)
    t &= np.uint32(1)
    t += np.uint32((1 << (23 - fmt.man_bits - 1)) - 1)
    t += u
    np.right_shift(t, shift, out=out, casting="unsafe")


@functools.cache
def _magnitude_code_of_max(fmt: FloatFormat) -> int:
    return int(_encode(fmt, np.array([fmt.max]))[0])  # max is positive


def _round_bits(u: np.ndarray, out: np.ndarray, fmt: FloatFormat) -> None:
    """fp16 and the like: the magnitude is re-biased and rounded to nearest even
    with integer arithmetic (int32: below the format's normal range it goes
    negative).  Below the normal range, adding ``C = 2^(1 - bias + 23 - M)``
    makes the float32 adder itself round to the subnormal step (the ulp of
    ``C``), and the low bits of the sum count the steps; the larger of the two
    results, after clipping the second to ``2^M``, is the right one everywhere.
    Past the largest value the code is clipped: to infinity (ieee), the NaN
    code (fn, fnuz) or the largest value (none)."""
    M, shift = fmt.man_bits, np.int32(23 - fmt.man_bits)
    a = np.bitwise_and(u, np.uint32(0x7FFFFFFF)).view(np.int32)  # magnitude
    rebias = (127 - fmt.bias) << 23
    t = np.right_shift(a, shift)
    t &= np.int32(1)
    t += np.int32((1 << (23 - M - 1)) - 1 - rebias)
    t += a
    t >>= shift
    if rebias:  # the format's subnormals are float32 normals
        c = np.float32(2.0 ** (23 + 1 - fmt.bias - M))
        np.add(a.view(np.float32), c, out=a.view(np.float32))
        a -= c.view(np.int32)
        np.clip(a, 0, 2**M, out=a)
        np.maximum(t, a, out=t)
    top = _magnitude_code_of_max(fmt)
    np.clip(t, 0, top + (fmt.specials != "none"), out=t)
    np.copyto(out, t, casting="unsafe")
    sign_bit = out.dtype.type(1 << (fmt.bits - 1))
    sign = np.empty_like(out)
    np.right_shift(u, np.uint32(32 - fmt.bits), out=sign, casting="unsafe")
    sign &= sign_bit
    if fmt.specials == "fnuz":  # no negative zero; past the top, the only NaN
        sign[t == 0] = 0
        out[t > top] = sign_bit
    out |= sign


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


def _encode_rational(fmt, value, saturate: bool) -> int:
    """:meth:`qlib.floats.FloatFormat.encode_rational` (see its docstring)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Rational):
        raise TypeError(f"value must be a Fraction or an integer; got {value!r}")
    q = Fraction(value)
    try:
        x = float(q)  # the nearest float64
    except OverflowError:  # beyond float64, so beyond every format
        x = math.inf if q > 0 else -math.inf
    with np.errstate(over="ignore"):
        code = int(fmt.encode(x, saturate))
        if not math.isfinite(x) or Fraction(x) == q:
            return code
        beyond = float(np.nextafter(x, math.inf if q > x else -math.inf))
        other = int(fmt.encode(beyond, saturate))
    if other == code:
        return code
    # the boundary between the two codes is x or beyond: which one?
    v, w = (float(fmt.decode(c)) for c in (code, other))
    if math.isfinite(v) and math.isfinite(w):
        boundary = (Fraction(v) + Fraction(w)) / 2
    else:  # overflow, half a step past the largest finite value
        top = v if math.isfinite(v) else w
        if not math.isfinite(top):
            return code
        half = Fraction(float(fmt.ulp(top))) / 2
        boundary = Fraction(top) + (half if top > 0 else -half)
    return other if Fraction(x) == boundary else code

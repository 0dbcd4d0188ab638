"""Integer encodings: how n bits stand for a whole number.

Five schemes map a code (an n-bit pattern, read as an unsigned integer) to a
value.  For ``bits = n``:

==================  ==========================  =================================
scheme              value range                 code of a negative value ``-y``
==================  ==========================  =================================
``unsigned``        ``[0, 2**n - 1]``           (none)
``sign_magnitude``  ``[-(2**(n-1) - 1), ...]``  sign bit set, magnitude ``y``
``ones_complement`` ``[-(2**(n-1) - 1), ...]``  every bit of ``y`` inverted
``twos_complement`` ``[-2**(n-1), 2**(n-1)-1]`` ``2**n - y``
``offset_binary``   ``[-2**(n-1), 2**(n-1)-1]`` ``2**(n-1) - y`` (bias ``2**(n-1)``)
==================  ==========================  =================================

Sign-magnitude and ones' complement have two zeros; both decode to 0 and
:func:`encode` always writes the all-zeros code for 0.

Codes are returned in the smallest unsigned dtype that holds ``bits`` bits
(uint8, uint16, uint32 or uint64).  Every function is vectorized over NumPy
arrays; a scalar argument gives a NumPy scalar back.  The bit-level machinery
(argument checks, the n-bit wrap and sign extension, the sign-magnitude and
ones' complement encoders) lives in ``qlib/_integer_codes.py``.

Taught in ``notebooks/02_integer_encodings.ipynb``.
"""

from __future__ import annotations

import numbers
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._integer_codes import (
    _as_codes,
    _as_int_array,
    _check_bits,
    _check_in_range,
    _clip,
    _code_dtype,
    _encode_ones_complement,
    _encode_sign_magnitude,
    _low_bits,
    _scalar_or_array,
    _sign_extend,
)

__all__ = [
    "OVERFLOW_MODES",
    "SCHEMES",
    "accumulate",
    "code_dtype",
    "decode",
    "encode",
    "from_bits",
    "pack",
    "sign_extend",
    "to_bits",
    "unpack",
    "value_range",
]

SCHEMES = (
    "unsigned",
    "sign_magnitude",
    "ones_complement",
    "twos_complement",
    "offset_binary",
)
OVERFLOW_MODES = ("error", "wrap", "saturate")
PACK_BITS = (1, 2, 4)

Scheme = Literal[
    "unsigned", "sign_magnitude", "ones_complement", "twos_complement", "offset_binary"
]
Overflow = Literal["error", "wrap", "saturate"]


# --------------------------------------------------------------------------
# argument checks


def _check_scheme(scheme: object) -> str:
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {SCHEMES}; got {scheme!r}")
    return str(scheme)


# --------------------------------------------------------------------------
# ranges and dtypes


def value_range(bits: int, scheme: Scheme) -> tuple[int, int]:
    """Smallest and largest value that ``bits`` bits can hold under ``scheme``.

    Example:
        >>> value_range(8, "twos_complement")
        (-128, 127)
        >>> value_range(8, "sign_magnitude")
        (-127, 127)

    Taught in ``notebooks/02_integer_encodings.ipynb``.
    """
    n = _check_bits(bits)
    scheme = _check_scheme(scheme)
    if scheme == "unsigned":
        return 0, 2**n - 1
    if scheme in ("sign_magnitude", "ones_complement"):
        return -(2 ** (n - 1) - 1), 2 ** (n - 1) - 1
    return -(2 ** (n - 1)), 2 ** (n - 1) - 1


def code_dtype(bits: int) -> np.dtype:
    """The smallest unsigned NumPy dtype that holds a ``bits``-bit code.

    Example:
        >>> code_dtype(4), code_dtype(12), code_dtype(64)
        (dtype('uint8'), dtype('uint16'), dtype('uint64'))
    """
    return _code_dtype(_check_bits(bits))


# --------------------------------------------------------------------------
# encode


def encode(
    values: ArrayLike, bits: int, scheme: Scheme, overflow: Overflow = "error"
) -> NDArray[np.unsignedinteger]:
    """Encode whole numbers as ``bits``-bit codes under ``scheme``.

    Args:
        values: integers (any shape); floats are accepted when they are whole.
        bits: code width, 1 to 64.
        scheme: one of :data:`SCHEMES`.
        overflow: what to do with a value outside :func:`value_range`:

            * ``"error"`` raises ``ValueError``;
            * ``"saturate"`` clamps it to the nearest end of the range;
            * ``"wrap"`` keeps what the scheme's own adder would keep:
              ``unsigned``, ``twos_complement`` and ``offset_binary`` wrap
              modulo ``2**bits`` (the result is congruent to the value, as C
              and NumPy casts do); ``ones_complement`` wraps modulo
              ``2**bits - 1`` (end-around carry); ``sign_magnitude`` keeps the
              sign and wraps the magnitude modulo ``2**(bits-1)``.

    Returns:
        Codes in :func:`code_dtype` (``bits``), same shape as ``values``.

    Example:
        >>> encode([-1, 0, 5], 4, "twos_complement")
        array([15,  0,  5], dtype=uint8)
        >>> encode(200, 8, "twos_complement", overflow="wrap")
        np.uint8(200)
        >>> int(decode(encode(200, 8, "twos_complement", overflow="wrap"), 8,
        ...            "twos_complement"))
        -56

    Taught in ``notebooks/02_integer_encodings.ipynb``.
    """
    n = _check_bits(bits)
    scheme = _check_scheme(scheme)
    if overflow not in OVERFLOW_MODES:
        raise ValueError(f"overflow must be one of {OVERFLOW_MODES}; got {overflow!r}")
    shaped = _as_int_array(values)
    v = shaped.reshape(-1)  # 1-d inside, so that ufuncs never return scalars
    lo, hi = value_range(n, scheme)
    if overflow == "error":
        _check_in_range(v, lo, hi, n, scheme)
    elif overflow == "saturate":
        v = _clip(v, lo, hi)
    if scheme in ("unsigned", "twos_complement"):
        out = _low_bits(v, n)
    elif scheme == "offset_binary":
        # adding the bias 2**(n-1) modulo 2**n flips the top bit
        out = _low_bits(v, n) ^ code_dtype(n).type(2 ** (n - 1))
    elif scheme == "sign_magnitude":
        out = _encode_sign_magnitude(v, n, wrap=overflow == "wrap")
    else:
        out = _encode_ones_complement(v, n, wrap=overflow == "wrap")
    return _scalar_or_array(out, shaped)


# --------------------------------------------------------------------------
# decode


def decode(codes: ArrayLike, bits: int, scheme: Scheme) -> NDArray[np.integer]:
    """The value each ``bits``-bit code stands for under ``scheme``.

    Returns int64, except for ``scheme="unsigned"`` with ``bits=64``, whose
    values up to ``2**64 - 1`` need uint64.  Both zeros of sign-magnitude and
    ones' complement decode to 0.

    Example:
        >>> decode([0b0111, 0b1000, 0b1111], 4, "twos_complement")
        array([ 7, -8, -1])
        >>> decode([0b0000, 0b1000], 4, "sign_magnitude")  # +0 and -0
        array([0, 0])

    Taught in ``notebooks/02_integer_encodings.ipynb``.
    """
    n = _check_bits(bits)
    scheme = _check_scheme(scheme)
    shaped = _as_codes(codes, n)
    c = shaped.reshape(-1)  # 1-d inside, so that ufuncs never return scalars
    if scheme == "unsigned":
        out = c.astype(np.uint64) if n == 64 else c.astype(np.int64)
    elif scheme == "twos_complement":
        out = _sign_extend(c, n)
    elif scheme == "offset_binary":
        # offset binary is two's complement with the top bit inverted
        out = _sign_extend(c ^ c.dtype.type(2 ** (n - 1)), n)
    else:
        top = c.dtype.type(2 ** (n - 1))
        neg = (c & top) != 0
        if scheme == "sign_magnitude":
            mag = c & (top - c.dtype.type(1))
        else:  # ones' complement: a negative value's magnitude is its inverse
            mag = np.where(neg, ~c & c.dtype.type(2**n - 1), c)
        out = mag.astype(np.int64)
        np.negative(out, out=out, where=neg)
    return _scalar_or_array(out, shaped)


# --------------------------------------------------------------------------
# bit strings


def to_bits(codes: ArrayLike, bits: int) -> NDArray[np.str_]:
    """Codes as strings of ``'0'``/``'1'``, most significant bit first.

    Example:
        >>> to_bits([5, 255], 8)
        array(['00000101', '11111111'], dtype='<U8')
    """
    n = _check_bits(bits)
    c = _as_codes(codes, n)
    shifts = np.arange(n - 1, -1, -1, dtype=np.uint64)
    c = c.astype(np.uint64)
    digits = ((c[..., None] >> shifts) & np.uint64(1)).astype(np.uint8) + ord("0")
    out = digits.view(f"S{n}")[..., 0].astype(f"U{n}")
    return _scalar_or_array(out, c)


def from_bits(strings: ArrayLike) -> NDArray[np.uint64]:
    """Parse strings of ``'0'``/``'1'`` (MSB first, ``'_'`` allowed) into codes.

    Strings may have different lengths, from 1 to 64 digits.

    Example:
        >>> from_bits(["0000_0101", "1"])
        array([5, 1], dtype=uint64)
    """
    s = np.asarray(strings)
    if s.dtype.kind != "U":
        raise TypeError(f"strings must be str; got an array of dtype {s.dtype}")
    s = np.char.replace(s, "_", "")
    length = np.char.str_len(s)
    if s.size and (length.min() < 1 or length.max() > 64):
        raise ValueError(
            f"strings must have 1 to 64 binary digits; got one with "
            f"{length.min() if length.min() < 1 else length.max()}"
        )
    width = max(int(s.dtype.itemsize // 4), 1)
    chars = np.ascontiguousarray(s, dtype=f"U{width}").view(np.uint32)
    chars = chars.reshape(*s.shape, width)
    pos = np.arange(width)
    inside = pos < length[..., None]
    if np.any(inside & (chars != ord("0")) & (chars != ord("1"))):
        raise ValueError("strings must contain only '0', '1' and '_'")
    weight = np.where(inside, length[..., None] - 1 - pos, 0).astype(np.uint64)
    digit = ((chars == ord("1")) & inside).astype(np.uint64)
    out = np.bitwise_or.reduce(digit << weight, axis=-1).astype(np.uint64)
    return _scalar_or_array(out, s)


# --------------------------------------------------------------------------
# width changes and accumulation


def sign_extend(
    codes: ArrayLike, bits: int, new_bits: int
) -> NDArray[np.unsignedinteger]:
    """Widen two's-complement codes from ``bits`` to ``new_bits`` bits.

    The new high bits are copies of the old sign bit, so the value is unchanged.

    Example:
        >>> to_bits(sign_extend(0b1011, 4, 8), 8)  # -5 stays -5
        np.str_('11111011')
    """
    n = _check_bits(bits)
    m = _check_bits(new_bits, "new_bits", lo=n)
    c = _as_codes(codes, n)
    return _scalar_or_array(_low_bits(_sign_extend(c, n), m), c)


def accumulate(
    terms: ArrayLike, bits: int, overflow: Overflow = "wrap", axis: int = -1
) -> NDArray[np.int64]:
    """Running sums of ``terms`` in a ``bits``-bit two's-complement accumulator.

    Every partial sum is brought back into range as it is formed:
    ``"wrap"`` as integer hardware does, ``"saturate"`` as DSP hardware with
    saturating adders does, ``"error"`` refuses any overflow.  The result holds
    the accumulator's value (int64) after each term, along ``axis``.

    Example:
        >>> accumulate([100, 100, -100], 8, "wrap")
        array([100, -56, 100])
        >>> accumulate([100, 100, -100], 8, "saturate")
        array([100, 127,  27])

    Wrapping is modular arithmetic, so a wrapped sum that ends in range is
    exact; a saturated one is not.  Taught in
    ``notebooks/02_integer_encodings.ipynb``.
    """
    n = _check_bits(bits)
    if overflow not in OVERFLOW_MODES:
        raise ValueError(f"overflow must be one of {OVERFLOW_MODES}; got {overflow!r}")
    t = _as_int_array(terms, "terms")
    if t.dtype == np.uint64:
        raise ValueError("terms must lie in the int64 range")
    lo, hi = value_range(n, "twos_complement")
    if overflow == "wrap":
        total = np.cumsum(t, axis=axis)  # int64 wraps modulo 2**64, a multiple of 2**n
        return decode(_low_bits(total, n), n, "twos_complement")
    t = np.moveaxis(t, axis, 0)
    out = np.empty(t.shape, np.int64)
    acc = np.zeros(t.shape[1:], np.int64)
    for k in range(t.shape[0]):  # saturation is not associative: one step each
        # compare before adding: acc + t itself may leave int64 (at 64 bits)
        step = t[k]
        up = acc > hi - np.maximum(step, 0)  # neither side can leave int64
        down = acc < lo - np.minimum(step, 0)
        if overflow == "error" and (up.any() or down.any()):
            raise ValueError(
                f"values must be in [{lo}, {hi}] for bits={n}, "
                f"scheme='twos_complement' with overflow='error'; the partial sum "
                f"after term {k} is outside (pass overflow='wrap' or "
                "overflow='saturate' to allow it)"
            )
        with np.errstate(over="ignore"):
            acc = np.where(up, hi, np.where(down, lo, acc + step))
        out[k] = acc
    return np.moveaxis(out, 0, axis)


# --------------------------------------------------------------------------
# sub-byte packing


def pack(
    values: ArrayLike, bits: int, *, signed: bool | None = None
) -> NDArray[np.uint8]:
    """Pack 1-, 2- or 4-bit integers into bytes, first element in the low bits.

    ``values`` is flattened in C order.  With ``signed=True`` values must lie in
    the two's-complement range of ``bits`` bits, with ``signed=False`` in the
    unsigned range, and with ``signed=None`` in either (the stored bits are the
    same).  The last byte is padded with zero bits.

    Example:
        >>> pack([1, 2, 3], 4)  # 0x21, then 0x03
        array([33,  3], dtype=uint8)
        >>> pack([-1, 7], 4, signed=True)
        array([127], dtype=uint8)

    Taught in ``notebooks/02_integer_encodings.ipynb``.
    """
    if bits not in PACK_BITS:
        raise ValueError(f"bits must be one of {PACK_BITS}; got {bits!r}")
    v = _as_int_array(values).ravel()
    lo = 0 if signed is False else -(2 ** (bits - 1))
    hi = 2 ** (bits - 1) - 1 if signed is True else 2**bits - 1
    if v.size and (int(v.min()) < lo or int(v.max()) > hi):
        bad = int(v.min()) if int(v.min()) < lo else int(v.max())
        raise ValueError(
            f"values must be in [{lo}, {hi}] for bits={bits}, "
            f"signed={signed}; got {bad}"
        )
    per_byte = 8 // bits
    codes = (v & (2**bits - 1)).astype(np.uint8)
    codes = np.concatenate([codes, np.zeros(-codes.size % per_byte, np.uint8)])
    shifts = (np.arange(per_byte) * bits).astype(np.uint8)
    return np.bitwise_or.reduce(codes.reshape(-1, per_byte) << shifts, axis=1).astype(
        np.uint8
    )


def unpack(
    data: ArrayLike, bits: int, count: int, *, signed: bool = False
) -> NDArray[np.integer]:
    """Inverse of :func:`pack`: the first ``count`` ``bits``-bit values of ``data``.

    Returns int8 when ``signed`` (two's complement), else uint8.

    Example:
        >>> unpack([127], 4, 2, signed=True)
        array([-1,  7], dtype=int8)
    """
    if bits not in PACK_BITS:
        raise ValueError(f"bits must be one of {PACK_BITS}; got {bits!r}")
    d = np.asarray(data)
    if d.dtype != np.uint8:
        if d.dtype.kind not in "iu" or (d.size and (d.min() < 0 or d.max() > 255)):
            raise ValueError("data must be bytes: integers in [0, 255]")
        d = d.astype(np.uint8)
    d = d.ravel()
    per_byte = 8 // bits
    capacity = d.size * per_byte
    if isinstance(count, bool) or not isinstance(count, numbers.Integral):
        raise TypeError(f"count must be an integer in [0, {capacity}]; got {count!r}")
    if not 0 <= count <= capacity:
        raise ValueError(
            f"count must be in [0, {capacity}] for {d.size} bytes; got {count}"
        )
    shifts = (np.arange(per_byte) * bits).astype(np.uint8)
    codes = ((d[:, None] >> shifts) & np.uint8(2**bits - 1)).ravel()[:count]
    if not signed:
        return codes
    half = np.int8(2 ** (bits - 1))
    return (codes.astype(np.int8) ^ half) - half  # sign-extend

"""qlib.integers against definitions written out with Python ints, NumPy's own
casts, ONNX's 4-/2-bit tensor packing and NumPy's packbits."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from onnx import numpy_helper

from qlib import integers
from qlib.integers import SCHEMES, decode, encode, value_range


def oracle_decode(c: int, n: int, scheme: str) -> int:
    """Each scheme's textbook definition, one code at a time, in Python ints."""
    top = c >> (n - 1)  # the most significant bit
    if scheme == "unsigned":
        return c
    if scheme == "sign_magnitude":
        return (-1) ** top * (c & (2 ** (n - 1) - 1))
    if scheme == "ones_complement":
        return c - top * (2**n - 1)
    if scheme == "twos_complement":
        return c - top * 2**n
    return c - 2 ** (n - 1)  # offset binary, bias 2**(n-1)


ALL_SMALL = [(n, s) for n in range(1, 13) for s in SCHEMES]


# ---------------------------------------------------------------- exhaustive


@pytest.mark.parametrize(("n", "scheme"), ALL_SMALL)
def test_decode_every_code_matches_definition(n, scheme):
    codes = np.arange(2**n)
    expected = [oracle_decode(c, n, scheme) for c in range(2**n)]
    got = decode(codes, n, scheme)
    assert got.dtype == np.int64
    assert got.tolist() == expected


@pytest.mark.parametrize(("n", "scheme"), ALL_SMALL)
def test_range_ends_are_the_extremes_of_all_codes(n, scheme):
    values = decode(np.arange(2**n), n, scheme)
    assert value_range(n, scheme) == (int(values.min()), int(values.max()))
    # every integer of the range is representable
    assert set(values.tolist()) == set(range(values.min(), values.max() + 1))


@pytest.mark.parametrize(("n", "scheme"), ALL_SMALL)
def test_round_trip_every_value_and_code(n, scheme):
    lo, hi = value_range(n, scheme)
    values = np.arange(lo, hi + 1)
    codes = encode(values, n, scheme)
    assert codes.dtype == integers.code_dtype(n)
    assert decode(codes, n, scheme).tolist() == values.tolist()
    # codes -> values -> codes is the identity except on negative zero
    all_codes = np.arange(2**n)
    back = encode(decode(all_codes, n, scheme), n, scheme)
    differs = all_codes[back != all_codes]
    if scheme == "sign_magnitude":
        assert differs.tolist() == ([2 ** (n - 1)] if n > 1 else [1])
    elif scheme == "ones_complement":
        assert differs.tolist() == [2**n - 1]
    else:
        assert differs.size == 0


@pytest.mark.parametrize(("n", "scheme"), ALL_SMALL)
def test_zero_encodes_to_all_zeros(n, scheme):
    if scheme in ("twos_complement", "sign_magnitude", "ones_complement", "unsigned"):
        assert encode(0, n, scheme) == 0
    else:  # offset binary: 0 sits at the bias
        assert encode(0, n, scheme) == 2 ** (n - 1)


@pytest.mark.parametrize("n", range(1, 13))
def test_ordering(n):
    codes = np.arange(2**n)
    # unsigned and offset binary order values like codes (what makes offset
    # binary convenient for comparators and float exponents)
    for scheme in ("unsigned", "offset_binary"):
        assert np.all(np.diff(decode(codes, n, scheme)) == 1)
    # two's complement: increasing inside each half, the top half is negative
    half = 2 ** (n - 1)
    twos = decode(codes, n, "twos_complement")
    assert np.all(np.diff(twos[:half]) == 1) and np.all(np.diff(twos[half:]) == 1)
    assert np.all(twos[half:] < 0) and np.all(twos[:half] >= 0)
    # sign-magnitude: the negative half counts down from -0
    sm = decode(codes, n, "sign_magnitude")
    assert np.all(sm[half:] == -sm[:half])


@pytest.mark.parametrize("n", range(1, 13))
def test_widely_quoted_wrong_ranges_are_wrong(n):
    """[-2**n, 2**(n-1)] for two's complement and [-2**(n-1)-1, 2**(n-1)-1]
    for sign-magnitude are printed in a widely read source; they are wrong."""
    twos = value_range(n, "twos_complement")
    assert twos == (-(2 ** (n - 1)), 2 ** (n - 1) - 1)
    assert twos != (-(2**n), 2 ** (n - 1))
    # the wrong range would need more values than there are codes
    assert 2 ** (n - 1) - (-(2**n)) + 1 > 2**n
    sm = value_range(n, "sign_magnitude")
    assert sm == (-(2 ** (n - 1) - 1), 2 ** (n - 1) - 1)
    assert sm != (-(2 ** (n - 1)) - 1, 2 ** (n - 1) - 1)


def test_value_range_published_examples():
    assert value_range(8, "unsigned") == (0, 255)
    assert value_range(8, "twos_complement") == (-128, 127)
    assert value_range(8, "sign_magnitude") == (-127, 127)
    assert value_range(8, "ones_complement") == (-127, 127)
    assert value_range(8, "offset_binary") == (-128, 127)
    assert value_range(64, "unsigned") == (0, 2**64 - 1)
    assert value_range(64, "twos_complement") == (-(2**63), 2**63 - 1)


# ------------------------------------------------------- numpy's own casts


@pytest.mark.parametrize("n", [8, 16, 32, 64])
def test_wrap_agrees_with_numpy_astype(n):
    rng = np.random.default_rng(n)
    v = rng.integers(-(2**63), 2**63 - 1, size=100_000, dtype=np.int64, endpoint=True)
    v[:4] = [0, -1, -(2**63), 2**63 - 1]
    signed, unsigned = np.dtype(f"int{n}"), np.dtype(f"uint{n}")
    codes = encode(v, n, "twos_complement", overflow="wrap")
    assert codes.dtype == unsigned
    assert np.array_equal(codes.view(signed), v.astype(signed))
    assert np.array_equal(decode(codes, n, "twos_complement"), v.astype(signed))
    assert np.array_equal(encode(v, n, "unsigned", overflow="wrap"), v.astype(unsigned))


@pytest.mark.parametrize("n", [8, 16, 32, 64])
def test_decode_agrees_with_numpy_view(n):
    rng = np.random.default_rng(n + 1)
    codes = rng.integers(0, 2**n - 1, size=100_000, dtype=np.uint64, endpoint=True)
    codes = codes.astype(f"uint{n}")
    assert np.array_equal(
        decode(codes, n, "twos_complement"), codes.view(f"int{n}").astype(np.int64)
    )
    unsigned = decode(codes, n, "unsigned")
    assert unsigned.dtype == (np.uint64 if n == 64 else np.int64)
    assert np.array_equal(unsigned, codes)


def test_int4_agrees_with_ml_dtypes():
    # ml_dtypes.int4 stores -8..7; its bit pattern is the two's-complement code
    values = np.arange(-8, 8)
    stored = values.astype(ml_dtypes.int4).view(np.uint8) & 0xF
    assert np.array_equal(encode(values, 4, "twos_complement"), stored)


# ----------------------------------------------------------------- overflow


def wrap_oracle(v: int, n: int, scheme: str) -> int:
    lo, hi = value_range(n, scheme)
    if scheme in ("unsigned", "twos_complement", "offset_binary"):
        return (v - lo) % 2**n + lo
    if scheme == "ones_complement":
        m = 2**n - 1
        r = v % m
        return r if r <= hi else r - m
    mag = abs(v) % 2 ** (n - 1)
    return -mag if v < 0 else mag


@pytest.mark.parametrize(
    ("n", "scheme"), [(n, s) for n in (1, 2, 3, 5, 8) for s in SCHEMES]
)
def test_wrap_and_saturate_small(n, scheme):
    lo, hi = value_range(n, scheme)
    v = np.arange(-3 * 2**n, 3 * 2**n + 1)
    wrapped = decode(encode(v, n, scheme, overflow="wrap"), n, scheme)
    assert wrapped.tolist() == [wrap_oracle(int(x), n, scheme) for x in v]
    saturated = decode(encode(v, n, scheme, overflow="saturate"), n, scheme)
    assert saturated.tolist() == np.clip(v, lo, hi).tolist()
    # wrapping never writes negative zero
    codes = encode(v, n, scheme, overflow="wrap")
    assert np.all(encode(decode(codes, n, scheme), n, scheme) == codes)


@given(st.integers(1, 64), st.sampled_from(SCHEMES), st.data())
def test_hypothesis_round_trip_up_to_64_bits(n, scheme, data):
    lo, hi = value_range(n, scheme)
    v = data.draw(st.integers(lo, hi))
    code = encode(v, n, scheme)
    assert 0 <= int(code) < 2**n
    assert int(decode(code, n, scheme)) == v
    assert int(code) == int(integers.from_bits(str(integers.to_bits(code, n))))


@given(st.integers(1, 64), st.sampled_from(SCHEMES), st.integers(-(2**63), 2**63 - 1))
def test_hypothesis_overflow_modes_up_to_64_bits(n, scheme, v):
    lo, hi = value_range(n, scheme)
    wrapped = int(decode(encode(v, n, scheme, overflow="wrap"), n, scheme))
    assert wrapped == wrap_oracle(v, n, scheme)
    saturated = int(decode(encode(v, n, scheme, overflow="saturate"), n, scheme))
    assert saturated == min(max(v, lo), hi)
    if lo <= v <= hi:
        assert int(decode(encode(v, n, scheme), n, scheme)) == v
    else:
        with pytest.raises(ValueError, match="values must be in"):
            encode(v, n, scheme)


@given(st.integers(0, 2**64 - 1), st.sampled_from(SCHEMES))
def test_hypothesis_uint64_inputs(v, scheme):
    wrapped = int(decode(encode(np.uint64(v), 64, scheme, overflow="wrap"), 64, scheme))
    assert wrapped == wrap_oracle(v, 64, scheme)


def test_64_bit_extremes():
    assert encode(2**64 - 1, 64, "unsigned") == np.uint64(2**64 - 1)
    assert decode(2**64 - 1, 64, "unsigned") == np.uint64(2**64 - 1)
    assert encode(-(2**63), 64, "twos_complement") == np.uint64(2**63)
    assert decode(2**63, 64, "offset_binary") == 0
    assert decode(2**63, 64, "sign_magnitude") == 0
    assert decode(2**64 - 1, 64, "ones_complement") == 0
    assert encode(-(2**63), 64, "sign_magnitude", overflow="saturate") == np.uint64(
        2**64 - 1
    )


def test_float_inputs_that_are_whole_numbers():
    assert encode(np.array([-2.0, 3.0]), 4, "twos_complement").tolist() == [14, 3]


# ----------------------------------------------------------- bits as text


@pytest.mark.parametrize("n", [1, 3, 8, 13, 64])
def test_to_bits_matches_python_format(n):
    rng = np.random.default_rng(n)
    codes = rng.integers(0, 2**n - 1, size=500, dtype=np.uint64, endpoint=True)
    strings = integers.to_bits(codes, n)
    assert strings.tolist() == [format(int(c), f"0{n}b") for c in codes]
    assert np.array_equal(integers.from_bits(strings), codes)


def test_from_bits_mixed_lengths_and_separators():
    assert integers.from_bits(["1", "10", "1111_0000", "0" * 64]).tolist() == [
        1,
        2,
        240,
        0,
    ]
    assert integers.from_bits("1" * 64) == np.uint64(2**64 - 1)


# -------------------------------------------------- width and accumulation


@pytest.mark.parametrize(("n", "m"), [(1, 8), (4, 8), (8, 16), (12, 64), (32, 64)])
def test_sign_extend_keeps_value(n, m):
    codes = np.arange(2**n) if n <= 12 else np.array([0, 1, 2**31, 2**32 - 1])
    wide = integers.sign_extend(codes, n, m)
    assert np.array_equal(
        decode(wide, m, "twos_complement"), decode(codes, n, "twos_complement")
    )


@pytest.mark.parametrize("n", [8, 16, 32])
def test_accumulate_wrap_matches_numpy_cumsum(n):
    rng = np.random.default_rng(n)
    dtype = np.dtype(f"int{n}")
    terms = rng.integers(-128, 128, (3, 2000)) * rng.integers(-128, 128, (3, 2000))
    # numpy wraps every term and every partial sum: modular arithmetic, same result
    expected = np.cumsum(terms.astype(dtype), axis=1, dtype=dtype)
    assert np.array_equal(integers.accumulate(terms, n, "wrap"), expected)


def test_accumulate_saturate_matches_step_by_step():
    rng = np.random.default_rng(7)
    terms = rng.integers(-128, 128, size=300) * 50
    acc, expected = 0, []
    for t in terms.tolist():
        acc = min(max(acc + t, -(2**15)), 2**15 - 1)
        expected.append(acc)
    assert integers.accumulate(terms, 16, "saturate").tolist() == expected
    with pytest.raises(ValueError, match="values must be in"):
        integers.accumulate(terms, 16, "error")


@pytest.mark.parametrize("n", [62, 63, 64])
def test_accumulate_near_int64_against_python_ints(n):
    """At 64 bits a partial sum can leave int64 itself: saturate and error must
    judge the exact sum (Python integers), not a wrapped int64 one."""
    lo, hi = -(2 ** (n - 1)), 2 ** (n - 1) - 1
    rng = np.random.default_rng(n)
    terms = rng.integers(-(2**62), 2**62, size=200) * 2
    terms[:5] = [2**62, 2**62, 2**62, -(2**63), -(2**63)]
    acc, saturated, exact, ok = 0, [], 0, True
    for t in terms.tolist():
        acc = min(max(acc + t, lo), hi)
        saturated.append(acc)
        exact += t
        ok = ok and lo <= exact <= hi
    assert integers.accumulate(terms, n, "saturate").tolist() == saturated
    assert not ok
    with pytest.raises(ValueError, match="values must be in"):
        integers.accumulate(terms, n, "error")
    small = np.array([2**61, 2**61, -(2**61)])
    assert integers.accumulate(small, 64, "error").tolist() == [2**61, 2**62, 2**61]


# ------------------------------------------------------------------ packing


@pytest.mark.parametrize("size", [0, 1, 2, 7, 64, 1001])
@pytest.mark.parametrize(
    ("bits", "signed"), [(4, True), (4, False), (2, True), (2, False)]
)
def test_pack_matches_onnx_tensor_layout(size, bits, signed):
    dtype = {
        (4, True): ml_dtypes.int4,
        (4, False): ml_dtypes.uint4,
        (2, True): ml_dtypes.int2,
        (2, False): ml_dtypes.uint2,
    }[bits, signed]
    lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    values = np.random.default_rng(size).integers(lo, hi, size=size, endpoint=True)
    onnx_bytes = numpy_helper.from_array(values.astype(dtype)).raw_data
    packed = integers.pack(values, bits, signed=signed)
    assert packed.tobytes() == onnx_bytes
    back = integers.unpack(packed, bits, size, signed=signed)
    assert back.tolist() == values.tolist()


@pytest.mark.parametrize("size", [0, 1, 8, 13, 1000])
def test_pack_1_bit_matches_packbits_little(size):
    values = np.random.default_rng(size).integers(0, 1, size=size, endpoint=True)
    assert np.array_equal(
        integers.pack(values, 1),
        np.packbits(values.astype(np.uint8), bitorder="little"),
    )
    assert np.array_equal(integers.unpack(integers.pack(values, 1), 1, size), values)


def test_pack_first_element_in_low_nibble():
    assert integers.pack([0x1, 0x2], 4).tolist() == [0x21]
    assert integers.pack([-1, 0], 4).tolist() == [0x0F]
    assert integers.unpack([0x21], 4, 2).tolist() == [1, 2]


# -------------------------------------------------------------- bad input


@pytest.mark.parametrize("bits", [0, -1, 65])
def test_bits_out_of_range(bits):
    with pytest.raises(ValueError, match=r"bits must be in \[1, 64\]"):
        value_range(bits, "unsigned")
    with pytest.raises(ValueError, match=r"bits must be in \[1, 64\]"):
        encode(0, bits, "unsigned")
    with pytest.raises(ValueError, match=r"bits must be in \[1, 64\]"):
        decode(0, bits, "unsigned")


@pytest.mark.parametrize("bits", [2.0, True, "8", None])
def test_bits_wrong_type(bits):
    with pytest.raises(TypeError, match="bits must be an integer"):
        encode(0, bits, "unsigned")


def test_unknown_scheme_and_overflow():
    with pytest.raises(ValueError, match="scheme must be one of"):
        encode(0, 8, "twos")
    with pytest.raises(ValueError, match="scheme must be one of"):
        decode(0, 8, "excess")
    with pytest.raises(ValueError, match="overflow must be one of"):
        encode(0, 8, "unsigned", overflow="clip")


@pytest.mark.parametrize("bad", [np.nan, np.inf, 2.5, [1.0, np.nan]])
def test_non_integer_values(bad):
    with pytest.raises(ValueError, match="values must be integers"):
        encode(bad, 8, "twos_complement")


def test_non_numeric_values():
    with pytest.raises(TypeError, match="values must be integers"):
        encode(["a"], 8, "twos_complement")
    with pytest.raises(TypeError, match="values must be integers"):
        encode(1 + 2j, 8, "twos_complement")


def test_out_of_range_values_name_the_range():
    with pytest.raises(ValueError, match=r"\[-128, 127\].*got 128"):
        encode([0, 128], 8, "twos_complement")
    with pytest.raises(ValueError, match=r"\[-127, 127\].*got -128"):
        encode(-128, 8, "sign_magnitude")
    with pytest.raises(ValueError, match=r"\[0, 255\].*got -1"):
        encode(-1, 8, "unsigned")


def test_codes_out_of_range():
    with pytest.raises(
        ValueError, match=r"codes must be in \[0, 2\*\*bits - 1\] = \[0, 15\]"
    ):
        decode(16, 4, "twos_complement")
    with pytest.raises(ValueError, match="codes must be in"):
        decode(-1, 4, "unsigned")
    with pytest.raises(ValueError, match="codes must be in"):
        integers.to_bits(256, 8)


def test_from_bits_bad_strings():
    with pytest.raises(ValueError, match="only '0', '1'"):
        integers.from_bits("102")
    with pytest.raises(ValueError, match="1 to 64 binary digits"):
        integers.from_bits("")
    with pytest.raises(ValueError, match="1 to 64 binary digits"):
        integers.from_bits("1" * 65)
    with pytest.raises(TypeError, match="strings must be str"):
        integers.from_bits(5)


def test_pack_bad_input():
    with pytest.raises(ValueError, match=r"bits must be one of \(1, 2, 4\)"):
        integers.pack([1], 3)
    with pytest.raises(ValueError, match=r"values must be in \[-8, 7\]"):
        integers.pack([8], 4, signed=True)
    with pytest.raises(ValueError, match=r"values must be in \[0, 15\]"):
        integers.pack([-1], 4, signed=False)
    with pytest.raises(ValueError, match=r"count must be in \[0, 2\]"):
        integers.unpack([0], 4, 3)
    with pytest.raises(ValueError, match="data must be bytes"):
        integers.unpack([256], 4, 1)
    with pytest.raises(ValueError, match="new_bits must be in"):
        integers.sign_extend(0, 8, 4)


def test_nothing_is_modified_in_place():
    v = np.array([-3, 5, 127])
    before = v.copy()
    encode(v, 8, "sign_magnitude")
    encode(v, 4, "ones_complement", overflow="wrap")
    encode(v, 4, "twos_complement", overflow="saturate")
    assert np.array_equal(v, before)

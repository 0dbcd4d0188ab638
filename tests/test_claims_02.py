"""The claims of notebooks/02_integer_encodings.ipynb, computed through
qlib.integers.

Each test recomputes a number or a rule the chapter states, with the
chapter's seeds where the claim is about its own example, and checks it
against an independent reason written beside it: Python's own integers
(``int.from_bytes(..., signed=True)`` is two's complement by definition, and
Python ints never overflow), NumPy's fixed-width integer arithmetic, ONNX's
INT4 layout, or a count done by hand.  Exhaustive wherever the space is small.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from onnx import numpy_helper

from qlib import integers, widgets
from qlib.integers import SCHEMES, decode, encode, to_bits, value_range

TC = "twos_complement"


def signed_int(code: int, n: int) -> int:
    """Two's complement by Python itself: the code as n bits (n a multiple of 8)."""
    return int.from_bytes(code.to_bytes(n // 8, "little"), "little", signed=True)


def wrap_python(v: int, n: int) -> int:
    """The n-bit two's-complement value congruent to v, in Python ints."""
    half = 2 ** (n - 1)
    return (v + half) % 2**n - half


def saturate_python(v: int, n: int) -> int:
    return max(-(2 ** (n - 1)), min(2 ** (n - 1) - 1, v))


def accumulate_python(terms, n: int, mode: str) -> list[int]:
    """Running sums in an n-bit register, one Python-int step at a time."""
    step = wrap_python if mode == "wrap" else saturate_python
    s, out = 0, []
    for t in terms:
        s = step(s + int(t), n)
        out.append(s)
    return out


# ----------------------------------------------------- codes and schemes


def test_the_4_bit_table():
    # the printed table: distinct values per scheme, counted by hand
    # (sign-magnitude and ones' complement spend a code on -0)
    c = np.arange(16)
    distinct = {s: len(set(decode(c, 4, s).tolist())) for s in SCHEMES}
    assert distinct == {
        "unsigned": 16,
        "sign_magnitude": 15,
        "ones_complement": 15,
        "twos_complement": 16,
        "offset_binary": 16,
    }
    # row 1000 reads 8, 0, -7, -8, 0
    assert [int(decode(0b1000, 4, s)) for s in SCHEMES] == [8, 0, -7, -8, 0]
    # the top half (codes 0000 to 0111) agrees in the first four schemes
    for s in SCHEMES[:4]:
        assert decode(c[:8], 4, s).tolist() == list(range(8))
    # two's complement and offset binary: the same 16 values, each once
    assert sorted(decode(c, 4, TC).tolist()) == list(range(-8, 8))
    assert sorted(decode(c, 4, "offset_binary").tolist()) == list(range(-8, 8))


def test_hex_and_the_bit_operators_on_d6():
    c = 0xD6
    assert c == 0b1101_0110 == 214 == 13 * 16 + 6
    assert (f"{c:08b}", f"{c:X}") == ("11010110", "D6")
    assert (c >> 4, c & 0xF, c | 1, c ^ 0xFF, c << 1) == (13, 6, 215, 41, 428)
    assert c << 1 >= 2**8  # needs a ninth bit
    assert (~c, ~c & 0xFF) == (-215, 41)


@pytest.mark.parametrize("n", [8, 16])
def test_python_not_is_the_twos_complement_inversion(n):
    # inverting every bit of the code of y gives the code of -y - 1, which is
    # why Python, whose ints behave as two's complement of unbounded width,
    # defines ~y = -y - 1
    mask = 2**n - 1
    codes = np.arange(2**n)
    inverted = decode(codes ^ mask, n, TC)
    assert np.array_equal(inverted, -decode(codes, n, TC) - 1)
    for y in (0, 1, 5, 127, -1, -128):
        assert ~y == -y - 1 == signed_int(~y & mask, n)


@pytest.mark.parametrize("n", range(1, 13))
def test_scheme_formulas_against_python_definitions(n):
    # v = c - c_{n-1} 2**n and friends, one Python int at a time
    codes = np.arange(2**n)
    top, low = codes >> (n - 1), codes & (2 ** (n - 1) - 1)
    expected = {
        "unsigned": codes,
        "sign_magnitude": np.where(top == 1, -low, low),
        "ones_complement": np.where(top == 1, codes - (2**n - 1), codes),
        "twos_complement": np.array(
            [c - 2**n if c >= 2 ** (n - 1) else c for c in range(2**n)]
        ),
        "offset_binary": codes - 2 ** (n - 1),
    }
    for scheme, v in expected.items():
        assert decode(codes, n, scheme).tolist() == v.tolist(), scheme
    if n == 8:
        assert decode(codes, n, TC).tolist() == [signed_int(c, 8) for c in range(256)]


def test_negation_rules_on_every_8_bit_value():
    # ones' complement inverts, two's complement inverts and adds one, offset
    # binary is two's complement with the top bit flipped, sign-magnitude
    # sets the sign bit: for every y in 1..127
    mask = 0xFF
    for y in range(1, 128):
        assert encode(-y, 8, "ones_complement") == mask ^ y
        assert encode(-y, 8, TC) == (mask ^ y) + 1
        assert encode(-y, 8, TC) == (-y) & mask  # Python's own two's complement
        assert encode(-y, 8, "sign_magnitude") == 0x80 | y
        assert encode(-y, 8, "offset_binary") == ((mask ^ y) + 1) ^ 0x80
    codes = np.arange(256)
    assert np.array_equal(
        decode(codes ^ 0x80, 8, "offset_binary"), decode(codes, 8, TC)
    )
    # the four patterns printed for -5, and 01111011 = 123 = -5 + 128
    printed = ["10000101", "11111010", "11111011", "01111011"]
    assert [str(to_bits(encode(-5, 8, s), 8)) for s in SCHEMES[1:]] == printed
    assert 0b01111011 == 123 == -5 + 128


def test_float32_exponent_field_of_one_is_the_bias():
    # IEEE 754 binary32 1.0 is 0x3F800000: sign 0, exponent field 127, mantissa 0
    bits = int(np.float32(1.0).view(np.uint32))
    assert bits == 0x3F80_0000
    assert bits >> 23 == 127 == 2 ** (8 - 1) - 1


# ------------------------------------------------------------------ ranges


@pytest.mark.parametrize("n", range(1, 17))
def test_ranges_are_the_extremes_of_all_codes(n):
    # closed forms of the chapter in Python ints, against every code
    closed = {
        "unsigned": (0, 2**n - 1),
        "sign_magnitude": (-(2 ** (n - 1) - 1), 2 ** (n - 1) - 1),
        "ones_complement": (-(2 ** (n - 1) - 1), 2 ** (n - 1) - 1),
        "twos_complement": (-(2 ** (n - 1)), 2 ** (n - 1) - 1),
        "offset_binary": (-(2 ** (n - 1)), 2 ** (n - 1) - 1),
    }
    codes = np.arange(2**n)
    for scheme, ends in closed.items():
        v = decode(codes, n, scheme)
        assert (int(v.min()), int(v.max())) == value_range(n, scheme) == ends


def test_the_printed_ranges():
    assert value_range(8, "unsigned") == (0, 255)
    assert (
        value_range(8, "sign_magnitude")
        == value_range(8, "ones_complement")
        == (-127, 127)
    )
    assert value_range(8, TC) == value_range(8, "offset_binary") == (-128, 127)
    assert value_range(16, TC) == (-32768, 32767)
    assert value_range(16, "sign_magnitude") == (-32767, 32767)


@pytest.mark.parametrize("n", range(1, 13))
def test_the_misprinted_ranges_hold_more_integers_than_codes(n):
    wrong_twos = (-(2**n), 2 ** (n - 1))
    wrong_sign_mag = (-(2 ** (n - 1)) - 1, 2 ** (n - 1) - 1)
    size_twos = len(range(wrong_twos[0], wrong_twos[1] + 1))
    size_sign_mag = len(range(wrong_sign_mag[0], wrong_sign_mag[1] + 1))
    assert size_twos == 3 * 2 ** (n - 1) + 1 > 2**n
    assert size_sign_mag == 2**n + 1 > 2**n
    assert value_range(n, TC) != wrong_twos
    assert value_range(n, "sign_magnitude") != wrong_sign_mag
    # sign-magnitude has 2**n - 1 distinct values: one code is -0
    assert np.unique(decode(np.arange(2**n), n, "sign_magnitude")).size == 2**n - 1
    printed = {4: (25, 17), 8: (385, 257), 16: (98305, 65537)}
    if n in printed:
        assert (size_twos, size_sign_mag) == printed[n]


def test_the_circled_zeros_of_the_number_line():
    c = np.arange(16)
    zeros = {s: c[decode(c, 4, s) == 0].tolist() for s in SCHEMES}
    assert zeros == {
        "unsigned": [0],
        "sign_magnitude": [0, 8],
        "ones_complement": [0, 0xF],
        "twos_complement": [0],
        "offset_binary": [8],
    }
    # two's complement runs 8..F then 0..7 from left to right: the seam
    # between codes 7 and 8
    order = c[np.argsort(decode(c, 4, TC))].tolist()
    assert order == [*range(8, 16), *range(8)]


# ------------------------------------------------------------- bit flipper


def test_the_bit_flipper_examples():
    rows = {
        0b1000_0000: [128, 0, -127, -128, 0],
        0b1111_1111: [255, -127, 0, -1, 127],
        0b0111_1111: [127, 127, 127, 127, -1],
        0b0000_0000: [0, 0, 0, 0, -128],
    }
    for code, values in rows.items():
        assert [int(decode(code, 8, s)) for s in SCHEMES] == values
    # setting the top bit of a code whose top bit is 0: unsigned adds 128,
    # sign-magnitude negates, ones' complement subtracts 127, two's
    # complement subtracts 128, offset binary adds 128
    c = np.arange(128)
    change = {s: decode(c | 0x80, 8, s) - decode(c, 8, s) for s in SCHEMES}
    assert np.all(change["unsigned"] == 128)
    assert np.array_equal(
        decode(c | 0x80, 8, "sign_magnitude"), -decode(c, 8, "sign_magnitude")
    )
    assert np.all(change["ones_complement"] == -127)
    assert np.all(change["twos_complement"] == -128)
    assert np.all(change["offset_binary"] == 128)


def test_the_bit_flipper_section_with_its_buttons():
    flipper = widgets.BitFlipper(bits=8, code=0b0111_1111)
    # the weights of the table: the top bit's per scheme, read off decode
    top = {s: flipper.weights[s][0] for s in SCHEMES}
    assert top == {
        "unsigned": 128,
        "sign_magnitude": "±",
        "ones_complement": -127,
        "twos_complement": -128,
        "offset_binary": 128,
    }
    assert flipper.bias["offset_binary"] == -128
    assert flipper.weights["twos_complement"][1:] == [64, 32, 16, 8, 4, 2, 1]
    # 3. +1 from 01111111: unsigned and offset binary step on, the others jump
    flipper.steps["+1"].click()
    assert flipper.code == 0b1000_0000
    assert [flipper.values[s] for s in SCHEMES] == [128, 0, -127, -128, 0]
    # 4. -1 from zero wraps to all ones, two's complement's -1; then it counts
    # -2, -3 while unsigned counts 254, 253: (c - 1) mod 256, as Python's ints
    flipper.set_code(0)
    flipper.steps["-1"].click()
    assert flipper.code == 0xFF and "wrapped" in flipper.note
    for expected in (-1, -2, -3):
        assert flipper.values["twos_complement"] == expected
        assert flipper.values["unsigned"] == expected % 256
        assert flipper.code == int.from_bytes(
            expected.to_bytes(1, "little", signed=True), "little"
        )
        flipper.steps["-1"].click()


# ------------------------------------------------------- the adder, overflow


def test_the_wheel_default_example():
    # 5 + 4 = 9 on 4 bits: wraps to -7, saturates to 7
    assert decode(encode(5 + 4, 4, TC, overflow="wrap"), 4, TC) == -7 == 9 - 16
    assert decode(encode(5 + 4, 4, TC, overflow="saturate"), 4, TC) == 7


def adder(n: int):
    """Every pair of n-bit values, their codes added by an unsigned adder, and
    the carries into and out of the sign bit, in Python ints."""
    lo, hi = value_range(n, TC)
    low = 2 ** (n - 1) - 1
    rows = []
    for a in range(lo, hi + 1):
        for b in range(lo, hi + 1):
            ca, cb = a % 2**n, b % 2**n  # Python's own two's-complement codes
            total = ca + cb
            carry_in = ((ca & low) + (cb & low)) >> (n - 1)
            carry_out = total >> n
            rows.append((a, b, total % 2**n, carry_in, carry_out))
    return lo, hi, rows


def test_the_wheel_flags_on_every_4_bit_pair():
    wheel = widgets.NumberWheel(bits=4, a=5, b=4)
    assert (wheel.carry_out, wheel.carry_in, wheel.overflow_flag) == (0, 1, 1)
    _, _, rows = adder(4)
    for a, b, code_sum, carry_in, carry_out in rows:  # the centre's column sum
        wheel._add_codes(a, b, 4)
        assert (wheel.code_sum, wheel.carry_in, wheel.carry_out) == (
            code_sum,
            carry_in,
            carry_out,
        )
        assert wheel.overflow_flag == int(not -8 <= a + b <= 7)  # V: signed
    # 1. from a = 5 the first b that overflows is 3
    wheel.controls["a"].value = 5
    flags = {}
    for b in range(0, 5):
        wheel.controls["b"].value = b
        flags[b] = wheel.overflow_flag
    assert flags == {0: 0, 1: 0, 2: 0, 3: 1, 4: 1}
    # 2. C without V, V without C
    cases = {(-1, 1): (1, 0), (7, 1): (0, 1), (-5, -4): (1, 1)}
    for (a, b), (c, v) in cases.items():
        wheel.controls["a"].value, wheel.controls["b"].value = a, b
        assert (wheel.carry_out, wheel.overflow_flag) == (c, v)
    # 3. -5 - 4 wraps to 7 where saturation stops at -8
    assert (wheel.wrapped, wheel.saturated) == (7, -8)
    # 4. a b beyond 4 bits enters the adder wrapped: 9 as -7
    wheel.controls["a"].value, wheel.controls["b"].value = 0, 9
    assert "b wraps to \N{MINUS SIGN}7" in wheel.adder.get_text()


@pytest.mark.parametrize("n", [2, 3, 4, 5, 8])
def test_overflow_rules_on_every_pair(n):
    lo, hi, rows = adder(n)
    for a, b, code_sum, carry_in, carry_out in rows:
        overflow = not lo <= a + b <= hi  # Python ints do not overflow
        assert code_sum == encode(a + b, n, TC, overflow="wrap")
        result_negative = decode(code_sum, n, TC) < 0
        assert overflow == ((a < 0) == (b < 0) and result_negative != (a < 0))
        assert overflow == bool(carry_in ^ carry_out)
        assert lo - 2 ** (n - 1) <= a + b <= hi + 2 ** (n - 1) - 1  # fits in n + 1 bits


def test_the_4_bit_counts():
    lo, hi, rows = adder(4)
    overflow = [not lo <= a + b <= hi for a, b, *_ in rows]
    carry = [r[4] == 1 for r in rows]
    assert len(rows) == 256 and sum(overflow) == 64  # a quarter
    assert sum(carry) == 120
    assert sum(c and not o for c, o in zip(carry, overflow, strict=True)) == 84
    assert sum(o and not c for c, o in zip(carry, overflow, strict=True)) == 28
    by_pair = {(a, b): (co, not lo <= a + b <= hi) for a, b, _, _, co in rows}
    assert by_pair[-1, 1] == (1, False)  # carries out, correct
    assert by_pair[7, 1] == (0, True)  # no carry, overflows


# --------------------------------------------------------- wrap or saturate


def test_100_plus_100_in_int8():
    assert decode(encode(200, 8, TC, overflow="wrap"), 8, TC) == -56 == 200 - 256
    assert decode(encode(200, 8, TC, overflow="saturate"), 8, TC) == 127
    assert (np.array([100], np.int8) + np.array([100], np.int8)).tolist() == [-56]
    # saturating errs by 73, the least any int8 value can
    assert min(abs(v - 200) for v in range(-128, 128)) == 73 == 200 - 127


def test_the_toy_accumulation():
    terms = [100, 100, -100]
    for mode, expected in (("wrap", [100, -56, 100]), ("saturate", [100, 127, 27])):
        assert integers.accumulate(terms, 8, mode).tolist() == expected
        assert accumulate_python(terms, 8, mode) == expected


def test_wrapped_sums_are_exact_whenever_the_result_fits():
    # the rule, over many seeded random sums whose partial sums overflow
    rng = np.random.default_rng(2)
    fitted = 0
    for _ in range(300):
        terms = rng.integers(-120, 121, size=rng.integers(1, 40))
        total = int(terms.sum())
        wrapped = int(integers.accumulate(terms, 8, "wrap")[-1])
        assert wrapped == wrap_python(total, 8)
        if -128 <= total <= 127:
            fitted += 1
            assert wrapped == total
    assert fitted > 50  # the rule was exercised


def test_negating_minus_128():
    w = np.array([-128, -127, -1, 127], dtype=np.int8)
    assert (-w).tolist() == [-128, 127, 1, -127]
    assert np.abs(w).tolist() == [-128, 127, 1, 127]
    assert np.abs(w.astype(np.int16)).tolist() == [128, 127, 1, 127]
    # invert 1000 0000, add one: 1000 0000 again; +128 wraps to -128
    assert (0b1000_0000 ^ 0xFF) + 1 == 0b1000_0000
    assert (
        decode(encode(128, 8, TC, overflow="wrap"), 8, TC)
        == -128
        == signed_int(0x80, 8)
    )
    assert 128 not in range(value_range(8, TC)[0], value_range(8, TC)[1] + 1)


# ------------------------------------------------------ the dot product


@pytest.fixture(scope="module")
def dot():
    """The chapter's 256-term int8 dot product (seed 0), as Python ints."""
    rng = np.random.default_rng(0)
    w = rng.integers(-128, 128, size=256)
    x = rng.integers(-128, 128, size=256)
    products = [int(a) * int(b) for a, b in zip(w, x, strict=True)]
    exact = np.cumsum(products)
    return products, exact


def test_the_dot_product_numbers(dot):
    products, exact = dot
    assert max(abs(p) for p in products) == 15125
    assert sum(products) == -61003
    assert (int(exact.min()), int(exact.max())) == (-90873, 4588)


def test_the_accumulator_table(dot):
    products, _ = dot
    expected = {
        (8, "wrap"): -75,
        (8, "saturate"): 127,
        (16, "wrap"): 4533,
        (16, "saturate"): -2898,
        (32, "wrap"): -61003,
        (32, "saturate"): -61003,
    }
    for (bits, mode), final in expected.items():
        run = integers.accumulate(products, bits, mode)
        assert run.tolist() == accumulate_python(products, bits, mode)
        assert run[-1] == final
    # the wrapped 16-bit sum is -61003 mod 2**16
    assert 4533 == wrap_python(-61003, 16)


def test_the_8_bit_panel(dot):
    products, exact = dot
    saturated = np.array(accumulate_python(products, 8, "saturate"))
    at_an_end = np.isin(saturated, [-128, 127]).mean()
    assert round(100 * at_an_end) == 95  # "95 % of them"
    assert 0 < np.sum(np.abs(exact) <= 220) < 10  # the exact sum only flashes through
    assert np.any(exact > 0) and np.any(exact < 0)  # ... where it crosses zero


def test_wrap_is_exact_at_every_prefix_that_fits(dot):
    products, exact = dot
    wrap16 = np.array(accumulate_python(products, 16, "wrap"))
    sat16 = np.array(accumulate_python(products, 16, "saturate"))
    fits = (exact >= -32768) & (exact <= 32767)
    assert np.all((wrap16 - exact) % 2**16 == 0)  # congruent at all 256 prefixes
    assert np.array_equal(wrap16 == exact, fits)
    first_overflow = int(np.argmax(~fits))
    back = fits & (np.arange(256) > first_overflow)
    assert first_overflow + 1 == 16
    assert back.sum() == 88 and np.sum(back & (wrap16 == exact)) == 88
    assert np.sum(back & (sat16 == exact)) == 0


# -------------------------------------------------------- accumulator width


def every_product(w_lo: int = -128) -> np.ndarray:
    return np.outer(np.arange(w_lo, 128), np.arange(-128, 128))


def test_accumulator_widths():
    p = every_product()
    p_lo, p_hi = int(p.min()), int(p.max())
    assert (p_lo, p_hi) == (-16256, 16384) and p_hi == 2**14
    assert np.sum(p == p_hi) == 1  # only (-128) * (-128)
    for terms, bits in ((1, 16), (256, 24), (4096, 28)):
        assert bits == 16 + int(np.log2(terms))
        lo, hi = value_range(bits, TC)
        assert lo <= terms * p_lo and terms * p_hi <= hi  # fits
        assert terms * p_hi > value_range(bits - 1, TC)[1]  # not in one bit fewer


def test_int32_capacity_and_the_bias():
    acc_lo, acc_hi = value_range(32, TC)
    assert (acc_lo, acc_hi) == (-(2**31), 2**31 - 1)
    assert acc_hi // 2**14 == 2**17 - 1 == 131071  # the positive side binds
    assert acc_lo // -16256 == 132104  # the negative side would allow more
    assert 131071 * 2**14 <= acc_hi < 131072 * 2**14
    assert acc_hi - 131071 * 2**14 == 16383  # what is left for a bias
    spare_4096 = acc_hi - 4096 * 2**14
    assert spare_4096 == 2080374783 and 4096 * 2**14 == 2**26
    assert round(100 * spare_4096 / acc_hi) == 97
    assert round(spare_4096 / 1e9, 2) == 2.08
    # the sufficient condition with a bias B at the edge: K 2**14 + |B| fits,
    # and so does the negative side, B - K * 16256
    k, b = 131071, 16383
    assert k * 2**14 + b <= acc_hi and -b - k * 16256 >= acc_lo
    assert value_range(16, TC)[1] // 2**14 == 1  # int16 holds one product


def test_a_pair_of_products_in_int16():
    lo16, hi16 = value_range(16, TC)
    full, restricted = every_product(-128), every_product(-127)
    assert (2 * full.min(), 2 * full.max()) == (-32512, 32768)
    assert 2 * full.max() == hi16 + 1  # one more than int16 holds
    assert (2 * restricted.min(), 2 * restricted.max()) == (-32512, 32512)
    assert lo16 <= 2 * restricted.min() and 2 * restricted.max() <= hi16
    assert 127 * 128 == 16256 < 2**14
    # the only overflowing pair is (-128)(-128) + (-128)(-128): every other
    # product is at most 16256, and 16384 + 16256 = 32640 fits
    assert np.sort(np.unique(full))[-2] == 16256 and 16384 + 16256 <= hi16


# --------------------------------------------------- sign extension, packing


@pytest.mark.parametrize("n", range(1, 13))
def test_sign_extension_keeps_every_value(n):
    codes = np.arange(2**n)
    top = codes >> (n - 1)
    for new_bits in range(n, 17):
        high = 2**new_bits - 2**n  # the new bits, all ones
        widened = integers.sign_extend(codes, n, new_bits)
        assert np.array_equal(widened, codes | top * high)
        assert np.array_equal(decode(widened, new_bits, TC), decode(codes, n, TC))
    assert -(2**n) + 2 ** (n - 1) == -(2 ** (n - 1))


def test_the_int4_extension_table():
    c4 = np.arange(16)
    v4 = decode(c4, 4, TC)
    c8 = integers.sign_extend(c4, 4, 8)
    assert [signed_int(int(c), 8) for c in c8] == v4.tolist()  # Python's own reading
    zero8 = decode(c4, 8, TC)  # zero extension keeps the code
    assert np.array_equal(zero8 - v4, np.where(v4 < 0, 16, 0))
    assert zero8[8:].tolist() == list(range(8, 16))


def test_the_packed_example_matches_onnx_int4():
    values = np.array([1, -2, 3, 7, -8, 0, 5])
    packed = integers.pack(values, 4, signed=True)
    assert [f"{b:02X}" for b in packed] == ["E1", "73", "08", "05"]
    # ONNX's INT4 tensor layout: first element in the low nibble, padded
    assert (
        packed.tobytes()
        == numpy_helper.from_array(values.astype(ml_dtypes.int4)).raw_data
    )
    assert packed[0] & 0xF == 1 and packed[0] >> 4 == 0b1110 == encode(-2, 4, TC)
    assert integers.unpack(packed, 4, 7, signed=True).tolist() == values.tolist()


def test_packing_sizes_and_round_trip():
    rng = np.random.default_rng(1)
    for bits, size in ((4, 524288), (2, 262144), (1, 131072)):
        codes = rng.integers(0, 2**bits, size=(1024, 1024))
        packed = integers.pack(codes, bits, signed=False)
        assert packed.nbytes == size == 1024 * 1024 * bits // 8
        assert 1024 * 1024 // packed.nbytes == 8 // bits
        restored = integers.unpack(packed, bits, codes.size).reshape(codes.shape)
        assert np.array_equal(restored, codes)
        # element 0 sits in the low bits of byte 0, by shift and mask
        assert packed[0] & (2**bits - 1) == codes.flat[0]

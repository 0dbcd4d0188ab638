"""The claims of notebooks/04_ieee754.ipynb, computed through qlib.floats.

Each test recomputes a number or a rule the chapter states, with the
chapter's seeds where the claim is about its own example, and checks it
against an independent reason written beside it: NumPy's own float16,
float32 and float64 (bit patterns, ``finfo``, ``nextafter``, ``spacing``,
arithmetic), ml_dtypes for bf16 and FP8, exact rational arithmetic
(``fractions.Fraction``), ``math.fsum``, or a count done by hand.
"""

from __future__ import annotations

import math
from decimal import Decimal, localcontext
from fractions import Fraction

import ml_dtypes
import numpy as np
import pytest

from qlib.floats import FORMATS

fp16, fp32, fp64, bf16 = (FORMATS[k] for k in ("fp16", "fp32", "fp64", "bf16"))
ALL16 = np.arange(2**16)


def kahan(values: np.ndarray):
    """Compensated summation in the precision of ``values`` (the chapter's
    pseudo-code; NumPy scalars keep their dtype through every step)."""
    total = lost = values.dtype.type(0)
    for v in values:
        y = v - lost
        t = total + y
        lost = (t - total) - y
        total = t
    return total


# -------------------------------------------------------- the value of a code


def test_the_formulas_decode_every_finite_fp16_code():
    s, e, m = (f.astype(np.int64) for f in fp16.fields(ALL16))
    normal = (e > 0) & (e < 31)
    finite = normal | (e == 0)
    assert finite.sum() == 63488 == 2**16 - 2 * 2**10  # all but the top exponent
    # the formulas in exact fractions against NumPy's reading of the same bits
    as_numpy = ALL16.astype(np.uint16).view(np.float16)
    for code in ALL16[finite][::97]:
        sign = (-1) ** int(s[code])
        frac = Fraction(int(m[code]), 2**10)
        if normal[code]:
            value = sign * (1 + frac) * Fraction(2) ** (int(e[code]) - 15)
        else:
            value = sign * frac * Fraction(2) ** -14
        assert value == Fraction(float(as_numpy[code])) == Fraction(fp16.decode(code))
    assert np.array_equal(
        fp16.decode(ALL16)[finite], as_numpy[finite].astype(np.float64)
    )


def test_the_plus_typo_leaves_nothing_below_one():
    s, e, m = (f.astype(np.int64) for f in fp16.fields(ALL16))
    normal = (e > 0) & (e < 31)
    v_plus = (-1.0) ** s * (1 + m / 2**10) + 2.0 ** (e - 15)
    assert v_plus[normal & (s == 0)].min() > 1
    assert np.sum(v_plus[normal] != fp16.decode(ALL16)[normal]) == 61439  # of 61440
    # 12 = 1.5 x 2**3; the "+" reading gives 1.5 + 8
    code = fp16.encode(12.0)
    _, e12, m12 = (int(f) for f in fp16.fields(code))
    assert (m12 / 2**10, e12 - 15) == (0.5, 3)
    assert (1 + m12 / 2**10) * 2.0 ** (e12 - 15) == 12.0 == fp16.decode(code)
    assert (1 + m12 / 2**10) + 2.0 ** (e12 - 15) == 9.5


# --------------------------------------------------------------- four formats


@pytest.mark.parametrize(
    ("name", "dtype"),
    [
        ("fp64", np.float64),
        ("fp32", np.float32),
        ("fp16", np.float16),
        ("bf16", ml_dtypes.bfloat16),
    ],
)
def test_the_format_table_against_finfo(name, dtype):
    f, fi = FORMATS[name], ml_dtypes.finfo(dtype)
    assert (f.bits, f.exp_bits, f.man_bits) == (fi.bits, fi.nexp, fi.nmant)
    assert f.bias == fi.maxexp - 1 == 2 ** (f.exp_bits - 1) - 1
    assert f.max == float(fi.max) and f.eps == float(fi.eps)
    assert f.min_normal == float(fi.smallest_normal)
    assert f.min_subnormal == float(fi.smallest_subnormal)
    # max = (2 - 2**-M) * 2**(2**exp_bits - 2 - bias), min_subnormal = 2**(1 - bias - M)
    top = 2**f.exp_bits - 2 - f.bias
    assert Fraction(f.max) == (2 - Fraction(1, 2**f.man_bits)) * Fraction(2) ** top
    assert Fraction(f.min_subnormal) == Fraction(2) ** (1 - f.bias - f.man_bits)
    assert f.eps == 2.0**-f.man_bits


def test_finfo_of_float16_and_bf16_as_the_text_quotes():
    fi = np.finfo(np.float16)
    assert (float(fi.max), float(fi.eps), float(fi.smallest_normal)) == (
        65504.0,
        2**-10,
        2**-14,
    )
    assert fp16.max == 65504
    assert float(ml_dtypes.finfo(ml_dtypes.bfloat16).eps) == 2**-7 == bf16.eps


def test_bf16_is_the_top_half_of_fp32():
    # every finite bf16 code, padded with 16 zero bits, is the fp32 code of
    # the same value; the ranges agree to within the dropped mantissa bits
    codes = np.arange(2**16, dtype=np.uint32)
    values = bf16.all_values()
    finite = np.isfinite(values)
    as_fp32 = (codes << 16).view(np.float32)
    assert np.array_equal(as_fp32[finite], values[finite])
    assert np.array_equal(
        codes.astype(np.uint16).view(ml_dtypes.bfloat16)[finite], values[finite]
    )
    assert bf16.min_normal == fp32.min_normal and 0.99 < bf16.max / fp32.max < 1


# ----------------------------------------------------------- decoding by hand


def test_three_fp32_codes_by_hand():
    expected = {1.0: (0, 127, 0), -2.5: (1, 128, 2**21), 0.1: (0, 123, 5033165)}
    for x, fields in expected.items():
        code = int(np.float32(x).view(np.uint32))
        assert code == fp32.encode(x)
        s, e, m = (int(f) for f in fp32.fields(code))
        assert (s, e, m) == fields
        value = (-1) ** s * (1 + Fraction(m, 2**23)) * Fraction(2) ** (e - 127)
        assert value == Fraction(float(np.float32(x)))
    # 0.6 cut to 23 bits and rounded up: the mantissa of 0.1 ends in 1101
    m_01 = expected[0.1][2]
    assert m_01 == math.floor(Fraction(6, 10) * 2**23) + 1
    assert f"{m_01:023b}".endswith("1101")
    assert 1 + Fraction(m_01, 2**23) > Fraction(16, 10)


def test_the_decimal_expansions_of_0_1():
    exact32 = Fraction(float(np.float32(0.1)))
    assert Decimal(float(np.float32(0.1))) == Decimal("0.100000001490116119384765625")
    assert exact32 - Fraction(1, 10) == Fraction(Decimal("1.490116119384765625E-9"))
    overshoot64 = Fraction(0.1) - Fraction(1, 10)
    assert f"{float(overshoot64):.1e}" == "5.6e-18"
    assert repr(0.1) == "0.1"  # the shortest decimal that rounds back


def test_explorer_suggestions():
    # 65519 rounds down to the max, 65520 is the tie with the next step up
    # and goes to infinity; NumPy's float16 agrees
    assert fp16.quantize(65519.0) == 65504 == float(np.float16(65519.0))
    with np.errstate(over="ignore"):
        numpy_65520 = float(np.float16(65520.0))
    assert fp16.quantize(65520.0) == np.inf == numpy_65520
    assert 65520 == fp16.max + fp16.ulp(fp16.max) / 2
    # the first and the last mantissa bit of fp32 1.0
    one = int(fp32.encode(1.0))
    assert fp32.decode(one | 2**22) == 1.5
    assert fp32.decode(one | 1) == 1 + 2**-23 == 1 + fp32.eps
    # every exponent bit set: infinity with mantissa 0, NaN with anything else
    assert fp16.decode(0x7C00) == np.inf and np.isnan(fp16.decode(0x7C01))
    assert fp16.decode(0x0001) == fp16.min_subnormal == 2**-24


# ------------------------------------------------------------------ specials


def test_the_class_counts_of_fp16():
    kinds = fp16.classify(ALL16)
    counts = {
        k: int(np.sum(kinds == k))
        for k in ("zero", "subnormal", "normal", "inf", "nan")
    }
    assert counts == {
        "zero": 2,
        "subnormal": 2046,
        "normal": 61440,
        "inf": 2,
        "nan": 2046,
    }
    # NumPy's own view of the same bits
    x = ALL16.astype(np.uint16).view(np.float16)
    with np.errstate(invalid="ignore"):
        tiny = np.abs(x) < np.finfo(np.float16).smallest_normal
    assert np.sum(np.isnan(x)) == 2046 and np.sum(np.isinf(x)) == 2
    assert np.sum(np.isfinite(x) & (x != 0) & tiny) == 2046
    assert round(100 * 2046 / 2**16, 1) == 3.1
    assert round(16 - math.log2(2**16 - 2046), 2) == 0.05  # bits spent on NaN


def test_e4m3_keeps_one_nan_per_sign():
    e4m3 = FORMATS["fp8_e4m3fn"]
    codes = np.arange(256)
    assert codes[np.isnan(e4m3.decode(codes))].tolist() == [0x7F, 0xFF]  # S 1111 111
    as_ml = codes.astype(np.uint8).view(ml_dtypes.float8_e4m3fn)
    assert codes[np.isnan(as_ml.astype(np.float32))].tolist() == [0x7F, 0xFF]
    assert e4m3.max == 448 == float(ml_dtypes.finfo(ml_dtypes.float8_e4m3fn).max)
    # with the IEEE reservation of the top exponent (ml_dtypes' float8_e4m3)
    assert float(ml_dtypes.finfo(ml_dtypes.float8_e4m3).max) == 240 == 1.875 * 2**7


def test_special_arithmetic():
    zero = np.float16(0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        one_over = np.float16(1) / np.array([zero, -zero])
        nan = zero / zero
        inf_minus_inf = np.float16(np.inf) - np.float16(np.inf)
    assert one_over.tolist() == [np.inf, -np.inf]
    assert np.isnan(nan) and np.isnan(inf_minus_inf) and nan != nan
    assert zero == -zero and np.signbit(-zero)
    assert fp16.encode(-0.0) == 0x8000 != fp16.encode(0.0) == 0  # not the same code


def positive_fp16() -> np.ndarray:
    x = ALL16[:0x7C00].astype(np.uint16).view(np.float16)  # +0 ... max, sorted
    return x[1:]  # every positive finite fp16 value, ascending


def test_gradual_underflow():
    pos = positive_fp16()
    values = fp16.all_values()
    assert np.array_equal(np.sort(values[(values > 0) & np.isfinite(values)]), pos)
    diff = pos[1:] - pos[:-1]  # NumPy's fp16 subtraction
    assert diff.size == 31742 and np.all(diff != 0)
    flushed = np.where(np.abs(diff) < np.finfo(np.float16).smallest_normal, 0, diff)
    # all subnormal pairs and the 10 lowest normal binades, below 2**-4
    assert np.sum(flushed == 0) == (2**10 - 1) + 10 * 2**10 == 11263
    assert np.sum(pos[:-1] < 2.0**-4) == 11263


# ------------------------------------------------------------------- the ULP


def test_the_ulp_staircase():
    pos = positive_fp16()[:-1]  # np.spacing of the max is infinite
    gap = fp16.ulp(pos.astype(np.float64))
    assert np.array_equal(gap, np.spacing(pos).astype(np.float64))
    x = pos.astype(np.float64)
    normal = x >= 2**-14
    assert np.all(gap[~normal] == 2**-24)
    assert np.all(gap[normal] == 2.0 ** (np.floor(np.log2(x[normal])) - 10))
    rel = gap[normal] / x[normal]
    assert np.all((2**-11 < rel) & (rel <= 2**-10))  # between eps/2 and eps
    log_gaps = np.unique(np.log2(gap))
    assert log_gaps.size == 30 == 2**5 - 2 and (log_gaps[0], log_gaps[-1]) == (-24, 5)
    assert fp16.ulp(32768.0) == fp16.ulp(65504.0) == 32
    assert round(10 * math.log10(2)) == 3  # 2**-10 is about 3 decimal digits


def test_next_up_and_down_against_nextafter():
    pos = positive_fp16()[:-1]
    assert np.array_equal(fp16.next_up(pos), np.nextafter(pos, np.float16(np.inf)))
    assert np.array_equal(fp16.next_down(pos), np.nextafter(pos, np.float16(0)))
    assert (
        fp16.next_up(1.0) - 1.0 == fp16.eps
        and 1.0 - fp16.next_down(1.0) == fp16.eps / 2
    )
    assert fp16.next_up(fp16.max) == np.inf and fp16.next_up(0.0) == fp16.min_subnormal
    table = {
        1000.0: (999.5, 1000.5, 0.5),
        2048.0: (2047, 2050, 2),
        65504.0: (65472, np.inf, 32),
    }
    for v, (down, up, ulp) in table.items():
        assert (fp16.next_down(v), fp16.next_up(v), fp16.ulp(v)) == (down, up, ulp)


# ----------------------------------------------------------------- rounding


def test_the_four_ties_go_to_even():
    cases = [
        (fp16, 2049.0, 2048.0, np.float16),
        (fp16, 2051.0, 2052.0, np.float16),
        (bf16, 1 + 2**-8, 1.0, ml_dtypes.bfloat16),
        (bf16, 1 + 3 * 2**-8, 1.015625, ml_dtypes.bfloat16),
    ]
    for fmt, x, rounded, dtype in cases:
        lo, hi = fmt.next_down(x), fmt.next_up(x)
        assert x - lo == hi - x  # a tie
        assert (
            fmt.quantize(x) == rounded == float(np.array(x, np.float32).astype(dtype))
        )
        assert int(fmt.fields(fmt.encode(x))[2]) % 2 == 0  # even mantissa


def test_ties_to_even_do_not_drift():
    ties = np.arange(2049, 4096, 2, dtype=np.float64)
    assert ties.size == 1024
    assert fp16.ulp(2048.0) == 2 and fp16.next_down(4096.0) == 4094
    half_up = 2 * np.floor(ties / 2 + 0.5)
    to_even = fp16.quantize(ties)
    assert np.array_equal(to_even, ties.astype(np.float16).astype(np.float64))  # NumPy
    err_up, err_even = half_up - ties, to_even - ties
    assert err_up.mean() == 1.0 and err_up.sum() == 1024
    assert err_even.mean() == 0.0 and err_even.sum() == 0
    assert np.sum(err_even > 0) == np.sum(err_even < 0) == 512


@pytest.fixture(scope="module")
def model_data():
    """The chapter's 100,000 fp16 pairs (seed 0), magnitudes in [1/16, 16]."""
    rng = np.random.default_rng(0)
    signs = rng.choice([-1.0, 1.0], size=(2, 10**5))
    a, b = (signs * 2.0 ** rng.uniform(-4, 4, size=(2, 10**5))).astype(np.float16)
    return a, b


def test_the_standard_model_in_fp16(model_data):
    a, b = model_data
    u = fp16.eps / 2
    assert u == 2**-11 and f"{u:.2g}" == "0.00049"
    A, B = a.astype(np.float64), b.astype(np.float64)
    # the fp64 results are exact: Fractions on a sample
    for i in range(0, 10**5, 997):
        fa, fb = Fraction(float(a[i])), Fraction(float(b[i]))
        assert (Fraction(A[i] + B[i]), Fraction(A[i] * B[i])) == (fa + fb, fa * fb)
    printed = {"+": (0.9995, 0.318), "-": (0.9995, 0.317), "*": (0.9976, 0.005)}
    for op, computed, exact in (
        ("+", a + b, A + B),
        ("-", a - b, A - B),
        ("*", a * b, A * B),
    ):
        # NumPy's fp16 result is the exact result rounded once (correct rounding)
        assert np.array_equal(computed.astype(np.float64), fp16.quantize(exact))
        nonzero = exact != 0
        delta = (computed[nonzero] - exact[nonzero]) / exact[nonzero]
        worst = np.abs(delta).max() / u
        assert 0.99 < worst < 1  # |delta| <= u, and nearly attained
        assert round(worst, 4) == printed[op][0]
        assert round(np.mean(delta == 0), 3) == printed[op][1]


def test_the_unit_roundoffs_quoted():
    u16, u32, u64 = (f.eps / 2 for f in (fp16, fp32, fp64))
    assert (u16, u32, u64) == (2**-11, 2**-24, 2**-53)
    assert (f"{u16:.1e}", f"{u32:.1e}", f"{u64:.1e}") == (
        "4.9e-04",
        "6.0e-08",
        "1.1e-16",
    )
    assert u32 == float(np.finfo(np.float32).eps) / 2


def test_subnormal_results_have_an_absolute_error_bound():
    # products that land among the subnormals: error <= min_subnormal / 2,
    # which can be a large relative error
    rng = np.random.default_rng(5)
    a = (2.0 ** rng.uniform(-14, -6, 10**4)).astype(np.float16)
    b = (2.0 ** rng.uniform(-14, -6, 10**4)).astype(np.float16)
    exact = a.astype(np.float64) * b.astype(np.float64)
    sub = (exact > 0) & (exact < 2**-14)
    err = np.abs(fp16.quantize(exact) - exact)
    assert sub.sum() > 1000 and np.all(err[sub] <= 2**-25)
    assert np.max(err[sub] / exact[sub]) > 2**-11  # beyond the standard model


def test_the_fma_example():
    a, b, c = np.float16(1 + 2**-10), np.float16(1 - 2**-10), np.float16(-1)
    fa, fb, fc = (Fraction(float(v)) for v in (a, b, c))
    assert fa * fb == Fraction(1048575, 1048576) == 1 - Fraction(1, 2**20)
    assert a * b == 1.0  # the gap below 1 is 2**-11
    assert a * b + c == 0.0
    fused = fp16.quantize(np.float64(a) * np.float64(b) + np.float64(c))
    assert Fraction(fused) == fa * fb + fc == -Fraction(1, 2**20)
    assert fp16.classify(fp16.encode(fused)) == "subnormal"
    assert fused == -16 * fp16.min_subnormal
    # fma(a, b, -fl(ab)) is the exact rounding error of the product
    p = a * b
    assert fa * fb - Fraction(float(p)) == -Fraction(1, 2**20)


def test_why_0_1_plus_0_2_is_not_0_3():
    a, b, c = 0.1, 0.2, 0.3
    exact_sum = Fraction(a) + Fraction(b)
    assert a + b != c and a + b == math.nextafter(c, 1)
    assert exact_sum - Fraction(c) == Fraction(a + b) - exact_sum == Fraction(1, 2**55)
    assert Fraction(a) > Fraction(1, 10) and Fraction(b) > Fraction(2, 10)  # too large
    assert int(fp64.fields(fp64.encode(c))[2]) % 2 == 1  # 0.3's mantissa is odd
    assert int(fp64.fields(fp64.encode(a + b))[2]) % 2 == 0
    assert abs(Fraction(a + b) - exact_sum) <= Fraction(fp64.ulp(a + b)) / 2
    assert np.float32(a) + np.float32(b) == np.float32(c)
    assert np.float16(a) + np.float16(b) != np.float16(c)


# ------------------------------------------------------ adding a million numbers


def test_counting_in_fp16_stops_at_2048():
    counter = np.cumsum(np.ones(10**6, dtype=np.float16), dtype=np.float16)
    assert counter[-1] == 2048 and counter[2047] == 2048 and counter[2046] == 2047
    assert np.argmax(counter == 2048) + 1 == 2048
    assert np.float16(2048) + np.float16(1) == 2048  # the tie 2049 goes to even


@pytest.fixture(scope="module")
def million():
    rng = np.random.default_rng(0)
    x16 = rng.random(10**6).astype(np.float16)
    return x16, math.fsum(x16.astype(np.float64))


def test_the_data_and_its_exact_sum(million):
    x16, exact = million
    assert 100 < np.sum(x16 == 1) < 1000  # "a few hundred round up to 1"
    # every fp16 value in [0, 1] is a multiple of 2**-24: integer sums are exact
    scaled = (x16.astype(np.float64) * 2**24).astype(np.int64)
    assert np.array_equal(scaled / 2**24, x16.astype(np.float64))
    assert exact == int(scaled.sum()) / 2**24  # fsum is exact here
    assert np.array_equal(np.cumsum(x16.astype(np.float64)), np.cumsum(scaled) / 2**24)
    assert abs(exact - 5e5) < 1e3 and exact > fp16.max


def test_the_summation_table(million):
    x16, exact = million
    x32 = x16.astype(np.float32)
    running16 = np.cumsum(x16, dtype=np.float16)[-1]
    running32 = np.cumsum(x32, dtype=np.float32)[-1]
    pairwise = np.sum(x32)
    rounded = np.float32(exact)
    assert running16 == 2048
    assert float(running32) == 500163.125 and float(pairwise) == 500159.1875
    assert float(rounded) == 500159.21875 and fp32.ulp(exact) == 0.03125
    err = {
        k: abs(float(v) - exact)
        for k, v in {
            "running": running32,
            "pairwise": pairwise,
            "rounded": rounded,
        }.items()
    }
    assert err["rounded"] <= fp32.ulp(exact) / 2  # the best an fp32 answer can be
    assert err["running"] > err["pairwise"] > err["rounded"]
    assert round(err["running"] / err["rounded"]) == 677


def test_kahan_in_fp32_returns_the_rounded_exact_sum(million):
    x16, exact = million
    result = kahan(x16.astype(np.float32))
    assert result.dtype == np.float32
    assert result == np.float32(exact) == 500159.21875  # as if rounded once


def test_where_fp16_stops(million):
    x16, _ = million
    run16 = np.cumsum(x16, dtype=np.float16).astype(np.float64)
    exact_run = np.cumsum(x16.astype(np.float64))
    k = int(np.argmax(run16 == 2048))
    assert k + 1 == 4134  # element 4134 of the million
    assert round(exact_run[k]) == 2053
    drift = np.abs(run16[:k] - exact_run[:k])
    assert 18 < drift.max() < 20 and (drift / exact_run[:k]).max() < 0.013  # about 1 %
    assert np.all(run16[k:] == 2048)  # flat from there on
    assert np.all(x16 <= 1) and fp16.ulp(2048.0) / 2 == 1


def test_kahan_rescues_fp16(million):
    x16, _ = million
    part = x16[: 10**5]
    exact_part = math.fsum(part.astype(np.float64))
    kahan16 = kahan(part)
    assert kahan16.dtype == np.float16
    assert kahan16 == np.float16(exact_part) == 49952  # the exact sum rounded once
    assert abs(float(kahan16) - exact_part) <= fp16.ulp(exact_part) == 32
    assert np.cumsum(part, dtype=np.float16)[-1] == 2048
    assert abs(exact_part - 5e4) < 1e3 and round(exact_part / 2048) == 24
    assert exact_part < fp16.max


# ------------------------------------------------------------- cancellation


def test_one_plus_x_minus_one():
    for k in range(1, 9):
        x = np.float32(10.0**-k)
        y = (np.float32(1) + x) - np.float32(1)
        # exact arithmetic on the stored values: |fl(1 + x) - (1 + x)| <= eps / 2
        rel = abs(Fraction(float(y)) - Fraction(float(x))) / Fraction(float(x))
        assert rel <= Fraction(fp32.eps) / (2 * Fraction(float(x)))
    assert (np.float32(1) + np.float32(1e-8)) - np.float32(1) == 0
    assert 1e-8 < fp32.eps / 2


def test_the_quadratic_roots():
    a = c = np.float32(1)
    rel_naive = {}
    for k in range(1, 6):
        b = np.float32(10.0**k)
        d = np.sqrt(b * b - 4 * a * c)
        naive, stable = (-b + d) / (2 * a), (2 * c) / (-b - d)
        # the root 2c / (-b - sqrt(b**2 - 4ac)) of the exact b, to 60 digits
        with localcontext(prec=60):
            ref = Fraction(
                -2 / (Decimal(float(b)) + (Decimal(float(b)) ** 2 - 4).sqrt())
            )
        rel_naive[k] = abs((Fraction(float(naive)) - ref) / ref)
        assert abs((Fraction(float(stable)) - ref) / ref) < Fraction(1, 10**7)
    assert rel_naive[4] == 1 and rel_naive[5] == 1  # the textbook root is 0
    assert all(rel_naive[k] < rel_naive[k + 1] for k in range(1, 4))
    assert np.float32(1e4) * np.float32(1e4) - 4 == np.float32(1e8)  # b**2 - 4 = b**2

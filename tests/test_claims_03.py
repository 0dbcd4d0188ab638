"""The claims of notebooks/03_fixed_point.ipynb, computed through qlib.fixedpoint.

Each test recomputes a number the chapter states as a property, with the
same seeds where the claim is about the chapter's own example, and checks it
against an independent reason (a formula, exact rational arithmetic, a
statistical margin) written in a comment.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from qlib import integers
from qlib.fixedpoint import (
    ROUNDINGS,
    QFormat,
    add,
    from_fixed,
    multiply,
    multiply_by_constant,
    product_format,
    quantize,
    quantize_multiplier,
    rescale,
    sum_format,
    to_fixed,
)
from qlib.floats import FORMATS

Q15 = QFormat(0, 15)

# ------------------------------------------------------------ Qm.n anatomy


@pytest.mark.parametrize(("m", "n"), [(3, 4), (0, 7), (1, 2), (5, 0), (0, 11)])
def test_bit_weights_give_q_times_2_to_minus_n(m, n):
    # bit i weighs 2**(i - n), the sign bit -2**m: summed in exact fractions
    fmt = QFormat(m, n)
    w = fmt.word_bits
    assert w == 1 + m + n
    patterns = range(2**w)
    values = [
        sum(
            (-(Fraction(2) ** m) if i == w - 1 else Fraction(2) ** (i - n))
            for i in range(w)
            if (c >> i) & 1
        )
        for c in patterns
    ]
    q = integers.decode(np.arange(2**w), w, "twos_complement")
    assert from_fixed(q, fmt).tolist() == [float(v) for v in values]
    # range [-2**m, 2**m - 2**-n], resolution 2**-n
    assert min(values) == -(Fraction(2) ** m) == Fraction(fmt.min)
    assert max(values) == Fraction(2) ** m - Fraction(2) ** -n == Fraction(fmt.max)
    assert fmt.resolution == 2.0**-n


def test_the_q34_example():
    # -3.3 * 16 = -52.8 rounds to -53; -53 / 16 = -3.3125; bits of -53 + 256 = 203
    fmt = QFormat(3, 4)
    q = to_fixed(-3.3, fmt)
    assert q == -53 and from_fixed(q, fmt) == -3.3125
    code = integers.encode(q, 8, "twos_complement")
    assert integers.to_bits(code, 8) == "11001011"
    assert (fmt.min, fmt.max, fmt.resolution) == (-8.0, 7.9375, 1 / 16)


def test_q15_names_in_both_conventions():
    # sign not counted: Q0.15 has 1 + 0 + 15 = 16 bits; ARM's Q1.15 counts the
    # sign, so its m + n = 16 is the word length of the same format
    assert QFormat(0, 15).word_bits == 16 == 1 + 15
    assert (QFormat(0, 15).min, QFormat(0, 15).max) == (-1.0, 1 - 2**-15)
    assert QFormat(0, 31).word_bits == 32 and QFormat(0, 7).word_bits == 8
    u = QFormat(1, 15, signed=False)  # UQm.n: m + n bits, [0, 2**m - 2**-n]
    assert u.word_bits == 16 and (u.min, u.max) == (0.0, 2 - 2**-15)


# ------------------------------------------------- range against resolution


@pytest.mark.parametrize("w", [8, 16, 32])
def test_max_over_resolution_depends_on_the_word_only(w):
    # (2**m - 2**-n) / 2**-n = 2**(m + n) - 1 = 2**(w - 1) - 1, exactly
    for n in range(w):
        fmt = QFormat(w - 1 - n, n)
        assert fmt.max / fmt.resolution == 2 ** (w - 1) - 1


# ------------------------------------------------------------ rounding bias

N_ROUND = 10**6


@pytest.fixture(scope="module")
def rounding_errors():
    """The notebook's 10**6 seeded inputs in Q1.2, errors in units of delta."""
    fmt = QFormat(1, 2)
    x = np.random.default_rng(1).uniform(-1.5, 1.5, N_ROUND)
    return x, {r: (quantize(x, fmt, r, rng=2) - x) / fmt.resolution for r in ROUNDINGS}


def test_floor_and_ceil_are_biased_by_half_a_step(rounding_errors):
    # e = -f * delta with f uniform on [0, 1): mean -1/2, sd 1/sqrt(12); ceil +1/2
    _, e = rounding_errors
    se = math.sqrt(1 / 12) / math.sqrt(N_ROUND)
    assert abs(e["floor"].mean() + 0.5) < 4 * se
    assert abs(e["ceil"].mean() - 0.5) < 4 * se
    # rms sqrt(E[f**2]) = sqrt(1/3); the error reaches (almost) a whole step
    for r in ("floor", "ceil"):
        assert abs(np.sqrt(np.mean(e[r] ** 2)) - math.sqrt(1 / 3)) < 0.002
        assert 0.999 < np.abs(e[r]).max() <= 1


def test_toward_zero_shrinks_magnitudes_by_half_a_step(rounding_errors):
    # floor for x > 0 (mean -1/2), ceil for x < 0 (mean +1/2): no net bias on
    # a symmetric input; its dead zone (-delta, delta) maps to 0
    x, e = rounding_errors
    se = math.sqrt(1 / 12) / math.sqrt(N_ROUND / 2)
    assert abs(e["toward_zero"][x > 0].mean() + 0.5) < 4 * se
    assert abs(e["toward_zero"][x < 0].mean() - 0.5) < 4 * se
    assert abs(e["toward_zero"].mean()) < 4 * 0.5 / math.sqrt(N_ROUND)
    fmt = QFormat(1, 2)
    inside = np.linspace(-0.2499, 0.2499, 101)
    assert np.all(to_fixed(inside, fmt, "toward_zero") == 0)
    assert to_fixed(0.25, fmt, "toward_zero") == 1


@pytest.mark.parametrize("rounding", ["nearest_away", "nearest_even"])
def test_nearest_is_unbiased_and_within_half_a_step(rounding_errors, rounding):
    # e uniform on [-1/2, 1/2]: mean 0 (sd 1/sqrt(12) per draw), |e| <= 1/2
    _, e = rounding_errors
    se = math.sqrt(1 / 12) / math.sqrt(N_ROUND)
    assert abs(e[rounding].mean()) < 4 * se
    assert np.abs(e[rounding]).max() <= 0.5
    assert abs(np.sqrt(np.mean(e[rounding] ** 2)) - math.sqrt(1 / 12)) < 0.002


def test_stochastic_is_unbiased_with_variance_delta_squared_over_6(rounding_errors):
    # var f(1 - f) averaged over uniform f: 1/2 - 1/3 = 1/6 (in delta**2)
    _, e = rounding_errors
    se = math.sqrt(1 / 6) / math.sqrt(N_ROUND)
    assert abs(e["stochastic"].mean()) < 4 * se
    assert abs(e["stochastic"].var() / (1 / 6) - 1) < 0.01
    assert np.abs(e["stochastic"]).max() < 1


@pytest.mark.parametrize("f", [0.1, 0.3125, 0.5, 0.9])
def test_stochastic_rounding_is_unbiased_for_each_input(f):
    # E[x_q] = (k + f) * delta for every single x: many roundings of one input;
    # each rounding has sd sqrt(f (1 - f)) * delta
    fmt = QFormat(1, 4)
    delta = fmt.resolution
    x = (3 + f) * delta
    draws = 200_000
    x_q = quantize(np.full(draws, x), fmt, "stochastic", rng=7)
    assert set(np.unique(x_q)) <= {3 * delta, 4 * delta}
    se = math.sqrt(f * (1 - f)) * delta / math.sqrt(draws)
    assert abs(x_q.mean() - x) < 4 * se


def test_ties_away_are_biased_ties_to_even_are_not():
    # positive ties (k + 1/2) delta, k = 0..3: away rounds all up (+1/2 each),
    # even sends two up and two down
    fmt = QFormat(1, 2)
    ties = np.array([1, 3, 5, 7]) / 8
    away = to_fixed(ties, fmt, "nearest_away")
    even = to_fixed(ties, fmt, "nearest_even")
    assert away.tolist() == [1, 2, 3, 4] and even.tolist() == [0, 2, 2, 4]
    assert (from_fixed(away, fmt) - ties).mean() == fmt.resolution / 2
    assert (from_fixed(even, fmt) - ties).mean() == 0


# ------------------------------------------------------- small updates


def run_updates(u, steps, lanes, fmt, seed):
    rng = np.random.default_rng(seed)
    start = to_fixed(np.full(lanes, 0.3), fmt)
    nearest, stochastic = start.copy(), start.copy()
    for _ in range(steps):
        nearest = to_fixed(from_fixed(nearest, fmt) + u, fmt, "nearest_even")
        stochastic = to_fixed(
            from_fixed(stochastic, fmt) + u, fmt, "stochastic", rng=rng
        )
    return start, nearest, stochastic


def test_small_updates_vanish_with_nearest_and_survive_stochastic_rounding():
    # the notebook's example: u = 2e-5 < delta / 2 (u / delta = 0.328), 2000 times
    fmt = QFormat(1, 14)
    delta, u, steps, lanes = fmt.resolution, 2e-5, 2000, 256
    assert abs(u / delta - 0.328) < 0.001 and u < delta / 2
    start, nearest, stochastic = run_updates(u, steps, lanes, fmt, seed=0)
    # nearest: w + u rounds back to w every time
    assert np.array_equal(nearest, start)
    # stochastic: E[w_T] = w_0 + T u; the mean of the lanes within 3 standard errors
    exact = from_fixed(start[0], fmt) + steps * u
    w = from_fixed(stochastic, fmt)
    assert abs(w.mean() - exact) < 3 * w.std() / math.sqrt(lanes)
    assert abs(exact - 0.34) < delta  # "the exact 0.34"
    # each lane takes a step up with probability p = u / delta per update: a
    # binomial number of steps, sd sqrt(T p (1 - p)) delta (within 15 %)
    p = u / delta
    assert abs(w.std() / (math.sqrt(steps * p * (1 - p)) * delta) - 1) < 0.15


@pytest.mark.parametrize("ratio", [0.3, 0.7, 1.3])
def test_nearest_replaces_each_update_by_a_whole_number_of_steps(ratio):
    # on a grid point w, w + u rounds to w + round(u / delta) delta: after T
    # updates T round(u / delta) delta instead of T u
    fmt = QFormat(1, 14)
    delta, steps, lanes = fmt.resolution, 500, 256
    u = ratio * delta
    start, nearest, stochastic = run_updates(u, steps, lanes, fmt, seed=1)
    assert (nearest[0] - start[0]) * delta == steps * round(ratio) * delta
    total = (stochastic - start) * delta
    assert abs(total.mean() - steps * u) < 3 * total.std() / math.sqrt(lanes)
    # the notebook's "43 % too much" and "23 % too little"
    relative = round(ratio) / ratio - 1
    expected = {0.3: -1.0, 0.7: 3 / 7, 1.3: -3 / 13}[ratio]
    assert relative == pytest.approx(expected)
    if ratio != 0.3:
        assert round(100 * abs(relative)) == {0.7: 43, 1.3: 23}[ratio]


# ------------------------------------------------------- wrap or saturate


def test_wrapped_sum_is_exact_when_the_total_fits():
    # every wrap adds a multiple of 2**16 codes; the total fits, so it is exact
    fmt = QFormat(2, 13)
    k = np.arange(64)
    s_q = to_fixed(0.9 * np.sin(2 * np.pi * k / 64 + 0.3), fmt)
    exact = np.cumsum(s_q)
    wrapped = integers.accumulate(s_q, 16, "wrap")
    saturated = integers.accumulate(s_q, 16, "saturate")
    assert fmt.min_code <= exact[-1] <= fmt.max_code
    assert wrapped[-1] == exact[-1]
    assert saturated[-1] != exact[-1]
    # partial sums reach about 0.9 * 64 / pi = 18.3, far outside [-4, 4)
    peak = exact.max() * fmt.resolution
    assert 17 < peak < 0.9 * 64 / math.pi
    assert abs(saturated[-1] - exact[-1]) * fmt.resolution > 3


def first_order_lowpass(overflow):
    """The notebook's y[k] = a y[k-1] + b x[k] in Q2.13, integers only."""
    fy = QFormat(2, 13)
    a_q, b_q = to_fixed(0.9, Q15), to_fixed(0.5, Q15)
    f_ay, f_bx = product_format(fy, Q15), product_format(Q15, Q15)
    f_sum = sum_format(f_ay, f_bx)
    x_q = to_fixed(0.95 * np.sin(2 * np.pi * np.arange(400) / 200), Q15)
    y_q, out = 0, []
    for x_k in x_q:
        acc = add(multiply(y_q, fy, a_q, Q15), f_ay, multiply(x_k, Q15, b_q, Q15), f_bx)
        y_q = rescale(acc, f_sum, fy, overflow=overflow)
        out.append(y_q)
    a, b = from_fixed(a_q, Q15), from_fixed(b_q, Q15)
    exact, previous = [], 0.0
    for x_k in from_fixed(x_q, Q15):
        previous = a * previous + b * x_k
        exact.append(previous)
    return fy, from_fixed(np.array(out), fy), np.array(exact)


def test_iir_gain_and_peak():
    # DC gain b / (1 - a) = 5; at omega = 2 pi / 200 the gain is
    # b / |1 - a e^{-j omega}|, so the peak is about 0.95 * 4.79 = 4.55
    assert 0.5 / (1 - 0.9) == pytest.approx(5)
    omega = 2 * np.pi / 200
    gain = 0.5 / abs(1 - 0.9 * np.exp(-1j * omega))
    _, _, exact = first_order_lowpass("saturate")
    assert abs(np.abs(exact).max() - 0.95 * gain) < 0.02
    assert 4.5 < np.abs(exact).max() < 4.6


def test_saturation_clips_wrap_jumps_and_feeds_the_jump_back():
    fy, y_sat, exact = first_order_lowpass("saturate")
    _, y_wrap, _ = first_order_lowpass("wrap")
    # saturate: never worse than the part of the peak that did not fit
    clip = np.abs(exact).max() - fy.max
    assert np.abs(y_sat - exact).max() <= clip + fy.resolution
    assert np.sum(np.abs(y_sat - exact) > 1) == 0
    # wrap: jumps by the whole range 2**(m + 1) = 8
    err = y_wrap - exact
    assert abs(np.abs(err).max() - 2 ** (fy.int_bits + 1)) < 0.01
    assert np.sum(np.abs(err) > 1) >= 24  # "dozens of samples"
    # ... and the jump decays only at the filter's rate a = 0.9 per sample
    first = int(np.argmax(np.abs(err) > 1))
    ratios = err[first + 1 : first + 10] / err[first : first + 9]
    assert np.allclose(ratios, 0.9, atol=0.01)


# ------------------------------------------------------- multiplication


def test_product_format_formula():
    # words 1 + a + b and 1 + c + d: product 2 + a + b + c + d bits, b + d of
    # them fraction, one sign: a + c + 1 integer bits
    for a, b, c, d in np.ndindex(5, 9, 5, 9):
        got = product_format(QFormat(int(a), int(b)), QFormat(int(c), int(d)))
        assert got == QFormat(int(a + c + 1), int(b + d))
    assert product_format(Q15, Q15) == QFormat(1, 30)


def test_q12_products_need_the_extra_bit_only_at_the_corner():
    # exact rational products of every pair of Q1.2 values
    fa = QFormat(1, 2)
    values = [Fraction(q, 4) for q in range(-8, 8)]
    products = [x * y for x in values for y in values]
    fp = product_format(fa, fa)
    assert fp == QFormat(3, 4)
    assert all(Fraction(fp.min) <= p <= Fraction(fp.max) for p in products)
    smaller = QFormat(2, 4)
    lo, hi = Fraction(smaller.min), Fraction(smaller.max)
    too_big = [p for p in products if not lo <= p <= hi]
    assert too_big == [Fraction(4)]  # (-2) * (-2) only
    qa, qb = np.meshgrid(np.arange(-8, 8), np.arange(-8, 8))
    exact = multiply(qa, fa, qb, fa)
    assert sorted(from_fixed(exact, fp).ravel().tolist()) == sorted(
        map(float, products)
    )


def test_minus_one_squared_is_the_only_q15_product_that_overflows():
    # |qa qb| <= 32768 * 32767 = 2**30 - 2**15 unless both are -32768, and
    # (2**30 - 2**15) / 2**15 = 32767 still fits, even after rounding
    minus_one = to_fixed(-1.0, Q15)
    sat = multiply(minus_one, Q15, minus_one, Q15, out_fmt=Q15)
    wrap = multiply(minus_one, Q15, minus_one, Q15, out_fmt=Q15, overflow="wrap")
    assert multiply(minus_one, Q15, minus_one, Q15) == 2**30  # exactly 1.0 in Q1.30
    assert sat == Q15.max_code and wrap == Q15.min_code
    qa = np.arange(Q15.min_code, Q15.max_code + 1)
    for extreme in (Q15.min_code, Q15.min_code + 1, Q15.max_code):
        others = qa[qa != Q15.min_code] if extreme == Q15.min_code else qa
        multiply(others, Q15, extreme, Q15, out_fmt=Q15, overflow="error")
    with pytest.raises(ValueError):
        multiply(minus_one, Q15, minus_one, Q15, out_fmt=Q15, overflow="error")


def test_rescaled_product_is_within_half_a_step():
    # nearest rounding of the exact Q1.30 product back to Q0.15: |e| <= delta / 2
    rng = np.random.default_rng(5)
    qa = rng.integers(Q15.min_code, Q15.max_code + 1, 100_000)
    qb = rng.integers(Q15.min_code + 1, Q15.max_code + 1, 100_000)
    exact = qa.astype(np.float64) * qb * 2.0**-30  # exact: 30-bit products
    got = from_fixed(multiply(qa, Q15, qb, Q15, out_fmt=Q15), Q15)
    assert np.abs(got - exact).max() <= Q15.resolution / 2
    # the notebook's 0.3 * 0.7: 9830 * 22938 = 225480540, rounded to 6881
    p = multiply(to_fixed(0.3, Q15), Q15, to_fixed(0.7, Q15), Q15)
    assert p == 9830 * 22938 == 225480540
    assert rescale(p, QFormat(1, 30), Q15) == round(Fraction(225480540, 2**15)) == 6881


# ------------------------------------------------------- relative error


def test_relative_error_slopes_and_crossover():
    q15, fp16 = Q15, FORMATS["fp16"]
    x = 2.0 ** np.random.default_rng(0).uniform(-14, 0, 4000)
    rel_fixed = np.abs(quantize(x, q15) - x) / x
    rel_float = np.abs(fp16.quantize(x) - x) / x
    octave = np.floor(np.log2(x))
    j = np.arange(-14, 0)
    slopes = []
    for rel in (rel_fixed, rel_float):
        worst = np.array([rel[octave == i].max() for i in j])
        slopes.append(np.polyfit(j, np.log2(worst), 1)[0])
    # fixed: worst error delta / (2x), slope -1; float: eps / 2, slope 0
    assert abs(slopes[0] + 1) < 0.05 and abs(slopes[1]) < 0.05
    assert np.all(rel_fixed <= q15.resolution / (2 * x))
    assert np.all(rel_float <= fp16.eps / 2)  # x >= 2**-14 = min_normal
    # crossover delta / (2x) = eps / 2 at x = delta / eps = 2**-15 / 2**-10
    assert q15.resolution / fp16.eps == 2.0**-5
    # at 2**-14 the bounds differ by (2**-16 / 2**-14) / 2**-11 = 2**9
    assert (q15.resolution / (2 * 2.0**-14)) / (fp16.eps / 2) == 2**9


# ------------------------------------------------------------- FIR


@pytest.fixture(scope="module")
def fir():
    """The notebook's 32-tap low-pass, with the same seeds."""
    K = 32
    j = np.arange(K)
    h = np.sinc((j - (K - 1) / 2) / 4) * np.hamming(K)
    h = h / h.sum()
    t = np.arange(400 + K - 1)
    x = 0.5 * np.sin(2 * np.pi * t / 50) + 0.3 * np.random.default_rng(0).uniform(
        -1, 1, t.size
    )
    h_q, x_q = to_fixed(h, Q15), to_fixed(x, Q15)
    windows = np.lib.stride_tricks.sliding_window_view(x_q, K)[:, ::-1]
    products = multiply(windows, Q15, h_q, Q15)
    f_acc = product_format(Q15, Q15)
    for _ in range(5):
        f_acc = sum_format(f_acc, f_acc)
    y = from_fixed(rescale(products.sum(axis=1), f_acc, Q15), Q15)
    y_same = np.convolve(from_fixed(x_q, Q15), from_fixed(h_q, Q15), "valid")
    names = ("K", "h", "x", "h_q", "windows", "products", "f_acc", "y", "y_same")
    return dict(
        zip(names, (K, h, x, h_q, windows, products, f_acc, y, y_same), strict=True)
    )


def test_fir_accumulator_is_wide_enough(fir):
    # 32 terms, each in Q1.30's [-2, 2): 5 more integer bits, Q6.30, 37 bits
    K, products, f_acc = fir["K"], fir["products"], fir["f_acc"]
    assert f_acc == QFormat(6, 30) and f_acc.word_bits == 37
    assert np.abs(np.cumsum(products, axis=1)).max() <= f_acc.max_code
    assert K * 2.0 <= 2.0**f_acc.int_bits


def test_fir_one_rounding_is_within_half_a_step_of_exact(fir):
    K, h, x, h_q, y, y_same = (fir[k] for k in ("K", "h", "x", "h_q", "y", "y_same"))
    delta = Q15.resolution
    # the float64 reference on the stored operands is exact: check a few
    # outputs in rational arithmetic
    for k in (0, 123, 399):
        exact = Fraction(int(np.dot(fir["windows"][k], h_q)))  # int64, exact
        assert Fraction(y_same[k]) == exact / 2**30
    # one rounding to nearest: |e| <= delta / 2
    assert np.abs(y - y_same).max() <= delta / 2
    # against the ideal filter: |e| <= delta/2 + sum|h_q| delta/2 + sum|x| delta/2
    y_ideal = np.convolve(x, h, "valid")
    x_windows = np.lib.stride_tricks.sliding_window_view(x, K)
    bound = (
        delta / 2 * (1 + np.abs(from_fixed(h_q, Q15)).sum() + np.abs(x_windows).sum(1))
    )
    assert np.all(np.abs(y - y_ideal) <= bound)
    # the stated "about one step at worst" (measured 1.31 delta)
    assert np.abs(y - y_ideal).max() < 1.5 * delta
    # and the output is small enough for Q0.15: no saturation happened
    assert np.abs(y_same).max() < 1


def test_rounding_every_product_costs_sqrt_k_over_12(fir):
    # K independent roundings with variance delta**2 / 12: rms sqrt(K / 12) delta
    K, delta = fir["K"], Q15.resolution
    each = rescale(fir["products"], product_format(Q15, Q15), Q15)
    err = from_fixed(each.sum(axis=1), Q15) - fir["y_same"]
    rms = np.sqrt(np.mean(err**2)) / delta
    assert abs(rms / math.sqrt(K / 12) - 1) < 0.1
    assert np.abs(err).max() > 2 * delta  # "several steps at worst"


# ------------------------------------------------------ M0 * 2**-shift

M = 0.0072474


def test_quantize_multiplier_is_gemmlowp_quantize_multiplier():
    # gemmlowp / TFLite: q = frexp(M); q_fixed = round_half_away(q * 2**31);
    # if q_fixed == 2**31: halve it, exponent += 1
    mantissa, exponent = math.frexp(M)
    q_fixed = math.floor(mantissa * 2**31 + 0.5)
    assert q_fixed < 2**31
    assert quantize_multiplier(M) == (q_fixed, 31 - exponent) == (1992150143, 38)
    assert (mantissa, exponent) == (0.9276672, -7)


def test_m0_and_shift_reproduce_the_multiplier():
    m0, shift = quantize_multiplier(M)
    assert 2**30 <= m0 < 2**31 and m0.bit_length() == 31
    # |m0 - mantissa * 2**31| <= 1/2, so |m0 2**-shift - M| <= 2**-shift / 2
    error = abs(Fraction(m0, 2**shift) - Fraction(M))
    assert error <= Fraction(1, 2 ** (shift + 1))
    assert 2.0 ** -(shift + 1) == pytest.approx(1.82e-12, rel=1e-3)
    # relative: (1/2) / m0 <= (1/2) / 2**30 = 2**-31
    assert error / Fraction(M) <= Fraction(1, 2**31)


def test_integer_requantization_matches_float_on_the_example():
    m0, shift = quantize_multiplier(M)
    rng = np.random.default_rng(1)
    weights = rng.integers(-16, 17, size=(64, 256))
    inputs = rng.integers(-128, 128, size=256)
    acc = weights @ inputs
    int8 = QFormat(7, 0)
    y_int = multiply_by_constant(acc, m0, shift, out_fmt=int8)
    y_float = to_fixed(M * acc, int8, "nearest_away")
    assert np.array_equal(y_int, y_float)
    # |acc| < 2**17, so m0 2**-shift moves acc * M by less than 2**17 * 2**-39
    assert np.abs(acc).max() < 2**17
    outside = (M * acc < -128.5) | (M * acc >= 127.5)  # "the few" that saturate
    assert 0 < np.sum(outside) < 10
    assert np.all(y_int[outside] == np.where(acc[outside] > 0, 127, -128))
    # one rounding of the exact product, checked in rational arithmetic
    for a in acc[:16].tolist():
        r = Fraction(a * m0, 2**shift)
        away = math.floor(abs(r) + Fraction(1, 2)) * (1 if r >= 0 else -1)
        assert multiply_by_constant(a, m0, shift) == away


# ------------------------------------------------------ the explorer's hints


def test_explorer_shows_what_the_play_section_says():
    from qlib import widgets

    ex = widgets.QFormatExplorer(int_bits=1, frac_bits=3)
    # Q1.3 holds [-2, 1.875]: the sine of amplitude 2.5 saturates at its peaks
    assert (ex.fmt.min, ex.fmt.max) == (-2.0, 1.875) and ex.overflowed.any()
    assert ex.x_q.max() == 1.875 and ex.x_q.min() == -2.0
    ex.controls["overflow"].value = "wrap"  # the peaks jump to the other end
    assert ex.x_q[ex.x.argmax()] < 0
    ex.controls["overflow"].value = "saturate"
    ex.controls["int_bits"].value = 2  # [-4, 4) holds the whole sine
    assert not ex.overflowed.any()
    for n in (0, 3, 8):  # nearest: within half a step at every resolution
        ex.controls["frac_bits"].value = n
        assert np.abs(ex.e).max() <= ex.fmt.resolution / 2
    ex.controls["rounding"].value = "floor"  # in [-delta, 0], mean about -1/2
    e = ex.e / ex.fmt.resolution
    assert e.min() > -1 and e.max() <= 0 and abs(e.mean() + 0.5) < 0.05
    ex.controls["rounding"].value = "stochastic"  # in (-delta, delta), centred
    e = ex.e / ex.fmt.resolution
    assert -1 < e.min() and e.max() < 1 and abs(e.mean()) < 0.05
    ex.controls["rounding"].value = "nearest_even"
    ex.controls["signed"].value = False  # UQ: the lower half is stored as 0
    assert np.all(ex.x_q[ex.x < 0] == 0)

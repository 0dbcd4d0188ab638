"""The claims of notebooks/01_signal_quantization.ipynb, computed through qlib.signals.

Each test recomputes a number or a property the chapter states, with the
chapter's own signals and seeds, and checks it against an independent reason
written in a comment: a published formula (6.02 n + 1.76 dB, Bennett's
Delta**2 / 12, Lipshitz-Wannamaker-Vanderkooy's TPDF moments), exact rational
arithmetic, a closed-form integral, a statistical margin, or NumPy doing the
same thing another way.  The notebook prints the numbers; this file is where
they are held to what the prose says about them.
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest

from qlib import integers, signals, widgets
from qlib.signals import (
    dither,
    music_like,
    noise_shape,
    power_spectrum,
    quantize_companded,
    quantize_uniform,
    sine,
    sqnr_db,
    step,
    time_axis,
)

BITS = np.arange(1, 17)  # the widths of the SQNR table


@pytest.fixture(scope="module")
def full_scale_sine() -> np.ndarray:
    """The chapter's full-scale sine: 1000 sqrt(2) Hz, 48000 samples/s, 1 s."""
    return sine(time_axis(48000, 1.0), 1000 * np.sqrt(2))


@pytest.fixture(scope="module")
def sqnr_table(full_scale_sine) -> dict[str, np.ndarray]:
    x = full_scale_sine
    return {
        kind: np.array([sqnr_db(x, quantize_uniform(x, b, kind=kind)) for b in BITS])
        for kind in ("midrise", "midtread")
    }


def rule(bits: np.ndarray | int) -> np.ndarray:
    """10 log10(1.5 * 4**n): the uniform-noise prediction for a full-scale sine."""
    return 10 * np.log10(1.5 * 4.0 ** np.asarray(bits))


# -------------------------------------------------- sampling and quantization


def test_quantizing_and_sampling_commute():
    # a memoryless quantizer acts on each value alone, so slicing the fine grid
    # before or after quantizing gives the same 20 samples
    t_fine = time_axis(1000, 1.0)
    x_fine = sine(t_fine, 2.0, 0.9)
    assert np.array_equal(t_fine[::50], time_axis(20, 1.0))
    assert np.array_equal(
        quantize_uniform(x_fine, 3)[::50], quantize_uniform(x_fine[::50], 3)
    )
    # 3 bits: 8 levels; 20 samples/s of 3 bits; CD: 44100 x 16 bits x 2 channels
    levels = np.unique(quantize_uniform(np.linspace(-1, 1, 1001), 3))
    assert levels.size == 8 and 20 * 3 == 60 and 44100 * 16 * 2 == 1_411_200


# ---------------------------------------------------------- uniform quantizer


@pytest.mark.parametrize("bits", range(1, 9))
def test_levels_are_the_formulas_and_midtread_is_twos_complement(bits):
    # exact: Delta = 2 / 2**n is a power of two, so every level is exact
    assert Fraction(step(bits)) == Fraction(2, 2**bits)
    x = np.linspace(-1.5, 1.5, 30001)
    q = list(range(-(2 ** (bits - 1)), 2 ** (bits - 1)))
    delta = Fraction(2, 2**bits)
    midrise = np.unique(quantize_uniform(x, bits))
    midtread = np.unique(quantize_uniform(x, bits, kind="midtread"))
    assert [Fraction(v) for v in midrise] == [(k + Fraction(1, 2)) * delta for k in q]
    assert [Fraction(v) for v in midtread] == [k * delta for k in q]
    # mid-tread levels / Delta are the n-bit two's-complement integers (chapter 02)
    assert (q[0], q[-1]) == integers.value_range(bits, "twos_complement")
    if bits == 8:
        assert (q[0], q[-1]) == (np.iinfo(np.int8).min, np.iinfo(np.int8).max)


@pytest.mark.parametrize("bits", range(1, 13))
def test_granular_error_bounds(bits):
    # inside [-x_max, x_max]: mid-rise |e| <= Delta/2 everywhere; mid-tread's
    # granular region ends at x_max - Delta/2, its top level is x_max - Delta,
    # so at x = x_max its error is a whole step
    d = step(bits)
    x = np.linspace(-1, 1, 100_001)
    e_rise = quantize_uniform(x, bits) - x
    e_tread = quantize_uniform(x, bits, kind="midtread") - x
    assert np.abs(e_rise).max() <= d / 2 + 1e-12
    assert np.abs(e_tread[x <= 1 - d / 2]).max() <= d / 2 + 1e-12
    assert np.isclose(np.abs(e_tread).max(), d)
    assert quantize_uniform(1.0, bits, kind="midtread") == 1 - d
    assert quantize_uniform(-1.0, bits, kind="midtread") == -1
    # beyond x_max the error grows with the excess (clipping), without bound
    assert quantize_uniform(1.4, bits) - 1.4 == pytest.approx(-(0.4 + d / 2))


# ---------------------------------------------------------- quantization error


def test_busy_melody_error_is_uniform_with_power_delta_squared_over_12():
    rate, bits = 8000, 8
    delta = step(bits)
    x = 0.9 * music_like(rate, 2.0, seed=0)
    e = quantize_uniform(x, bits) - x
    # nothing clipped: |x| <= 0.9 < x_max, so the granular bound holds
    assert np.abs(e).max() <= delta / 2
    # uniform on [-Delta/2, Delta/2]: mean 0 with sd Delta / sqrt(12 n); the
    # notebook's "within 1 %" for the power: the sd of a mean of n squares is
    # sqrt(1/80 - 1/144) / (1/12) / sqrt(n) = 0.7 % for n = 16000
    n = x.size
    assert abs(e.mean()) < 4 * delta / math.sqrt(12 * n)
    assert abs(e.var() / (delta**2 / 12) - 1) < 0.01
    # flat: each of 40 bins holds 1/40 of the samples, within 5 binomial sds
    counts, _ = np.histogram(e / delta, bins=40, range=(-0.5, 0.5))
    sd = math.sqrt(n * (1 / 40) * (39 / 40))
    assert np.all(np.abs(counts - n / 40) < 5 * sd)


def test_three_bit_sine_error_is_not_uniform(full_scale_sine):
    x = full_scale_sine
    e = (quantize_uniform(x, 3) - x) / step(3)
    # "about 18 % above": the end-cell model (1 + 0.4 p) Delta**2 / 12 with
    # p = P(|x| > x_max - Delta) predicts 1.184
    p = 1 - 2 / np.pi * np.arcsin(1 - step(3))
    assert abs(e.var() * 12 - (1 + 0.4 * p)) < 0.01
    assert round(100 * (e.var() * 12 - 1)) == 18
    # it piles up at both edges: the outer tenth of the cell holds over 1.5
    # times the tenth a uniform error would put there (measured 0.168)
    assert np.mean(np.abs(e) > 0.45) > 0.15


# ------------------------------------------------------------ SQNR against bits


def test_rule_constants():
    # Delta**2 = 4 x_max**2 / 4**n and P_x = x_max**2 / 2, exactly:
    # (1/2) / (Delta**2 / 12) = 1.5 * 4**n
    for n in range(1, 17):
        delta_sq = Fraction(4, 4**n)
        assert Fraction(1, 2) / (delta_sq / 12) == Fraction(3, 2) * 4**n
    assert (
        round(20 * math.log10(2), 2) == 6.02 and round(10 * math.log10(1.5), 2) == 1.76
    )
    # a signal uniform on [-x_max, x_max] has power x_max**2 / 3: exactly 4**n
    assert Fraction(1, 3) / (Fraction(4, 4**5) / 12) == 4**5


def test_midrise_follows_6_02n_plus_1_76_from_below(sqnr_table):
    deviation = sqnr_table["midrise"] - (6.02 * BITS + 1.76)
    assert np.all(np.abs(deviation[BITS >= 4]) <= 0.6)  # within 0.6 dB from 4 bits
    assert np.all(np.abs(deviation[BITS >= 8]) <= 0.14)  # within 0.14 from 8 bits
    assert np.all(deviation < 0)  # always a little below the line
    assert round(np.abs(deviation[BITS >= 4]).max(), 2) == 0.53


def test_one_bit_sqnr_is_the_exact_value(sqnr_table):
    # +-1/2 by the sign of x: E[e**2] = 1/2 - E|x| + 1/4, E|x| = 2/pi; the
    # 48000 samples average E|x| to about 1e-4
    exact = 10 * math.log10(0.5 / (0.75 - 2 / math.pi))
    assert abs(sqnr_table["midrise"][0] - exact) < 0.01
    assert round(exact, 2) == 6.44 and round(6.02 + 1.76, 2) == 7.78


def test_end_cell_power_is_seven_fifths_of_delta_squared_over_12(full_scale_sine):
    # density u**-1/2 / (2 sqrt(Delta)) on the cell: E[u] = Delta/3,
    # E[u**2] = Delta**2/5, so E[(u - Delta/2)**2] = (1/5 - 1/3 + 1/4) Delta**2
    assert Fraction(1, 5) - Fraction(1, 3) + Fraction(1, 4) == Fraction(7, 60)
    assert Fraction(7, 60) / Fraction(1, 12) == Fraction(7, 5)
    # measured on the sine, end cells against inner cells (within 2 %)
    x = full_scale_sine
    for bits in (4, 6, 8, 10):
        d = step(bits)
        e = quantize_uniform(x, bits) - x
        end = np.abs(x) > 1 - d
        assert abs(np.mean(e[end] ** 2) / (d**2 / 12) - 1.4) < 0.02
        assert abs(np.mean(e[~end] ** 2) / (d**2 / 12) - 1) < 0.01


def test_end_cell_model_predicts_the_shortfall(full_scale_sine, sqnr_table):
    x = full_scale_sine
    p = 1 - 2 / np.pi * np.arcsin(1 - 2 / 2.0**BITS)
    counted = np.array([np.mean(np.abs(x) > 1 - step(b)) for b in BITS])
    assert np.allclose(p, counted, atol=2e-3)  # the arcsine law, sample by sample
    predicted = -10 * np.log10(1 + 0.4 * p)
    measured = sqnr_table["midrise"] - rule(BITS)
    # "within 0.01 dB for every n from 3 to 12"
    window = (BITS >= 3) & (BITS <= 12)
    assert np.all(np.abs(measured - predicted)[window] <= 0.01)
    # "about a third of its time in the end cells" at 4 bits
    assert abs(p[3] - 1 / 3) < 0.02
    # above 12 bits the one-second measurement scatters by a few hundredths
    # (measured at most 0.044 dB, at 14 bits)
    assert np.all(np.abs(measured - predicted)[BITS > 12] < 0.05)
    # p -> (2/pi) sqrt(2 Delta / x_max), like 2**(-n/2): within 1 % at 16 bits
    approx = 2 / np.pi * np.sqrt(2 * 2 / 2.0**BITS)
    assert abs(p[-1] / approx[-1] - 1) < 0.01


def test_midtread_gap_closes_by_about_sqrt_2_per_bit(full_scale_sine, sqnr_table):
    gap = sqnr_table["midrise"] - sqnr_table["midtread"]
    # "2.07 dB below mid-rise at 4 bits (2.60 dB below the rule)"
    assert round(gap[3], 2) == 2.07
    assert round(6.02 * 4 + 1.76 - sqnr_table["midtread"][3], 2) == 2.60
    assert np.all(np.diff(gap[BITS <= 13]) < 0) and np.all(gap[BITS >= 14] < 0.05)
    # the extra error comes from the time near the peaks, which shrinks like
    # sqrt(Delta): a factor sqrt(2) = 1.41 per bit, within 12 %
    ratios = gap[3:11] / gap[4:12]
    assert np.all(np.abs(ratios / math.sqrt(2) - 1) < 0.12)
    # the reason: the full-scale sine passes x_max - Delta/2 at every width
    for b in BITS:
        assert full_scale_sine.max() > 1 - step(int(b)) / 2


# ---------------------------------------------------------- SQNR against level


def clipped_sine_sqnr(a: float, bits: int) -> float:
    """SQNR of a sine of amplitude a > 1 through the mid-rise quantizer, in
    closed form: clipping at the top level L = 1 - Delta/2 over the phases
    where |a sin(theta)| > L, granular noise Delta**2 / 12 elsewhere."""
    d = step(bits)
    top = 1 - d / 2
    th0 = math.asin(top / a)
    clip = (
        a**2 * ((math.pi - 2 * th0) / 2 + math.sin(th0) * math.cos(th0))
        - 4 * a * top * math.cos(th0)
        + top**2 * (math.pi - 2 * th0)
    ) / math.pi
    return 10 * math.log10((a**2 / 2) / (clip + 2 * th0 / math.pi * d**2 / 12))


@pytest.fixture(scope="module")
def level_sweep(full_scale_sine):
    levels_db = np.arange(-60, 6.01, 0.5)
    x = full_scale_sine
    sqnr = signals.sqnr_vs_level(x, levels_db, lambda v: quantize_uniform(v, 8))
    # the sweep is sqnr_db of each scaled copy, level by level
    for level in (-60.0, -20.0, 0.0, 6.0):
        a = 10 ** (level / 20)
        expected = sqnr_db(a * x, quantize_uniform(a * x, 8))
        assert sqnr[levels_db == level][0] == pytest.approx(expected, abs=1e-9)
    return levels_db, sqnr


def test_granular_region_costs_a_db_per_db(level_sweep):
    levels_db, sqnr = level_sweep
    granular = (levels_db >= -30) & (levels_db <= 0)
    slope, intercept = np.polyfit(levels_db[granular], sqnr[granular], 1)
    assert abs(slope - 1) < 0.01  # 1 dB of SQNR per dB of back-off
    assert abs(intercept - (6.02 * 8 + 1.76)) < 0.2  # measured 49.88 vs 49.92
    # 6.02 dB of back-off costs a whole bit
    assert round(20 * math.log10(2), 2) == 6.02


def test_clipping_above_full_scale(level_sweep):
    levels_db, sqnr = level_sweep
    at = dict(zip(levels_db.tolist(), sqnr, strict=True))
    assert levels_db[np.argmax(sqnr)] == 0  # best on the 0.5 dB grid
    assert at[0.0] - at[0.5] > 15  # half a dB over costs more than 15 dB
    for level in (0.5, 1, 2, 6):  # against the closed form, within 0.01 dB
        assert abs(at[level] - clipped_sine_sqnr(10 ** (level / 20), 8)) < 0.01
    assert round(at[6.0], 1) == 7.6


def test_best_level_is_a_fraction_of_a_step_below_full_scale(full_scale_sine):
    # "about 0.3 Delta" below: a sweep in steps of Delta / 100
    d = step(8)
    backoff = np.linspace(0, 1.5, 151)
    x = full_scale_sine
    sqnr = [
        sqnr_db((1 - m * d) * x, quantize_uniform((1 - m * d) * x, 8)) for m in backoff
    ]
    assert abs(backoff[int(np.argmax(sqnr))] - 0.3) <= 0.05


def test_too_quiet_the_curve_wobbles(level_sweep):
    levels_db, sqnr = level_sweep
    # amplitude Delta at 20 log10(1/128) = -42.1 dBFS
    assert round(20 * math.log10(step(8))) == -42
    deviation = sqnr - (6.02 * 8 + 1.76 + levels_db)
    quiet = levels_db <= -40
    assert deviation[quiet].min() < -1 and deviation[quiet].max() > 1  # both ways


# ------------------------------------------- long tails: where to clip


SIGMA_LAPLACE_B = 1 / math.sqrt(2)  # Laplace(b) has sigma = b sqrt(2)
CLIPS = np.arange(4, 129) / 16  # the notebook's clips, 0.25 sigma ... 8 sigma
WIDTHS = range(2, 9)


def partial_moments(lo: float, hi: float, kind: str) -> tuple[float, float, float]:
    """int_lo^hi x**j p(x) dx, j = 0, 1, 2, for 0 <= lo < hi <= inf, from the
    antiderivatives: the standard normal (Phi, -phi, Phi - x phi) and the
    Laplace density exp(-x/b) / (2 b) with b = 1/sqrt(2)."""

    def antiderivative(x: float) -> tuple[float, float, float]:
        if kind == "Gaussian":
            if math.isinf(x):
                return 1.0, 0.0, 1.0
            phi = math.exp(-x * x / 2) / math.sqrt(2 * math.pi)
            cdf = 0.5 * math.erfc(-x / math.sqrt(2))
            return cdf, -phi, cdf - x * phi
        b = SIGMA_LAPLACE_B
        if math.isinf(x):
            return 0.0, 0.0, 0.0
        e = math.exp(-x / b) / 2
        return -e, -(x + b) * e, -(x * x + 2 * b * x + 2 * b * b) * e

    a, z = antiderivative(lo), antiderivative(hi)
    return z[0] - a[0], z[1] - a[1], z[2] - a[2]


def exact_sqnr(clip: float, bits: int, kind: str) -> float:
    """SQNR of the mid-rise quantizer over [-clip, clip] on the unit-variance
    density itself: E[(Q(x) - x)**2] integrated cell by cell, in closed form
    (the top cell runs to infinity: the clipped tail)."""
    delta = 2 * clip / 2**bits
    half = 2 ** (bits - 1)
    mse = 0.0
    for j in range(half):  # the cells of x >= 0; the density is symmetric
        lo, hi = j * delta, (j + 1) * delta if j < half - 1 else math.inf
        level = (j + 0.5) * delta
        m0, m1, m2 = partial_moments(lo, hi, kind)
        mse += 2 * (m2 - 2 * level * m1 + level**2 * m0)
    return -10 * math.log10(mse)  # the signal power is 1


@pytest.fixture(scope="module")
def tails() -> dict[str, np.ndarray]:
    """The notebook's samples: 20000 of each, sigma = 1, seed 0."""
    rng = np.random.default_rng(0)
    return {
        "Gaussian": rng.normal(0.0, 1.0, 20_000),
        "Laplacian": rng.laplace(0.0, SIGMA_LAPLACE_B, 20_000),
    }


@pytest.fixture(scope="module")
def clip_curves(tails) -> dict[tuple[str, int], np.ndarray]:
    return {
        (name, bits): signals.sqnr_vs_clip(x, bits, CLIPS)
        for name, x in tails.items()
        for bits in WIDTHS
    }


def test_exact_moments_are_those_of_unit_variance_densities():
    for kind in ("Gaussian", "Laplacian"):
        m0, _, m2 = partial_moments(0.0, math.inf, kind)
        assert (2 * m0, 2 * m2) == (pytest.approx(1.0), pytest.approx(1.0))
        # against a plain quadrature of the density on [0, 3]
        x = np.linspace(0.0, 3.0, 300_001)
        if kind == "Gaussian":
            p = np.exp(-(x**2) / 2) / math.sqrt(2 * math.pi)
        else:
            p = np.exp(-x / SIGMA_LAPLACE_B) / (2 * SIGMA_LAPLACE_B)
        for j, m in enumerate(partial_moments(0.0, 3.0, kind)):
            assert np.trapezoid(x**j * p, x) == pytest.approx(m, rel=1e-9)


def test_clip_sweep_follows_the_exact_integral(tails, clip_curves):
    # 20000 samples estimate the error power to a few percent (0.3 dB is
    # 7 %) where the tail is sampled well: up to 5 bits at every clip; with
    # more bits the clipped tail beyond the largest sample is missing
    for name in tails:
        for bits in range(2, 6):
            exact = np.array([exact_sqnr(c, bits, name) for c in CLIPS])
            assert np.abs(clip_curves[name, bits] - exact).max() < 0.3


def test_the_best_clip_of_each_width(tails, clip_curves):
    best = {}
    for name in tails:
        for bits in WIDTHS:
            exact = np.array([exact_sqnr(c, bits, name) for c in CLIPS])
            i = int(np.argmax(clip_curves[name, bits]))
            best[name, bits] = CLIPS[i]
            # the samples' best clip is as good as the density's, to 0.05 dB
            assert exact.max() - exact[i] < 0.05
            if bits == 4:
                exact_best = CLIPS[np.argmax(exact)]
                assert abs(CLIPS[i] - exact_best) <= 0.15
    # the best clip moves out with every bit, for both
    for name in tails:
        clips = [best[name, b] for b in WIDTHS]
        assert all(a < b for a, b in itertools.pairwise(clips))
    # in sigma, the Laplacian wants the wider clip at every width (4 bits:
    # 3.56 against 2.75 sigma); relative to its own largest sample, a
    # narrower one up to 7 bits (at 8 bits both sit at 0.96 of it)
    peak = {name: np.abs(x).max() for name, x in tails.items()}
    for bits in WIDTHS:
        assert best["Laplacian", bits] > best["Gaussian", bits]
        relative = {name: best[name, bits] / peak[name] for name in tails}
        if bits <= 7:
            assert relative["Laplacian"] < relative["Gaussian"]
        else:
            assert abs(relative["Laplacian"] - relative["Gaussian"]) < 0.01
    assert (best["Laplacian", 4], best["Gaussian", 4]) == (3.5625, 2.75)
    assert 0.45 < best["Laplacian", 4] / peak["Laplacian"] < 0.55  # "half"
    # the exact optimum at 4 bits, 5.2 b in units of the Laplace scale b:
    # Banner et al.'s ACIQ (2019), which takes the granular noise as
    # Delta**2 / 12, puts it at 5.03 b
    fine = np.arange(3.0, 4.5, 1 / 256)
    optimum = fine[np.argmax([exact_sqnr(c, 4, "Laplacian") for c in fine])]
    assert abs(optimum / SIGMA_LAPLACE_B / 5.03 - 1) < 0.05


def test_the_best_clip_against_min_max(tails, clip_curves):
    gains = {}
    for name, x in tails.items():
        peak = np.abs(x).max()
        for bits in WIDTHS:
            curve = clip_curves[name, bits]
            at_peak = signals.sqnr_vs_clip(x, bits, [peak])[0]
            assert at_peak == pytest.approx(
                sqnr_db(x, quantize_uniform(x, bits, x_max=peak)), abs=1e-9
            )
            gains[name, bits] = curve.max() - at_peak
            if (name, bits) == ("Laplacian", 4):
                share = np.mean(np.abs(x) > CLIPS[np.argmax(curve)])
                assert 0.005 < share < 0.007  # "0.6 % of them"
            if (name, bits) == ("Laplacian", 2):
                assert at_peak < 0 < curve.max()  # worse than sending zeros
    for name in tails:
        g = [gains[name, b] for b in WIDTHS]
        assert all(a > b > 0 for a, b in itertools.pairwise(g))  # shrink with bits
        assert g[-1] < 0.5  # 8 bits: 0.3 dB
    assert gains["Laplacian", 4] > 4 > gains["Gaussian", 4] > 2  # 4.4 and 2.6 dB


# ---------------------------------------------------------------------- dither

DELTA3 = step(3)


@pytest.fixture(scope="module")
def dither_example():
    """The notebook's 1000 Hz sine at half scale, 3 bits, TPDF dither seed 0."""
    x = sine(time_axis(48000, 1.0), 1000, 0.5, phase=0.1)
    d = dither(x.shape, DELTA3, "tpdf", seed=0)
    e_plain = quantize_uniform(x, 3) - x
    e_tpdf = quantize_uniform(x + d, 3) - x
    return x, d, e_plain, e_tpdf


def test_undithered_error_is_periodic_and_correlated(dither_example):
    x, _, e_plain, _ = dither_example
    # 48 samples per period: the levels repeat exactly, and the error with
    # them (up to the last bit of x itself)
    x_q = quantize_uniform(x, 3)
    assert np.array_equal(x_q.reshape(-1, 48), np.tile(x_q[:48], (1000, 1)))
    assert np.allclose(e_plain.reshape(-1, 48), e_plain[:48], rtol=0, atol=1e-12)
    assert np.corrcoef(e_plain, x)[0, 1] < -0.5  # measured -0.57
    assert round(e_plain.var() / (DELTA3**2 / 12), 2) == 1.25


def test_the_example_keeps_the_no_overload_condition(dither_example):
    # TPDF reaches +-Delta; mid-rise covers [-x_max, x_max] without clipping,
    # so |x| <= x_max - Delta keeps x + d in the granular region
    x, d, _, _ = dither_example
    assert np.abs(d).max() < DELTA3
    assert np.abs(x).max() <= 1 - DELTA3
    assert np.abs(x + d).max() < 1 - DELTA3 / 2  # here with half a step to spare


def test_tpdf_error_is_uncorrelated_with_power_delta_squared_over_4(dither_example):
    x, _, _, e_tpdf = dither_example
    n = x.size
    # the sample correlation of unrelated series has sd 1 / sqrt(n) = 0.0046
    assert abs(np.corrcoef(e_tpdf, x)[0, 1]) < 3 / math.sqrt(n)
    # mean 0 (sd (Delta/2) / sqrt(n)); power Delta**2/12 + Delta**2/6: the
    # relative sd of a variance of n such errors is about 0.6 %, "within 1 %"
    assert abs(e_tpdf.mean()) < 4 * (DELTA3 / 2) / math.sqrt(n)
    assert abs(e_tpdf.var() / (DELTA3**2 / 4) - 1) < 0.01
    # SQNR: (0.25 / 2) / (Delta**2 / 4) = 8, that is 9.03 dB, against 12.82
    assert abs(sqnr_db(x, x + e_tpdf) - 10 * math.log10(8)) < 0.05
    assert round(10 * math.log10(3), 2) == 4.77  # the price of TPDF


def conditional_moments(xs: np.ndarray, kind: str, draws: int = 40_000, seed: int = 1):
    """Mean and variance of the total error Q(x + d) - x for each fixed x."""
    d = dither((xs.size, draws), DELTA3, kind, seed=seed)
    e = quantize_uniform(xs[:, None] + d, 3) - xs[:, None]
    return e.mean(axis=1), e.var(axis=1)


def test_tpdf_moments_do_not_depend_on_the_signal_without_overload():
    # Lipshitz-Wannamaker-Vanderkooy: E[e|x] = 0 and E[e**2|x] = Delta**2/4 for
    # every x, as long as x + d is never clipped: |x| <= x_max - Delta
    xs = np.linspace(-(1 - DELTA3), 1 - DELTA3, 31)
    mean, var = conditional_moments(xs, "tpdf")
    draws = 40_000
    assert np.all(np.abs(mean) < 4 * (DELTA3 / 2) / math.sqrt(draws))
    # relative sd of each variance about 0.6 %: 4 % is over 6 sds
    assert np.all(np.abs(var / (DELTA3**2 / 4) - 1) < 0.04)


def test_tpdf_moments_fail_when_the_quantizer_overloads():
    # beyond x_max - Delta some of x + d clips: the error shrinks and is biased
    xs = np.array([0.9, 0.95])
    mean, var = conditional_moments(xs, "tpdf")
    assert np.all(var / (DELTA3**2 / 4) < 0.5) and np.all(mean < -0.1 * DELTA3)


def test_rpdf_fixes_the_mean_but_not_the_power():
    # a single uniform dither: E[e|x] = 0, but E[e**2|x] runs from 0 (x on a
    # level) to Delta**2/4 (x on a threshold): noise modulation
    xs = np.linspace(-0.75, 0.75, 31)
    mean, var = conditional_moments(xs, "rpdf")
    assert np.all(np.abs(mean) < 4 * (DELTA3 / 2) / math.sqrt(40_000))
    spread = var / (DELTA3**2 / 12)
    assert spread.min() < 1.1 and spread.max() > 2.9
    on_level = quantize_uniform(0.125, 3)  # a mid-rise level: zero error
    _, var_level = conditional_moments(np.array([on_level]), "rpdf")
    assert var_level[0] == 0


def test_error_spectra_without_and_with_dither(dither_example):
    x, _, e_plain, e_tpdf = dither_example
    freqs, power = power_spectrum(e_plain, 48000)
    # the quantizer is odd and the sine's half-periods are negatives: odd harmonics
    assert np.array_equal(quantize_uniform(-x, 3), -quantize_uniform(x, 3))
    lines = freqs[power > 1e-12]
    assert lines.size == 12 and np.all(lines % 2000 == 1000)
    top = freqs[np.argsort(power)[::-1][:3]]
    assert top.tolist() == [1000.0, 3000.0, 11000.0]
    # in dBFS (over a full-scale sine's power, 1/2), the notebook's lines and
    # their count are the same with scaling="full_scale"
    _, full = power_spectrum(e_plain, 48000, scaling="full_scale")
    assert np.allclose(full, power / 0.5, rtol=1e-12)
    assert np.array_equal(freqs[full > 1e-12], lines)
    assert round(10 * math.log10(full.max()), 1) == -23.5
    # with TPDF a flat floor: Delta**2/4 spread over L/2 bins, 2 s / L per
    # bin; a periodogram bin of white noise is exponential, so the largest
    # of 24000 stays within ln(24000) ~ 10 times the mean, far from a line
    _, p = power_spectrum(e_tpdf, 48000)
    floor = 2 * (DELTA3**2 / 4) / x.size
    inner = p[1:-1] / floor
    assert abs(inner.mean() - 1) < 0.02
    assert inner.max() < 20
    assert power.max() / floor > 1000  # the plain error's lines stand 30 dB above


# ------------------------------------------------------------- noise shaping


@pytest.fixture(scope="module")
def shaping():
    rate, bits = 8000, 8
    x = 0.5 * music_like(rate, 2.0, seed=0)
    y = noise_shape(x, bits)
    e_plain = quantize_uniform(x, bits, kind="midtread") - x
    return rate, step(bits), y, y - x, e_plain


def test_noise_shaping_outputs_levels_and_bounds_the_inner_error(shaping):
    _, delta, y, e_shaped, _ = shaping
    assert np.array_equal(y / delta, np.round(y / delta))
    # y - x = e[k] - e[k-1], so the running sum is e[k], within Delta/2
    assert np.abs(np.cumsum(e_shaped)).max() <= delta / 2 + 1e-9


def test_shaping_response_and_band_powers():
    # |1 - e^{-j w}|**2 = 4 sin**2(w/2): 0 at DC, 1 at pi/3, 4 at pi
    for w, expected in ((0, 0), (np.pi / 3, 1), (np.pi, 4)):
        assert abs(abs(1 - np.exp(-1j * w)) ** 2 - expected) < 1e-12
    w = np.linspace(0, np.pi, 200_001)
    assert abs(np.trapezoid(4 * np.sin(w / 2) ** 2, w) / np.pi - 2) < 1e-9
    band = w <= np.pi / 4
    below = np.trapezoid(2 * (1 - np.cos(w[band])), w[band]) / np.pi
    assert abs(below - (1 / 2 - math.sqrt(2) / math.pi)) < 1e-9
    assert round(below, 3) == 0.050
    assert round(10 * math.log10(0.25 / below), 1) == 7.0


def test_shaping_doubles_the_power_and_moves_it_out_of_band(shaping):
    rate, delta, _, e_shaped, e_plain = shaping
    noise = delta**2 / 12
    theory = {"plain": 1 / 4, "shaped": 1 / 2 - math.sqrt(2) / math.pi}
    in_band = {}
    for name, err in (("plain", e_plain), ("shaped", e_shaped)):
        f, power = power_spectrum(err, rate)
        assert abs(power.sum() - np.mean(err**2)) < 1e-15  # Parseval
        in_band[name] = power[f < rate / 8].sum() / noise
        assert abs(in_band[name] / theory[name] - 1) < 0.1
    assert abs(np.mean(e_shaped**2) / np.mean(e_plain**2) - 2) < 0.05  # doubles
    assert round(10 * math.log10(in_band["plain"] / in_band["shaped"]), 1) == 6.9


def test_welch_spectrum_follows_the_response(shaping):
    # Welch with L = 256, as a density over omega / pi: white noise of power
    # s reads s in every bin, DC and Nyquist included (they span half a bin
    # and hold half a share of the power)
    rate, delta, _, e_shaped, e_plain = shaping
    noise, seg = delta**2 / 12, 256
    f, p_plain = power_spectrum(e_plain, rate, segment=seg)
    _, d_plain = power_spectrum(e_plain, rate, segment=seg, scaling="density")
    _, d_shaped = power_spectrum(e_shaped, rate, segment=seg, scaling="density")
    plain, shaped = d_plain / noise, d_shaped / noise
    assert np.allclose(d_plain[1:-1], p_plain[1:-1] * seg / 2, rtol=1e-12)
    assert abs(plain[1:-1].mean() - 1) < 0.05
    assert abs(plain[0] - 1) < 0.4 and abs(plain[-1] - 1) < 0.4
    # 62 segments average each bin to about 13 %; a few bins together to 1 dB
    for centre, gain_db in ((rate / 6, 0.0), (rate / 2, 10 * math.log10(4))):
        near = (np.abs(f - centre) <= 150) & (f > 0)
        assert abs(10 * math.log10(shaped[near].mean()) - gain_db) < 1.0


def test_oversampling_gains_9_db_per_doubling():
    r = 2.0 ** np.arange(2, 8)
    share = 2 / r - 2 / np.pi * np.sin(np.pi / r)
    for ri, s in zip(r, share, strict=True):  # the closed form, by quadrature
        w = np.linspace(0, np.pi / ri, 20_001)
        assert abs(np.trapezoid(4 * np.sin(w / 2) ** 2, w) / np.pi - s) < 1e-9
    assert np.isclose(share[0], 1 / 2 - math.sqrt(2) / math.pi)  # R = 4
    assert np.allclose(share, np.pi**2 / (3 * r**3), rtol=0.04)
    gain = 10 * np.log10(share[:-1] / share[1:])
    assert np.all(np.abs(gain - 10 * math.log10(8)) < 0.15)  # 1/R**3: 9.03 dB
    assert round(10 * math.log10(2), 2) == 3.01  # without shaping: 3 dB


# ---------------------------------------------------------------- companding


def test_compress_expand_and_the_local_step():
    grid = np.linspace(-1, 1, 200_001)
    for compress, expand in (
        (signals.mu_law_compress, signals.mu_law_expand),
        (signals.a_law_compress, signals.a_law_expand),
    ):
        assert np.abs(expand(compress(grid)) - grid).max() < 1e-12
    bits, mu = 8, signals.MU_LAW
    delta = step(bits)
    levels = np.unique(quantize_companded(grid, bits))
    assert levels.size == 2**bits
    k = np.arange(-(2 ** (bits - 1)) + 1, 2 ** (bits - 1))
    threshold = signals.mu_law_expand(k * delta)
    # Delta / F'(x) with F'(x) = mu / ((1 + mu|x|) ln(1 + mu))
    local = delta * np.log1p(mu) / mu * (1 + mu * np.abs(threshold))
    assert np.allclose(np.diff(levels), local, rtol=0.02)
    assert round(mu / math.log1p(mu)) == 46  # 46 times finer near zero


@pytest.fixture(scope="module")
def companding_sweep():
    unit = sine(time_axis(8000, 0.5), 50 * np.sqrt(2))
    levels_db = np.arange(-70, 0.5, 1.0)
    a = 10 ** (levels_db / 20)
    quantizers = {
        "linear": lambda v: quantize_uniform(v, 8),
        "mu": lambda v: quantize_companded(v, 8),
        "a": lambda v: quantize_companded(v, 8, law="a"),
    }
    curves = {
        law: signals.sqnr_vs_level(unit, levels_db, q) for law, q in quantizers.items()
    }
    for law, q in quantizers.items():  # each level is sqnr_db of its copy
        for i in (0, 30, 70):
            expected = sqnr_db(a[i] * unit, q(a[i] * unit))
            assert curves[law][i] == pytest.approx(expected, abs=1e-9)
    return levels_db, a, curves


def test_mu_law_follows_bennetts_formula(companding_sweep):
    levels_db, a, curves = companding_sweep
    mu, delta = signals.MU_LAW, step(8)
    model = 10 * np.log10(
        (a**2 / 2)
        * 12
        * mu**2
        / (delta**2 * np.log1p(mu) ** 2 * (1 + 4 * mu * a / np.pi + mu**2 * a**2 / 2))
    )
    assert np.all(np.abs(curves["mu"] - model)[levels_db >= -60] <= 1.0)
    # the plateau 10 log10(3 * 4**n / ln(1 + mu)**2) = 38.06 dB at 8 bits
    # (6.02 n + 4.77 - 20 log10 ln(1 + mu) with the rounded constants: 38.05)
    plateau = 10 * math.log10(3 * 4**8 / math.log1p(mu) ** 2)
    assert round(plateau, 2) == 38.06
    assert np.all(model < plateau) and model[-1] > plateau - 0.1
    at = dict(zip(levels_db.tolist(), curves["mu"], strict=True))
    assert plateau - at[-30.0] < 1.5  # the plateau shows from about -30 dBFS


def test_mu_law_buys_30_db_of_dynamic_range(companding_sweep):
    levels_db, _, curves = companding_sweep
    at = {k: dict(zip(levels_db.tolist(), c, strict=True)) for k, c in curves.items()}
    assert at["mu"][-40.0] - at["linear"][-40.0] >= 10  # 34.03 against 9.35
    start = {}
    for law, c in curves.items():
        first = int(np.argmax(c >= 30))
        assert np.all(c[first:] >= 30)  # reaches 30 dB and stays there
        start[law] = levels_db[first]
    assert (start["mu"], start["a"], start["linear"]) == (-50, -43, -20)
    assert start["linear"] - start["mu"] == 30
    # near full scale linear wins: from -11 dBFS, by 12 dB at 0 dBFS
    lin, mul = curves["linear"], curves["mu"]
    assert levels_db[np.argmax(lin >= mul)] == -11 and np.all(
        lin[levels_db >= -11] >= mul[levels_db >= -11]
    )
    assert round(at["linear"][0.0] - at["mu"][0.0]) == 12


# --------------------------------------------------------------------- images


@pytest.fixture(scope="module")
def image():
    return signals.load_sample_image()


def test_bit_depth_levels_and_colour_counts(image):
    assert image.shape == (600, 512, 3)
    assert np.array_equal(signals.quantize_image(image, 8), image)  # stored at 8 bits
    counts = {}
    for bits in (8, 4, 2, 1):
        shown = signals.quantize_image(image, bits)
        # levels q / (2**n - 1), black and white kept exactly
        q = shown * (2**bits - 1)
        assert np.array_equal(q, np.round(q)) and shown.min() == 0 and shown.max() == 1
        colours = len(np.unique(shown.reshape(-1, 3), axis=0))  # numpy's own count
        assert signals.count_colours(shown) == colours <= 2 ** (3 * bits)
        counts[bits] = colours
    assert counts == {8: 76174, 4: 987, 2: 34, 1: 7}  # 7 of the 8 corners


def test_grain_is_about_a_quarter_of_the_4_bit_step(image):
    sky = image[:150, 420:] * 255
    grain = np.diff(sky, axis=1).std() / math.sqrt(
        2
    )  # a difference doubles the variance
    assert round(grain, 1) == 3.8 and 0.2 < grain / (255 / 15) < 0.3


def test_palette_against_per_channel_quantization(image):
    small = image[::2, ::2]
    palette_sqnr = {}
    for k in (2, 4, 8, 16):
        out, palette = signals.kmeans_palette(small, k, seed=0)
        assert signals.count_colours(out) <= k and palette.shape == (k, 3)
        palette_sqnr[k] = sqnr_db(small, out)
    channel = {b: sqnr_db(small, signals.quantize_image(small, b)) for b in (1, 4)}
    # equal budget (3 bits/pixel): the palette wins by 12.6 dB
    assert round(palette_sqnr[8] - channel[1], 1) == 12.6
    # 16 colours (4 bits/pixel) against 4 bits per channel (12): per-channel wins
    assert channel[4] > palette_sqnr[16]
    # more colours never hurt the fitted palette
    assert palette_sqnr[2] < palette_sqnr[4] < palette_sqnr[8] < palette_sqnr[16]
    # 16 colours x 3 bytes against 300 x 256 indices of 4 bits
    assert 16 * 3 == 48 and small.shape[0] * small.shape[1] * 4 // 8 == 38400


# ---------------------------------------------------------------------- sound


@pytest.fixture(scope="module")
def melody():
    return music_like(8000, 1.5, seed=0)


def test_sqnr_of_the_melody_follows_the_model(melody):
    x = melody
    x_rms = np.sqrt(np.mean(x**2))
    assert round(np.abs(x).max(), 2) == 1.00 and round(x_rms, 3) == 0.265
    # Delta**2 / 12 = x_max**2 / (3 4**n): 10 log10 of 3 4**n x_rms**2; the
    # full-scale sine's x_rms = 1/sqrt(2) gives 10 log10(1.5) = 1.76 back
    assert Fraction(4, 4**5) / 12 == Fraction(1, 3 * 4**5)
    assert abs(10 * math.log10(3) + 20 * math.log10(1 / math.sqrt(2)) - 1.7609) < 1e-4
    for bits in (16, 8, 4, 2):
        measured = sqnr_db(x, quantize_uniform(x, bits))
        predicted = 6.02 * bits + 4.77 + 20 * np.log10(x_rms)
        assert abs(measured - predicted) < (0.2 if bits >= 4 else 0.3)


def test_the_error_follows_the_notes_only_at_two_bits(melody):
    x = melody
    music_power = power_spectrum(x, 8000)[1]
    order = np.argsort(music_power)[::-1]
    held = np.cumsum(music_power[order]) / music_power.sum()
    notes = np.zeros(music_power.size, dtype=bool)
    notes[order[: np.searchsorted(held, 0.9) + 1]] = True
    fair = notes.mean()
    assert round(100 * fair, 1) == 2.5
    # the reference: seeded white noise puts its fair share there
    white = power_spectrum(np.random.default_rng(0).standard_normal(x.size), 8000)[1]
    assert 2 / 3 < white[notes].sum() / white.sum() / fair < 1.5
    share, corr = {}, {}
    for bits in (16, 8, 4, 2):
        e = quantize_uniform(x, bits) - x
        error_power = power_spectrum(e, 8000)[1]
        share[bits] = error_power[notes].sum() / error_power.sum()
        corr[bits] = np.corrcoef(e, x)[0, 1]
    for bits in (16, 8):
        assert 2 / 3 < share[bits] / fair < 1.5  # about its fair share: white
    assert round(share[2] / fair) == 9  # nine times its share at 2 bits
    assert all(abs(c) < 0.05 for c in corr.values())  # correlation hardly shows it


# ------------------------------------------------------- the sampling explorer


def test_sampling_explorer_shows_what_its_section_says():
    ex = widgets.SamplingExplorer(bits=3, rate=40)
    # 1. the rate moves the samples, never the bound on the error
    for rate in (5, 200):
        ex.controls["rate"].value = rate
        assert len(ex.x) == rate and np.abs(ex.e).max() <= step(3) / 2
    # 2. per bit the SQNR climbs about 6 dB on average; at 20 samples per
    # period (2 Hz at 40 samples/s) single steps scatter between 1 and 10.5 dB
    ex.controls["rate"].value = 40
    sqnr = []
    for bits in range(1, 13):
        ex.controls["bits"].value = bits
        assert np.abs(ex.e).max() <= step(bits) / 2
        sqnr.append(sqnr_db(ex.x, ex.x_q))
    steps = np.diff(sqnr)
    assert abs(steps.mean() - 6.02) < 0.5 and 1 < steps.min() and steps.max() < 10.5
    # 3. the histogram's sine has amplitude 0.9: its peak lies inside a cell,
    # so at few bits the tallest bar holds the error of the peak,
    # +-(Q(0.9) - 0.9) / Delta (at 3 bits 0.875 - 0.9 = -0.1 steps)
    assert np.abs(ex.busy).max() == pytest.approx(0.9, abs=1e-4)
    assert (quantize_uniform(0.9, 3) - 0.9) / step(3) == pytest.approx(-0.1)
    for bits in range(1, 5):
        ex.controls["bits"].value = bits
        density, edges = ex.hist.get_data().values, ex.hist.get_data().edges
        tallest = int(np.argmax(density))
        assert density[tallest] > 1.5
        peak = abs(quantize_uniform(0.9, bits) - 0.9) / step(bits)
        lo, hi = sorted(abs(edges[tallest : tallest + 2]))
        assert lo - 1e-9 <= peak <= hi + 1e-9
    for bits in range(8, 13):  # close to flat: every bar within 13 % of 1
        ex.controls["bits"].value = bits
        assert np.abs(ex.hist.get_data().values - 1).max() < 0.13
    # 4. at 10 samples/s a 7 Hz sine gives the samples of -3 Hz: the same
    # numbers at every instant k / rate; 3, 7, 13 and 17 Hz all show 3 Hz;
    # at 5 Hz = rate/2 every sample is a zero of the sine
    ex.controls["bits"].value = 3
    ex.controls["rate"].value = 10
    ex.controls["freq"].value = 7.0
    assert ex.alias == 3.0
    assert np.allclose(ex.x, sine(ex.t, -3.0, 0.9), atol=1e-12)
    for freq in (3.0, 7.0, 13.0, 17.0):
        ex.controls["freq"].value = freq
        assert ex.alias == 3.0 and np.abs(ex.e).max() <= step(3) / 2
    ex.controls["freq"].value = 5.0
    assert np.abs(ex.x).max() < 1e-12
    assert "every sample falls on a zero" in ex.headline.get_text()
    # 5. at 3 bits an amplitude below Delta/2 = 0.125 lands every sample in
    # the two middle cells: a square wave of +-Delta/2, SQNR about 0 dB
    ex.controls["rate"].value, ex.controls["freq"].value = 40, 2.0
    ex.controls["amplitude"].value = 0.1
    assert set(ex.x_q.tolist()) == {-0.125, 0.125}
    assert abs(sqnr_db(ex.x, ex.x_q)) < 0.5
    assert "off the scale" in ex.off_scale.get_text()


def test_companding_explorer_shows_what_its_section_says():
    ex = widgets.CompandingExplorer(bits=8, level_db=-40)
    # 2. at 4 bits both curves sink by about 6 dB per bit (measured at
    # -40 dBFS: linear 6.8, mu-law 5.5), and mu-law keeps its advantage
    ex.controls["level_db"].value = -40
    at8 = (ex.sqnr_linear, ex.sqnr_mu)
    ex.controls["bits"].value = 4
    for before, after in zip(at8, (ex.sqnr_linear, ex.sqnr_mu), strict=True):
        assert abs((before - after) / 4 - 6.02) < 1.5
    assert ex.sqnr_mu - ex.sqnr_linear > 10
    # 3. above the crossover, uniform levels win: at full scale, at every
    # depth; the crossover lies between -12 and -10 dBFS
    ex.controls["level_db"].value = 0
    for bits in (4, 8, 12):
        ex.controls["bits"].value = bits
        assert ex.sqnr_linear > ex.sqnr_mu
    levels = ex.levels_db
    for bits in range(4, 13):
        lin, mu = ex._curve("sine", bits, "linear"), ex._curve("sine", bits, "mu")
        assert levels[np.argmax(lin >= mu)] in (-12.0, -10.0)
    # 4. at 8 bits mu-law and A-law stay within about 2 dB from -40 dBFS up
    # (the sine's curves wobble), but at -60 dBFS mu-law's finer step near
    # zero, Delta ln(1 + mu) / mu = Delta / 46 against A-law's
    # Delta (1 + ln A) / A = Delta / 16, keeps 21 dB where A-law has 13
    ex.controls["bits"].value = 8
    loud = levels >= -40
    mu, a = ex._curve("sine", 8, "mu"), ex._curve("sine", 8, "a")
    assert np.abs(mu - a)[loud].max() < 2.2
    assert round(signals.A_LAW / (1 + math.log(signals.A_LAW))) == 16
    ex.controls["level_db"].value = -60
    assert (round(ex.sqnr_mu), round(ex.sqnr_a)) == (21, 13)
    # 5. speech-like: its peaks clip near full scale, all three near 8 dB;
    # linear best 12 dB below full scale at 38 dB; the companded laws hold
    # 36 to 38 dB from there down to -36 dBFS, over 30 dB down to -48 dBFS
    # (mu-law) and -42 dBFS (A-law)
    ex.controls["signal"].value = "speech"
    ex.controls["level_db"].value = 0
    assert all(8 <= v < 9 for v in ex.sqnr.values())
    lin = ex._curve("speech", 8, "linear")
    assert levels[np.argmax(lin)] == -12 and round(lin.max()) == 38
    for law, lowest in (("mu", -48), ("a", -42)):
        curve = ex._curve("speech", 8, law)
        held = (levels <= -12) & (levels >= -36)
        assert curve[held].min() > 36 and curve[held].max() < 38.6
        above_30 = levels[(curve > 30) & (levels <= -12)]
        assert above_30.min() == lowest
        assert np.all(curve[(levels <= -12) & (levels >= lowest)] > 30)


def test_image_explorer_shows_what_its_section_says():
    ex = widgets.ImageBitDepth(bits=2, zoom="background")
    sqnr = {}
    for method in ("round", "dither", "diffusion"):
        ex.controls["method"].value = method
        sqnr[method] = round(ex._sqnr[method, 2], 1)
        # 2. each keeps the 4 levels per channel
        assert np.array_equal(np.unique(ex.shown), np.arange(4) / 3)
    # dither and diffusion do not reduce the error: they make it less visible
    assert sqnr == {"round": 13.8, "dither": 10.0, "diffusion": 10.5}
    # rounding leaves the background flat; diffusion keeps its local mean
    ex.controls["method"].value = "round"
    flat = ex.crop
    ex.controls["method"].value = "diffusion"
    original = ex.image[10:58, 200:248]
    assert np.unique(flat.reshape(-1, 3), axis=0).shape[0] <= 3
    assert np.abs(ex.crop.mean(axis=(0, 1)) - original.mean(axis=(0, 1))).max() < 0.02
    assert np.abs(flat.mean(axis=(0, 1)) - original.mean(axis=(0, 1))).max() > 0.05
    # 3. at 1 bit only the corners of the colour cube
    ex.controls["bits"].value = 1
    assert set(np.unique(ex.shown).tolist()) == {0.0, 1.0}

"""qlib.signals: the chapter 01 claims as tests, and the quantizers against
exact rational arithmetic."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from qlib import kmeans as km
from qlib import signals as S

RATE = 48_000
F_INCOMMENSURATE = 1000 * math.sqrt(2)  # never a rational fraction of RATE


def exact_level(x: float, bits: int, x_max: float, kind: str) -> float:
    """The textbook quantizer in exact rational arithmetic."""
    delta = Fraction(2) * Fraction(x_max) / 2**bits
    r = Fraction(x) / delta
    k_min, k_max = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    if kind == "midrise":
        k = min(max(math.floor(r), k_min), k_max)
        return float((k + Fraction(1, 2)) * delta)
    k = min(max(math.floor(r + Fraction(1, 2)), k_min), k_max)
    return float(k * delta)


@pytest.mark.parametrize("kind", S.KINDS)
@pytest.mark.parametrize("bits", [1, 2, 3, 5, 8, 12])
@pytest.mark.parametrize("x_max", [1.0, 0.5, 3.0])
def test_quantizer_matches_exact_arithmetic(kind, bits, x_max):
    rng = np.random.default_rng(bits)
    delta = S.step(bits, x_max)
    x = np.concatenate(
        [
            rng.uniform(-1.5 * x_max, 1.5 * x_max, 500),
            np.arange(-(2**bits), 2**bits + 1) * delta / 2,  # every threshold and level
            [0.0, -0.0, x_max, -x_max, 10 * x_max],
        ]
    )
    got = S.quantize_uniform(x, bits, x_max=x_max, kind=kind)
    assert got.tolist() == [exact_level(v, bits, x_max, kind) for v in x.tolist()]
    levels = np.unique(got)
    assert len(levels) <= 2**bits
    assert np.all(np.abs(got - np.clip(x, got.min(), got.max())) <= delta / 2 + 1e-15)


@given(
    st.floats(-4, 4, allow_nan=False),
    st.integers(1, 20),
    st.sampled_from(S.KINDS),
)
def test_hypothesis_quantizer(x, bits, kind):
    assert S.quantize_uniform(x, bits, kind=kind) == exact_level(x, bits, 1.0, kind)


def test_step_and_levels():
    assert S.step(3) == 0.25 and S.step(8, 2.0) == 2 * 2.0 / 256
    levels = np.unique(S.quantize_uniform(np.linspace(-2, 2, 10_001), 3))
    assert levels.tolist() == [(k + 0.5) * 0.25 for k in range(-4, 4)]
    levels = np.unique(
        S.quantize_uniform(np.linspace(-2, 2, 10_001), 3, kind="midtread")
    )
    assert levels.tolist() == [k * 0.25 for k in range(-4, 4)]


# ------------------------------------------------------ the chapter's claims


def test_sqnr_of_full_scale_sine_follows_6_02_n_plus_1_76():
    t = S.time_axis(RATE, 1.0)
    x = S.sine(t, F_INCOMMENSURATE)
    for n in range(4, 17):
        measured = S.sqnr_db(x, S.quantize_uniform(x, n))
        assert abs(measured - (6.02 * n + 1.76)) <= 0.6, (n, measured)


def test_midtread_falls_short_at_low_bits_and_catches_up():
    t = S.time_axis(RATE, 1.0)
    x = S.sine(t, F_INCOMMENSURATE)
    gaps = [
        S.sqnr_db(x, S.quantize_uniform(x, n))
        - S.sqnr_db(x, S.quantize_uniform(x, n, kind="midtread"))
        for n in (2, 4, 8, 16)
    ]
    assert gaps[0] > 1.0 and all(a > b for a, b in itertools.pairwise(gaps))
    assert abs(gaps[-1]) < 0.1


def test_error_variance_is_delta_squared_over_12_for_a_busy_signal():
    x = 0.9 * S.music_like(RATE, 1.0, seed=0)
    for bits in (8, 10):
        delta = S.step(bits)
        e = S.quantize_uniform(x, bits) - x
        assert abs(e.var() / (delta**2 / 12) - 1) < 0.05
        assert np.abs(e).max() <= delta / 2


def test_tpdf_dither_decorrelates_the_error():
    t = S.time_axis(RATE, 1.0)
    x = S.sine(t, F_INCOMMENSURATE, 0.5)  # half scale: dither never clips
    delta = S.step(3)
    plain = S.quantize_uniform(x, 3) - x
    dithered = S.quantize_uniform(x + S.dither(x.shape, delta, "tpdf", seed=0), 3) - x
    assert abs(np.corrcoef(plain, x)[0, 1]) > 0.1
    assert abs(np.corrcoef(dithered, x)[0, 1]) < 0.01
    # non-subtractive TPDF: delta^2/12 of rounding + delta^2/6 of dither
    assert abs(dithered.var() / (delta**2 / 4) - 1) < 0.05


def test_mu_law_beats_linear_by_10_db_at_minus_40_dbfs():
    t = S.time_axis(RATE, 1.0)
    x = S.sine(t, F_INCOMMENSURATE, 10 ** (-40 / 20))
    mu = S.sqnr_db(x, S.quantize_companded(x, 8, law="mu"))
    linear = S.sqnr_db(x, S.quantize_uniform(x, 8))
    assert mu - linear >= 10


@pytest.mark.parametrize(
    ("compress", "expand"),
    [(S.mu_law_compress, S.mu_law_expand), (S.a_law_compress, S.a_law_expand)],
)
def test_compress_expand_is_identity(compress, expand):
    x = np.linspace(-1, 1, 200_001)
    assert np.max(np.abs(expand(compress(x)) - x)) < 1e-12
    y = np.linspace(-1, 1, 20_001)
    assert np.max(np.abs(compress(expand(y)) - y)) < 1e-12


def test_companding_laws_match_the_g711_formulas():
    mu, A = 255.0, 87.6
    for x in (0.0, 1e-4, 0.01, 1 / A, 0.3, 1.0, -0.2):
        m = math.copysign(math.log1p(mu * abs(x)) / math.log1p(mu), x)
        assert S.mu_law_compress(x) == pytest.approx(m, abs=1e-15)
        if abs(x) < 1 / A:
            a = A * abs(x) / (1 + math.log(A))
        else:
            a = (1 + math.log(A * abs(x))) / (1 + math.log(A))
        assert S.a_law_compress(x) == pytest.approx(math.copysign(a, x), abs=1e-15)


def test_noise_shaping_fast_path_equals_the_recursion():
    rng = np.random.default_rng(3)
    for kind in S.KINDS:
        x = 0.5 * np.sin(np.arange(5000) / 7.0) + 0.05 * rng.standard_normal(5000)
        fast = S.noise_shape(x, 4, kind=kind)
        slow = S._noise_shape_loop(x, 4, 1.0, kind)
        assert np.array_equal(fast, slow)
    # near full scale the shaped output would leave the levels: the clipped
    # recursion is used, and it never leaves them
    loud = np.sin(np.arange(2000) / 5.0)
    y = S.noise_shape(loud, 3, kind="midtread")
    assert np.array_equal(y, S._noise_shape_loop(loud, 3, 1.0, "midtread"))
    assert y.max() <= 0.75 and y.min() >= -1


def test_noise_shaping_moves_error_to_high_frequencies():
    t = S.time_axis(RATE, 1.0)
    x = S.sine(t, 440 * math.sqrt(2), 0.5)
    plain = np.abs(np.fft.rfft(S.quantize_uniform(x, 6, kind="midtread") - x)) ** 2
    shaped = np.abs(np.fft.rfft(S.noise_shape(x, 6) - x)) ** 2
    low = slice(0, len(plain) // 8)  # below rate / 16
    assert shaped[low].sum() < 0.2 * plain[low].sum()
    assert shaped.sum() > plain.sum()  # the total grows (about 2x)


def test_dither_distributions():
    d = S.dither(400_000, 2.0, "rpdf", seed=1)
    assert np.abs(d).max() <= 1.0 and abs(d.var() / (4 / 12) - 1) < 0.01
    d = S.dither(400_000, 2.0, "tpdf", seed=1)
    assert np.abs(d).max() <= 2.0 and abs(d.var() / (4 / 6) - 1) < 0.01
    assert np.array_equal(S.dither(10, 1.0, seed=5), S.dither(10, 1.0, seed=5))


def test_images():
    img = S.load_sample_image()
    assert img.shape == (600, 512, 3) and img.dtype == np.float64
    for bits in (1, 2, 4, 8):
        q = S.quantize_image(img, bits)
        assert len(np.unique(q)) <= 2**bits
        assert np.abs(q - img).max() <= 0.5 / (2**bits - 1) + 1e-12
    assert np.array_equal(S.quantize_image(img, 8), np.round(img * 255) / 255)
    out, palette = S.kmeans_palette(img[::4, ::4], 8, seed=0)
    assert palette.shape == (8, 3) and len(np.unique(out.reshape(-1, 3), axis=0)) <= 8


def test_count_colours_against_numpy_unique_rows():
    rng = np.random.default_rng(3)
    img = S.load_sample_image()[::3, ::3]
    cases = [S.quantize_image(img, b) for b in (1, 2, 5, 8)]
    cases += [
        rng.integers(0, 3, (7, 9, 3)) / 2.0,  # many repeats, ties in every column
        np.zeros((1, 1, 3)),
        np.full((4, 4, 3), 0.25),
    ]
    for case in cases:
        assert S.count_colours(case) == len(np.unique(case.reshape(-1, 3), axis=0))
    assert S.count_colours(np.zeros((0, 5, 3))) == 0
    with pytest.raises(ValueError, match="img must have shape"):
        S.count_colours(np.zeros((4, 4)))


def test_kmeans_is_a_fixed_point_of_lloyd():
    rng = np.random.default_rng(0)
    pts = np.concatenate(
        [rng.normal(c, 0.1, (200, 2)) for c in ((0, 0), (3, 0), (0, 3))]
    )
    c, labels = km.kmeans(pts, 3, seed=1, iters=100)
    assert np.array_equal(labels, km.assign(pts, c))
    for j in range(3):
        assert np.allclose(c[j], pts[labels == j].mean(axis=0))
    c2, _ = km.kmeans(pts, 3, seed=1, iters=100)
    assert np.array_equal(c, c2)  # seeded: reproducible
    brute = np.argmin(((pts[:, None] - c[None]) ** 2).sum(-1), axis=1)
    assert np.array_equal(labels, brute)


def test_sound_player():
    audio = S.play(S.sine(S.time_axis(8000, 0.05), 440), 8000)
    assert audio.data[:4] == b"RIFF" and audio.data[8:12] == b"WAVE"
    assert int.from_bytes(audio.data[24:28], "little") == 8000  # sample rate field
    with pytest.raises(ValueError, match="x must lie in"):
        S.play([2.0], 8000, normalize=False)


# --------------------------------------------------------------- bad input


@pytest.mark.parametrize("bits", [0, -3, 33, 1000])
def test_bits_out_of_range(bits):
    with pytest.raises(ValueError, match=r"bits must be in \[1, 32\]"):
        S.quantize_uniform([0.1], bits)


@pytest.mark.parametrize("bits", [2.0, True, "8"])
def test_bits_wrong_type(bits):
    with pytest.raises(TypeError, match="bits must be an integer"):
        S.quantize_uniform([0.1], bits)


@pytest.mark.parametrize("x_max", [0, -1.0, float("nan"), float("inf")])
def test_bad_x_max(x_max):
    with pytest.raises(ValueError, match="x_max must be a positive"):
        S.quantize_uniform([0.1], 4, x_max=x_max)


def test_bad_kind_and_nan():
    with pytest.raises(ValueError, match="kind must be one of"):
        S.quantize_uniform([0.1], 4, kind="round")
    with pytest.raises(ValueError, match="x must not contain NaN"):
        S.quantize_uniform([0.1, float("nan")], 4)
    with pytest.raises(ValueError, match="kind must be 'rpdf' or 'tpdf'"):
        S.dither(3, 1.0, "gauss")
    with pytest.raises(ValueError, match="law must be 'mu' or 'a'"):
        S.quantize_companded([0.1], 8, law="b")
    with pytest.raises(ValueError, match="same shape"):
        S.sqnr_db([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="k must be a positive integer"):
        km.kmeans([1.0, 2.0], 0)


def test_power_spectrum_obeys_parseval_and_finds_a_sine():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(4000)
    f, p = S.power_spectrum(x, 1000.0)
    assert f[1] == 1000.0 / 4000 and np.isclose(p.sum(), np.mean(x**2), rtol=1e-12)
    t = S.time_axis(1000, 4.0)
    f, p = S.power_spectrum(S.sine(t, 125.0, 0.5), 1000.0)
    assert f[np.argmax(p)] == 125.0 and np.isclose(p.max(), 0.5**2 / 2)
    # Welch on white noise: about 2 s / L in every inner bin
    noise = rng.standard_normal(256 * 400)
    f, p = S.power_spectrum(noise, 1.0, segment=256)
    assert abs(p[1:-1].mean() * 256 / 2 - 1) < 0.02
    with pytest.raises(ValueError, match="segment must be an integer"):
        S.power_spectrum(x, 1.0, segment=1)


def direct_power(x: np.ndarray) -> np.ndarray:
    """One-sided power per bin from the DFT written out as a matrix product:
    X[k] = sum_m x[m] exp(-2 pi i k m / M); |X[k]|**2 / M**2, doubled for the
    bins that have a mirror image at a negative frequency."""
    m = x.size
    k = np.arange(m // 2 + 1)
    dft = np.exp(-2j * np.pi * np.outer(k, np.arange(m)) / m) @ x
    power = np.abs(dft) ** 2 / m**2
    power[1 : (m + 1) // 2] *= 2  # 0 and, for an even M, M/2 have no mirror
    return power


@pytest.mark.parametrize("size", [64, 63, 2, 3])
def test_power_spectrum_scalings_against_the_direct_dft(size):
    rng = np.random.default_rng(size)
    x = rng.standard_normal(size) + 0.3  # a mean, so that DC holds something
    expected = direct_power(x)
    widths = np.full(size // 2 + 1, 2 / size)  # bins in units of omega / pi
    widths[0] = 1 / size
    if size % 2 == 0:
        widths[-1] = 1 / size  # the Nyquist bin: half a bin too
    f, power = S.power_spectrum(x, 10.0)
    _, full = S.power_spectrum(x, 10.0, scaling="full_scale")
    _, density = S.power_spectrum(x, 10.0, scaling="density")
    assert np.allclose(f, np.arange(size // 2 + 1) * 10.0 / size, rtol=0, atol=1e-12)
    assert np.allclose(power, expected, rtol=1e-10, atol=1e-15)
    assert np.allclose(full, 2 * expected, rtol=1e-10, atol=1e-15)
    assert np.allclose(density * widths, expected, rtol=1e-10, atol=1e-15)
    # Parseval: bins add up to the mean square, and the density integrates
    # to it over omega / pi in [0, 1]
    mean_square = math.fsum(x**2) / size
    assert math.isclose(power.sum(), mean_square, rel_tol=1e-12)
    assert math.isclose(math.fsum(density * widths), mean_square, rel_tol=1e-12)


def test_power_spectrum_welch_scalings_against_the_direct_dft():
    rng = np.random.default_rng(3)
    x = rng.standard_normal(1000)
    segment = 64
    m = np.arange(segment)
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * m / (segment - 1))  # symmetric Hann
    frames = x[: 1000 // segment * segment].reshape(-1, segment) * hann
    # each windowed segment's power, rescaled to the window's power, averaged
    expected = np.mean([direct_power(fr) for fr in frames], axis=0) * (
        segment / np.sum(hann**2)
    )
    _, power = S.power_spectrum(x, 1.0, segment=segment)
    _, density = S.power_spectrum(x, 1.0, segment=segment, scaling="density")
    assert np.allclose(power, expected, rtol=1e-10)
    half = np.ones(segment // 2 + 1)
    half[[0, -1]] = 2  # the half bins at DC and Nyquist
    assert np.allclose(density, expected * segment / 2 * half, rtol=1e-10)


def test_power_spectrum_density_of_white_noise_is_its_power_everywhere():
    # Welch's average over 400 segments: an inner bin's estimate has relative
    # sd 1/sqrt(400) = 5 %; the DC and Nyquist bins of a real signal sqrt(2)
    # times that (one degree of freedom)
    rng = np.random.default_rng(7)
    s = 0.25
    noise = rng.normal(0.0, math.sqrt(s), 256 * 400)
    _, density = S.power_spectrum(noise, 1.0, segment=256, scaling="density")
    assert abs(density[1:-1].mean() / s - 1) < 0.02
    assert np.all(np.abs(density[1:-1] / s - 1) < 0.3)  # 6 sd
    assert abs(density[0] / s - 1) < 0.3 and abs(density[-1] / s - 1) < 0.3
    # and a full-scale sine reads 1 (0 dBFS) in full-scale units
    t = S.time_axis(1000, 1.0)
    _, full = S.power_spectrum(S.sine(t, 125.0), 1000.0, scaling="full_scale")
    assert full.max() == pytest.approx(1.0, abs=1e-12)
    with pytest.raises(ValueError, match="scaling must be one of"):
        S.power_spectrum(noise, 1.0, scaling="dB")


# ------------------------------------------------ aliasing, speech, sweeps


def test_alias_frequency_is_the_nearest_image_folded_into_the_band():
    rng = np.random.default_rng(5)
    freqs = np.concatenate([rng.uniform(-300, 300, 500), [0.0, 5.0, 10.0, 15.0]])
    for rate in (10.0, 37.5, 48.0):
        got = S.alias_frequency(freqs, rate)
        # |f - k rate| over every multiple near f: the smallest is the alias
        k = np.arange(-40, 41)
        brute = np.abs(freqs[:, None] - k[None, :] * rate).min(axis=1)
        assert np.allclose(got, brute, atol=1e-9)
        assert np.all((got >= 0) & (got <= rate / 2))
    assert S.alias_frequency(7.0, 10.0) == 3.0 and S.alias_frequency(13.0, 10.0) == 3.0
    assert S.alias_frequency(5.0, 10.0) == 5.0  # the Nyquist frequency itself
    with pytest.raises(ValueError, match="rate must be a positive"):
        S.alias_frequency(1.0, 0.0)


@pytest.mark.parametrize(("freq", "rate"), [(7, 10), (13, 10), (90, 64), (3, 40)])
def test_sampled_sine_is_the_alias_sine_and_its_spectrum_peaks_there(freq, rate):
    t = S.time_axis(rate, 4.0)  # 4 s: bins of 1/4 Hz, integer frequencies on bins
    x = S.sine(t, freq)
    alias = float(S.alias_frequency(freq, rate))
    # the same samples as a sine at the alias, up to the sign
    at_alias = S.sine(t, alias)
    assert np.allclose(x, at_alias, atol=1e-9) or np.allclose(x, -at_alias, atol=1e-9)
    f, p = S.power_spectrum(x, rate)
    assert f[np.argmax(p)] == alias


def test_speech_like_is_laplacian_at_the_rms_of_a_full_scale_sine():
    x = S.speech_like()
    assert x.shape == (8000,) and np.sqrt(np.mean(x**2)) == pytest.approx(2**-0.5)
    assert np.array_equal(x, S.speech_like(seed=0))
    assert not np.array_equal(x, S.speech_like(seed=1))
    # Kolmogorov-Smirnov distance to Laplace(0, b) with 2 b**2 = 1/2 against
    # the Gaussian of the same variance: close to the first, far from the second
    s = np.sort(x)
    empirical = (np.arange(s.size) + 0.5) / s.size
    laplace = np.where(s < 0, 0.5 * np.exp(2 * s), 1 - 0.5 * np.exp(-2 * s))
    gauss = np.array([0.5 * (1 + math.erf(v)) for v in s.tolist()])  # sigma^2 = 1/2
    assert np.abs(empirical - laplace).max() < 0.02
    assert np.abs(empirical - gauss).max() > 0.05
    kurtosis = np.mean(x**4) / np.mean(x**2) ** 2  # Laplace 6, Gaussian 3
    assert 5 < kurtosis < 7
    f, p = S.power_spectrum(x, 8000)
    assert p[f < 1000].sum() > 0.7 * p.sum()  # most power below 1 kHz
    # loudness varies from frame to frame (20 ms = 160 samples)
    frame_rms = np.sqrt(np.mean(x.reshape(50, 160) ** 2, axis=1))
    assert frame_rms.max() > 5 * frame_rms.min()


def test_sqnr_vs_level_is_sqnr_db_at_each_gain():
    x = S.sine(S.time_axis(8000, 0.25), 50 * math.sqrt(2))
    levels = np.array([-60.0, -31.5, -6.0, 0.0])
    for quantizer in (
        lambda v: S.quantize_uniform(v, 8),
        lambda v: S.quantize_companded(v, 6, law="a"),
    ):
        got = S.sqnr_vs_level(x, levels, quantizer)
        for level, sqnr in zip(levels, got, strict=True):
            g = 10 ** (level / 20)
            assert sqnr == pytest.approx(S.sqnr_db(g * x, quantizer(g * x)), abs=1e-9)
    assert S.sqnr_vs_level([0.5, -0.25], [0.0], lambda v: v).tolist() == [np.inf]
    with pytest.raises(ValueError, match="quantizer must keep the shape"):
        S.sqnr_vs_level(x, levels, lambda v: v[0])
    with pytest.raises(ValueError, match="one-dimensional"):
        S.sqnr_vs_level(x, [[0.0]], lambda v: v)
    # more levels than one block holds (2**20 numbers): the blocks agree with
    # the levels swept one by one
    long = S.sine(S.time_axis(48000, 1.0), 1000 * math.sqrt(2))
    many = np.linspace(-60.0, 6.0, 45)
    swept = S.sqnr_vs_level(long, many, lambda v: S.quantize_uniform(v, 8))
    assert np.array_equal(
        swept[[0, 21, 22, 44]],
        [
            S.sqnr_vs_level(long, [L], lambda v: S.quantize_uniform(v, 8))[0]
            for L in many[[0, 21, 22, 44]]
        ],
    )


def test_sqnr_vs_clip_is_sqnr_db_at_each_clip():
    rng = np.random.default_rng(11)
    x = rng.laplace(0.0, 1.0, (40, 50))  # any shape: the SQNR is over all of it
    clips = np.concatenate([rng.uniform(0.05, 12.0, 40), [np.abs(x).max(), 2.0**-3]])
    for kind in S.KINDS:
        for bits in (1, 2, 4, 8, 16):
            got = S.sqnr_vs_clip(x, bits, clips, kind=kind)
            for c, sqnr in zip(clips, got, strict=True):
                x_q = S.quantize_uniform(x, bits, x_max=c, kind=kind)
                assert sqnr == pytest.approx(S.sqnr_db(x, x_q), rel=1e-12)
    # quantizing x / c over [-1, 1] and scaling by c gives qlib's levels over
    # [-c, c] bit for bit: the steps differ by the factor c alone
    flat = x.ravel()
    for c in clips:
        for kind in S.KINDS:
            assert np.array_equal(
                c * S.quantize_uniform(flat / c, 5, kind=kind),
                S.quantize_uniform(flat, 5, x_max=c, kind=kind),
            )


def test_sqnr_vs_clip_in_blocks_and_its_errors():
    # more clips than one block holds (2**20 elements): the blocks agree
    x = np.random.default_rng(2).normal(0.0, 1.0, 50_000)
    clips = np.linspace(0.5, 5.0, 45)
    whole = S.sqnr_vs_clip(x, 3, clips)
    parts = np.concatenate([S.sqnr_vs_clip(x, 3, clips[i : i + 7]) for i in (0, 7)])
    assert np.array_equal(whole[:14], parts)
    assert S.sqnr_vs_clip([0.25, -0.75], 2, [1.0]).tolist() == [np.inf]  # on levels
    with pytest.raises(ValueError, match="clips must be a non-empty"):
        S.sqnr_vs_clip(x, 3, [])
    with pytest.raises(ValueError, match="clips must be positive"):
        S.sqnr_vs_clip(x, 3, [1.0, 0.0])
    with pytest.raises(ValueError, match="kind must be one of"):
        S.sqnr_vs_clip(x, 3, [1.0], kind="round")
    with pytest.raises(ValueError, match="bits must be in"):
        S.sqnr_vs_clip(x, 0, [1.0])


# ----------------------------------------------------------- error diffusion


def floyd_steinberg_loop(img: np.ndarray, bits: int) -> np.ndarray:
    """Floyd-Steinberg as published: pixel by pixel, in plain Python floats."""
    levels = 2**bits - 1
    h, w = img.shape[:2]
    flat = np.clip(img, 0, 1).reshape(h, w, -1)
    out = np.empty_like(flat)
    for c in range(flat.shape[2]):
        v = [[float(flat[i, j, c]) for j in range(w)] for i in range(h)]
        for i in range(h):
            for j in range(w):
                old = v[i][j]
                new = min(max(math.floor(old * levels + 0.5), 0), levels) / levels
                out[i, j, c] = new
                err = old - new
                if j + 1 < w:
                    v[i][j + 1] += err * (7 / 16)
                if i + 1 < h:
                    if j > 0:
                        v[i + 1][j - 1] += err * (3 / 16)
                    v[i + 1][j] += err * (5 / 16)
                    if j + 1 < w:
                        v[i + 1][j + 1] += err * (1 / 16)
    return out.reshape(img.shape)


@pytest.mark.parametrize(
    "shape", [(1, 1), (1, 9), (9, 1), (2, 2), (7, 13), (13, 7), (12, 10, 3)]
)
@pytest.mark.parametrize("bits", [1, 2, 3, 8])
def test_error_diffusion_equals_the_pixel_by_pixel_loop(shape, bits):
    rng = np.random.default_rng(bits)
    img = rng.uniform(-0.1, 1.1, shape)  # out of range too: clipped first
    assert np.array_equal(S.error_diffusion(img, bits), floyd_steinberg_loop(img, bits))


def test_error_diffusion_on_the_photograph_equals_the_loop():
    img = S.load_sample_image()[200:232, 140:180]  # the dark uniform and more
    assert np.array_equal(S.error_diffusion(img, 2), floyd_steinberg_loop(img, 2))


def test_error_diffusion_keeps_the_local_mean():
    # a grey at 0.3 with one bit: 30 % of the pixels lit, in every 8 x 8 block
    out = S.error_diffusion(np.full((64, 64), 0.3), 1)
    assert set(np.unique(out).tolist()) == {0.0, 1.0}
    blocks = out.reshape(8, 8, 8, 8).mean(axis=(1, 3))
    assert np.abs(blocks - 0.3).max() < 0.06
    assert np.array_equal(S.quantize_image(np.full((4, 4), 0.3), 1), np.zeros((4, 4)))


def test_error_diffusion_bad_input():
    with pytest.raises(ValueError, match="img must have shape"):
        S.error_diffusion([0.1, 0.2], 2)
    with pytest.raises(ValueError, match=r"bits must be in \[1, 32\]"):
        S.error_diffusion(np.zeros((2, 2)), 0)
    with pytest.raises(ValueError, match="img must not contain NaN"):
        S.error_diffusion(np.full((2, 2), np.nan), 2)

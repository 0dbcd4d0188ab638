"""Signal quantization: sampling, uniform quantizers, SQNR, dither, noise
shaping, companding, images and sound.

The uniform quantizer with ``bits`` bits over ``[-x_max, x_max]`` has step

    delta = 2 * x_max / 2**bits

and ``2**bits`` levels ``x_q = k * delta`` (mid-tread) or ``(k + 1/2) * delta``
(mid-rise) for ``k = -2**(bits-1) ... 2**(bits-1) - 1``.  Inputs beyond the
end levels are clipped to them.

The image functions (:func:`load_sample_image`, :func:`quantize_image`,
:func:`error_diffusion`, :func:`count_colours`, :func:`kmeans_palette`) live in
``qlib/_signal_images.py`` and are re-exported here; the argument checks the
two modules share are in ``qlib/_signal_checks.py``.

Taught in ``notebooks/01_signal_quantization.ipynb``.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._signal_checks import _as_signal, _check_bits, _check_positive
from ._signal_images import (
    count_colours,
    error_diffusion,
    kmeans_palette,
    load_sample_image,
    quantize_image,
)

__all__ = [
    "A_LAW",
    "KINDS",
    "MU_LAW",
    "a_law_compress",
    "a_law_expand",
    "alias_frequency",
    "chirp",
    "chord",
    "count_colours",
    "dither",
    "error_diffusion",
    "kmeans_palette",
    "load_sample_image",
    "mu_law_compress",
    "mu_law_expand",
    "music_like",
    "noise_shape",
    "play",
    "power_spectrum",
    "quantize_companded",
    "quantize_image",
    "quantize_uniform",
    "sine",
    "speech_like",
    "sqnr_db",
    "sqnr_vs_level",
    "step",
    "time_axis",
]

KINDS = ("midrise", "midtread")
MU_LAW = 255.0  # G.711
A_LAW = 87.6  # G.711

Kind = Literal["midrise", "midtread"]


# ------------------------------------------------------------ test signals


def time_axis(rate: float, duration: float) -> NDArray[np.float64]:
    """Sampling instants ``n / rate`` for ``n = 0 .. round(rate * duration) - 1``.

    Example:
        >>> time_axis(4, 1.0)
        array([0.  , 0.25, 0.5 , 0.75])
    """
    rate = _check_positive(rate, "rate")
    duration = _check_positive(duration, "duration")
    return np.arange(round(rate * duration)) / rate


def sine(t: ArrayLike, freq: float, amplitude: float = 1.0, phase: float = 0.0):
    """``amplitude * sin(2 pi freq t + phase)``.

    Example:
        >>> sine([0.0, 0.25], 1.0).round(12)
        array([0., 1.])
    """
    return amplitude * np.sin(2 * np.pi * freq * np.asarray(t, float) + phase)


def alias_frequency(freq: ArrayLike, rate: float) -> NDArray[np.float64]:
    """The frequency at which a sine of ``freq`` Hz shows up once sampled at
    ``rate`` Hz: ``|freq - k rate|`` for the nearest multiple ``k rate``, a
    frequency in ``[0, rate/2]``.

    Samples cannot tell a sine at ``f`` from one at ``f - k rate`` (the
    sines agree at every ``n / rate``), nor from one at ``k rate - f`` (the
    same samples with the opposite sign): every frequency folds into the band
    up to the Nyquist frequency ``rate/2``.

    Example:
        >>> float(alias_frequency(7.0, 10.0)), float(alias_frequency(2.0, 40.0))
        (3.0, 2.0)

    Taught in ``notebooks/01_signal_quantization.ipynb``.
    """
    rate = _check_positive(rate, "rate")
    folded = np.mod(_as_signal(freq, "freq"), rate)
    return np.minimum(folded, rate - folded)


def chord(t: ArrayLike, freqs: ArrayLike, amplitude: float = 1.0):
    """Equal-amplitude sines at ``freqs``, scaled so the peak is ``amplitude``.

    Example:
        >>> t = time_axis(8000, 0.5)
        >>> float(np.abs(chord(t, [220, 277.2, 329.6])).max())
        1.0
    """
    t = np.asarray(t, float)
    x = np.sin(2 * np.pi * np.outer(np.asarray(freqs, float), t)).sum(axis=0)
    return amplitude * x / np.abs(x).max()


def chirp(t: ArrayLike, f0: float, f1: float, amplitude: float = 1.0):
    """A linear chirp sweeping from ``f0`` to ``f1`` Hz over the span of ``t``.

    Example:
        >>> chirp(time_axis(1000, 1.0), 10, 100).shape
        (1000,)
    """
    t = np.asarray(t, float)
    span = t[-1] - t[0] if t.size > 1 else 1.0
    k = (f1 - f0) / span  # Hz per second
    tau = t - t[0]
    return amplitude * np.sin(2 * np.pi * (f0 * tau + k * tau**2 / 2))


def music_like(rate: float = 8000, duration: float = 2.0, seed: int = 0):
    """A synthetic melody: notes with harmonics and decaying envelopes.

    Peak amplitude 1, deterministic for a given ``seed``; nothing downloaded.

    Example:
        >>> x = music_like(8000, 1.0)
        >>> x.shape, float(np.abs(x).max())
        ((8000,), 1.0)
    """
    t = time_axis(rate, duration)
    rng = np.random.default_rng(seed)
    n_notes = max(1, int(4 * duration))
    starts = np.linspace(0, duration, n_notes, endpoint=False)
    semitones = rng.choice([0, 2, 4, 5, 7, 9, 11, 12], size=n_notes)
    freqs = 220.0 * 2 ** (semitones / 12)
    x = np.zeros_like(t)
    for start, f in zip(starts, freqs, strict=True):  # a handful of notes
        tau = t - start
        on = tau >= 0
        envelope = np.where(on, np.exp(-4 * np.clip(tau, 0, None)), 0.0)
        tone = sum(np.sin(2 * np.pi * h * f * tau) / h for h in (1, 2, 3, 4))
        x += envelope * tone
    return x / np.abs(x).max()


def speech_like(
    rate: float = 8000, duration: float = 1.0, *, frame: float = 0.02, seed: int = 0
) -> NDArray[np.float64]:
    """A speech-like test signal: Laplacian samples in frames of varying loudness.

    The amplitudes of speech are close to a Laplace distribution, peaky with
    long tails, unlike a sine's.  Each ``frame`` (20 ms, about a phoneme) is
    Gaussian noise, low-passed so that most of its power lies below 1 kHz as
    in speech, scaled by ``sqrt(V)`` with ``V`` the frame's power drawn from
    an exponential distribution: a Gaussian whose variance is exponential is
    Laplacian, so the samples are.  The frame powers are the exponential's
    quantiles in a random order, so that even a short signal has the whole
    distribution.  The result has rms ``1/sqrt(2)``, the rms of a full-scale
    sine: its level is 0 dBFS, and ``10**(L/20) * speech_like()`` has level
    ``L`` dBFS.  Deterministic for a given ``seed``; nothing downloaded.

    Example:
        >>> x = speech_like(8000, 1.0)
        >>> x.shape, round(float(np.sqrt(np.mean(x**2))), 6)
        ((8000,), 0.707107)

    Taught in ``notebooks/01_signal_quantization.ipynb``.
    """
    t = time_axis(rate, duration)
    per_frame = max(1, round(_check_positive(frame, "frame") * rate))
    rng = np.random.default_rng(seed)
    # Gaussian noise with the spectrum 1 / (1 + (f / 500 Hz)**2), unit variance
    spectrum = np.fft.rfft(rng.standard_normal(t.size))
    spectrum /= np.sqrt(1 + (np.fft.rfftfreq(t.size, 1 / rate) / 500.0) ** 2)
    z = np.fft.irfft(spectrum, t.size)
    z /= z.std()
    n_frames = -(-t.size // per_frame)
    power = -np.log1p(-(rng.permutation(n_frames) + 0.5) / n_frames)  # Exp(1)
    x = z * np.sqrt(np.repeat(power, per_frame)[: t.size])
    return x / np.sqrt(2 * np.mean(x**2))


# ---------------------------------------------------------------- quantizer


def step(bits: int, x_max: float = 1.0) -> float:
    """The quantization step ``delta = 2 * x_max / 2**bits``.

    Example:
        >>> step(3)
        0.25
    """
    return 2 * _check_positive(x_max, "x_max") / 2 ** _check_bits(bits)


def quantize_uniform(
    x: ArrayLike, bits: int, *, x_max: float = 1.0, kind: Kind = "midrise"
) -> NDArray[np.float64]:
    """Uniform quantization with ``2**bits`` levels over ``[-x_max, x_max]``.

    ``"midrise"`` levels are ``(k + 1/2) * delta`` (zero is a decision
    threshold, the levels are symmetric); ``"midtread"`` levels are
    ``k * delta`` (zero is a level, the largest level is ``x_max - delta``),
    for ``k = -2**(bits-1) .. 2**(bits-1) - 1``.  Values beyond the end levels
    are clipped to them.

    Example:
        >>> quantize_uniform([-1.0, -0.1, 0.1, 0.99], 2)
        array([-0.75, -0.25,  0.25,  0.75])
        >>> quantize_uniform([-1.0, -0.1, 0.1, 0.99], 2, kind="midtread")
        array([-1. ,  0. ,  0. ,  0.5])

    Taught in ``notebooks/01_signal_quantization.ipynb``.
    """
    bits = _check_bits(bits)
    delta = step(bits, x_max)
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}; got {kind!r}")
    x = _as_signal(x)
    k_min, k_max = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    if kind == "midrise":
        k = np.clip(np.floor(x / delta), k_min, k_max)
        return (k + 0.5) * delta
    k = np.clip(np.floor(x / delta + 0.5), k_min, k_max)
    return k * delta


def sqnr_db(x: ArrayLike, x_q: ArrayLike) -> float:
    """Signal-to-quantization-noise ratio ``10 log10(sum x^2 / sum (x_q - x)^2)``.

    Example:
        >>> round(sqnr_db([1.0, -1.0], [0.9, -0.9]), 6)
        20.0
    """
    x, x_q = _as_signal(x), _as_signal(x_q, "x_q")
    if x.shape != x_q.shape:
        raise ValueError(
            f"x and x_q must have the same shape; got {x.shape}, {x_q.shape}"
        )
    noise = np.sum((x_q - x) ** 2)
    if noise == 0:
        return float("inf")
    return float(10 * np.log10(np.sum(x**2) / noise))


def sqnr_vs_level(
    x: ArrayLike, levels_db: ArrayLike, quantizer: Callable[[np.ndarray], ArrayLike]
) -> NDArray[np.float64]:
    """SQNR in dB of ``quantizer(g x)`` at each level ``L``, with ``g = 10**(L/20)``.

    ``x`` is the signal at 0 dB: a full-scale sine (amplitude 1, so ``L`` is
    in dBFS), or :func:`speech_like`, which has the same rms.  The quantizer
    is called once, on the array of shape ``(len(levels_db), len(x))`` that
    holds every scaled copy, and the SQNR of each row is
    ``10 log10(sum x^2 / sum (x_q - x)^2)`` as in :func:`sqnr_db`.

    Example:
        >>> x = sine(time_axis(8000, 0.5), 50 * np.sqrt(2))
        >>> sqnr_vs_level(x, [-20.0, 0.0], lambda v: quantize_uniform(v, 8)).round(1)
        array([30.2, 49.8])

    Taught in ``notebooks/01_signal_quantization.ipynb``.
    """
    x = _as_signal(x)
    levels_db = _as_signal(levels_db, "levels_db")
    if x.ndim != 1 or levels_db.ndim != 1:
        raise ValueError(
            "x and levels_db must be one-dimensional; "
            f"got shapes {x.shape} and {levels_db.shape}"
        )
    scaled = 10 ** (levels_db[:, None] / 20) * x[None, :]
    x_q = _as_signal(quantizer(scaled), "quantizer(x)")
    if x_q.shape != scaled.shape:
        raise ValueError(
            f"quantizer must keep the shape {scaled.shape}; got {x_q.shape}"
        )
    noise = np.sum((x_q - scaled) ** 2, axis=1)
    power = np.sum(scaled**2, axis=1)
    with np.errstate(divide="ignore"):
        return np.where(noise == 0, np.inf, 10 * np.log10(power / noise))


# ------------------------------------------------------- dither and shaping


def dither(
    shape: int | tuple[int, ...], delta: float, kind: str = "tpdf", seed: int = 0
) -> NDArray[np.float64]:
    """Dither noise: ``"rpdf"`` uniform on ``[-delta/2, delta/2]``, ``"tpdf"``
    triangular on ``[-delta, delta]`` (the sum of two independent RPDF).

    Example:
        >>> d = dither(100_000, 1.0, "tpdf", seed=1)
        >>> bool(abs(d.var() - 1 / 6) < 0.01)
        True
    """
    delta = _check_positive(delta, "delta")
    rng = np.random.default_rng(seed)
    if kind == "rpdf":
        return rng.uniform(-delta / 2, delta / 2, shape)
    if kind == "tpdf":
        return rng.uniform(-delta / 2, delta / 2, shape) + rng.uniform(
            -delta / 2, delta / 2, shape
        )
    raise ValueError(f"kind must be 'rpdf' or 'tpdf'; got {kind!r}")


def noise_shape(
    x: ArrayLike, bits: int, *, x_max: float = 1.0, kind: Kind = "midtread"
) -> NDArray[np.float64]:
    """First-order noise shaping by error feedback.

    Each sample is quantized after subtracting the previous sample's
    quantization error: ``v[n] = x[n] - e[n-1]``, ``y[n] = Q(v[n])``,
    ``e[n] = y[n] - v[n]``.  The output error ``y[n] - x[n] = e[n] - e[n-1]``
    is the quantization error filtered by ``1 - z^-1``: pushed to high
    frequencies.

    Example:
        >>> x = 0.3 * np.ones(4)
        >>> noise_shape(x, 2, kind="midtread")  # levels -1, -0.5, 0, 0.5
        array([0.5, 0. , 0.5, 0. ])
    """
    bits = _check_bits(bits)
    delta = step(bits, x_max)
    x = _as_signal(x)
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}; got {kind!r}")
    offset = 0.5 if kind == "midrise" else 0.0
    lo, hi = (
        (-(2 ** (bits - 1)) + offset) * delta,
        (2 ** (bits - 1) - 1 + offset) * delta,
    )
    # Without clipping, sum(y[:n+1]) = sum(x[:n+1]) + e[n] and every y[n] sits on
    # the grid, so the running sum of y is the running sum of x rounded to the
    # grid: one vectorized pass.
    flat = x.reshape(-1)
    n = np.arange(1, flat.size + 1)
    running = np.cumsum(flat) - offset * delta * n
    y = np.diff(delta * np.floor(running / delta + 0.5), prepend=0.0) + offset * delta
    if flat.size and (y.min() < lo - 1e-12 or y.max() > hi + 1e-12):
        y = _noise_shape_loop(flat, bits, x_max, kind)  # a level clipped: recurse
    return y.reshape(x.shape)


def _noise_shape_loop(x: np.ndarray, bits: int, x_max: float, kind: Kind) -> np.ndarray:
    """The error-feedback recursion sample by sample (used when levels clip)."""
    y = np.empty_like(x)
    e = 0.0
    for n, xn in enumerate(x.tolist()):  # recursive: each sample needs the last
        v = xn - e
        y[n] = quantize_uniform(v, bits, x_max=x_max, kind=kind)
        e = y[n] - v
    return y


# ----------------------------------------------------------------- spectra


def power_spectrum(
    x: ArrayLike, rate: float, *, segment: int | None = None
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """One-sided power spectrum: ``(frequencies in Hz, power per bin)``.

    The powers add up to the mean square of ``x`` (Parseval), so the power in
    a band is a sum over its bins, and a sine of amplitude ``a`` puts
    ``a**2 / 2`` in its bin.  With ``segment=L`` the spectrum is the average
    over non-overlapping segments of ``L`` samples, each Hann-windowed (Welch's
    method): smoother, at the price of resolution; a white noise of power
    ``s`` then shows ``2 s / L`` in every bin but the first and last.

    Example:
        >>> t = time_axis(8, 1.0)
        >>> f, p = power_spectrum(sine(t, 2.0), 8)
        >>> f.tolist(), p.round(12).tolist()
        ([0.0, 1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 0.5, 0.0, 0.0])
    """
    rate = _check_positive(rate, "rate")
    x = _as_signal(x)
    if x.ndim != 1:
        raise ValueError(f"x must be one-dimensional; got shape {x.shape}")
    n = x.size if segment is None else segment
    if (
        isinstance(n, bool)
        or not isinstance(n, numbers.Integral)
        or not 2 <= n <= x.size
    ):
        raise ValueError(
            f"segment must be an integer in [2, {x.size}]; got {segment!r}"
        )
    one_sided = np.full(n // 2 + 1, 2.0)
    one_sided[0] = 1.0
    if n % 2 == 0:
        one_sided[-1] = 1.0  # the Nyquist bin has no mirror image
    if segment is None:
        power = np.abs(np.fft.rfft(x)) ** 2 / n**2
    else:
        window = np.hanning(n)
        frames = x[: x.size // n * n].reshape(-1, n) * window
        spectra = np.abs(np.fft.rfft(frames, axis=1)) ** 2
        power = spectra.mean(axis=0) / (n * (window**2).sum())
    return np.fft.rfftfreq(n, 1 / rate), one_sided * power


# --------------------------------------------------------------- companding


def mu_law_compress(x: ArrayLike, mu: float = MU_LAW) -> NDArray[np.float64]:
    """``sign(x) ln(1 + mu |x|) / ln(1 + mu)`` for ``|x| <= 1`` (G.711 mu = 255).

    Example:
        >>> float(mu_law_compress(1.0)), round(float(mu_law_compress(0.01)), 4)
        (1.0, 0.2285)
    """
    mu = _check_positive(mu, "mu")
    x = _as_signal(x)
    return np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu)


def mu_law_expand(y: ArrayLike, mu: float = MU_LAW) -> NDArray[np.float64]:
    """Inverse of :func:`mu_law_compress`: ``sign(y) ((1 + mu)^|y| - 1) / mu``.

    Example:
        >>> round(float(mu_law_expand(mu_law_compress(0.3))), 12)
        0.3
    """
    mu = _check_positive(mu, "mu")
    y = _as_signal(y, "y")
    return np.sign(y) * np.expm1(np.abs(y) * np.log1p(mu)) / mu


def a_law_compress(x: ArrayLike, A: float = A_LAW) -> NDArray[np.float64]:
    """A-law: ``A|x| / (1 + ln A)`` below ``|x| = 1/A``, else
    ``(1 + ln(A|x|)) / (1 + ln A)``, with the sign of x (G.711 A = 87.6).

    Example:
        >>> float(a_law_compress(1.0)), round(float(a_law_compress(1 / 87.6)), 6)
        (1.0, 0.182722)
    """
    A = _check_positive(A, "A")
    x = _as_signal(x)
    ax = np.abs(x)
    small = ax < 1 / A
    with np.errstate(divide="ignore"):
        big = (1 + np.log(np.where(small, 1.0, A * ax))) / (1 + np.log(A))
    return np.sign(x) * np.where(small, A * ax / (1 + np.log(A)), big)


def a_law_expand(y: ArrayLike, A: float = A_LAW) -> NDArray[np.float64]:
    """Inverse of :func:`a_law_compress`.

    Example:
        >>> round(float(a_law_expand(a_law_compress(-0.004))), 12)
        -0.004
    """
    A = _check_positive(A, "A")
    y = _as_signal(y, "y")
    ay = np.abs(y) * (1 + np.log(A))
    small = ay < 1
    return np.sign(y) * np.where(small, ay / A, np.exp(ay - 1) / A)


def quantize_companded(
    x: ArrayLike, bits: int, *, law: str = "mu", x_max: float = 1.0
) -> NDArray[np.float64]:
    """Compress, quantize uniformly (mid-rise) to ``bits`` bits, expand.

    Example:
        >>> x = np.array([0.001, 0.5])
        >>> np.abs(quantize_companded(x, 8) - x) < np.abs(quantize_uniform(x, 8) - x)
        array([ True, False])
    """
    x_max = _check_positive(x_max, "x_max")
    if law == "mu":
        compress, expand = mu_law_compress, mu_law_expand
    elif law == "a":
        compress, expand = a_law_compress, a_law_expand
    else:
        raise ValueError(f"law must be 'mu' or 'a'; got {law!r}")
    x = np.clip(_as_signal(x) / x_max, -1.0, 1.0)
    return expand(quantize_uniform(compress(x), bits)) * x_max


# -------------------------------------------------------------------- sound


def play(x: ArrayLike, rate: float, *, normalize: bool = True):
    """An ``IPython.display.Audio`` player for the samples ``x`` at ``rate`` Hz.

    With ``normalize`` (the default) the loudest sample plays at full scale,
    so that a faint signal such as a quantization error can be heard; with
    ``normalize=False`` the samples must lie in [-1, 1] and play as they are.

    Example:
        >>> type(play(sine(time_axis(8000, 0.1), 440), 8000)).__name__
        'Audio'
    """
    from IPython.display import Audio

    x = _as_signal(x)
    rate = _check_positive(rate, "rate")
    if not normalize and np.abs(x).max(initial=0) > 1:
        raise ValueError("x must lie in [-1, 1] with normalize=False")
    return Audio(x, rate=int(rate), normalize=normalize)

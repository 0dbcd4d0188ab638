"""Test signals of chapter 01 and the view of their frequencies: sampling
instants, sines, chords and chirps, a melody, speech-like noise, where a sine
shows up once sampled (aliasing), and the power spectrum.

Kept out of ``qlib/signals.py`` so that the chapter module reads in one
sitting; learners import these from :mod:`qlib.signals`, which re-exports
them.  Taught in ``notebooks/01_signal_quantization.ipynb``.
"""

from __future__ import annotations

import numbers
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._signal_checks import _as_signal, _check_positive

__all__ = [
    "SCALINGS",
    "alias_frequency",
    "chirp",
    "chord",
    "music_like",
    "power_spectrum",
    "sine",
    "speech_like",
    "time_axis",
]

SCALINGS = ("power", "full_scale", "density")

Scaling = Literal["power", "full_scale", "density"]


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


# ----------------------------------------------------------------- spectra


def power_spectrum(
    x: ArrayLike,
    rate: float,
    *,
    segment: int | None = None,
    scaling: Scaling = "power",
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """One-sided power spectrum: ``(frequencies in Hz, power per bin)``.

    The ``M = len(x)`` samples (or ``M = segment``) give ``M // 2 + 1`` bins
    at the frequencies ``k rate / M``.  ``scaling`` says what a bin holds:

    * ``"power"`` (the default): its share of the mean square of ``x``.  The
      bins add up to ``mean(x**2)`` (Parseval), so the power in a band is a
      sum over its bins; a sine of amplitude ``a`` puts ``a**2 / 2`` in its
      bin, and a white noise of power ``s`` about ``2 s / M`` in each.
    * ``"full_scale"``: the power relative to a full-scale sine's, ``1/2``
      (amplitude 1, the full scale of ``x_max = 1``): twice ``"power"``, so
      a full-scale sine's bin reads 1 (0 dBFS).
    * ``"density"``: the power per unit of frequency ``omega / pi``, which
      runs from 0 at DC to 1 at the Nyquist frequency ``rate / 2``: ``M / 2``
      times ``"power"``, the DC bin (and the Nyquist bin, for an even ``M``)
      twice that, as they span half a bin.  A white noise of power ``s``
      reads ``s`` at every frequency, and a noise through a filter of power
      response ``|H|**2`` reads ``s |H|**2``; the mean square is the
      integral over ``[0, 1]``: the sum of the bins times their widths
      ``2 / M`` (``1 / M`` for the half bins).

    With ``segment=L`` the spectrum is the average over non-overlapping
    segments of ``L`` samples, each Hann-windowed (Welch's method): smoother,
    at the price of resolution.

    Example:
        >>> t = time_axis(8, 1.0)
        >>> f, p = power_spectrum(sine(t, 2.0), 8)
        >>> f.tolist(), p.round(12).tolist()
        ([0.0, 1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 0.5, 0.0, 0.0])
        >>> power_spectrum(sine(t, 2.0), 8, scaling="full_scale")[1].round(12)
        array([0., 0., 1., 0., 0.])
        >>> power_spectrum(np.ones(8), 8, scaling="density")[1].round(12)
        array([8., 0., 0., 0., 0.])

    Taught in ``notebooks/01_signal_quantization.ipynb``.
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
    if scaling not in SCALINGS:
        raise ValueError(f"scaling must be one of {SCALINGS}; got {scaling!r}")
    one_sided = np.full(n // 2 + 1, 2.0)
    if scaling != "density":
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
    power = one_sided * power
    if scaling == "full_scale":
        power = 2 * power
    elif scaling == "density":
        power = n / 2 * power
    return np.fft.rfftfreq(n, 1 / rate), power

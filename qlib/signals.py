"""Signal quantization: sampling, uniform quantizers, SQNR, dither, noise
shaping, companding, images and sound.

The uniform quantizer with ``bits`` bits over ``[-x_max, x_max]`` has step

    delta = 2 * x_max / 2**bits

and ``2**bits`` levels ``x_q = q * delta`` (mid-tread) or ``(q + 1/2) * delta``
(mid-rise) for ``q = -2**(bits-1) ... 2**(bits-1) - 1``.  Inputs beyond the
end levels are clipped to them.

Two private siblings keep this module to one sitting; their functions are
re-exported here: the test signals and spectra (:func:`time_axis`,
:func:`sine`, :func:`chord`, :func:`chirp`, :func:`music_like`,
:func:`speech_like`, :func:`alias_frequency`, :func:`power_spectrum`) in
``qlib/_signal_sources.py``, and the images (:func:`load_sample_image`,
:func:`quantize_image`, :func:`error_diffusion`, :func:`count_colours`,
:func:`kmeans_palette`) in ``qlib/_signal_images.py``; the argument checks
the three modules share are in ``qlib/_signal_checks.py``.

Taught in ``notebooks/01_signal_quantization.ipynb``.
"""

from __future__ import annotations

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
from ._signal_sources import (
    SCALINGS,
    alias_frequency,
    chirp,
    chord,
    music_like,
    power_spectrum,
    sine,
    speech_like,
    time_axis,
)

__all__ = [
    "A_LAW",
    "KINDS",
    "MU_LAW",
    "SCALINGS",
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
    "sqnr_vs_clip",
    "sqnr_vs_level",
    "step",
    "time_axis",
]

KINDS = ("midrise", "midtread")
MU_LAW = 255.0  # G.711
A_LAW = 87.6  # G.711

Kind = Literal["midrise", "midtread"]


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

    ``"midrise"`` levels are ``(q + 1/2) * delta`` (zero is a decision
    threshold, the levels are symmetric); ``"midtread"`` levels are
    ``q * delta`` (zero is a level, the largest level is ``x_max - delta``),
    for ``q = -2**(bits-1) .. 2**(bits-1) - 1``.  Values beyond the end levels
    are clipped to them.

    Ties go up, toward +inf: mid-rise computes ``floor(x / delta) + 1/2``, so
    a value on a threshold (a multiple of ``delta``) takes the level above
    it; mid-tread computes ``floor(x / delta + 1/2)``, so a value halfway
    between two levels takes the upper one (not the even one, as
    ``np.round`` would).

    Example:
        >>> quantize_uniform([-1.0, -0.1, 0.1, 0.99], 2)
        array([-0.75, -0.25,  0.25,  0.75])
        >>> quantize_uniform([-1.0, -0.1, 0.1, 0.99], 2, kind="midtread")
        array([-1. ,  0. ,  0. ,  0.5])
        >>> quantize_uniform([-0.25, 0.25, 0.0], 2, kind="midtread")  # ties up
        array([0. , 0.5, 0. ])

    Taught in ``notebooks/01_signal_quantization.ipynb``.
    """
    bits = _check_bits(bits)
    delta = step(bits, x_max)
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}; got {kind!r}")
    x = _as_signal(x)
    q_min, q_max = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    if kind == "midrise":
        q = np.clip(np.floor(x / delta), q_min, q_max)
        return (q + 0.5) * delta
    q = np.clip(np.floor(x / delta + 0.5), q_min, q_max)
    return q * delta


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


def _db(power: np.ndarray, noise: np.ndarray) -> NDArray[np.float64]:
    """``10 log10(power / noise)`` row by row; ``inf`` where there is no noise."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(noise == 0, np.inf, 10 * np.log10(power / noise))


def _blocks(rows: int, size: int) -> list[slice]:
    """Blocks of rows of ``size`` numbers each, about 2**20 numbers a block."""
    per_block = max(1, 2**20 // max(size, 1))
    return [slice(i, i + per_block) for i in range(0, rows, per_block)]


def sqnr_vs_level(
    x: ArrayLike, levels_db: ArrayLike, quantizer: Callable[[np.ndarray], ArrayLike]
) -> NDArray[np.float64]:
    """SQNR in dB of ``quantizer(g x)`` at each level ``L``, with ``g = 10**(L/20)``.

    ``x`` is the signal at 0 dB: a full-scale sine (amplitude 1, so ``L`` is
    in dBFS), or :func:`speech_like`, which has the same rms.  The quantizer
    is called on arrays of shape ``(levels, len(x))``, each row a scaled
    copy (all the levels at once, or blocks of them when there are more than
    about 2**20 numbers), and the SQNR of each row is
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
    gains = 10 ** (levels_db / 20)
    power, noise = np.empty(gains.size), np.empty(gains.size)
    for rows in _blocks(gains.size, x.size):  # blocks of levels, not elements
        scaled = gains[rows, None] * x[None, :]
        x_q = _as_signal(quantizer(scaled), "quantizer(x)")
        if x_q.shape != scaled.shape:
            raise ValueError(
                f"quantizer must keep the shape {scaled.shape}; got {x_q.shape}"
            )
        power[rows] = np.sum(scaled**2, axis=1)
        noise[rows] = np.sum((x_q - scaled) ** 2, axis=1)
    return _db(power, noise)


def sqnr_vs_clip(
    x: ArrayLike, bits: int, clips: ArrayLike, *, kind: Kind = "midrise"
) -> NDArray[np.float64]:
    """SQNR in dB of ``quantize_uniform(x, bits, x_max=c, kind=kind)`` at each
    clip ``c`` in ``clips``.

    The clip is the quantizer's full scale.  A larger one makes the step
    ``delta = 2 c / 2**bits`` coarser for every sample; a smaller one clips
    the samples beyond ``±c``.  For data with long tails, such as the
    weights and activations of a network, the best clip lies well below the
    largest ``|x|``.  ``x`` may have any shape; the SQNR is over all of it.

    Quantizing ``x`` over ``[-c, c]`` is quantizing ``x / c`` over
    ``[-1, 1]`` and multiplying by ``c``: the same numbers, bit for bit (the
    steps differ by the factor ``c`` alone).  So the clips are done as one
    array of shape ``(clips, x.size)``, or in blocks of clips when there are
    more than about 2**20 numbers.

    Example:
        >>> x = np.random.default_rng(0).laplace(0.0, 1.0, 10_000)
        >>> round(float(np.abs(x).max()), 2)
        11.95
        >>> sqnr_vs_clip(x, 4, [2.0, 5.0, 11.95]).round(1)
        array([ 7.9, 15.5, 10.1])

    Taught in ``notebooks/01_signal_quantization.ipynb``.
    """
    bits = _check_bits(bits)
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}; got {kind!r}")
    x = _as_signal(x).ravel()
    clips = _as_signal(clips, "clips")
    if clips.ndim != 1 or clips.size == 0:
        raise ValueError(
            f"clips must be a non-empty one-dimensional array; got shape {clips.shape}"
        )
    if not np.all(np.isfinite(clips) & (clips > 0)):
        raise ValueError("clips must be positive, finite numbers")
    noise = np.empty(clips.size)
    for rows in _blocks(clips.size, x.size):  # blocks of clips, not elements
        c = clips[rows, None]
        x_q = c * quantize_uniform(x[None, :] / c, bits, kind=kind)
        noise[rows] = np.sum((x_q - x) ** 2, axis=1)
    return _db(np.full(clips.size, np.sum(x**2)), noise)


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
    quantization error: ``v[k] = x[k] - e[k-1]``, ``y[k] = Q(v[k])``,
    ``e[k] = y[k] - v[k]``.  The output error ``y[k] - x[k] = e[k] - e[k-1]``
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
    # Without clipping, sum(y[:k+1]) = sum(x[:k+1]) + e[k] and every y[k] sits on
    # the grid, so the running sum of y is the running sum of x rounded to the
    # grid: one vectorized pass.
    flat = x.reshape(-1)
    count = np.arange(1, flat.size + 1)
    running = np.cumsum(flat) - offset * delta * count
    y = np.diff(delta * np.floor(running / delta + 0.5), prepend=0.0) + offset * delta
    if flat.size and (y.min() < lo - 1e-12 or y.max() > hi + 1e-12):
        y = _noise_shape_loop(flat, bits, x_max, kind)  # a level clipped: recurse
    return y.reshape(x.shape)


def _noise_shape_loop(x: np.ndarray, bits: int, x_max: float, kind: Kind) -> np.ndarray:
    """The error-feedback recursion sample by sample (used when levels clip)."""
    y = np.empty_like(x)
    e = 0.0
    for k, xk in enumerate(x.tolist()):  # recursive: each sample needs the last
        v = xk - e
        y[k] = quantize_uniform(v, bits, x_max=x_max, kind=kind)
        e = y[k] - v
    return y


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

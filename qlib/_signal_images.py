"""Images for chapter 01: a photograph, its bit depth, error diffusion, its
colours, a palette.

Kept out of ``qlib/signals.py`` so that the chapter module reads in one
sitting; learners import these from :mod:`qlib.signals`, which re-exports
them.  Taught in ``notebooks/01_signal_quantization.ipynb``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._signal_checks import _as_signal, _check_bits
from .kmeans import kmeans

__all__ = [
    "count_colours",
    "error_diffusion",
    "kmeans_palette",
    "load_sample_image",
    "quantize_image",
]


def load_sample_image() -> NDArray[np.float64]:
    """Matplotlib's bundled photograph of Grace Hopper, RGB floats in [0, 1].

    Example:
        >>> img = load_sample_image()
        >>> img.shape, float(img.min()) >= 0, float(img.max()) <= 1
        ((600, 512, 3), True, True)
    """
    import matplotlib.image
    from matplotlib import cbook

    with cbook.get_sample_data("grace_hopper.jpg") as f:
        img = matplotlib.image.imread(f, format="jpg")
    return img.astype(np.float64) / 255.0


def quantize_image(img: ArrayLike, bits: int) -> NDArray[np.float64]:
    """Reduce every channel of an image in [0, 1] to ``2**bits`` levels.

    Image bit depth keeps black and white: the levels are
    ``k / (2**bits - 1)`` for ``k = 0 .. 2**bits - 1`` (an unsigned mid-tread
    quantizer over [0, 1]).

    Example:
        >>> quantize_image([0.0, 0.2, 0.5, 1.0], 1)
        array([0., 0., 1., 1.])
    """
    bits = _check_bits(bits)
    img = np.clip(_as_signal(img, "img"), 0.0, 1.0)
    return _round_to_levels(img, 2**bits - 1)


def _round_to_levels(v: np.ndarray, levels) -> np.ndarray:
    """``v`` rounded to the nearest of ``k / levels``, ``k = 0 .. levels``."""
    return np.clip(np.floor(v * levels + 0.5), 0, levels) / levels


def error_diffusion(img: ArrayLike, bits: int) -> NDArray[np.float64]:
    """Floyd-Steinberg error diffusion of an image in [0, 1] to ``2**bits`` levels.

    The pixels are visited row by row, left to right.  Each is rounded to
    the nearest level of :func:`quantize_image`, and its error (value before
    rounding minus level) is passed on to the neighbours not yet visited:
    7/16 to the right, 3/16 below left, 5/16 below, 1/16 below right; the
    shares that would leave the image are dropped.  Locally the levels then
    average to the original, and the error moves to high spatial
    frequencies, where the eye averages it away (Floyd and Steinberg, 1976).

    ``img`` has shape ``(height, width, ...)``; every trailing axis (the
    colour channels) is diffused on its own.  A pixel waits only for its
    left neighbour and the three above it, so all the pixels on a line
    ``2 * row + column = t`` can be done at once: ``width + 2 * (height - 1)``
    vectorized steps instead of one per pixel, with the same arithmetic in
    the same order as the pixel-by-pixel loop.

    Example:
        >>> error_diffusion(np.full((2, 4), 0.5), 1)  # mid-grey: a checkerboard
        array([[1., 0., 1., 0.],
               [0., 1., 0., 1.]])

    Taught in ``notebooks/01_signal_quantization.ipynb``.
    """
    img = np.clip(_as_signal(img, "img"), 0.0, 1.0)
    if img.ndim < 2:
        raise ValueError(f"img must have shape (height, width, ...); got {img.shape}")
    levels = 2 ** _check_bits(bits) - 1
    (h, w), rest = img.shape[:2], img.shape[2:]
    # skewed[t, i] holds pixel (i, t - 2 i), plus three steps of room at the end
    rows = np.arange(h)[:, None]
    t_of = 2 * rows + np.arange(w)[None, :]
    steps = w + 2 * (h - 1)
    skewed = np.zeros((steps + 3, h, *rest))
    skewed[t_of, rows] = img
    # the shares for the row below, at steps t + 1, t + 2, t + 3
    below_weights = np.array([3, 5, 1]).reshape(3, 1, *[1] * len(rest)) / 16
    for t in range(steps):
        first, last = max(0, (t - w + 2) // 2), min(h - 1, t // 2)  # rows on line t
        v = skewed[t, first : last + 1]
        q = _round_to_levels(v, levels)
        e = v - q
        skewed[t, first : last + 1] = q
        # added in the order of the pixel-by-pixel loop: a pixel receives the
        # shares of the row above (1/16, 5/16, 3/16) before its left 7/16
        n_below = min(last, h - 2) - first + 1  # rows on line t with a row below
        skewed[t + 1 : t + 4, first + 1 : first + 1 + n_below] += (
            below_weights * e[:n_below]
        )
        skewed[t + 1, first : last + 1] += e * (7 / 16)
    return skewed[t_of, rows]


def count_colours(img: ArrayLike) -> int:
    """How many distinct colours (RGB triples) an image of shape (h, w, 3) has.

    Sorts the pixels lexicographically and counts the changes between
    neighbours: the same answer as ``len(np.unique(pixels, axis=0))``, several
    times faster on a photograph.

    Example:
        >>> count_colours(quantize_image(load_sample_image(), 1))
        7
    """
    img = _as_signal(img, "img")
    if img.ndim != 3 or img.shape[-1] != 3:
        raise ValueError(f"img must have shape (height, width, 3); got {img.shape}")
    pixels = img.reshape(-1, 3)
    if len(pixels) == 0:
        return 0
    ordered = pixels[np.lexsort(pixels.T)]
    return 1 + int(np.count_nonzero(np.any(ordered[1:] != ordered[:-1], axis=1)))


def kmeans_palette(
    img: ArrayLike, k: int, *, seed: int = 0, sample: int = 20_000, iters: int = 20
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Quantize an RGB image to a palette of ``k`` colours found by k-means.

    The palette is fitted on ``sample`` random pixels, then every pixel takes
    its nearest palette colour.  Returns ``(quantized image, palette)``.

    Example:
        >>> img = load_sample_image()[::8, ::8]
        >>> out, palette = kmeans_palette(img, 4)
        >>> palette.shape, len(np.unique(out.reshape(-1, 3), axis=0)) <= 4
        ((4, 3), True)
    """
    img = _as_signal(img, "img")
    if img.ndim != 3 or img.shape[-1] != 3:
        raise ValueError(f"img must have shape (height, width, 3); got {img.shape}")
    pixels = img.reshape(-1, 3)
    rng = np.random.default_rng(seed)
    chosen = pixels[rng.choice(len(pixels), min(sample, len(pixels)), replace=False)]
    palette, _ = kmeans(chosen, k, iters=iters, seed=seed)
    labels = np.argmin(((pixels[:, None, :] - palette[None]) ** 2).sum(-1), axis=1)
    return palette[labels].reshape(img.shape), palette

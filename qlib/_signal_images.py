"""Images for chapter 01: a photograph, its bit depth, its colours, a palette.

Kept out of ``qlib/signals.py`` so that the chapter module reads in one
sitting; learners import these from :mod:`qlib.signals`, which re-exports
them.  Taught in ``notebooks/01_signal_quantization.ipynb``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._signal_checks import _as_signal, _check_bits
from .kmeans import kmeans

__all__ = ["count_colours", "kmeans_palette", "load_sample_image", "quantize_image"]


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
    levels = 2**bits - 1
    return np.floor(img * levels + 0.5) / levels


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

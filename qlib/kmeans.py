"""K-means clustering: the one implementation behind palettes (chapter 01)
and weight sharing (chapter 06).

Lloyd's algorithm with k-means++ seeding, vectorized over points; seeded, so
the same input gives the same centroids.

Introduced in ``notebooks/01_signal_quantization.ipynb`` (colour palettes).
"""

from __future__ import annotations

import numbers

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["assign", "kmeans"]


def assign(points: ArrayLike, centroids: ArrayLike) -> NDArray[np.intp]:
    """Index of the nearest centroid (squared Euclidean distance) for each point.

    Example:
        >>> assign([[0.0], [0.9], [2.2]], [[0.0], [1.0], [2.0]])
        array([0, 1, 2])
    """
    p = np.asarray(points, float)
    c = np.asarray(centroids, float)
    p = p[:, None] if p.ndim == 1 else p
    c = c[:, None] if c.ndim == 1 else c
    # |p - c|^2 = |p|^2 - 2 p.c + |c|^2; |p|^2 is the same for every centroid
    scores = (c**2).sum(1)[None, :] - 2 * p @ c.T
    return np.argmin(scores, axis=1)


def kmeans(
    points: ArrayLike, k: int, *, iters: int = 20, seed: int = 0
) -> tuple[NDArray[np.float64], NDArray[np.intp]]:
    """Cluster ``points`` (shape ``(n,)`` or ``(n, d)``) into ``k`` clusters.

    Returns ``(centroids, labels)``.  A cluster that loses all its points is
    re-seeded at the point farthest from its centroid.

    Example:
        >>> centroids, labels = kmeans([0.0, 0.1, 0.2, 5.0, 5.1], 2)
        >>> np.sort(centroids.ravel()).round(2)
        array([0.1 , 5.05])
    """
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise ValueError(f"k must be a positive integer; got {k!r}")
    p = np.asarray(points, float)
    flat = p.ndim == 1
    p = p[:, None] if flat else p
    if p.ndim != 2 or len(p) < k:
        raise ValueError(
            f"points must be (n,) or (n, d) with n >= k={k}; got {p.shape}"
        )
    if not np.isfinite(p).all():
        raise ValueError("points must be finite")
    rng = np.random.default_rng(seed)
    # k-means++: each new centroid drawn with probability ~ squared distance
    centroids = [p[rng.integers(len(p))]]
    d2 = ((p - centroids[0]) ** 2).sum(1)
    for _ in range(1, k):
        total = d2.sum()
        index = rng.choice(len(p), p=d2 / total) if total > 0 else rng.integers(len(p))
        centroids.append(p[index])
        d2 = np.minimum(d2, ((p - p[index]) ** 2).sum(1))
    c = np.array(centroids)
    labels = assign(p, c)
    for _ in range(iters):
        counts = np.bincount(labels, minlength=k)
        sums = np.zeros_like(c)
        np.add.at(sums, labels, p)
        empty = counts == 0
        c = np.where(empty[:, None], c, sums / np.maximum(counts, 1)[:, None])
        if empty.any():
            far = np.argsort(((p - c[labels]) ** 2).sum(1))[::-1][: empty.sum()]
            c[empty] = p[far]
        new = assign(p, c)
        if np.array_equal(new, labels):
            break
        labels = new
    return (c.ravel() if flat else c), labels

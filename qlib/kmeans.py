"""K-means clustering: the one implementation behind palettes (chapter 01)
and weight sharing (chapter 06).

Lloyd's algorithm, vectorized over points and seeded, so the same input gives
the same centroids: :func:`kmeans` starts from k-means++ seeding or from
given centroids, :func:`assign` finds the nearest centroid.

Weight sharing (Deep Compression, Han, Mao & Dally, ICLR 2016, section 3)
clusters the weights of each layer separately: a layer stores one ``bits``-bit
index per weight and a codebook of ``2**bits`` float32 centroids.

* :func:`kmeans_quantize` / :func:`kmeans_dequantize` -- one tensor; the
  centroids start spread evenly between the smallest and largest weight
  ("linear" initialization, which Han et al. found best: it keeps centroids
  out at the rare large weights that matter most, where density-based or
  random starts crowd them into the bulk near zero);
* :func:`kmeans_storage_bits` -- what it costs to store: ``n * bits`` index
  bits plus ``2**bits * 32`` codebook bits per layer.

A whole network -- every layer with its own codebook, centroid fine-tuning,
the model's storage -- is :mod:`qlib.kmeansnet`.

Introduced in ``notebooks/01_signal_quantization.ipynb`` (colour palettes);
weight sharing taught in ``notebooks/06_kmeans_quantization.ipynb``.
"""

from __future__ import annotations

import numbers
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "INITS",
    "KMEANS_ITERS",
    "assign",
    "inertia",
    "kmeans",
    "kmeans_dequantize",
    "kmeans_quantize",
    "kmeans_storage_bits",
]

INITS = ("linear", "density", "random")
KMEANS_ITERS = 10_000  # at most; on a line an iteration is cheap (O(k log n))


# ----------------------------------------------------------------- k-means
def assign(points: ArrayLike, centroids: ArrayLike) -> NDArray[np.intp]:
    """Index of the nearest centroid (squared Euclidean distance) for each point.

    Ties go to the lowest index, as with ``np.argmin``.  One-dimensional data
    (points ``(n,)`` or ``(n, 1)``) is assigned by binary search between the
    midpoints of the sorted centroids: O(n log k) time and O(n) memory, where
    the general path builds an ``(n, k)`` table.

    Example:
        >>> assign([[0.0], [0.9], [2.2]], [[0.0], [1.0], [2.0]])
        array([0, 1, 2])
    """
    p = np.asarray(points, float)
    c = np.asarray(centroids, float)
    p = p[:, None] if p.ndim == 1 else p
    c = c[:, None] if c.ndim == 1 else c
    if p.shape[1] == 1:
        order = np.argsort(c[:, 0], kind="stable")  # equal centroids: lowest first
        s = c[order, 0]
        first = np.append(True, s[1:] != s[:-1])  # of equal centroids, the lowest index
        s, order = s[first], order[first]
        mid = (s[1:] + s[:-1]) / 2
        i = np.searchsorted(mid, p[:, 0], side="left")  # the lower one on a tie
        # a point exactly on midpoint i ties sorted centroids i and i + 1
        tie = np.zeros(len(p), bool)
        tie[i < len(mid)] = p[i < len(mid), 0] == mid[i[i < len(mid)]]
        up = np.append(order[1:] < order[:-1], False)  # i + 1 has the lower index
        return order[i + (tie & up[i])]
    # |p - c|^2 = |p|^2 - 2 p.c + |c|^2; |p|^2 is the same for every centroid
    scores = (c**2).sum(1)[None, :] - 2 * p @ c.T
    return np.argmin(scores, axis=1)


def inertia(points: ArrayLike, centroids: ArrayLike, labels: ArrayLike) -> float:
    """Sum of squared distances from each point to its centroid, the quantity
    every Lloyd iteration can only lower.

    Example:
        >>> inertia([0.0, 1.0, 4.0], [0.5, 4.0], [0, 0, 1])
        0.5
    """
    p = np.asarray(points, float)
    c = np.asarray(centroids, float)
    p = p[:, None] if p.ndim == 1 else p
    c = c[:, None] if c.ndim == 1 else c
    return float(((p - c[np.asarray(labels)]) ** 2).sum())


def kmeans(
    points: ArrayLike,
    k: int,
    *,
    iters: int = 20,
    seed: int = 0,
    init: Literal["kmeans++"] | ArrayLike = "kmeans++",
) -> tuple[NDArray[np.float64], NDArray[np.intp]]:
    """Cluster ``points`` (shape ``(n,)`` or ``(n, d)``) into ``k`` clusters.

    Returns ``(centroids, labels)``.  ``init`` is ``"kmeans++"`` (each new
    centroid drawn with probability proportional to its squared distance from
    the ones drawn before, seeded by ``seed``) or the ``k`` starting centroids
    themselves.  At most ``iters`` Lloyd iterations (means, then nearest
    centroids), fewer when the labels stop changing.  A cluster that loses
    all its points is re-seeded at the point farthest from its centroid.

    Example:
        >>> centroids, labels = kmeans([0.0, 0.1, 0.2, 5.0, 5.1], 2)
        >>> np.sort(centroids.ravel()).round(2)
        array([0.1 , 5.05])
        >>> kmeans([0.0, 0.1, 0.2, 5.0, 5.1], 2, init=[0.0, 5.1])[0].round(2)
        array([0.1 , 5.05])
    """
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise ValueError(f"k must be a positive integer; got {k!r}")
    if isinstance(iters, bool) or not isinstance(iters, numbers.Integral) or iters < 0:
        raise ValueError(f"iters must be a non-negative integer; got {iters!r}")
    p = np.asarray(points, float)
    flat = p.ndim == 1
    p = p[:, None] if flat else p
    if p.ndim != 2 or len(p) < k:
        raise ValueError(
            f"points must be (n,) or (n, d) with n >= k={k}; got {p.shape}"
        )
    if not np.isfinite(p).all():
        raise ValueError("points must be finite")
    if isinstance(init, str):
        if init != "kmeans++":
            raise ValueError(f"init must be 'kmeans++' or k centroids; got {init!r}")
        c = _kmeans_plus_plus(p, k, np.random.default_rng(seed))
    else:
        c = np.array(init, float)
        c = c[:, None] if c.ndim == 1 and p.shape[1] == 1 else c
        if c.shape != (k, p.shape[1]) or not np.isfinite(c).all():
            raise ValueError(
                f"init must be {k} finite centroids of dimension {p.shape[1]}; "
                f"got shape {np.shape(init)}"
            )
    if p.shape[1] == 1:
        c, labels = _lloyd_1d(p[:, 0], c[:, 0], iters)
        return (c if flat else c[:, None]), labels
    labels = assign(p, c)
    for _ in range(iters):
        counts = np.bincount(labels, minlength=k)
        sums = np.stack(
            [np.bincount(labels, p[:, j], minlength=k) for j in range(p.shape[1])], 1
        )
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


def _lloyd_1d(
    x: np.ndarray, c: np.ndarray, iters: int
) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd's iterations on a line, the same steps as in :func:`kmeans`.

    On a line each cluster is a run of the sorted points, between the
    midpoints of neighbouring centroids, so once the points are sorted an
    iteration costs O(k log n): the runs by binary search, their sums from a
    cumulative sum.  A point on a midpoint goes to the centroid with the lower
    index, as in :func:`assign`."""
    order = np.argsort(x, kind="stable")
    s = x[order]
    csum = np.concatenate([[0.0], np.cumsum(s)])
    c = c.copy()

    def runs(c: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Centroid indices in increasing order, and the run of sorted points
        ``s[lo:hi]`` each one gets (empty for all but the first of equal ones)."""
        rank = np.argsort(c, kind="stable")  # equal centroids: lowest index first
        cs = c[rank]
        first = np.append(True, cs[1:] != cs[:-1])
        u, owner = cs[first], rank[first]
        mid = (u[1:] + u[:-1]) / 2
        # points on a midpoint go left (side="right") if the left one's index is lower
        cut = np.where(
            owner[:-1] < owner[1:],
            np.searchsorted(s, mid, side="right"),
            np.searchsorted(s, mid, side="left"),
        )
        lo, hi = np.zeros(len(c), np.intp), np.zeros(len(c), np.intp)
        lo[first] = np.concatenate([[0], cut])
        hi[first] = np.concatenate([cut, [len(s)]])
        return rank, lo, hi

    def labels_of(rank: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        labels = np.empty(len(s), np.intp)
        labels[order] = np.repeat(rank, hi - lo)
        return labels

    rank, lo, hi = runs(c)
    for _ in range(iters):
        counts = hi - lo
        empty = counts == 0
        means = (csum[hi] - csum[lo]) / np.maximum(counts, 1)
        c[rank[~empty]] = means[~empty]
        if empty.any():
            # as in kmeans' general path, in the points' own order: the same picks
            gone = np.sort(rank[empty])
            d2 = (x - c[labels_of(rank, lo, hi)]) ** 2
            c[gone] = x[np.argsort(d2)[::-1][: len(gone)]]
        new_rank, new_lo, new_hi = runs(c)
        full, new_full = ~empty, new_hi > new_lo
        # the same labels: the same runs with the same centroids
        if np.array_equal(rank[full], new_rank[new_full]) and np.array_equal(
            lo[full], new_lo[new_full]
        ):
            break
        rank, lo, hi = new_rank, new_lo, new_hi
    return c, labels_of(rank, lo, hi)


def _kmeans_plus_plus(p: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding (Arthur & Vassilvitskii 2007)."""
    centroids = [p[rng.integers(len(p))]]
    d2 = ((p - centroids[0]) ** 2).sum(1)
    for _ in range(1, k):
        total = d2.sum()
        index = rng.choice(len(p), p=d2 / total) if total > 0 else rng.integers(len(p))
        centroids.append(p[index])
        d2 = np.minimum(d2, ((p - p[index]) ** 2).sum(1))
    return np.array(centroids)


# ---------------------------------------------------------- weight sharing
def _bits(bits: object, name: str = "bits") -> int:
    if isinstance(bits, bool) or not isinstance(bits, numbers.Integral):
        raise TypeError(f"{name} must be an integer in [1, 16]; got {bits!r}")
    if not 1 <= bits <= 16:
        raise ValueError(f"{name} must be in [1, 16]; got {bits}")
    return int(bits)


def _weights(w: ArrayLike, name: str = "w") -> np.ndarray:
    a = np.asarray(w)
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise TypeError(f"{name} must be an array of real numbers; got dtype {a.dtype}")
    if a.size == 0:
        raise ValueError(f"{name} must not be empty; got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    return a


def kmeans_quantize(
    w: ArrayLike,
    bits: int,
    *,
    init: Literal["linear", "density", "random"] = "linear",
    iters: int = KMEANS_ITERS,
    seed: int = 0,
) -> tuple[NDArray[np.float32], NDArray[np.unsignedinteger]]:
    """K-means weight sharing of one tensor: ``(codebook, indices)``.

    The codebook holds ``min(2**bits, distinct values of w)`` float32
    centroids in increasing order; ``indices`` has ``w``'s shape, uint8 for
    up to 8 bits and uint16 above, and picks each weight's nearest centroid,
    so ``codebook[indices]`` (:func:`kmeans_dequantize`) is the shared-weight
    tensor.  A tensor with no more distinct values than codes keeps every
    value as its own centroid (k-means' optimum: no error).

    ``init`` chooses the starting centroids of Lloyd's algorithm (Han et al.
    2016, section 3.2): ``"linear"`` spaces them evenly over ``[w.min(),
    w.max()]`` (found best there, and the default); ``"density"`` at evenly
    spaced quantiles of the weights; ``"random"`` at ``2**bits`` weights drawn
    with ``seed`` (Forgy).  At most ``iters`` iterations.

    Example:
        >>> w = np.array([-1.0, -0.9, 0.0, 0.1, 0.2, 2.0], np.float32)
        >>> codebook, indices = kmeans_quantize(w, 2)
        >>> codebook        # 2.0 keeps a centroid of its own
        array([-0.95,  0.05,  0.2 ,  2.  ], dtype=float32)
        >>> indices
        array([0, 0, 1, 1, 2, 3], dtype=uint8)

    Taught in ``notebooks/06_kmeans_quantization.ipynb``.
    """
    a = _weights(w)
    b = _bits(bits)
    if init not in INITS:
        raise ValueError(f"init must be one of {', '.join(INITS)}; got {init!r}")
    flat = a.ravel().astype(np.float64)
    values = np.unique(flat)
    k = 2**b
    if len(values) <= k:
        codebook = values.astype(np.float32)
    else:
        if init == "linear":
            start = np.linspace(values[0], values[-1], k)
        elif init == "density":
            start = np.quantile(flat, np.linspace(0, 1, k))
        else:
            rng = np.random.default_rng(seed)
            start = flat[rng.choice(flat.size, k, replace=False)]
        c, _ = kmeans(flat, k, iters=iters, init=start)
        codebook = np.sort(c).astype(np.float32)
    # nearest centroid of the float32 codebook: the one that is stored
    indices = assign(flat, codebook)
    dtype = np.uint8 if b <= 8 else np.uint16
    return codebook, indices.astype(dtype).reshape(a.shape)


def kmeans_dequantize(codebook: ArrayLike, indices: ArrayLike) -> NDArray[np.float32]:
    """The shared weights ``codebook[indices]``, float32, of ``indices``' shape.

    Example:
        >>> kmeans_dequantize([-0.5, 0.25], np.array([[1, 0], [0, 0]], np.uint8))
        array([[ 0.25, -0.5 ],
               [-0.5 , -0.5 ]], dtype=float32)
    """
    c = np.asarray(codebook, np.float32)
    i = np.asarray(indices)
    if c.ndim != 1 or c.size == 0:
        raise ValueError(f"codebook must be a non-empty 1-D array; got {c.shape}")
    if not np.issubdtype(i.dtype, np.integer):
        raise TypeError(f"indices must be integers; got dtype {i.dtype}")
    if i.size and (i.min() < 0 or i.max() >= c.size):
        raise ValueError(f"indices must lie in 0..{c.size - 1}")
    return c[i]


# ------------------------------------------------------------------ storage
def kmeans_storage_bits(n_weights: int, bits: int, codebook_bits: int = 32) -> int:
    """Bits to store one weight-shared layer: ``n_weights * bits`` for the
    indices plus ``2**bits * codebook_bits`` for the codebook.

    Example:
        >>> kmeans_storage_bits(235200, 4)   # fc1 of LeNet-300-100 at 4 bits
        941312
    """
    for value, name in ((n_weights, "n_weights"), (codebook_bits, "codebook_bits")):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"{name} must be an integer; got {value!r}")
        if value < (0 if name == "n_weights" else 1):
            raise ValueError(
                f"{name} must be >= {int(name != 'n_weights')}; got {value}"
            )
    b = _bits(bits)
    return int(n_weights) * b + 2**b * int(codebook_bits)

"""Binary and ternary weights, and the XNOR-popcount dot product.

* **BWN** (binary weights, XNOR-Net: Rastegari et al., ECCV 2016, section 3.1):
  ``W ~ alpha * B`` with ``B = sign(W)`` in {-1, +1} and ``alpha =
  mean|W|``, one ``alpha`` per output channel: for ``B = sign(W)`` this
  ``alpha`` minimizes ``||W - alpha * B||**2`` (and ``sign(W)`` is the best
  ``B`` for any ``alpha > 0``).  :func:`binarize`.
* **TWN** (ternary weights: Li, Zhang & Liu 2016): ``W ~ alpha * T`` with
  ``T`` in {-1, 0, +1}: ``T = sign(W)`` where ``|W| > Delta``, else 0, and
  ``alpha`` the mean of ``|W|`` over ``|W| > Delta``.  The exact
  ``Delta`` maximizes ``(sum of |W| over |W| > Delta)**2 / count``
  (:func:`optimal_threshold`); TWN's rule of thumb ``Delta = 0.7 * mean|W|``
  (:func:`twn_threshold`) comes from ``Delta* = a/3 = 0.667 mean|W|`` for
  weights uniform on ``[-a, a]`` and ``Delta* ~ 0.6 sigma = 0.75 mean|W|``
  for Gaussian ones.  :func:`ternarize`.
* **Training** with binary or ternary weights (latent float weights, the
  straight-through estimator) is :mod:`qlib.qat`'s ``BinaryWeights`` and
  ``TernaryWeights``.
* **XNOR-popcount**: for ``a, b`` in {-1, +1}**n stored as bits (1 for +1),
  ``a . b = (agreements) - (disagreements) = 2 * popcount(xnor(a, b)) - n``.
  :func:`pack_signs` packs signs into uint64 words (``np.packbits``),
  :func:`popcount` counts bits (``np.bitwise_count`` on NumPy 2, a byte table
  before), :func:`xnor_matmul` computes every dot product from the words,
  masking the padding bits of the last word when ``n`` is not a multiple of
  64.

Taught in ``notebooks/09_quantization_aware_training.ipynb``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .linear import _expand, _real

__all__ = [
    "TWN_DELTA",
    "binarize",
    "optimal_threshold",
    "pack_signs",
    "popcount",
    "ternarize",
    "twn_threshold",
    "xnor_matmul",
]

#: TWN's threshold factor: ``Delta = 0.7 * mean|W|``
TWN_DELTA = 0.7

#: bits set in each byte value 0..255 (popcount without ``np.bitwise_count``)
_BYTE_BITS = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1).sum(1)


def _weights(w: ArrayLike, axis: int | None) -> tuple[np.ndarray, int | None, tuple]:
    """``w`` as a float array, ``axis`` normalized, the axes reduced over."""
    a = _real(w, "w")
    if a.dtype.kind != "f":
        raise TypeError(f"w must be floating point; got dtype {a.dtype}")
    if a.size == 0 or not np.isfinite(a).all():
        raise ValueError("w must be a non-empty array of finite values")
    if axis is None:
        return a, None, tuple(range(a.ndim))
    if not isinstance(axis, int) or not -a.ndim <= axis < a.ndim:
        raise ValueError(
            f"axis must be None or an axis of w (ndim {a.ndim}); got {axis}"
        )
    axis %= a.ndim
    return a, axis, tuple(d for d in range(a.ndim) if d != axis)


def _signs(a: np.ndarray) -> NDArray[np.int8]:
    """+1 where ``a >= 0``, else -1: sign with sign(0) = +1, so every code is +-1."""
    return np.where(a >= 0, 1, -1).astype(np.int8)


def binarize(
    w: ArrayLike, axis: int | None = 0
) -> tuple[NDArray[np.floating], NDArray[np.int8]]:
    """BWN: ``(alpha, B)`` with ``W ~ alpha * B``, ``B = sign(W)``, ``alpha = mean|W|``.

    ``axis`` is the channel axis, as in :func:`qlib.linear.linear_qparams`:
    ``axis=0`` on a Dense ``W`` (out, in) gives one ``alpha`` per output
    neuron, the mean over its row; ``axis=None`` one for the tensor.
    ``sign(0)`` is taken as +1.  Rebuild with ``alpha[:, None] * B``.

    Example:
        >>> alpha, B = binarize(np.array([[0.5, -1.5], [2.0, 0.0]]))
        >>> alpha, B
        (array([1., 1.]), array([[ 1, -1],
               [ 1,  1]], dtype=int8))

    Taught in ``notebooks/09_quantization_aware_training.ipynb``.
    """
    a, axis, over = _weights(w, axis)
    return np.abs(a).mean(axis=over), _signs(a)


def twn_threshold(w: ArrayLike, axis: int | None = 0) -> NDArray[np.floating]:
    """TWN's threshold ``Delta = 0.7 * mean|W|`` (per channel along ``axis``).

    Example:
        >>> twn_threshold(np.array([[1.0, -3.0], [0.5, 0.5]]))
        array([1.4 , 0.35])
    """
    a, _, over = _weights(w, axis)
    return TWN_DELTA * np.abs(a).mean(axis=over)


def ternarize(
    w: ArrayLike, delta: ArrayLike | None = None, axis: int | None = 0
) -> tuple[NDArray[np.floating], NDArray[np.int8]]:
    """TWN: ``(alpha, T)`` with ``W ~ alpha * T``, ``T`` in {-1, 0, +1}.

    ``T = sign(W)`` where ``|W| > Delta`` and 0 elsewhere; ``alpha`` is the
    mean of ``|W|`` over ``|W| > Delta`` (0 for a channel with none), the
    ``alpha`` that minimizes ``||W - alpha * T||**2`` for that ``T``.
    ``delta`` defaults to :func:`twn_threshold`; it is a scalar or one value
    per channel along ``axis``.

    Example:
        >>> alpha, T = ternarize(np.array([[0.1, -2.0, 1.0, 0.3]]))
        >>> alpha, T
        (array([1.5]), array([[ 0, -1,  1,  0]], dtype=int8))

    Taught in ``notebooks/09_quantization_aware_training.ipynb``.
    """
    a, axis, over = _weights(w, axis)
    d = twn_threshold(a, axis) if delta is None else np.asarray(delta, a.dtype)
    if d.ndim and d.shape != (a.shape[axis] if axis is not None else 1,):
        raise ValueError(
            f"delta must be a scalar or one value per channel along axis {axis}; "
            f"got shape {d.shape}"
        )
    if (d < 0).any() or not np.isfinite(d).all():
        raise ValueError("delta must be finite and >= 0")
    kept = np.abs(a) > _expand(d, a.ndim, axis)
    count = kept.sum(axis=over)
    total = np.where(kept, np.abs(a), 0).sum(axis=over)
    alpha = np.where(count > 0, total / np.maximum(count, 1), 0).astype(a.dtype)
    return alpha, (_signs(a) * kept).astype(np.int8)


def optimal_threshold(w: ArrayLike) -> float:
    """The exact TWN threshold of one tensor: the ``Delta >= 0`` whose
    ternarization (with its best ``alpha``) minimizes ``||W - alpha * T||**2``.

    With ``I = {i : |W_i| > Delta}`` the error is ``sum W**2 - (sum_I
    |W_i|)**2 / |I|`` (TWN, eq. 5), so the best ``I`` holds the ``k`` largest
    ``|W|`` for the ``k`` that maximizes ``S_k**2 / k`` (``S_k`` their sum);
    ``k`` is only reachable where the k-th and (k+1)-th largest ``|W|``
    differ.  Returned: the (k+1)-th largest ``|W|`` (0 for all of them), so
    ``|W| > Delta`` keeps exactly those ``k``.

    Example:
        >>> optimal_threshold([0.1, -2.0, 1.0, 0.3])  # keeps -2.0 and 1.0
        0.3
    """
    a, _, _ = _weights(np.asarray(w, dtype=np.float64), None)
    mags = np.sort(np.abs(a).ravel())[::-1]
    k = np.arange(1, mags.size + 1)
    objective = np.cumsum(mags) ** 2 / k
    below = np.append(mags[1:], 0.0)  # the (k+1)-th largest, the threshold for k
    objective[mags == below] = -np.inf  # a threshold cannot split equal |W|
    return float(below[np.argmax(objective)])


# ----------------------------------------------------------- XNOR-popcount
def pack_signs(x: ArrayLike) -> NDArray[np.uint64]:
    """The signs of ``x`` (..., n) as bits in uint64 words (..., ceil(n / 64)).

    Bit ``j`` of word ``k`` (least significant first) is 1 where
    ``x[..., 64 k + j] >= 0`` (+1) and 0 where it is negative (-1); the
    bits past ``n`` in the last word are 0.

    Example:
        >>> pack_signs([1.0, -1.0, 1.0, 1.0])
        array([13], dtype=uint64)
    """
    a = _real(x)
    if a.ndim == 0 or a.shape[-1] == 0:
        raise ValueError(f"x must have a non-empty last axis; got shape {a.shape}")
    n_bytes = -(-a.shape[-1] // 64) * 8
    packed = np.packbits(a >= 0, axis=-1, bitorder="little")
    padded = np.zeros((*a.shape[:-1], n_bytes), np.uint8)
    padded[..., : packed.shape[-1]] = packed
    return padded.view("<u8").astype(np.uint64)


def popcount(words: ArrayLike) -> NDArray[np.uint8]:
    """The number of 1 bits in each uint64 of ``words``.

    ``np.bitwise_count`` on NumPy 2; before, the bits of each byte from a
    256-entry table, summed over the word's 8 bytes.

    Example:
        >>> popcount(np.array([0, 13, 2**64 - 1], np.uint64))
        array([ 0,  3, 64], dtype=uint8)
    """
    w = np.asarray(words)
    if w.dtype != np.uint64:
        raise TypeError(f"words must be uint64 (pack_signs); got dtype {w.dtype}")
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(w)
    return _popcount_table(w)


def _popcount_table(w: np.ndarray) -> NDArray[np.uint8]:
    as_bytes = np.ascontiguousarray(w).view(np.uint8).reshape(*w.shape, 8)
    return _BYTE_BITS[as_bytes].sum(axis=-1, dtype=np.uint8)


def xnor_matmul(
    a_words: ArrayLike, b_words: ArrayLike, n: int, *, block: int = 256
) -> NDArray[np.int64]:
    """Every dot product of +-1 vectors from their packed signs: ``a @ b.T``.

    ``a_words`` (A, words) and ``b_words`` (B, words) come from
    :func:`pack_signs` of vectors of length ``n``.  Entry ``(i, j)`` is
    ``2 * popcount(xnor(a_i, b_j)) - n``, the popcount over the ``n`` real
    bits only: XNOR turns the zero padding of the last word into ones, so
    that word is masked first.  ``block`` rows of ``a`` are done at a time.

    Example:
        >>> a = np.array([[1, -1, 1], [1, 1, 1]])
        >>> b = np.array([[1, 1, -1], [-1, -1, -1]])
        >>> xnor_matmul(pack_signs(a), pack_signs(b), 3)
        array([[-1, -1],
               [ 1, -3]])
        >>> a @ b.T
        array([[-1, -1],
               [ 1, -3]])

    Taught in ``notebooks/09_quantization_aware_training.ipynb``.
    """
    a, b = np.asarray(a_words), np.asarray(b_words)
    for name, w in (("a_words", a), ("b_words", b)):
        if w.dtype != np.uint64 or w.ndim != 2:
            raise TypeError(
                f"{name} must be uint64 words of shape (rows, words) from "
                f"pack_signs; got dtype {w.dtype}, shape {w.shape}"
            )
    words = a.shape[1]
    if b.shape[1] != words:
        raise ValueError(
            f"a_words and b_words must have as many words; got {words} and {b.shape[1]}"
        )
    if isinstance(n, bool) or not isinstance(n, int | np.integer):
        raise TypeError(f"n must be an integer; got {n!r}")
    if not 64 * (words - 1) < n <= 64 * words:
        raise ValueError(
            f"n must be in ({64 * (words - 1)}, {64 * words}] for {words} words; "
            f"got {n}"
        )
    real_bits = np.full(words, np.iinfo(np.uint64).max, np.uint64)
    real_bits[-1] >>= np.uint64(64 * words - n)  # keep the n % 64 real bits
    out = np.empty((len(a), len(b)), np.int64)
    for start in range(0, len(a), block):
        same = ~(a[start : start + block, None, :] ^ b[None, :, :]) & real_bits
        out[start : start + block] = popcount(same).sum(axis=-1, dtype=np.int64)
    return 2 * out - n

"""Calibration: choosing the clipping range ``(r_min, r_max)`` of activations.

Every calibrator here takes a sample of activations (any shape, flattened:
one range per tensor) and returns ``(r_min, r_max)`` as two Python floats:
the :data:`qlib.quantnet.Calibrator` signature.  Options are keyword
arguments, so ``functools.partial(entropy, bits=8)`` is a Calibrator that
:meth:`qlib.quantnet.QuantizedMLP.from_float` takes as ``calibrator=``.

* :func:`minmax` -- the range as it is (qlib.quantnet's, re-exported).
* :func:`ema_minmax` -- min and max averaged over batches,
  ``r = m * r + (1 - m) * batch``.
* :func:`percentile` -- the ``p``-th percentile of ``|x|`` (symmetric), or
  the ``100 - p``-th and ``p``-th percentiles of ``x`` (asymmetric).
* :func:`mse` -- the clip that minimizes the mean squared error of
  clipping and quantizing through :mod:`qlib.linear`.
* :func:`entropy` -- TensorRT's KL-divergence (entropy) calibration.

The symmetric calibrators choose a threshold ``t <= max|x|`` and return the
data's range, stretched to hold 0 as :func:`~qlib.linear.linear_qparams`
does, clipped to it: ``(max(min(x, 0), -t), min(max(x, 0), t))``, so
``(-t, t)`` for signed data and ``(0, t)`` for ReLU outputs; either way
``linear_qparams(..., symmetric=True)`` gets the scale ``t / (2**(bits-1) -
1)`` from it.

Taught in ``notebooks/08_post_training_quantization.ipynb``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .linear import _integer, linear_qparams
from .quantnet import Calibrator, minmax

__all__ = [
    "Calibrator",
    "clipping_mse",
    "ema_minmax",
    "entropy",
    "entropy_threshold",
    "kl_divergences",
    "minmax",
    "mse",
    "mse_threshold",
    "percentile",
]

#: KL values closer than this to the minimum count as ties (float error of
#: the cumulative formulation is ~1e-13 nats); ties go to the smallest i
_KL_TIE = 1e-12


def _sample(x: ArrayLike, name: str = "x") -> NDArray[np.float64]:
    """``x`` flattened to float64; empty, NaN or inf raise, naming ``name``."""
    a = np.asarray(x)
    if a.dtype.kind not in "iuf":
        raise TypeError(f"{name} must hold real numbers; got dtype {a.dtype}")
    if a.size == 0:
        raise ValueError(f"{name} must be a non-empty array")
    a = a.astype(np.float64).ravel()
    if np.isnan(a).any():
        raise ValueError(f"{name} holds NaN; calibrate on finite activations")
    if np.isinf(a).any():
        raise ValueError(f"{name} holds inf; calibrate on finite activations")
    return a


def _real(value: object, name: str, lo: float, hi: float, lo_open: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number; got {value!r}")
    v = float(value)
    if not (lo < v <= hi if lo_open else lo <= v <= hi):
        interval = f"({lo}, {hi}]" if lo_open else f"[{lo}, {hi}]"
        raise ValueError(f"{name} must be in {interval}; got {value}")
    return v


def _clipped(a: np.ndarray, t: float) -> tuple[float, float]:
    """The data's range, stretched to hold 0, clipped to ``[-t, t]``."""
    return max(min(float(a.min()), 0.0), -t), min(max(float(a.max()), 0.0), t)


def ema_minmax(
    batches: Iterable[ArrayLike] | ArrayLike,
    momentum: float = 0.9,
    *,
    batch_size: int | None = None,
) -> tuple[float, float]:
    """Min and max of each batch, averaged exponentially over the batches.

    The first batch sets ``(r_min, r_max)``; each further batch updates
    ``r_min = m * r_min + (1 - m) * min(batch)`` (and ``r_max`` alike), with
    ``m = momentum``.  This is PyTorch's ``MovingAverageMinMaxObserver``
    with ``averaging_constant = 1 - momentum`` (its default 0.01 is
    ``momentum=0.99``) and TensorFlow's moving-average update with
    ``decay = momentum``.

    Args:
        batches: an iterable of arrays, one per batch; or, with
            ``batch_size``, one array cut along axis 0 into batches of
            ``batch_size`` (the last may be shorter):
            ``partial(ema_minmax, batch_size=100)`` is a Calibrator.
        momentum: in [0, 1]; 0 keeps the last batch's range, 1 the first's.

    Example:
        >>> ema_minmax([[-1.0, 2.0], [-3.0, 1.0], [0.0, 4.0]], momentum=0.5)
        (-1.0, 2.75)
        >>> ema_minmax(np.array([-1.0, 2.0, -3.0, 1.0]), 0.5, batch_size=2)
        (-2.0, 1.5)
    """
    m = _real(momentum, "momentum", 0.0, 1.0, lo_open=False)
    if batch_size is not None:
        a = np.asarray(batches)
        n = _integer(batch_size, "batch_size", 1, 2**62)
        if a.ndim == 0:
            raise ValueError("batches must be an array with a batch axis 0")
        if a.size == 0:
            raise ValueError("batches must be a non-empty array")
        batches = [a[i : i + n] for i in range(0, len(a), n)]
    elif isinstance(batches, np.ndarray):
        raise TypeError("one array of batches needs batch_size to cut it along axis 0")
    r: tuple[float, float] | None = None
    for k, batch in enumerate(batches):  # one step per batch, as an observer
        b = _sample(batch, f"batches[{k}]")
        lo, hi = float(b.min()), float(b.max())
        if r is not None:  # r = m * r + (1 - m) * batch
            lo, hi = m * r[0] + (1 - m) * lo, m * r[1] + (1 - m) * hi
        r = (lo, hi)
    if r is None:
        raise ValueError("batches must hold at least one batch")
    return r


def percentile(
    x: ArrayLike, p: float = 99.99, *, symmetric: bool = True
) -> tuple[float, float]:
    """Clip the most extreme ``100 - p`` percent of the activations.

    Symmetric: ``t = np.percentile(|x|, p)`` and the range clipped to
    ``[-t, t]``.  Asymmetric: ``(np.percentile(x, 100 - p),
    np.percentile(x, p))``, each tail on its own (``p >= 50``).  NumPy's
    default (linear) interpolation; ``p = 100`` clips nothing.

    Example:
        >>> x = np.arange(-50.0, 1001.0)
        >>> percentile(x, 99.9)
        (-50.0, 998.95)
        >>> [round(r, 2) for r in percentile(x, 99.9, symmetric=False)]
        [-48.95, 998.95]
    """
    a = _sample(x)
    q = _real(p, "p", 0.0, 100.0, lo_open=True)
    if symmetric:
        return _clipped(a, float(np.percentile(np.abs(a), q)))
    if q < 50:
        raise ValueError(f"p must be >= 50 for an asymmetric range; got {p}")
    return float(np.percentile(a, 100 - q)), float(np.percentile(a, q))


def _quant_mse(a: np.ndarray, lo: float, hi: float, bits: int, symmetric: bool):
    """:func:`clipping_mse` without its checks, in place: the searches call it
    about 80 times on the same sample.

    The arithmetic is ``quantize_linear`` then ``dequantize_linear`` (signed
    codes, a float64 scale), with the integer round trip left out:
    ``(saturate(r + Z) - Z) * S`` is ``clip(r, lo - Z, hi - Z) * S`` exactly,
    as the codes are integers in float64.  The same bits, 2.3x faster
    (tests/test_calibrate.py compares the two)."""
    scale, zero = linear_qparams(np.array([lo, hi]), bits, symmetric=symmetric)
    s, z, top = float(scale), int(zero), 2 ** (bits - 1)
    r = np.divide(np.clip(a, lo, hi), s, dtype=np.float64)  # x / S, as ONNX
    np.rint(r, out=r)  # half to even
    np.clip(r, -top - z, top - 1 - z, out=r)
    r *= s
    np.subtract(a, r, out=r)
    np.square(r, out=r)
    return float(np.mean(r))


def clipping_mse(
    x: ArrayLike, r_min: float, r_max: float, bits: int = 8, *, symmetric: bool = True
) -> float:
    """``mean((x - x_hat)**2)``: ``x`` clipped to ``[r_min, r_max]``,
    quantized with ``linear_qparams((r_min, r_max), bits, symmetric)`` by
    :func:`~qlib.linear.quantize_linear` and dequantized.

    Symmetric at ``bits`` this is the quantizer with the ``2**bits - 1``
    levels ``k * t / (2**(bits-1) - 1)``, ``|k| <= 2**(bits-1) - 1``.

    Example:
        >>> clipping_mse([-1.0, 0.2, 0.4, 3.0], -1.0, 1.0, bits=2)
        1.05
    """
    a = _sample(x)
    n = _integer(bits, "bits", 2, 16)
    lo = _real(r_min, "r_min", -math.inf, math.inf, lo_open=True)
    hi = _real(r_max, "r_max", -math.inf, math.inf, lo_open=True)
    if lo > hi:
        raise ValueError(f"r_min must be <= r_max; got {r_min} > {r_max}")
    return _quant_mse(a, lo, hi, n, bool(symmetric))


def mse_threshold(
    x: ArrayLike, bits: int = 8, *, symmetric: bool = True, grid: int = 64
) -> float:
    """The threshold ``t`` whose range (as in the module's docstring)
    minimizes :func:`clipping_mse` on this sample.

    The search: ``grid`` thresholds ``max|x| * k / grid``, ``k = 1..grid``
    (``k = grid`` is min-max); then a golden-section search between the best
    one's neighbours, down to an interval of ``max|x| / 2**16``.  Every
    threshold tried is measured on the whole sample (about ``grid + 17``
    quantizations); the best one wins, ties to the smaller.  ``max|x| = 0``
    gives 0.  With ``symmetric=False`` the threshold is the one for the
    asymmetric quantization of that range (for one-sided data, ``[0, t]``
    on all ``2**bits`` codes).  About 0.4 s for 1e6 samples.

    For Laplace(0, b), symmetric: 2.00b, 3.49b, 4.82b at 2, 3, 4 bits, this
    quantizer's exact optimum (``2**bits - 1`` levels).  ACIQ's 2.83b,
    3.89b, 5.03b (Banner et al. 2019) minimize an approximate model of
    ``2**bits`` levels of step ``2t / 2**bits``, finer than ours at low bits.

    Example:
        >>> x = np.random.default_rng(0).laplace(0.0, 1.0, 20_000)
        >>> round(mse_threshold(x, bits=4), 2)
        4.78
    """
    a = _sample(x)
    n = _integer(bits, "bits", 2, 16)
    g = _integer(grid, "grid", 2, 2**16)
    a_max = float(np.abs(a).max())
    if a_max == 0:
        return 0.0
    lo, hi, sym = min(float(a.min()), 0.0), max(float(a.max()), 0.0), bool(symmetric)
    tried: dict[float, float] = {}

    def err(t: float) -> float:
        if t not in tried:
            tried[t] = _quant_mse(a, max(lo, -t), min(hi, t), n, sym)
        return tried[t]

    ts = a_max * np.arange(1, g + 1) / g
    k = int(np.argmin([err(float(t)) for t in ts]))
    left, right = (float(ts[k - 1]) if k else 0.0), float(ts[min(k + 1, g - 1)])
    inv_phi = (math.sqrt(5) - 1) / 2
    c, d = right - inv_phi * (right - left), left + inv_phi * (right - left)
    while right - left > a_max * 2**-16:
        if err(c) <= err(d):
            right, d = d, c
            c = right - inv_phi * (right - left)
        else:
            left, c = c, d
            d = left + inv_phi * (right - left)
    return min(tried, key=lambda t: (tried[t], t))


def mse(
    x: ArrayLike, bits: int = 8, *, symmetric: bool = True, grid: int = 64
) -> tuple[float, float]:
    """The MSE-optimal clipping range: the data's range (holding 0)
    clipped to ``[-t, t]``, ``t = mse_threshold(x, bits, symmetric=..., grid=...)``.

    Example:
        >>> x = np.random.default_rng(0).uniform(-1.0, 1.0, 20_000)
        >>> [round(r, 3) for r in mse(x, bits=4)]
        [-0.932, 0.932]
    """
    a = _sample(x)
    return _clipped(a, mse_threshold(a, bits, symmetric=symmetric, grid=grid))


def _xlogx(v: np.ndarray) -> np.ndarray:
    """``v * log(v)`` with ``0 log 0 = 0``."""
    return v * np.log(np.where(v > 0, v, 1.0))


def kl_divergences(hist: ArrayLike, bits: int = 8) -> NDArray[np.float64]:
    """``KL(P || Q)`` of TensorRT's entropy calibration for every candidate
    ``i = 2**(bits-1), ..., len(hist) - 1`` (one value per candidate).

    ``hist`` are the counts of ``|x|`` in equal bins.  For candidate ``i``,
    with ``L = 2**(bits-1)`` levels:

    * ``P = hist[:i]`` with the clipped mass ``sum(hist[i:])`` added to
      ``P[i-1]``;
    * ``Q``: ``hist[:i]`` merged into ``L`` groups, bin ``j`` into group
      ``j * L // i`` (groups of ``i // L`` or ``i // L + 1`` bins, spread
      evenly), each group's sum shared equally by its non-zero bins of
      ``hist[:i]``; its zero bins stay zero;
    * both normalized to sum 1; ``KL = sum p log(p / q)`` over ``p > 0``,
      in nats.  Where ``q = 0`` but ``p > 0`` (the last bin is empty but
      receives clipped mass) the divergence is ``inf``.

    Vectorized over candidates by cumulative sums: per group, ``sum h log h -
    M log(M / n)`` (``M`` its mass, ``n`` its non-zero bins), then the last
    bin corrected for the clipped mass.

    Example:
        TensorRT's worked merge: ``[1, 0, 2, 3, 5, 3, 1, 7]`` into 2 levels is
        ``Q = [2, 0, 2, 2, 4, 4, 4, 4]``, here candidate ``i = 8``:

        >>> kl = kl_divergences([1, 0, 2, 3, 5, 3, 1, 7, 0, 0], bits=2)
        >>> kl.shape, round(float(kl[6]), 6)
        ((8,), 0.150315)
    """
    h = np.asarray(hist)
    if h.dtype.kind not in "iuf" or h.ndim != 1:
        raise TypeError(f"hist must be a 1-D array of counts; got {h.dtype} {h.shape}")
    h = h.astype(np.float64)
    if not (np.isfinite(h).all() and (h >= 0).all() and h.sum() > 0):
        raise ValueError("hist must hold finite counts >= 0, not all zero")
    levels = 2 ** (_integer(bits, "bits", 2, 16) - 1)
    if len(h) <= levels:
        raise ValueError(
            f"hist must have more than 2**(bits-1) = {levels} bins; got {len(h)}"
        )
    cands = np.arange(levels, len(h))
    cum = np.concatenate([[0.0], np.cumsum(h)])
    nonzero = np.concatenate([[0], np.cumsum(h > 0)])
    cum_hlogh = np.concatenate([[0.0], np.cumsum(_xlogx(h))])
    # group g of candidate i holds bins [ceil(g i / L), ceil((g + 1) i / L))
    edges = (np.arange(levels + 1) * cands[:, None] + levels - 1) // levels
    mass, count = np.diff(cum[edges]), np.diff(nonzero[edges])
    share = mass / np.maximum(count, 1)  # Q in each non-zero bin of the group
    within = np.diff(cum_hlogh[edges]) - mass * np.log(np.where(mass > 0, share, 1))
    total = cum[-1]
    kept = cum[cands]  # sum(hist[:i]), the mass Q is normalized by
    tail = total - kept
    kl = within.sum(axis=1) / total + _xlogx(kept / total)
    # the last bin: P[i-1] = hist[i-1] + tail where q = share / kept
    last = h[cands - 1]
    q_last = np.where(last > 0, share[:, -1] / np.maximum(kept, 1e-300), 1.0)
    p_last = (last + tail) / total
    fix = _xlogx(p_last) - p_last * np.log(q_last)
    fix -= _xlogx(last / total) - last / total * np.log(q_last)
    kl = np.where(last > 0, kl + fix, np.where(tail > 0, np.inf, kl))
    return np.maximum(kl, 0.0)


def entropy_threshold(x: ArrayLike, bits: int = 8, *, num_bins: int = 2048) -> float:
    """TensorRT's entropy (KL) calibration threshold on ``|x|``.

    The algorithm of TensorRT's published pseudocode (Migacz, "8-bit
    Inference with TensorRT", GTC 2017): a histogram of ``|x|`` in
    ``num_bins`` equal bins over ``[0, max|x|]`` (``np.histogram``); the
    divergences of :func:`kl_divergences` for ``i = 2**(bits-1)`` (128 at 8
    bits) to ``num_bins - 1``; the threshold at the argmin ``m``,
    ``(m + 0.5) * bin_width`` (the middle of the first clipped bin, so
    always below ``max|x|``).  Ties (within 1e-12 nats) go to the smallest
    ``m``.  If every candidate is ``inf``, nothing can be clipped without a
    loss ``Q`` cannot represent, and the threshold is ``max|x|``.  About
    14 ms for 1e6 samples (the histogram 12, the 1920 divergences 2).

    Unlike onnxruntime's ``calibrate.py`` (a signed histogram over
    ``[-max, max]``, its non-zero bins counted after the clipped mass is
    added, Q held in int64 so each share is truncated, the remainder of
    ``i / 128`` merged into the last group, both distributions smoothed;
    128 bins and 128 quantized bins by default leave one candidate) and
    NVIDIA's pytorch-quantization (``bins[0] = bins[1]`` before anything,
    candidates up to ``i = 2048`` inclusive, threshold at the bin edge
    ``i * bin_width``, the last argmin).

    Example:
        >>> x = np.random.default_rng(0).laplace(0.0, 1.0, 100_000)
        >>> round(entropy_threshold(x), 3), round(float(np.abs(x).max()), 3)
        (9.571, 11.949)
    """
    a = _sample(x)
    levels = 2 ** (_integer(bits, "bits", 2, 16) - 1)
    n = _integer(num_bins, "num_bins", 2, 2**24)
    if n <= levels:
        raise ValueError(f"num_bins must be greater than 2**(bits-1) = {levels}")
    a_max = float(np.abs(a).max())
    if a_max == 0:
        return 0.0
    magnitudes, top = np.abs(a), a_max
    if a_max < n * np.finfo(np.float64).tiny:
        # subnormal data: bins a_max / n wide would round to equal edges, which
        # np.histogram refuses.  Scaled by a power of two (exact), the same bins.
        magnitudes, top = magnitudes.astype(np.float64) * 2.0**600, a_max * 2.0**600
    hist, _ = np.histogram(magnitudes, bins=n, range=(0.0, top))
    kl = kl_divergences(hist, bits)
    if not np.isfinite(kl).any():
        return a_max
    m = levels + int(np.flatnonzero(kl <= kl.min() + _KL_TIE)[0])
    return (m + 0.5) * a_max / n


def entropy(
    x: ArrayLike, bits: int = 8, *, num_bins: int = 2048, skip_zeros: bool = False
) -> tuple[float, float]:
    """The entropy-calibrated range: the data's range (holding 0) clipped
    to ``[-t, t]``, ``t = entropy_threshold(x, bits, num_bins=num_bins)`` (TensorRT's
    algorithm, see there).

    ``skip_zeros=True`` leaves the exact zeros out of the histogram.  Most
    of a ReLU's outputs are exactly 0 (73 % of LeNet-300-100's fc1 on the
    calibration images): one spike in the first bin, which Q can keep only
    if each level covers a single bin, so the divergence is smallest at the
    smallest candidates and clips nearly everything.  The zeros are exact
    codes whatever the threshold; NVIDIA's pytorch-quantization flattens
    the spike instead (``bins[0] = bins[1]``).

    Example:
        >>> x = np.random.default_rng(0).laplace(0.0, 1.0, 100_000)
        >>> entropy(x)
        (-9.571345585322732, 9.571345585322732)
    """
    if not isinstance(skip_zeros, bool | np.bool_):
        raise TypeError(f"skip_zeros must be True or False; got {skip_zeros!r}")
    a = _sample(x)
    counted = a[a != 0] if skip_zeros else a
    t = entropy_threshold(counted, bits, num_bins=num_bins) if counted.size else 0.0
    return _clipped(a, t)

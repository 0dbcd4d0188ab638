"""Mixed precision: a bit width for each layer, chosen under a size budget.

Layers differ in how much quantization hurts them and in how many weights
they hold.  Mixed precision spends the bits where they matter:

* :func:`divergence` -- how far a quantized network's predictions move
  from the float network's: the mean KL divergence of their softmax outputs
  on unlabelled images (the calibration images, never the test set);
* :func:`sensitivity` -- that divergence (or the error rate) with only one
  layer quantized, for each layer and width;
* :func:`greedy_allocation` -- start with every layer at the widest width
  and lower, one step at a time, the layer whose step costs the least
  divergence per byte saved, until the model fits the budget; then raise
  any layer that still fits, best gain per byte first.  HAQ (Wang et al.
  2019) searches the same space with reinforcement learning and hardware
  feedback; greedy is the simple baseline it is measured against;
* :func:`quantize_mixed`, :func:`mixed_bytes` -- the network and its size
  for an allocation.

The weights are quantized by :func:`qlib.ptq.quantize_weight`, one scale
and zero point per output channel, asymmetric by default (chapter 08's
best at 2 and 3 bits); activations stay float.

Taught in ``notebooks/09_quantization_aware_training.ipynb``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from . import ptq
from .linear import _integer
from .nn import MLP, Dense, _check_images, _check_labels, log_softmax

__all__ = [
    "BITS",
    "LayerQuantizer",
    "divergence",
    "greedy_allocation",
    "mixed_bytes",
    "quantize_mixed",
    "sensitivity",
]

#: the widths an allocation chooses from
BITS = (2, 3, 4, 5, 6, 7, 8)


class LayerQuantizer:
    """``model``'s Dense layers quantized once per (layer, width) and kept,
    so that trying an allocation costs a forward pass, not a quantization.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> from qlib.nn import ReLU
        >>> model = MLP([Dense(8, 4, rng=rng), ReLU(), Dense(4, 3, rng=rng)])
        >>> lq = LayerQuantizer(model)
        >>> q = lq.model((2, None))  # fc1 at 2 bits, the second layer float
        >>> max(len(np.unique(row)) for row in q.dense[0].W) <= 4
        True
        >>> q.dense[1].W is model.dense[1].W
        True
        >>> lq.nbytes((8, 8)) == ptq.model_bytes(model, 8, "channel", symmetric=False)
        True
    """

    def __init__(
        self,
        model: MLP,
        *,
        granularity: ptq.Granularity = "channel",
        symmetric: bool = False,
    ) -> None:
        if not isinstance(model, MLP):
            raise TypeError(f"model must be a qlib.nn.MLP; got {type(model).__name__}")
        self.float_model = model
        self.granularity = ptq._granularity(granularity)
        self.symmetric = bool(symmetric)
        self.dense = model.dense

    @functools.cache  # noqa: B019 -- one cache per quantizer, kept with it
    def weight(self, layer: int, bits: int) -> np.ndarray:
        """Layer ``layer``'s weights at ``bits`` (read-only)."""
        d = self.dense[layer]
        w = ptq.quantize_weight(d.W, bits, self.granularity, symmetric=self.symmetric)
        w = w.astype(d.W.dtype)
        w.flags.writeable = False
        return w

    def _allocation(self, bits: Sequence[int | None]) -> tuple[int | None, ...]:
        a = tuple(bits)
        if len(a) != len(self.dense):
            raise ValueError(
                f"bits must give one width per layer ({len(self.dense)}); got {a}"
            )
        for b in a:
            if b is not None:
                _integer(b, "bits", 2, 16)
        return a

    def model(self, bits: Sequence[int | None]) -> MLP:
        """The network with layer ``i`` at ``bits[i]`` (``None``: float)."""
        a = self._allocation(bits)
        layers, k = [], 0
        for layer in self.float_model.layers:
            if isinstance(layer, Dense):
                w = layer.W if a[k] is None else self.weight(k, a[k])
                layer = Dense.from_arrays(w, layer.b)
                k += 1
            layers.append(layer)
        return MLP(layers, self.float_model.recipe)

    def layer_bytes(self, layer: int, bits: int | None) -> float:
        """Bytes of layer ``layer`` at ``bits``: its weights (codes, fp16
        scales, zero points; float32 if ``None``) and its float32 biases."""
        d = self.dense[layer]
        w = 32 * d.W.size if bits is None else ptq.weight_bits(
            d.W.shape, bits, self.granularity, symmetric=self.symmetric
        )  # fmt: skip
        return (w + 32 * d.b.size) / 8

    def nbytes(self, bits: Sequence[int | None]) -> float:
        """Bytes of the whole model at the allocation ``bits``."""
        return sum(self.layer_bytes(i, b) for i, b in enumerate(self._allocation(bits)))


def divergence(reference: MLP, model: MLP, x: ArrayLike) -> float:
    """Mean over the images ``x`` (float, (N, 784)) of KL(p || q) in nats,
    ``p`` the softmax of ``reference``'s logits, ``q`` of ``model``'s.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> model = MLP([Dense(4, 3, rng=rng)])
        >>> divergence(model, model, np.ones((2, 4), np.float32))
        0.0
    """
    a = _check_images(x, reference.dense[0].in_features, "x")
    return _kl(_log_probs(reference.forward(a)), _log_probs(model.forward(a)))


def _log_probs(logits: np.ndarray) -> np.ndarray:
    return log_softmax(logits).astype(np.float64)


def _kl(log_p: np.ndarray, log_q: np.ndarray) -> float:
    """The mean over rows of KL(p || q), from log-probabilities."""
    kl = np.sum(np.exp(log_p) * (log_p - log_q), axis=1)
    return float(max(kl.mean(), 0.0))


class _Divergences:
    """``divergence(quantizer.float_model, quantizer.model(a), x)`` for many
    allocations ``a``, sharing the work between them: the float network's
    softmax once, and the activations after the first ``k`` Dense layers once
    for each choice of those ``k`` layers' widths (a layer's input depends
    only on the layers before it, and fc1 holds most of the arithmetic).
    The same operations on the same arrays as :func:`divergence`, so the
    same numbers bit for bit."""

    def __init__(self, quantizer: LayerQuantizer, x: ArrayLike) -> None:
        model = quantizer.float_model
        self.quantizer = quantizer
        self.x = _check_images(x, model.dense[0].in_features, "x")
        self.log_p = _log_probs(model.forward(self.x))
        # each Dense layer with the layers after it, up to the next Dense
        self.before: list = []
        self.stages: list[tuple[Dense, list]] = []
        for layer in model.layers:
            if isinstance(layer, Dense):
                self.stages.append((layer, []))
            else:
                (self.stages[-1][1] if self.stages else self.before).append(layer)
        self.after = functools.cache(self._after)

    def _after(self, widths: tuple[int | None, ...]) -> np.ndarray:
        """The activations after the first ``len(widths)`` stages at ``widths``."""
        if not widths:
            h = self.x
            for layer in self.before:
                h = layer.forward(h)
            return h
        k = len(widths) - 1
        dense, rest = self.stages[k]
        w = dense.W if widths[k] is None else self.quantizer.weight(k, widths[k])
        h = Dense.from_arrays(w, dense.b).forward(self.after(widths[:-1]))
        for layer in rest:
            h = layer.forward(h)
        return h

    def __call__(self, bits: Sequence[int | None]) -> float:
        a = self.quantizer._allocation(bits)
        return _kl(self.log_p, _log_probs(self.after(a)))


def sensitivity(
    quantizer: LayerQuantizer,
    x: ArrayLike,
    bits: Sequence[int] = BITS,
    labels: ArrayLike | None = None,
) -> np.ndarray:
    """``(layers, len(bits))``: with only layer ``i`` at ``bits[j]`` (the
    others float), the divergence from the float network on ``x`` or, with
    ``labels``, the error rate.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> from qlib.nn import ReLU
        >>> model = MLP([Dense(8, 6, rng=rng), ReLU(), Dense(6, 3, rng=rng)])
        >>> s = sensitivity(LayerQuantizer(model), rng.uniform(0, 1, (50, 8)), (2, 8))
        >>> bool((s[:, 0] > s[:, 1]).all())  # 2 bits move the outputs more than 8
        True
    """
    n = len(quantizer.dense)
    out = np.empty((n, len(bits)))
    if labels is not None:
        y = _check_labels(labels, len(x), quantizer.dense[-1].out_features, "labels")
    else:
        cost = _Divergences(quantizer, x)
    for i in range(n):
        for j, b in enumerate(bits):
            alloc = [None] * n
            alloc[i] = b
            if labels is None:
                out[i, j] = cost(alloc)
            else:
                m = quantizer.model(alloc)
                out[i, j] = np.mean(m.predict(np.asarray(x, np.float32)) != y)
    return out


def quantize_mixed(model: MLP, bits: Sequence[int], **options) -> MLP:
    """``model`` with layer ``i``'s weights at ``bits[i]`` (per-channel
    asymmetric unless ``options`` say otherwise: those of
    :class:`LayerQuantizer`)."""
    return LayerQuantizer(model, **options).model(bits)


def mixed_bytes(model: MLP, bits: Sequence[int], **options) -> float:
    """Bytes of ``model`` at the allocation ``bits`` (:meth:`LayerQuantizer.nbytes`).

    Example:
        >>> model = MLP([Dense(784, 300, rng=np.random.default_rng(0))])
        >>> mixed_bytes(model, [4]), (235200 * 4 + 300 * (16 + 4)) / 8 + 300 * 4
        (119550.0, 119550.0)
    """
    return LayerQuantizer(model, **options).nbytes(bits)


def greedy_allocation(
    quantizer: LayerQuantizer,
    x: ArrayLike,
    budget: float,
    bits: Sequence[int] = BITS,
) -> tuple[int, ...]:
    """A width from ``bits`` for each layer, the model within ``budget``
    bytes, chosen greedily by the divergence on ``x``.

    Down: from every layer at ``max(bits)``, lower the layer whose next
    narrower width costs the least divergence per byte saved, until the
    model fits.  Up: then, while some layer's next wider width still fits,
    raise the one that gains the most divergence per byte spent.  Ties go
    to the earlier layer.  Raises if even ``min(bits)`` everywhere is over
    the budget.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> from qlib.nn import ReLU
        >>> model = MLP([Dense(64, 32, rng=rng), ReLU(), Dense(32, 4, rng=rng)])
        >>> lq = LayerQuantizer(model)
        >>> x = rng.uniform(0, 1, (100, 64))
        >>> a = greedy_allocation(lq, x, lq.nbytes((3, 3)))
        >>> lq.nbytes(a) <= lq.nbytes((3, 3))
        True
    """
    widths = sorted({_integer(b, "bits", 2, 16) for b in bits})
    n = len(quantizer.dense)
    if not widths:
        raise ValueError("bits must hold at least one width")
    if quantizer.nbytes([widths[0]] * n) > budget:
        raise ValueError(
            f"budget {budget:.6g} bytes is below the smallest model "
            f"({quantizer.nbytes([widths[0]] * n):.6g} bytes at {widths[0]} bits)"
        )
    size = quantizer.nbytes
    cost = functools.cache(_Divergences(quantizer, x))

    def moves(a: tuple[int, ...], step: int):
        for i in range(n):
            k = widths.index(a[i]) + step
            if 0 <= k < len(widths):
                yield (*a[:i], widths[k], *a[i + 1 :])

    a = tuple([widths[-1]] * n)
    while size(a) > budget:  # down: least divergence per byte saved
        a = min(
            moves(a, -1),
            key=lambda b: (
                (cost(b) - cost(a)) / (quantizer.nbytes(a) - quantizer.nbytes(b))
            ),
        )
    while True:  # up: most divergence per byte spent, if it fits
        fits = [b for b in moves(a, +1) if size(b) <= budget]
        if not fits:
            return a
        a = max(
            fits,
            key=lambda b: (
                (cost(a) - cost(b)) / (quantizer.nbytes(b) - quantizer.nbytes(a))
            ),
        )

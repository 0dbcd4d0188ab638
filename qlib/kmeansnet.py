"""K-means weight sharing of a whole network (Deep Compression, Han, Mao &
Dally, ICLR 2016, section 3), on :mod:`qlib.kmeans`'s one-tensor version.

* :func:`quantize_model` -- every Dense layer of a :class:`qlib.nn.MLP`, each
  with its own codebook; biases stay float32 and are not clustered;
* :func:`codebook_gradient` and :func:`finetune_codebooks` -- centroid
  fine-tuning (section 3.3): the gradient of a shared weight is the sum of the
  gradients of the weights that share it, the optimizer moves the centroids,
  the indices stay fixed; :data:`FINETUNE_RECIPE` is the course's recipe;
* :func:`kmeans_storage` -- the model's storage: ``n * bits`` index bits plus
  ``2**bits * 32`` codebook bits per layer, biases, and the ratio to fp32.

Taught in ``notebooks/06_kmeans_quantization.ipynb``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import nn, optim
from .kmeans import (
    KMEANS_ITERS,
    _bits,
    kmeans_dequantize,
    kmeans_quantize,
    kmeans_storage_bits,
)

__all__ = [
    "FINETUNE_RECIPE",
    "OPTIMIZERS",
    "KMeansStorage",
    "codebook_gradient",
    "finetune_codebooks",
    "kmeans_storage",
    "quantize_model",
]

# Centroid fine-tuning of the course's LeNet-300-100 (chapter 06: the notebook
# and tests/test_claims_06.py use it): one epoch over all 60000 training
# images, batches of 100, Adam at PyTorch's default rate 1e-3 on the codebooks
# and the float biases.  SGD (Han et al.'s choice) did worse here at every
# rate tried, 1e-5 to 1e-3 with momentum 0.9 (2 bits: 2.83-3.08 % test error
# after one epoch, against Adam's 2.21 %; five SGD epochs at 1e-4: 2.79 %).
# Our reading of why: a centroid's gradient is a sum over its cluster, fc1's
# clusters hold 235 times as many weights as fc3's, and Adam scales each
# centroid's step by its own gradient's size where SGD has one rate for all.
FINETUNE_RECIPE = MappingProxyType(
    {"epochs": 1, "lr": 1e-3, "optimizer": "adam", "batch_size": 100, "seed": 0}
)
OPTIMIZERS = ("adam", "sgd")


def _layer_bits(model: nn.MLP, bits: int | Sequence[int]) -> list[int]:
    n = len(model.dense)
    if isinstance(bits, Sequence) and not isinstance(bits, str):
        if len(bits) != n:
            raise ValueError(
                f"bits must be one integer or one per Dense layer ({n}); got {bits!r}"
            )
        return [_bits(b) for b in bits]
    return [_bits(bits)] * n


def quantize_model(
    model: nn.MLP,
    bits: int | Sequence[int],
    *,
    init: Literal["linear", "density", "random"] = "linear",
    iters: int = KMEANS_ITERS,
    seed: int = 0,
) -> tuple[nn.MLP, list[NDArray[np.float32]], list[NDArray[np.unsignedinteger]]]:
    """K-means weight sharing of every Dense layer, each with its own codebook.

    ``bits`` is one width for all layers or one per Dense layer.  Returns
    ``(quantized, codebooks, indices)``: a new :class:`qlib.nn.MLP` whose
    layers hold ``W = codebook[indices]`` and copies of the float32 biases
    (biases are few -- 410 against 266200 weights in LeNet-300-100 -- and are
    not clustered); ``model`` is left unchanged.

    Example:
        >>> model = nn.lenet_300_100()
        >>> q, codebooks, indices = quantize_model(model, 2)
        >>> [len(c) for c in codebooks], indices[0].shape, indices[0].dtype
        ([4, 4, 4], (300, 784), dtype('uint8'))
        >>> len(np.unique(q.dense[0].W))
        4

    Taught in ``notebooks/06_kmeans_quantization.ipynb``.
    """
    widths = _layer_bits(model, bits)
    codebooks, indices = [], []
    for layer, b in zip(model.dense, widths, strict=True):
        codebook, index = kmeans_quantize(layer.W, b, init=init, iters=iters, seed=seed)
        codebooks.append(codebook)
        indices.append(index)
    quantized = _rebuild(model, codebooks, indices)
    return quantized, codebooks, indices


def _rebuild(
    model: nn.MLP, codebooks: Sequence[np.ndarray], indices: Sequence[np.ndarray]
) -> nn.MLP:
    """A copy of ``model`` with each Dense layer's W = codebook[indices]."""
    shared = iter(zip(codebooks, indices, strict=True))
    layers: list[nn.Dense | nn.ReLU] = []
    for layer in model.layers:
        if isinstance(layer, nn.Dense):
            codebook, index = next(shared)
            layers.append(
                nn.Dense.from_arrays(kmeans_dequantize(codebook, index), layer.b.copy())
            )
        else:
            layers.append(type(layer)())
    return nn.MLP(layers, model.recipe)


def codebook_gradient(
    grad: ArrayLike, indices: ArrayLike, k: int
) -> NDArray[np.float32]:
    """dL/d(centroid): the gradients of the weights sharing each centroid, summed.

    Every weight ``W[i, j] = codebook[indices[i, j]]``, so by the chain rule
    ``dL/dcodebook[c] = sum of dL/dW[i, j] over indices[i, j] == c`` (Deep
    Compression, section 3.3, fig. 3); a grouped sum, ``np.bincount`` with
    weights.  Returns ``k`` float32 values.

    Example:
        >>> codebook_gradient([[0.5, 1.0], [2.0, -0.25]], [[1, 0], [1, 1]], 3)
        array([1.  , 2.25, 0.  ], dtype=float32)
    """
    g = np.asarray(grad)
    i = np.asarray(indices)
    if g.shape != i.shape:
        raise ValueError(
            f"grad and indices must have the same shape; got {g.shape}, {i.shape}"
        )
    sums = np.bincount(i.ravel(), weights=g.ravel(), minlength=k)
    if len(sums) != k:
        raise ValueError(f"indices must lie in 0..{k - 1}")
    return sums.astype(np.float32)


class _SharedStep:
    """An optimizer for :func:`qlib.optim.train_epoch` that trains codebooks.

    ``step`` receives the Dense layers' ``[W, b, ...]`` and ``[dW, db, ...]``,
    turns each ``dW`` into its codebook's gradient, lets the wrapped optimizer
    move the codebooks (and the biases), and writes ``codebook[indices]`` back
    into each ``W`` in place: the indices never change."""

    def __init__(self, optimizer, codebooks, indices, biases: bool) -> None:
        self.optimizer, self.codebooks = optimizer, codebooks
        # as NumPy's own index type: bincount and take would otherwise convert
        # the uint8 indices (266,200 of them in LeNet-300-100) on every step
        self.indices = [np.asarray(i, dtype=np.intp) for i in indices]
        self.biases = biases

    def step(self, params: list[np.ndarray], grads: list[np.ndarray]) -> None:
        weights, dW = params[::2], grads[::2]
        shared = [
            codebook_gradient(g, i, len(c))
            for g, i, c in zip(dW, self.indices, self.codebooks, strict=True)
        ]
        if self.biases:
            self.optimizer.step(
                [*self.codebooks, *params[1::2]], [*shared, *grads[1::2]]
            )
        else:
            self.optimizer.step(list(self.codebooks), shared)
        for W, c, i in zip(weights, self.codebooks, self.indices, strict=True):
            np.take(c, i, out=W)


def finetune_codebooks(
    model: nn.MLP,
    codebooks: Sequence[np.ndarray],
    indices: Sequence[np.ndarray],
    images: np.ndarray,
    labels: np.ndarray,
    *,
    epochs: int,
    lr: float,
    optimizer: Literal["adam", "sgd"] = "adam",
    momentum: float = 0.0,
    batch_size: int = 100,
    seed: int = 0,
    biases: bool = True,
    progress: bool = False,
) -> list[float]:
    """Fine-tune the centroids of a weight-shared model; the mean loss per epoch.

    ``model``, ``codebooks`` and ``indices`` come from :func:`quantize_model`.
    Training runs :func:`qlib.optim.train_epoch` (forward, backward, shuffled by
    ``np.random.default_rng(seed)``); each step sums every layer's ``dW`` per
    cluster (:func:`codebook_gradient`), moves the codebooks with
    ``optimizer``, :class:`qlib.optim.Adam` (``lr``) or :class:`qlib.optim.SGD`
    (``lr``, ``momentum``), and sets each layer's ``W = codebook[indices]``
    again.  The indices stay fixed: which weights
    share a value is decided once, by k-means.  With ``biases`` the float32
    biases are trained by the same step too.  ``codebooks`` (float32) and the
    model's layers are updated in place.  :data:`FINETUNE_RECIPE` holds the
    course's settings: ``finetune_codebooks(q, c, i, x, y, **FINETUNE_RECIPE)``.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> x, y = rng.random((8, 784), np.float32), rng.integers(0, 10, 8)
        >>> q, codebooks, indices = quantize_model(nn.lenet_300_100(), 2)
        >>> losses = finetune_codebooks(q, codebooks, indices, x, y, epochs=2,
        ...                             lr=1e-3, batch_size=4)
        >>> len(losses), len(np.unique(q.dense[0].W)) <= 4
        (2, True)
        >>> np.array_equal(q.dense[0].W, codebooks[0][indices[0]])
        True

    Taught in ``notebooks/06_kmeans_quantization.ipynb``.
    """
    dense = model.dense
    if len(codebooks) != len(dense) or len(indices) != len(dense):
        raise ValueError(
            f"codebooks and indices must have one entry per Dense layer "
            f"({len(dense)}); got {len(codebooks)} and {len(indices)}"
        )
    for n, (layer, c, i) in enumerate(zip(dense, codebooks, indices, strict=True)):
        if not (isinstance(c, np.ndarray) and c.dtype == np.float32 and c.ndim == 1):
            raise TypeError(
                f"codebooks[{n}] must be a 1-D float32 array (updated in place)"
            )
        if np.shape(i) != layer.W.shape:
            raise ValueError(
                f"indices[{n}] must have layer {n}'s shape {layer.W.shape}; "
                f"got {np.shape(i)}"
            )
        layer.W = kmeans_dequantize(c, i)  # start from the shared weights
    if optimizer not in OPTIMIZERS:
        raise ValueError(
            f"optimizer must be one of {', '.join(OPTIMIZERS)}; got {optimizer!r}"
        )
    if optimizer == "sgd":
        opt: optim.SGD | optim.Adam = optim.SGD(lr, momentum)
    elif momentum:
        raise ValueError("momentum is for optimizer='sgd' (Adam has its own betas)")
    else:
        opt = optim.Adam(lr)
    step = _SharedStep(opt, list(codebooks), list(indices), biases)
    rng = np.random.default_rng(seed)
    losses = []
    for epoch in range(nn._count(epochs, "epochs")):
        desc = f"fine-tune {epoch + 1}/{epochs}"
        losses.append(
            optim.train_epoch(
                model,
                step,  # type: ignore[arg-type]
                images,
                labels,
                batch_size=batch_size,
                rng=rng,
                progress=progress,
                desc=desc,
            )
        )
    return losses


# ------------------------------------------------------------------ storage
@dataclass(frozen=True)
class KMeansStorage:
    """Storage of a weight-shared model against float32 (see :func:`kmeans_storage`).

    Attributes:
        bits: index width of each Dense layer.
        n_weights: weights of each Dense layer.
        layer_bits: :func:`kmeans_storage_bits` of each layer (indices + codebook).
        n_biases: biases of all layers; they are stored as float32 both ways.
        bias_bits: ``32 * n_biases``.
        total_bits: ``sum(layer_bits) + bias_bits``.
        fp32_bits: ``32 * (sum(n_weights) + n_biases)``, the float32 model.
    """

    bits: tuple[int, ...]
    n_weights: tuple[int, ...]
    layer_bits: tuple[int, ...]
    n_biases: int
    bias_bits: int
    total_bits: int
    fp32_bits: int

    @property
    def ratio(self) -> float:
        """Compression ratio of the whole model, biases included: fp32 / K-means."""
        return self.fp32_bits / self.total_bits

    @property
    def weight_ratio(self) -> float:
        """Compression ratio of the weights alone (biases excluded on both sides)."""
        return 32 * sum(self.n_weights) / sum(self.layer_bits)

    @property
    def kilobytes(self) -> float:
        """``total_bits`` in kB (1 kB = 1000 bytes)."""
        return self.total_bits / 8000


def kmeans_storage(
    model: nn.MLP, bits: int | Sequence[int], *, codebook_bits: int = 32
) -> KMeansStorage:
    """What :func:`quantize_model` at ``bits`` costs to store, and the ratio.

    Every Dense layer stores ``n * bits`` index bits and a codebook of
    ``2**bits`` centroids of ``codebook_bits`` bits; biases are counted as
    32-bit floats in the quantized model and in the float32 one, so
    :attr:`KMeansStorage.ratio` is the whole model's compression;
    :attr:`KMeansStorage.weight_ratio` leaves biases out.

    Example:
        >>> s = kmeans_storage(nn.lenet_300_100(), 4)
        >>> s.total_bits, s.fp32_bits, round(s.ratio, 2), round(s.weight_ratio, 2)
        (1079456, 8531520, 7.9, 7.99)

    Taught in ``notebooks/06_kmeans_quantization.ipynb``.
    """
    widths = _layer_bits(model, bits)
    n_weights = tuple(layer.W.size for layer in model.dense)
    layer_bits = tuple(
        kmeans_storage_bits(n, b, codebook_bits)
        for n, b in zip(n_weights, widths, strict=True)
    )
    n_biases = sum(layer.b.size for layer in model.dense)
    return KMeansStorage(
        bits=tuple(widths),
        n_weights=n_weights,
        layer_bits=layer_bits,
        n_biases=n_biases,
        bias_bits=32 * n_biases,
        total_bits=sum(layer_bits) + 32 * n_biases,
        fp32_bits=32 * (sum(n_weights) + n_biases),
    )

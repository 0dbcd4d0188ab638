"""Quantization-aware training of a whole network, on :mod:`qlib.qat`'s quantizers.

* :class:`QATDense` -- a Dense layer whose forward pass uses its weight
  quantizer's output in place of its latent float weights, and whose
  backward pass hands the gradient back through the quantizer;
  :class:`FakeQuant` -- a layer that fake-quantizes activations;
* :class:`QATMLP` -- an :class:`~qlib.nn.MLP` whose ``parameters()`` include
  the quantizers' (LSQ steps), so :mod:`qlib.optim` trains them all, and
  whose ``training`` switch freezes the EMA ranges for evaluation;
* :func:`qat_model` -- a trained MLP made into a QATMLP: weights through a
  quantizer, a fake quantizer after each ReLU (the input pixels are 8-bit
  already and stay exact, the logits stay float, as in :mod:`qlib.ptq`).
  Before training, with ``method="ste"``, it computes exactly the logits of
  post-training quantization (:func:`qlib.ptq.quantize_model` per channel,
  :func:`qlib.ptq.simulate` on min-max ranges);
* :func:`finetune_qat` -- training through the quantizers with
  :func:`qlib.optim.train`; :data:`QAT_RECIPE` is the chapter's recipe;
* :func:`load_results` -- the chapter's table, made by
  ``tools/qat_lenet.py`` (PTQ against QAT at 4, 3 and 2 bits, binary and
  ternary weights with and without training).

Taught in ``notebooks/09_quantization_aware_training.ipynb``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from types import MappingProxyType
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from . import nn, optim
from .qat import (
    LSQ,
    BinaryWeights,
    EMAActivations,
    MinMaxWeights,
    Quantizer,
    TernaryWeights,
    _bits,
    lsq_grad_scale,
    lsq_init,
)
from .quantnet import _check_pixels, _dense_steps

__all__ = [
    "QATMLP",
    "QAT_RECIPE",
    "FakeQuant",
    "QATDense",
    "finetune_qat",
    "load_results",
    "qat_model",
]

RESULTS_FILE = "models/qat_lenet.json"

# The chapter's fine-tuning (tools/qat_lenet.py, the notebook and the tests):
# SGD with momentum 0.9 as in LSQ's paper (Adam would rescale each step's
# gradient by its own size and undo LSQ's gradient scale), batches of 100,
# shuffled by seed 0.  ``images`` is how many training images one run sees.
QAT_RECIPE = MappingProxyType(
    {"lr": 0.01, "momentum": 0.9, "batch_size": 100, "seed": 0, "images": 60000}
)


# -------------------------------------------------------------------- layers
class QATDense(nn.Dense):
    """A Dense layer whose forward pass uses ``quantizer.forward(W)`` in place
    of its latent float ``W`` (which the optimizer updates), and whose
    backward pass hands ``dL/d(quantized W)`` back through the quantizer.

    Attributes:
        W, b: the latent float32 weights and the float32 bias.
        quantizer: a :class:`~qlib.qat.Quantizer` of the weights.
        training: passed to the quantizer (set through :class:`QATMLP`).

    Example:
        >>> dense = nn.Dense.from_arrays([[0.9, 0.3, -0.5]], [0.0])
        >>> layer = QATDense.wrap(dense, MinMaxWeights(2))  # codes -1, 0, 1
        >>> layer.forward(np.array([[1.0, 2.0, 0.0]], np.float32))  # 0.9 + 2 * 0
        array([[0.9]], dtype=float32)
        >>> layer.backward(np.ones((1, 1), np.float32))  # dL/dx: quantized W
        array([[ 0.9,  0. , -0.9]], dtype=float32)
        >>> layer.dW  # dL/dW: straight through to the latent W
        array([[1., 2., 0.]], dtype=float32)
    """

    quantizer: Quantizer
    training: bool = False
    _W_hat: np.ndarray | None = None

    @classmethod
    def wrap(cls, dense: nn.Dense, quantizer: Quantizer) -> QATDense:
        """A QATDense with copies of ``dense``'s weights and bias."""
        layer = cls.from_arrays(dense.W.copy(), dense.b.copy())
        layer.quantizer = quantizer
        return layer

    @property
    def quantized_W(self) -> np.ndarray:
        """The weights the forward pass uses (quantizer in evaluation mode)."""
        return self.quantizer.forward(self.W, False)

    @contextmanager
    def _using(self, W: np.ndarray) -> Iterator[None]:
        """Dense's own forward/backward, run with ``W`` in place of the latent one."""
        latent, self.W = self.W, W
        try:
            yield
        finally:
            self.W = latent

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._W_hat = self.quantizer.forward(self.W, self.training)
        with self._using(self._W_hat):
            return super().forward(x)

    def backward(self, grad: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        if self._W_hat is None:
            raise RuntimeError("backward() called before forward()")
        with self._using(self._W_hat):
            dx = super().backward(grad, input_grad)
        self.dW = self.quantizer.backward(self.dW)
        return dx


class FakeQuant:
    """A layer that fake-quantizes its input with ``quantizer`` (activations)."""

    training: bool = False

    def __init__(self, quantizer: Quantizer) -> None:
        self.quantizer = quantizer

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self.quantizer.forward(x, self.training)

    def backward(self, grad: np.ndarray, input_grad: bool = True) -> np.ndarray:
        return self.quantizer.backward(grad)


class QATMLP(nn.MLP):
    """An :class:`~qlib.nn.MLP` with quantizers: :meth:`parameters` adds the
    quantizers' learned parameters (LSQ steps) after the Dense layers' ``W,
    b``, so :mod:`qlib.optim` trains them all; ``training`` switches the
    quantizers between training (EMA ranges follow the batches) and
    evaluation (frozen).  Built by :func:`qat_model`.

    Example:
        >>> q = qat_model(nn.lenet_300_100(), None, weights=4, activations=None,
        ...               method="lsq")
        >>> [p.shape for p in q.parameters()][-3:]  # one step per output channel
        [(300,), (100,), (10,)]
    """

    def __init__(self, layers, recipe: dict | None = None) -> None:
        super().__init__(layers, recipe)
        self.training = False

    @property
    def training(self) -> bool:
        return self._training

    @training.setter
    def training(self, value: bool) -> None:
        self._training = bool(value)
        for layer in self.layers:
            if isinstance(layer, QATDense | FakeQuant):
                layer.training = self._training

    @property
    def quantizers(self) -> list[Quantizer]:
        """Every quantizer, in layer order (weights of a layer, then activations)."""
        return [
            layer.quantizer
            for layer in self.layers
            if isinstance(layer, QATDense | FakeQuant)
        ]

    def parameters(self) -> nn.Params:
        return super().parameters() + [
            p for q in self.quantizers for p in q.parameters()
        ]

    def gradients(self) -> nn.Params:
        return super().gradients() + [g for q in self.quantizers for g in q.gradients()]


# ------------------------------------------------------------------ building
def _weight_quantizer(W: np.ndarray, weights: int | str, method: str) -> Quantizer:
    if weights == "binary":
        return BinaryWeights()
    if weights == "ternary":
        return TernaryWeights()
    if isinstance(weights, str):
        raise ValueError(
            f"weights must be bits, 'binary' or 'ternary'; got {weights!r}"
        )
    bits = _bits(weights)
    if method == "ste":
        return MinMaxWeights(bits)
    step = lsq_init(W, bits, signed=True, axis=0)
    g = lsq_grad_scale(W.shape[1], bits, signed=True)  # one step per row
    return LSQ(step, bits, signed=True, axis=0, grad_scale=g)


def _activation_quantizer(
    x: np.ndarray, bits: int, method: str, momentum: float
) -> Quantizer:
    if method == "ste":
        return EMAActivations(bits, (float(x.min()), float(x.max())), momentum)
    g = lsq_grad_scale(x.shape[1], bits, signed=False)  # N_F features per example
    return LSQ(lsq_init(x, bits, signed=False), bits, signed=False, grad_scale=g)


def qat_model(
    model: nn.MLP,
    calibration: ArrayLike | None,
    *,
    weights: int | Literal["binary", "ternary"],
    activations: int | None,
    method: Literal["ste", "lsq"] = "ste",
    momentum: float = 0.99,
) -> QATMLP:
    """A :class:`QATMLP` from a trained ``model`` (left unchanged).

    Args:
        model: Dense layers, each optionally followed by a ReLU.
        calibration: uint8 images (N, 28, 28) or (N, 784) run through the
            float model to start the activation quantizers (e.g.
            :func:`qlib.quantnet.calibration_images`); None if
            ``activations`` is None.
        weights: bits of every Dense layer's weights (signed, one scale per
            output channel), or ``"binary"`` / ``"ternary"``.
        activations: bits of the output of each ReLU (unsigned), or None to
            keep activations float.
        method: ``"ste"``: weight scales from the current weights
            (:class:`~qlib.qat.MinMaxWeights`), activation ranges min-max on
            ``calibration`` then an EMA with ``momentum`` during training
            (:class:`~qlib.qat.EMAActivations`); ``"lsq"``: learned steps
            (:class:`~qlib.qat.LSQ`), per output channel for weights, one per layer
            for activations, started at :func:`~qlib.qat.lsq_init`.

    Example:
        >>> model = nn.lenet_300_100()
        >>> images = np.random.default_rng(0).integers(0, 256, (50, 784), np.uint8)
        >>> q = qat_model(model, images, weights=2, activations=2)
        >>> [type(layer).__name__ for layer in q.layers]
        ['QATDense', 'ReLU', 'FakeQuant', 'QATDense', 'ReLU', 'FakeQuant', 'QATDense']
        >>> len(np.unique(q.dense[0].quantized_W[0]))  # codes -1, 0, 1
        3

    Taught in ``notebooks/09_quantization_aware_training.ipynb``.
    """
    if not isinstance(model, nn.MLP):
        raise TypeError(f"model must be a qlib.nn.MLP; got {type(model).__name__}")
    if method not in ("ste", "lsq"):
        raise ValueError(f"method must be 'ste' or 'lsq'; got {method!r}")
    steps = _dense_steps(model.layers)
    if activations is not None:
        act_bits = _bits(activations)
        if calibration is None:
            raise ValueError("calibration images are needed to quantize activations")
        x = nn.preprocess(
            _check_pixels(calibration, steps[0][0].in_features, "calibration")
        )
    layers: list = []
    for dense, relu in steps:
        layers.append(QATDense.wrap(dense, _weight_quantizer(dense.W, weights, method)))
        if relu:
            layers.append(nn.ReLU())
        if activations is not None:
            x = nn.relu(x @ dense.W.T + dense.b) if relu else x @ dense.W.T + dense.b
            if relu:
                q = _activation_quantizer(x, act_bits, method, momentum)
                layers.append(FakeQuant(q))
    recipe = {"weights": weights, "activations": activations, "method": method}
    return QATMLP(layers, {**model.recipe, "qat": recipe})


def finetune_qat(
    model: QATMLP,
    images: np.ndarray,
    labels: np.ndarray,
    *,
    optimizer: optim.SGD | optim.Adam,
    epochs: int = 1,
    batch_size: int = 100,
    seed: int = 0,
    progress: bool = False,
) -> list[float]:
    """Train a :class:`QATMLP` (its latent weights, biases and LSQ steps)
    through its quantizers with :func:`qlib.optim.train`; the mean loss of
    each epoch.  ``model.training`` is on while it runs, off after.

    :data:`QAT_RECIPE` holds the chapter's settings (SGD ``lr``,
    ``momentum``, ``batch_size``, ``seed`` and how many training ``images``).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> x, y = rng.random((20, 784), np.float32), rng.integers(0, 10, 20)
        >>> q = qat_model(nn.lenet_300_100(), None, weights=2, activations=None,
        ...               method="lsq")
        >>> before = q.dense[0].quantizer.step.copy()
        >>> losses = finetune_qat(q, x, y, optimizer=optim.SGD(0.01, 0.9),
        ...                       batch_size=10)
        >>> len(losses), bool((q.dense[0].quantizer.step != before).any())
        (1, True)

    Taught in ``notebooks/09_quantization_aware_training.ipynb``.
    """
    if not isinstance(model, QATMLP):
        raise TypeError(
            f"model must be a QATMLP (qat_model); got {type(model).__name__}"
        )
    model.training = True
    try:
        return optim.train(
            model,
            images,
            labels,
            optimizer=optimizer,
            epochs=epochs,
            batch_size=batch_size,
            seed=seed,
            progress=progress,
        )
    finally:
        model.training = False


def load_results() -> dict:
    """The chapter's measured table, written by ``tools/qat_lenet.py``
    (test errors of post-training quantization and QAT at 4, 3, 2 bits,
    binary and ternary weights with and without training, and the recipe).

    Example:
        >>> t = load_results()
        >>> t["fp32"], t["ste-2"]["untrained"], t["lsq-2"]["trained"]
        (0.0151, 0.4135, 0.0207)
    """
    with resources.as_file(resources.files("qlib") / RESULTS_FILE) as path:
        return json.loads(path.read_text())

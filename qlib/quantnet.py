"""A whole network in integers: a trained MLP quantized after training.

:class:`QuantizedMLP` turns a trained :class:`qlib.nn.MLP` (Dense layers, each
optionally followed by a ReLU: LeNet-300-100) into a chain of
:class:`qlib.intinfer.QuantizedLinear` layers that take the raw pixels and
compute with integers only:

* **input**: the uint8 pixels are the first layer's codes, ``S = 1/255``,
  ``Z = 0``: :func:`qlib.nn.preprocess` divides by 255, so every input is a
  code and the input is not rounded at all.  With int8 activations
  (``signed=True``) the codes are ``pixel - 128`` with ``Z = -128``, as
  TFLite's int8 models take them: the same network, every code shifted by
  128.
* **weights**: int8, symmetric (``Z_w = 0``), one scale per tensor or one
  per output channel (``per_channel``); the bias int32 at ``S_x S_w``.
* **activations**: 8-bit codes whose ``(S, Z)`` come from a range
  calibrated on the float model's activations over calibration images (a
  seeded slice of the training set, :func:`calibration_images`; the test set
  never informs the quantization).  The calibrator is a function of one
  layer's activations returning ``(r_min, r_max)``: :func:`minmax` here;
  chapter 08's calibrators plug in the same place.
* **ReLU** is fused: the clamp of the output codes at ``Z_y``.
* **output**: the last layer's 8-bit logit codes, at one scale for all
  classes, so their argmax is the prediction.  (The int32 accumulators would
  do per tensor, but per channel each class has its own scale ``S_x S_w[j]``
  and the accumulators' argmax would not be the logits'.)

:meth:`QuantizedMLP.simulate` is the fake-quantized float simulation, layer
by layer (:meth:`qlib.intinfer.QuantizedLinear.simulate`);
:meth:`QuantizedMLP.compare_layers` counts, per layer, the outputs where the
integer path and the simulation differ and by how many steps (LSBs).

Taught in ``notebooks/07_linear_quantization.ipynb``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .intinfer import QuantizedLinear
from .linear import linear_qparams
from .nn import MLP, Dense, ReLU, _check_labels, _count, preprocess
from .nn import relu as nn_relu

__all__ = [
    "Calibrator",
    "LayerComparison",
    "QuantizedMLP",
    "calibration_images",
    "minmax",
]

#: one layer's float activations (N, features) -> the range ``(r_min, r_max)``
Calibrator = Callable[[np.ndarray], tuple[float, float]]

#: the input scale: uint8 pixels / 255, as :func:`qlib.nn.preprocess`
INPUT_SCALE = np.float32(1 / 255)


def minmax(x: np.ndarray) -> tuple[float, float]:
    """The min-max calibrator: the range of ``x`` as it is, nothing clipped.

    Example:
        >>> minmax(np.array([[0.0, 2.5], [1.0, 0.5]]))
        (0.0, 2.5)
    """
    return float(np.min(x)), float(np.max(x))


def calibration_images(n: int = 5000, seed: int = 0) -> NDArray[np.uint8]:
    """``n`` training images (uint8, (n, 28, 28)) drawn without replacement
    by ``np.random.default_rng(seed)``: the data that sets the activation
    ranges.  From the training set, so that the test error stays a
    measurement on images the quantization never saw."""
    from .data import load_mnist

    images, _ = load_mnist("train")
    k = _count(n, "n")
    if k > len(images):
        raise ValueError(f"n must be at most {len(images)}; got {n}")
    picks = np.random.default_rng(seed).choice(len(images), k, replace=False)
    return images[np.sort(picks)]


@dataclass(frozen=True)
class LayerComparison:
    """One layer's integer outputs against its float simulation.

    Attributes:
        layer: index of the layer (0 = the first).
        outputs: how many output codes were compared.
        max_lsb: the largest ``|forward - simulate|``, in steps of ``S_y``.
        differ: the fraction of outputs that differ (by ``max_lsb`` at most).
        window: ``2**-(r+1)`` averaged over the output channels (``r`` the
            requantization's right shift): the share of random accumulators
            that fall in the double rounding's window, where the integer
            path may round the other way (outputs clamped by ReLU or
            saturation never differ, so ``differ`` is usually below it).
    """

    layer: int
    outputs: int
    max_lsb: int
    differ: float
    window: float


@dataclass(frozen=True, eq=False)
class QuantizedMLP:
    """An MLP in integers only: :class:`~qlib.intinfer.QuantizedLinear`
    layers chained code to code, from uint8 pixels to 8-bit logit codes.

    Build it with :meth:`from_float`.  ``layers[0].x_scale`` is 1/255 and
    ``layers[i].y_scale, y_zero_point`` are ``layers[i + 1]``'s input
    parameters.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> model = MLP([Dense(4, 8, rng=rng), ReLU(), Dense(8, 3, rng=rng)])
        >>> images = rng.integers(0, 256, (200, 2, 2), dtype=np.uint8)
        >>> qnet = QuantizedMLP.from_float(model, images)
        >>> qnet.forward(images[:3])
        array([[ 27,  97, 144],
               [ 39,  49,  85],
               [ 24,  63, 106]], dtype=uint8)
        >>> float(np.mean(qnet.predict(images) == model.predict(preprocess(images))))
        1.0
    """

    layers: tuple[QuantizedLinear, ...]

    def __post_init__(self) -> None:
        layers = tuple(self.layers)
        if not layers or not all(isinstance(q, QuantizedLinear) for q in layers):
            raise TypeError("layers must be a non-empty sequence of QuantizedLinear")
        for i, (a, b) in enumerate(itertools.pairwise(layers)):
            chained = (a.y_scale, a.y_zero_point, a.signed, a.bits) == (
                b.x_scale, b.x_zero_point, b.signed, b.bits,
            )  # fmt: skip
            if not chained or a.weight.shape[0] != b.weight.shape[1]:
                raise ValueError(
                    f"layers[{i + 1}] must take layers[{i}]'s output codes "
                    "(its features, scale, zero point, signedness and bits)"
                )
        object.__setattr__(self, "layers", layers)

    @classmethod
    def from_float(
        cls,
        model: MLP,
        calibration: ArrayLike,
        *,
        per_channel: bool = False,
        signed: bool = False,
        calibrator: Calibrator = minmax,
    ) -> QuantizedMLP:
        """Quantize a trained ``model`` after training (int8 weights, 8-bit
        activations).

        Args:
            model: an :class:`~qlib.nn.MLP` of Dense layers, each optionally
                followed by one ReLU (fused into the layer).
            calibration: uint8 images (N, 28, 28) or (N, 784) run through
                the float model to set each layer's output range, e.g.
                :func:`calibration_images`.
            per_channel: one weight scale per output neuron (else one per
                layer); weights are symmetric int8 either way.
            signed: int8 activations (input ``pixel - 128``, ``Z = -128``);
                the default is uint8 (input ``pixel``, ``Z = 0``).  The two
                are the same network with every code shifted by 128.
            calibrator: one layer's float activations -> ``(r_min, r_max)``;
                :func:`linear_qparams` of that range (which always holds 0)
                gives the layer's output ``(S_y, Z_y)``.
        """
        if not isinstance(model, MLP):
            raise TypeError(f"model must be a qlib.nn.MLP; got {type(model).__name__}")
        if not isinstance(signed, bool | np.bool_):
            raise TypeError(f"signed must be True or False; got {signed!r}")
        steps = _dense_steps(model.layers)
        k = steps[0][0].in_features
        x = preprocess(_check_pixels(calibration, k, "calibration"))
        x_qp = (INPUT_SCALE, -128 if signed else 0)
        layers = []
        for dense, relu in steps:
            x = dense.forward(x)
            x = nn_relu(x) if relu else x
            r_min, r_max = (float(v) for v in calibrator(x))
            if not (np.isfinite([r_min, r_max]).all() and r_min <= r_max):
                raise ValueError(
                    f"calibrator must return finite (r_min, r_max) with "
                    f"r_min <= r_max; got {(r_min, r_max)}"
                )
            r_range = np.array([r_min, r_max], np.float32)
            y_qp = linear_qparams(r_range, 8, signed=signed)
            options = {"symmetric": True, "bits": 8, "signed": signed, "relu": relu}
            layer = QuantizedLinear.from_float(
                dense.W, dense.b, x_qp, y_qp, per_channel=per_channel, **options
            )
            layers.append(layer)
            x_qp = y_qp
        return cls(tuple(layers))

    @property
    def signed(self) -> bool:
        """Whether the activations are int8 (else uint8)."""
        return bool(self.layers[0].signed)

    @property
    def in_features(self) -> int:
        return int(self.layers[0].weight.shape[1])

    def quantize_input(self, images: ArrayLike) -> NDArray[np.integer]:
        """The first layer's codes (N, 784) of uint8 ``images`` (N, 28, 28) or
        (N, 784): the pixels themselves (uint8), or ``pixel - 128`` (int8)."""
        x = _check_pixels(images, self.in_features, "images")
        x = x.reshape(len(x), self.in_features)
        return (x.astype(np.int16) - 128).astype(np.int8) if self.signed else x

    def _chain(self, q: np.ndarray, simulate: bool) -> list[np.ndarray]:
        out = []
        for layer in self.layers:
            q = layer.simulate(q) if simulate else layer.forward(q)
            out.append(q)
        return out

    def activations(
        self, images: ArrayLike, *, simulate: bool = False
    ) -> list[NDArray[np.integer]]:
        """Every layer's output codes, in order: integers only, or (with
        ``simulate``) each layer's float simulation fed the previous one's."""
        return self._chain(self.quantize_input(images), simulate)

    def forward(self, images: ArrayLike) -> NDArray[np.integer]:
        """The logit codes (N, classes) of uint8 ``images``, integers only."""
        return self.activations(images)[-1]

    def simulate(self, images: ArrayLike) -> NDArray[np.integer]:
        """The logit codes of the fake-quantized float simulation."""
        return self.activations(images, simulate=True)[-1]

    def predict(
        self, images: ArrayLike, batch_size: int = 1000, *, simulate: bool = False
    ) -> NDArray[np.intp]:
        """The class with the largest logit code (the first of a tie),
        ``batch_size`` images at a time."""
        q = self.quantize_input(images)
        step = _count(batch_size, "batch_size")
        out = [
            self._chain(q[i : i + step], simulate)[-1].argmax(axis=1)
            for i in range(0, len(q), step)
        ]
        return np.concatenate(out) if out else np.zeros(0, np.intp)

    def error_rate(
        self,
        images: ArrayLike,
        labels: ArrayLike,
        batch_size: int = 1000,
        *,
        simulate: bool = False,
    ) -> float:
        """Fraction of uint8 ``images`` whose predicted class is not ``labels``."""
        n = len(_check_pixels(images, self.in_features, "images"))
        y = _check_labels(labels, n, self.layers[-1].weight.shape[0], "labels")
        wrong = self.predict(images, batch_size, simulate=simulate) != y
        return float(wrong.mean()) if n else 0.0

    def compare_layers(
        self, images: ArrayLike, *, chained: bool = False
    ) -> list[LayerComparison]:
        """Each layer's integer output codes against its float simulation.

        By default each layer's :meth:`~qlib.intinfer.QuantizedLinear.simulate`
        gets the same input codes as its ``forward`` (the integer path's):
        the difference is that layer's rounding alone, 0 or 1 step.  With
        ``chained``, the simulation runs on its own outputs from the input
        on, as :meth:`simulate` does, and differences may carry forward.
        """
        q = self.quantize_input(images)
        q_sim = q
        rows = []
        for i, layer in enumerate(self.layers):
            forward = layer.forward(q)
            sim = layer.simulate(q_sim if chained else q)
            diff = np.abs(forward.astype(np.int64) - sim)
            r = np.maximum(-np.asarray(layer.shift), 0)
            window = np.where(r > 0, 2.0 ** -(r + 1.0), 0.0)
            rows.append(
                LayerComparison(
                    layer=i,
                    outputs=int(diff.size),
                    max_lsb=int(diff.max(initial=0)),
                    differ=float(np.mean(diff != 0)) if diff.size else 0.0,
                    window=float(np.mean(window)),
                )
            )
            q, q_sim = forward, sim
        return rows


def _dense_steps(layers: Sequence[object]) -> list[tuple[Dense, bool]]:
    """``(Dense, followed by a ReLU)`` for each Dense layer, in order."""
    steps, i = [], 0
    while i < len(layers):
        if not isinstance(layers[i], Dense):
            raise TypeError(
                f"model.layers[{i}] is a {type(layers[i]).__name__}: a quantized "
                "MLP takes Dense layers, each optionally followed by one ReLU"
            )
        relu = i + 1 < len(layers) and isinstance(layers[i + 1], ReLU)
        steps.append((layers[i], relu))
        i += 1 + relu
    return steps


def _check_pixels(images: object, n_features: int, name: str) -> np.ndarray:
    x = np.asarray(images)
    if x.dtype != np.uint8:
        hint = (
            " (the integer network takes the raw pixels, not preprocess(...))"
            if x.dtype.kind == "f"
            else ""
        )
        raise ValueError(
            f"{name} must be uint8 pixels 0..255; got dtype {x.dtype}{hint}"
        )
    if x.ndim not in (2, 3) or int(np.prod(x.shape[1:])) != n_features:
        raise ValueError(
            f"{name} must have shape (N, {n_features}) or (N, h, w) with h * w = "
            f"{n_features} (MNIST: (N, 28, 28)); got {x.shape}"
        )
    return x

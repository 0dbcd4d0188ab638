"""A small neural-network library in NumPy: enough to train LeNet-300-100.

A network is a list of layers.  Each layer has ``forward(x)``, which remembers
what it needs, and ``backward(grad)``, which takes dL/d(output) and returns
dL/d(input), storing dL/dW and dL/db on the way.  Training is then::

    logits = model.forward(x)                       # (N, 10)
    loss, grad = softmax_cross_entropy(logits, y)   # mean over the batch
    model.backward(grad)
    optimizer.step(model.parameters(), model.gradients())

(the optimizers and training loops are in :mod:`qlib.optim`).  A
:class:`Dense` layer stores its weights the way PyTorch's ``nn.Linear``
does: ``W`` is float32 ``(out_features, in_features)``, ``b`` is float32
``(out_features,)`` and ``y = x @ W.T + b``.  They are plain arrays: the
quantization chapters replace ``layer.W`` by its quantized version (K-means
codebook, linear int8 dequantized) and ``forward`` uses whatever is there.

:func:`load_lenet` returns the course's trained LeNet-300-100
(784-300-100-10, ReLU), produced by ``tools/train_lenet.py``.  Its inputs
are float32 images ``(N, 784)`` scaled to [0, 1] (:func:`preprocess`).

Taught in ``notebooks/06_kmeans_quantization.ipynb`` (and
``notebooks/07_linear_quantization.ipynb``).
"""

from __future__ import annotations

import json
import numbers
import os
import sys
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from importlib import resources
from pathlib import Path
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "MLP",
    "Dense",
    "ReLU",
    "error_rate",
    "lenet_300_100",
    "load",
    "load_lenet",
    "log_softmax",
    "preprocess",
    "relu",
    "save",
    "softmax_cross_entropy",
]

LENET_FILE = "models/lenet_300_100.npz"
Params = list[np.ndarray]


def _count(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}")
    return int(value)


def _check_images(images: object, n_features: int, name: str) -> np.ndarray:
    x = np.asarray(images)
    if not np.issubdtype(x.dtype, np.floating):
        hint = f"; convert uint8 pixels with preprocess({name})" * (x.dtype == np.uint8)
        raise ValueError(
            f"{name} must be floating point (pixels scaled to [0, 1]); "
            f"got dtype {x.dtype}{hint}"
        )
    if x.ndim != 2 or x.shape[1] != n_features:
        raise ValueError(f"{name} must have shape (N, {n_features}); got {x.shape}")
    return x


def _check_labels(labels: object, n: int, n_classes: int, name: str) -> np.ndarray:
    y = np.asarray(labels)
    if y.ndim != 1 or len(y) != n or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(
            f"{name} must be {n} integer class labels, shape ({n},); "
            f"got dtype {y.dtype}, shape {y.shape}"
        )
    if n and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"{name} must lie in 0..{n_classes - 1}")
    return y


def _batches(n: int, step: int, desc: str, progress: bool) -> Iterator[int]:
    """Batch starts 0, step, 2 step, ... below n.  With ``progress``, a plain
    line on stderr rewritten in place and cleared at the end (as in
    :mod:`qlib.data`: the course adds no dependency such as tqdm for it)."""
    shown = -1
    for start in range(0, n, step):
        yield start
        percent = 100 * min(start + step, n) // n
        if progress and percent != shown:
            print(f"\r{desc}: {percent:3d}%", end="", file=sys.stderr, flush=True)
            shown = percent
    if progress:
        print("\r" + " " * (len(desc) + 6) + "\r", end="", file=sys.stderr, flush=True)


# ------------------------------------------------------------------- layers
class Dense:
    """Fully connected layer ``y = x @ W.T + b``.

    ``init="he"`` draws ``W ~ N(0, 2 / in_features)`` (He et al. 2015, for
    ReLU); ``init="glorot"`` draws ``W ~ U(-a, a)``, ``a = sqrt(6 / (in + out))``
    (Glorot & Bengio 2010).  Biases start at zero.

    Attributes:
        W: float32 weights, shape ``(out_features, in_features)``.
        b: float32 biases, shape ``(out_features,)``.
        dW, db: dL/dW and dL/db from the last :meth:`backward`.

    Example:
        >>> layer = Dense(3, 2, rng=np.random.default_rng(0))
        >>> layer.W.shape, layer.W.dtype
        ((2, 3), dtype('float32'))
        >>> layer.forward(np.ones((4, 3), np.float32)).shape
        (4, 2)
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        rng: np.random.Generator,
        init: Literal["he", "glorot"] = "he",
    ) -> None:
        n_in = _count(in_features, "in_features")
        n_out = _count(out_features, "out_features")
        if init == "he":
            W = rng.standard_normal((n_out, n_in)) * np.sqrt(2.0 / n_in)
        elif init == "glorot":
            a = np.sqrt(6.0 / (n_in + n_out))
            W = rng.uniform(-a, a, size=(n_out, n_in))
        else:
            raise ValueError(f"init must be 'he' or 'glorot'; got {init!r}")
        self.W = W.astype(np.float32)
        self.b = np.zeros(n_out, np.float32)
        self.dW = np.zeros_like(self.W)
        self.db = np.zeros_like(self.b)
        self._x: np.ndarray | None = None

    @classmethod
    def from_arrays(cls, W: ArrayLike, b: ArrayLike) -> Dense:
        """A layer holding the given ``W`` (out, in) and ``b`` (out,) as float32."""
        W, b = np.asarray(W, np.float32), np.asarray(b, np.float32)
        if W.ndim != 2 or b.shape != W.shape[:1]:
            raise ValueError(
                f"W must be (out, in) and b (out,); got {W.shape}, {b.shape}"
            )
        layer = cls.__new__(cls)
        layer.W, layer.b = W, b
        layer.dW, layer.db = np.zeros_like(W), np.zeros_like(b)
        layer._x = None
        return layer

    @property
    def in_features(self) -> int:
        return self.W.shape[1]

    @property
    def out_features(self) -> int:
        return self.W.shape[0]

    def forward(self, x: np.ndarray) -> np.ndarray:
        """``x`` (N, in_features) -> ``x @ W.T + b`` (N, out_features)."""
        if x.ndim != 2 or x.shape[1] != self.W.shape[1]:
            raise ValueError(
                f"x must have shape (N, {self.W.shape[1]}) for W of shape "
                f"{self.W.shape}; got {x.shape}"
            )
        self._x = x
        y = x @ self.W.T
        y += self.b
        return y

    def backward(self, grad: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        """dL/dy (N, out) -> dL/dx (N, in); stores ``dW = grad.T @ x``, ``db``.

        ``input_grad=False`` skips dL/dx (the first layer needs none).
        """
        if self._x is None:
            raise RuntimeError("backward() called before forward()")
        self.dW = grad.T @ self._x
        self.db = grad.sum(axis=0)
        return grad @ self.W if input_grad else None


def relu(x: np.ndarray) -> np.ndarray:
    """``max(x, 0)`` elementwise, in the dtype of ``x``.

    Example:
        >>> relu(np.array([-1.0, 0.0, 2.0], np.float32))
        array([0., 0., 2.], dtype=float32)
    """
    return np.maximum(x, 0)


class ReLU:
    """The ReLU layer: ``forward`` is :func:`relu`; ``backward`` passes the
    gradient where the input was positive and zero elsewhere."""

    def __init__(self) -> None:
        self._mask: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._mask = x > 0
        return relu(x)

    def backward(self, grad: np.ndarray, input_grad: bool = True) -> np.ndarray:
        if self._mask is None:
            raise RuntimeError("backward() called before forward()")
        return grad * self._mask


# --------------------------------------------------------------------- loss
def log_softmax(logits: ArrayLike) -> np.ndarray:
    """``log(softmax(logits))`` along the last axis, stable for large logits.

    Example:
        >>> np.exp(log_softmax([[1000.0, 1000.0]]))
        array([[0.5, 0.5]])
    """
    z = np.asarray(logits)
    z = z - z.max(axis=-1, keepdims=True)  # largest logit -> 0: exp cannot overflow
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def softmax_cross_entropy(
    logits: ArrayLike, labels: ArrayLike
) -> tuple[float, np.ndarray]:
    """Mean cross-entropy of ``softmax(logits)`` against integer ``labels``,
    and its gradient with respect to the logits.

    ``loss = -mean_i(log_softmax(z_i)[y_i])``, ``dL/dz = (softmax(z) - onehot(y)) / N``.

    Example:
        >>> loss, grad = softmax_cross_entropy([[0.0, 0.0]], [1])
        >>> round(loss, 4), grad
        (0.6931, array([[ 0.5, -0.5]]))
    """
    z = np.asarray(logits)
    if z.ndim != 2 or not np.issubdtype(z.dtype, np.floating):
        raise ValueError(
            f"logits must be floating point, shape (N, classes); "
            f"got dtype {z.dtype}, shape {z.shape}"
        )
    y = _check_labels(labels, len(z), z.shape[1], "labels")
    rows = np.arange(len(z))
    log_p = log_softmax(z)
    loss = -float(np.mean(log_p[rows, y]))
    grad = np.exp(log_p)  # softmax(z)
    grad[rows, y] -= 1
    grad /= len(z)
    return loss, grad


# -------------------------------------------------------------------- model
class MLP:
    """A stack of layers applied in order (PyTorch's ``nn.Sequential``).

    Attributes:
        layers: the layers, e.g. ``[Dense, ReLU, Dense, ReLU, Dense]``.
        recipe: how the weights were made (a dict; empty if not recorded).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> model = MLP([Dense(4, 3, rng=rng), ReLU(), Dense(3, 2, rng=rng)])
        >>> [p.shape for p in model.parameters()]
        [(3, 4), (3,), (2, 3), (2,)]
        >>> model.predict(np.zeros((5, 4), np.float32))
        array([0, 0, 0, 0, 0])
    """

    def __init__(self, layers: Sequence[Dense | ReLU], recipe: dict | None = None):
        self.layers = list(layers)
        if not self.dense:
            raise ValueError("layers must contain at least one Dense layer")
        self.recipe = dict(recipe or {})

    @property
    def dense(self) -> list[Dense]:
        """The Dense layers, in order (the ones that hold weights)."""
        return [layer for layer in self.layers if isinstance(layer, Dense)]

    def forward(self, x: ArrayLike) -> np.ndarray:
        """Images ``x`` (N, in_features), floating point -> logits (N, classes)."""
        x = _check_images(x, self.dense[0].in_features, "x")
        for layer in self.layers:
            x = layer.forward(x)
        return x

    __call__ = forward

    def backward(
        self, grad: np.ndarray, *, input_grad: bool = False
    ) -> np.ndarray | None:
        """Backpropagate dL/dlogits; fills every Dense layer's ``dW`` and ``db``.

        Returns dL/dx if ``input_grad`` (else None: training needs no dL/dx,
        so the first layer's ``grad @ W`` is skipped).
        """
        first = self.layers.index(self.dense[0])
        for i in range(len(self.layers) - 1, -1, -1):
            grad = self.layers[i].backward(grad, input_grad or i > first)
            if grad is None:
                break
        return grad

    def parameters(self) -> Params:
        """``[W, b]`` of each Dense layer in order (the arrays themselves)."""
        return [p for layer in self.dense for p in (layer.W, layer.b)]

    def gradients(self) -> Params:
        """``[dW, db]`` of each Dense layer, in the order of :meth:`parameters`."""
        return [g for layer in self.dense for g in (layer.dW, layer.db)]

    def predict(
        self, images: ArrayLike, batch_size: int = 1000, *, progress: bool = False
    ) -> NDArray[np.intp]:
        """The class with the largest logit for each image, ``batch_size`` at a time."""
        x = _check_images(images, self.dense[0].in_features, "images")
        step = _count(batch_size, "batch_size")
        starts = _batches(len(x), step, "predict", progress)
        out = [self.forward(x[i : i + step]).argmax(axis=1) for i in starts]
        return np.concatenate(out) if out else np.zeros(0, np.intp)


def lenet_300_100(seed: int = 0) -> MLP:
    """An untrained LeNet-300-100: 784-300-100-10, ReLU, He init (Glorot for
    the output layer), from ``np.random.default_rng(seed)``.

    Example:
        >>> [layer.W.shape for layer in lenet_300_100().dense]
        [(300, 784), (100, 300), (10, 100)]
    """
    rng = np.random.default_rng(seed)
    fc1, fc2 = Dense(784, 300, rng=rng), Dense(300, 100, rng=rng)
    return MLP([fc1, ReLU(), fc2, ReLU(), Dense(100, 10, rng=rng, init="glorot")])


def preprocess(images: ArrayLike) -> NDArray[np.float32]:
    """uint8 images (N, 28, 28) or (N, 784) -> float32 (N, 784), ``pixels / 255``.

    Example:
        >>> preprocess(np.full((1, 28, 28), 255, np.uint8)).shape
        (1, 784)
    """
    a = np.asarray(images)
    if a.dtype != np.uint8 or a.ndim not in (2, 3):
        raise ValueError(
            f"images must be uint8, shape (N, 28, 28) or (N, 784); "
            f"got dtype {a.dtype}, shape {a.shape}"
        )
    return a.reshape(len(a), -1).astype(np.float32) / np.float32(255)


def error_rate(
    model: MLP,
    images: ArrayLike,
    labels: ArrayLike,
    batch_size: int = 1000,
    *,
    progress: bool = False,
) -> float:
    """Fraction of ``images`` (float, (N, 784)) whose predicted class is wrong.

    Example:
        >>> model = lenet_300_100()
        >>> error_rate(model, np.zeros((4, 784), np.float32), [0, 0, 0, 1])
        0.25
    """
    x = _check_images(images, model.dense[0].in_features, "images")
    y = _check_labels(labels, len(x), model.dense[-1].out_features, "labels")
    wrong = model.predict(x, batch_size, progress=progress) != y
    return float(wrong.mean()) if len(x) else 0.0


# --------------------------------------------------------------- optimizers
# ------------------------------------------------------------ save and load
def save(model: MLP, path: str | os.PathLike, recipe: dict | None = None) -> None:
    """Write the Dense layers' ``W1, b1, W2, b2, ...`` (float32) and ``recipe``
    (a JSON string) to an ``.npz`` file, atomically (a temporary file, then
    rename); the same model and recipe give the same bytes."""
    arrays = {}
    for i, layer in enumerate(model.dense, start=1):
        arrays[f"W{i}"] = np.asarray(layer.W, np.float32)
        arrays[f"b{i}"] = np.asarray(layer.b, np.float32)
    arrays["recipe"] = np.array(json.dumps(recipe or model.recipe, sort_keys=True))
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f, zipfile.ZipFile(f, "w") as z:
            for key, a in arrays.items():
                # a fixed date in the zip: the same weights give the same bytes
                info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                with z.open(info, "w") as member:
                    np.lib.format.write_array(member, a, allow_pickle=False)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def load(path: str | os.PathLike) -> MLP:
    """The MLP saved by :func:`save`: Dense layers with ReLU between them."""
    with np.load(path) as f:
        n = sum(1 for key in f.files if key.startswith("W"))
        layers: list[Dense | ReLU] = []
        for i in range(1, n + 1):
            layer = Dense.from_arrays(f[f"W{i}"], f[f"b{i}"])
            layers += [layer, ReLU()] if i < n else [layer]
        recipe = json.loads(str(f["recipe"])) if "recipe" in f.files else {}
    return MLP(layers, recipe)


def load_lenet() -> MLP:
    """The course's trained LeNet-300-100 (784-300-100-10, ReLU), float32.

    Made by ``tools/train_lenet.py``; ``model.recipe`` says how (seed, epochs,
    learning rates, final train and test error).

    Example:
        >>> model = load_lenet()
        >>> [(layer.W.shape, layer.W.dtype.name) for layer in model.dense]
        [((300, 784), 'float32'), ((100, 300), 'float32'), ((10, 100), 'float32')]
        >>> model.forward(np.zeros((2, 784), np.float32)).shape
        (2, 10)
    """
    with resources.as_file(resources.files("qlib") / LENET_FILE) as path:
        return load(path)

"""Optimizers and training loops for :mod:`qlib.nn` networks.

:class:`SGD` (momentum, weight decay, in ``torch.optim.SGD``'s form) and
:class:`Adam` update a list of parameters in place from their gradients;
:func:`train_epoch` makes one seeded pass over the data and :func:`train`
runs epochs with an optional learning-rate schedule.  ``tools/train_lenet.py``
trains the course's LeNet-300-100 with them; chapter 06 fine-tunes K-means
codebooks with them.

Taught in ``notebooks/06_kmeans_quantization.ipynb``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from .nn import (
    MLP,
    Params,
    _batches,
    _check_images,
    _check_labels,
    _count,
    softmax_cross_entropy,
)

__all__ = ["SGD", "Adam", "train", "train_epoch"]


class SGD:
    """Stochastic gradient descent with momentum and weight decay.

    Per parameter ``p`` with gradient ``g`` (PyTorch's ``torch.optim.SGD``)::

        g = g + weight_decay * p
        v = momentum * v + g          # v starts at 0
        p = p - lr * v

    With a constant ``lr`` these are the iterates of Sutskever et al. (2013),
    ``v' = momentum * v' - lr * g; p = p + v'``.  ``lr`` may be changed
    between steps (a schedule).

    Example:
        >>> p = np.array([1.0]); opt = SGD(lr=0.1, momentum=0.9)
        >>> opt.step([p], [2 * p]); p        # f(p) = p**2
        array([0.8])
    """

    def __init__(self, lr: float, momentum: float = 0.0, weight_decay: float = 0.0):
        self.lr, self.momentum, self.weight_decay = lr, momentum, weight_decay
        self.velocity: Params | None = None

    def step(self, params: Params, grads: Params) -> None:
        """Update ``params`` in place from ``grads``."""
        if self.velocity is None:
            self.velocity = [np.zeros_like(p) for p in params]
        for p, g, v in zip(params, grads, self.velocity, strict=True):
            if self.weight_decay:
                g = g + self.weight_decay * p
            if self.momentum:
                v *= self.momentum
                v += g
                g = v
            p -= self.lr * g


class Adam:
    """Adam (Kingma & Ba 2015)::

        m = beta1 * m + (1 - beta1) * g
        s = beta2 * s + (1 - beta2) * g**2
        p = p - lr * (m / (1 - beta1**t)) / (sqrt(s / (1 - beta2**t)) + eps)

    Example:
        >>> p = np.array([1.0]); opt = Adam(lr=0.1)
        >>> opt.step([p], [2 * p]); p        # the first step moves by lr
        array([0.9])
    """

    def __init__(
        self,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ):
        self.lr, self.betas, self.eps, self.weight_decay = lr, betas, eps, weight_decay
        self.t = 0
        self.m: Params | None = None
        self.s: Params | None = None

    def step(self, params: Params, grads: Params) -> None:
        """Update ``params`` in place from ``grads``."""
        if self.m is None or self.s is None:
            self.m, self.s = [[np.zeros_like(p) for p in params] for _ in "ms"]
        self.t += 1
        beta1, beta2 = self.betas
        for p, g, m, s in zip(params, grads, self.m, self.s, strict=True):
            if self.weight_decay:
                g = g + self.weight_decay * p
            # in place, each product and sum rounded as written in the
            # docstring, one temporary array for the step
            m *= beta1
            m += (1 - beta1) * g
            s *= beta2
            s += (1 - beta2) * g * g
            step = np.divide(s, 1 - beta2**self.t)
            np.sqrt(step, out=step)
            step += self.eps
            np.divide(self.lr * np.divide(m, 1 - beta1**self.t), step, out=step)
            p -= step


# ----------------------------------------------------------------- training
def train_epoch(
    model: MLP,
    optimizer: SGD | Adam,
    images: np.ndarray,
    labels: np.ndarray,
    *,
    batch_size: int,
    rng: np.random.Generator,
    progress: bool = False,
    desc: str = "train",
) -> float:
    """One pass over the data in an order shuffled by ``rng``; the mean loss."""
    x = _check_images(images, model.dense[0].in_features, "images")
    y = _check_labels(labels, len(x), model.dense[-1].out_features, "labels")
    step = _count(batch_size, "batch_size")
    order = rng.permutation(len(x))
    total = 0.0
    for start in _batches(len(x), step, desc, progress):
        batch = order[start : start + step]
        loss, grad = softmax_cross_entropy(model.forward(x[batch]), y[batch])
        model.backward(grad)
        optimizer.step(model.parameters(), model.gradients())
        total += loss * len(batch)
    return total / len(x)


def train(
    model: MLP,
    images: np.ndarray,
    labels: np.ndarray,
    *,
    optimizer: SGD | Adam,
    epochs: int,
    batch_size: int,
    seed: int = 0,
    lr_schedule: Callable[[int], float] | None = None,
    progress: bool = False,
) -> list[float]:
    """Train for ``epochs`` epochs; the mean training loss of each epoch.

    ``lr_schedule(epoch)`` (0-based) sets ``optimizer.lr`` before each epoch.
    The shuffling comes from ``np.random.default_rng(seed)``: the same seed,
    data and initial weights give the same trained weights.
    """
    rng = np.random.default_rng(seed)
    losses = []
    for epoch in range(_count(epochs, "epochs")):
        if lr_schedule is not None:
            optimizer.lr = lr_schedule(epoch)
        start = time.perf_counter()
        desc = f"epoch {epoch + 1}/{epochs}"
        kwargs = dict(batch_size=batch_size, rng=rng, progress=progress, desc=desc)
        losses.append(train_epoch(model, optimizer, images, labels, **kwargs))
        if progress:
            seconds = time.perf_counter() - start
            print(
                f"{desc}  lr {optimizer.lr:.4g}  loss {losses[-1]:.4f}  {seconds:.1f} s"
            )
    return losses

"""Quantization-aware training (QAT): quantizers to train through.

The forward pass of a QAT network computes with *fake-quantized* tensors,
``dequantize_linear(quantize_linear(x))`` (:func:`qlib.ptq.fake_quantize`):
real numbers that take only the values the integer network will have.
Rounding has a zero derivative almost everywhere, so the backward pass uses
the **straight-through estimator** (Bengio, Leonard & Courville 2013): the
gradient goes through the rounding as if it were the identity, and is zero
where the quantizer clipped (:func:`ste_mask`; Jacob et al., CVPR 2018,
section 3).  The optimizer updates *latent* float weights; only their
quantized version is ever used.

Each quantizer has ``forward(x, training)`` (the fake-quantized ``x``),
``backward(grad)`` (dL/dx from dL/d(quantized x)) and ``parameters()`` /
``gradients()`` (what it learns: LSQ's steps) -- the :class:`Quantizer`
protocol that :mod:`qlib.qatnet`'s layers call:

* **weights** (:class:`MinMaxWeights`): symmetric, one scale per output
  channel, recomputed from the current latent weights at every step
  (PyTorch's per-channel MinMax observer with FakeQuantize);
* **activations** (:class:`EMAActivations`): unsigned after ReLU, the range
  an exponential moving average of each batch's min and max
  (:func:`qlib.calibrate.ema_minmax`, ``momentum=0.99`` as PyTorch's and
  TFLite's QAT), started from min-max on calibration images;
* **LSQ** (:class:`LSQ`; Esser et al., ICLR 2020): the step ``s`` is learned.
  Forward ``v_hat = s * clip(round(v / s), -Q_N, Q_P)``; backward
  ``dv_hat/dv = 1`` for ``-Q_N < v/s < Q_P`` else 0, and ``dv_hat/ds =
  round(v/s) - v/s`` inside, ``-Q_N`` below, ``Q_P`` above (eq. 3), the
  step's gradient multiplied by ``g = 1 / sqrt(N * Q_P)`` with ``N`` the
  weights (or features) sharing the step (section 2.2): :func:`lsq_backward`,
  :func:`lsq_init`, :func:`lsq_grad_scale`;
* **binary and ternary weights** (:class:`BinaryWeights`,
  :class:`TernaryWeights`): :mod:`qlib.binary`'s BWN and TWN in the forward
  pass, the straight-through estimator of ``sign`` (BinaryConnect).

A whole network (LeNet-300-100) trained through them is :mod:`qlib.qatnet`.

Taught in ``notebooks/09_quantization_aware_training.ipynb``.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import nn
from .binary import binarize, ternarize
from .calibrate import ema_minmax
from .linear import _codes_range, _expand, _integer, linear_qparams, quantize_linear
from .ptq import fake_quantize

__all__ = [
    "LSQ",
    "BinaryWeights",
    "EMAActivations",
    "MinMaxWeights",
    "Quantizer",
    "TernaryWeights",
    "lsq_backward",
    "lsq_grad_scale",
    "lsq_init",
    "ste_mask",
]


def _bits(bits: object) -> int:
    """2 to 16 bits: QAT is for narrow codes, and 16 leaves ste_mask's
    32-bit codes room to tell a saturated code from an unsaturated one."""
    return _integer(bits, "bits", 2, 16)


def ste_mask(
    x: ArrayLike,
    scale: ArrayLike,
    zero_point: ArrayLike,
    bits: int,
    *,
    signed: bool = True,
    axis: int | None = None,
) -> NDArray[np.bool_]:
    """Where the straight-through estimator passes the gradient of
    :func:`qlib.ptq.fake_quantize` (same arguments): where
    ``quantize_linear`` does not saturate.

    That is where the code before clipping, ``round(x / scale) +
    zero_point``, lies in ``[q_min, q_max]`` (PyTorch's FakeQuantize
    backward): the range ``[S(q_min - Z), S(q_max - Z)]`` and the half step
    beyond each end that rounds onto it.  The backward pass of fake
    quantization is ``grad * ste_mask(x, ...)``.

    Example:
        >>> ste_mask([-0.2, 0.3, 3.8, 3.9], 0.25, 0, 4, signed=False)  # codes 0..15
        array([False,  True,  True, False])

    Taught in ``notebooks/09_quantization_aware_training.ipynb``.
    """
    lo, hi, _ = _codes_range(_bits(bits), signed)
    wide = quantize_linear(x, scale, zero_point, bits=32, signed=True, axis=axis)
    return (wide >= lo) & (wide <= hi)


# ----------------------------------------------------------------------- LSQ
def _q_range(bits: int, signed: bool) -> tuple[int, int]:
    """LSQ's ``(Q_N, Q_P)``: codes from ``-Q_N`` to ``Q_P``."""
    lo, hi, _ = _codes_range(_bits(bits), signed)
    return -lo, hi


def lsq_init(
    v: ArrayLike, bits: int, *, signed: bool, axis: int | None = None
) -> NDArray[np.float32]:
    """LSQ's initial step ``2 * mean|v| / sqrt(Q_P)`` (Esser et al., section 2.1).

    One step (shape ``(1,)``), or one per index of ``axis``.

    Example:
        >>> lsq_init([[0.5, -1.5], [0.25, 0.25]], 2, signed=True, axis=0)  # Q_P = 1
        array([2. , 0.5], dtype=float32)
    """
    a = np.abs(np.asarray(v, np.float64))
    _, q_p = _q_range(bits, signed)
    if axis is None:
        mean = np.atleast_1d(a.mean())
    else:
        mean = a.mean(axis=tuple(d for d in range(a.ndim) if d != axis % a.ndim))
    step = np.maximum(2 * mean / np.sqrt(q_p), np.finfo(np.float32).tiny)
    return step.astype(np.float32)


def lsq_grad_scale(n: int, bits: int, *, signed: bool) -> float:
    """LSQ's gradient scale ``g = 1 / sqrt(n * Q_P)`` for a step shared by
    ``n`` weights (``N_W``) or ``n`` features of one example (``N_F``).

    Example:
        >>> lsq_grad_scale(100, 2, signed=True)  # Q_P = 1
        0.1
    """
    _, q_p = _q_range(bits, signed)
    return 1.0 / float(np.sqrt(nn._count(n, "n") * q_p))


def lsq_backward(
    grad: ArrayLike,
    v: ArrayLike,
    step: ArrayLike,
    *,
    bits: int,
    signed: bool,
    axis: int | None = None,
    grad_scale: float = 1.0,
) -> tuple[NDArray[np.floating], NDArray[np.floating]]:
    """LSQ's backward pass: ``(dL/dv, dL/ds)`` from ``grad = dL/dv_hat``.

    ``dL/dv = grad`` where ``-Q_N < v/s < Q_P``, else 0; ``dL/ds =
    grad_scale * sum(grad * dv_hat/ds)`` over the values sharing each step,
    with ``dv_hat/ds = round(v/s) - v/s`` inside, ``-Q_N`` below, ``Q_P``
    above (``round`` is :func:`~qlib.linear.quantize_linear`'s, ties to
    even).  ``step`` is ``(1,)`` or one per index of ``axis``.

    Example:
        >>> dv, ds = lsq_backward([1.0, 1.0, 1.0], [0.3, 1.6, -9.0], [1.0],
        ...                       bits=3, signed=True)
        >>> dv, ds    # ds: (0 - 0.3) + (2 - 1.6) + (-4)
        (array([1., 1., 0.]), array([-3.9]))

    Taught in ``notebooks/09_quantization_aware_training.ipynb``.
    """
    g, x = np.asarray(grad), np.asarray(v)
    if g.shape != x.shape:
        raise ValueError(
            f"grad and v must have the same shape; got {g.shape}, {x.shape}"
        )
    s = np.asarray(step)
    q_n, q_p = _q_range(bits, signed)
    q = quantize_linear(x, s, bits=bits, signed=signed, axis=axis)
    ax = None if axis is None else axis % x.ndim
    u = x / _expand(s, x.ndim, ax)
    inside = (u > -q_n) & (u < q_p)
    dv_hat_ds = q - np.where(inside, u, 0)  # outside, q is -Q_N or Q_P itself
    over = None if ax is None else tuple(d for d in range(x.ndim) if d != ax)
    ds = grad_scale * (g * dv_hat_ds).sum(axis=over)
    return g * inside, np.reshape(ds, s.shape)


# ---------------------------------------------------------------- quantizers
class Quantizer(Protocol):
    """What :mod:`qlib.qatnet`'s layers call on a quantizer."""

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray: ...
    def backward(self, grad: np.ndarray) -> np.ndarray: ...
    def parameters(self) -> list[np.ndarray]: ...
    def gradients(self) -> list[np.ndarray]: ...


class _STE:
    """A quantizer whose backward pass is ``grad * mask`` (the mask from the
    last forward pass) and that learns nothing of its own."""

    _mask: np.ndarray | None = None

    def backward(self, grad: np.ndarray) -> np.ndarray:
        """dL/d(quantized x) -> dL/dx: the gradient where the mask is True."""
        if self._mask is None:
            raise RuntimeError("backward() called before forward()")
        return grad * self._mask

    def parameters(self) -> list[np.ndarray]:
        return []

    def gradients(self) -> list[np.ndarray]:
        return []


class MinMaxWeights(_STE):
    """Weights fake-quantized to symmetric ``bits``-bit codes, one scale per
    output channel from the current weights (``max|W| / (2**(bits-1) - 1)``,
    :func:`~qlib.linear.linear_qparams`): no weight saturates, so the
    gradient passes everywhere.

    Example:
        >>> MinMaxWeights(2).forward(np.array([[0.9, 0.3, -0.5]], np.float32), True)
        array([[ 0.9,  0. , -0.9]], dtype=float32)
    """

    def __init__(self, bits: int, axis: int = 0) -> None:
        self.bits, self.axis = _bits(bits), axis

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        scale, _ = linear_qparams(x, self.bits, symmetric=True, axis=self.axis)
        options = {"signed": True, "axis": self.axis}
        self._mask = ste_mask(x, scale, 0, self.bits, **options)
        return fake_quantize(x, scale, 0, self.bits, **options)


class EMAActivations(_STE):
    """Activations fake-quantized to unsigned ``bits``-bit codes over a range
    ``(r_min, r_max)`` that follows each training batch's min and max,
    ``r = momentum * r + (1 - momentum) * batch`` (:func:`~qlib.calibrate.
    ema_minmax`); outside training the range is frozen.

    Example:
        >>> q = EMAActivations(2, (0.0, 3.0))
        >>> q.forward(np.array([[0.4, 1.6, 5.0]], np.float32), training=False)
        array([[0., 2., 3.]], dtype=float32)
        >>> q.backward(np.ones((1, 3), np.float32))
        array([[1., 1., 0.]], dtype=float32)
    """

    def __init__(
        self, bits: int, r_range: tuple[float, float], momentum: float = 0.99
    ) -> None:
        self.bits, self.momentum = _bits(bits), momentum
        self.r_range = (float(r_range[0]), float(r_range[1]))

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        if training:  # the running range as the first "batch", then this one
            self.r_range = ema_minmax([self.r_range, x], self.momentum)
        r = np.array(self.r_range, np.float32)
        scale, zero_point = linear_qparams(r, self.bits, signed=False)
        self._mask = ste_mask(x, scale, zero_point, self.bits, signed=False)
        return fake_quantize(x, scale, zero_point, self.bits, signed=False)


class LSQ:
    """A learned step size (LSQ): codes ``-Q_N .. Q_P`` with zero point 0,
    ``step`` one value (shape ``(1,)``) or one per index of ``axis``.

    :meth:`parameters` is ``[step]``, trained with the network; its gradient
    comes from :func:`lsq_backward` with ``grad_scale``.

    Example:
        >>> q = LSQ([0.5], 2, signed=False, grad_scale=1.0)
        >>> q.forward(np.array([0.3, 0.8, 4.0], np.float32), True)
        array([0.5, 1. , 1.5], dtype=float32)
        >>> q.backward(np.ones(3, np.float32)), q.gradients()  # 0.4 + 0.4 + 3
        (array([1., 1., 0.], dtype=float32), [array([3.8], dtype=float32)])
    """

    def __init__(
        self,
        step: ArrayLike,
        bits: int,
        *,
        signed: bool,
        axis: int | None = None,
        grad_scale: float,
    ) -> None:
        self.step = np.atleast_1d(np.array(step, np.float32))
        self.dstep = np.zeros_like(self.step)
        self.bits, self.signed, self.axis = _bits(bits), signed, axis
        self.grad_scale = float(grad_scale)
        self._v: np.ndarray | None = None

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        self._v = x
        options = {"signed": self.signed, "axis": self.axis}
        return fake_quantize(x, self.step, 0, self.bits, **options)

    def backward(self, grad: np.ndarray) -> np.ndarray:
        if self._v is None:
            raise RuntimeError("backward() called before forward()")
        dv, ds = lsq_backward(
            grad,
            self._v,
            self.step,
            bits=self.bits,
            signed=self.signed,
            axis=self.axis,
            grad_scale=self.grad_scale,
        )
        self.dstep[...] = ds
        return dv

    def parameters(self) -> list[np.ndarray]:
        return [self.step]

    def gradients(self) -> list[np.ndarray]:
        return [self.dstep]


class BinaryWeights(_STE):
    """BWN's ``alpha * sign(W)`` per output channel (:func:`qlib.binary.binarize`)
    in the forward pass; the gradient passed to the latent ``W`` where
    ``|W| <= 1`` (the straight-through estimator of ``sign``, Hubara et al.
    2016; BinaryConnect).

    Example:
        >>> q = BinaryWeights()
        >>> q.forward(np.array([[0.5, -1.5]], np.float32), training=True)
        array([[ 1., -1.]], dtype=float32)
        >>> q.backward(np.array([[0.25, 0.25]], np.float32))
        array([[0.25, 0.  ]], dtype=float32)
    """

    def _codes(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return binarize(x, 0)

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        alpha, codes = self._codes(x)
        self._mask = np.abs(x) <= 1
        return (alpha[:, None] * codes).astype(x.dtype)


class TernaryWeights(BinaryWeights):
    """:class:`BinaryWeights` with TWN's ``alpha * T`` per output channel
    (``Delta = 0.7 mean|W|``, :func:`qlib.binary.ternarize`).

    Example:
        >>> TernaryWeights().forward(np.array([[0.1, -2.0, 1.0, 0.3]]), True)
        array([[ 0. , -1.5,  1.5,  0. ]])
    """

    def _codes(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return ternarize(x, None, 0)

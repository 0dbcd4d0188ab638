"""AdaRound: learning whether each weight rounds up or down.

Round-to-nearest makes every weight's error as small as it can be, one
weight at a time.  What a layer computes, though, is ``W x``: the errors of
the weights in a row add up in each output, and a weight rounded the "wrong"
way can cancel its neighbours' errors.  AdaRound (Nagel et al., "Up or Down?
Adaptive Rounding for Post-Training Quantization", ICML 2020) chooses, for
each weight, ``floor(W/s)`` or ``floor(W/s) + 1`` so that the layer's output
on calibration inputs moves as little as possible:

    minimize over V   mean_x ||W x - W~ x||^2  +  lam * f_reg(V)
    W~ = s * clip(floor(W / s) + h(V), q_min, q_max)

* ``h(V) = clip(sigmoid(V) (zeta - gamma) + gamma, 0, 1)``, zeta = 1.1,
  gamma = -0.1 (:func:`rectified_sigmoid`): a soft "round up" in [0, 1]
  that reaches 0 and 1 exactly, where its gradient stops.
* ``f_reg = sum(1 - |2 h(V) - 1|**beta)`` (:func:`rounding_regularizer`)
  pushes every ``h`` to 0 or 1; ``beta`` falls from 20 to 2 after a warm-up
  without it (:func:`beta_schedule`).
* ``V`` starts where ``h(V)`` is the fractional part of ``W/s``
  (:func:`initial_v`), Adam (:class:`qlib.optim.Adam`) moves it, and the
  final codes round up where ``h(V) >= 0.5``.

The scales are :func:`qlib.linear.linear_qparams`'s, symmetric, one per
output channel (row of ``W``); the codes round to nearest through
:func:`qlib.linear.quantize_linear` and back through
:func:`qlib.linear.dequantize_linear`.  The gradients of ``h`` and of
``f_reg`` are written out (:func:`rectified_sigmoid_grad`,
:func:`rounding_regularizer`, :func:`objective`).

On the course's LeNet-300-100 the first layer (300 x 784) is the one
round-to-nearest hurts most; :func:`adaround`'s defaults (1000 Adam steps of
32 inputs from 1024 calibration images) take 2-3.5 s there on one 2-core
AMD EPYC with one BLAS thread and 5-7.5 s on another (a Zen 3 at 2.45 GHz),
most of it in the elementwise work on the 235,200 weights, done in place.
Start NumPy with one BLAS thread (``OPENBLAS_NUM_THREADS=1``) on a busy
machine: each step makes two small matrix products, and a second thread
waiting for a core made one run take 34 s; the thread count also changes
the last bits of the float32 sums and with them a few roundings.
Measured results are in ``tests/test_adaround.py`` and
``benchmarks/bench_adaround.py``.

Taught in ``notebooks/08_post_training_quantization.ipynb``.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .integers import value_range
from .linear import _integer, dequantize_linear, linear_qparams, quantize_linear
from .nn import MLP, _batches, _check_images
from .optim import Adam

__all__ = [
    "GAMMA",
    "ZETA",
    "AdaRoundResult",
    "adaround",
    "beta_schedule",
    "init_rounding",
    "initial_v",
    "layer_inputs",
    "objective",
    "output_mse",
    "reconstruction_loss",
    "rectified_sigmoid",
    "rectified_sigmoid_grad",
    "rounding_regularizer",
    "soft_quantize",
]

#: the rectified sigmoid's stretch: sigmoid(V) in (0, 1) spread over
#: (GAMMA, ZETA), then clipped to [0, 1] (from Louizos et al. 2018, as AdaRound)
ZETA, GAMMA = 1.1, -0.1


# --------------------------------------------------------------- checking
def _matrix(a: ArrayLike, name: str, ndim: int = 2) -> NDArray[np.float64]:
    x = np.asarray(a)
    if x.dtype.kind not in "iuf":
        raise TypeError(f"{name} must hold real numbers; got dtype {x.dtype}")
    if x.ndim != ndim or 0 in x.shape:
        raise ValueError(f"{name} must be a non-empty {ndim}-D array; got {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    return x


def _positive(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number > 0; got {value!r}")
    if not 0 < value < np.inf:
        raise ValueError(f"{name} must be finite and > 0; got {value}")
    return float(value)


# ---------------------------------------------------- the soft rounding h(V)
def _real_array(a: ArrayLike) -> np.ndarray:
    """float32 and float64 arrays as they are, anything else as float64."""
    x = np.asarray(a)
    return x if x.dtype in (np.float32, np.float64) else x.astype(np.float64)


def _soft_round(V: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """``h(V)`` and ``dh/dV`` from one sigmoid (0 where the clip holds ``h``)."""
    # each step rounded as in 1 / (1 + exp(-v)), soft = sig (ZETA - GAMMA)
    # + GAMMA, dh = (ZETA - GAMMA) sig (1 - sig), but in place: AdaRound makes
    # this call on every step, for every weight
    v = _real_array(V)
    sig = np.negative(v.reshape(-1))  # 1-D: a 0-d V would give scalars
    np.exp(sig, out=sig)
    sig += 1
    np.divide(1, sig, out=sig)
    soft = sig * (ZETA - GAMMA)
    soft += GAMMA
    inside = (soft > 0) & (soft < 1)
    np.clip(soft, 0, 1, out=soft)
    dh = (ZETA - GAMMA) * sig
    np.subtract(1, sig, out=sig)
    dh *= sig
    dh *= inside
    return soft.reshape(v.shape)[()], dh.reshape(v.shape)[()]


def rectified_sigmoid(V: ArrayLike) -> NDArray[np.floating]:
    """``h(V) = clip(sigmoid(V) (ZETA - GAMMA) + GAMMA, 0, 1)``: the soft
    "round up" of AdaRound, in ``V``'s float dtype.

    Example:
        >>> rectified_sigmoid([-10.0, 0.0, 10.0])
        array([0. , 0.5, 1. ])
    """
    return _soft_round(V)[0]


def rectified_sigmoid_grad(V: ArrayLike) -> NDArray[np.floating]:
    """``dh/dV = (ZETA - GAMMA) sigmoid(V) (1 - sigmoid(V))`` where the clip
    does not hold ``h`` at 0 or 1, and 0 where it does.

    Example:
        >>> rectified_sigmoid_grad([-10.0, 0.0, 10.0])
        array([0. , 0.3, 0. ])
    """
    return _soft_round(V)[1]


def initial_v(fraction: ArrayLike) -> NDArray[np.floating]:
    """The ``V`` at which ``h(V)`` equals ``fraction`` (in [0, 1]), in its
    float dtype: the inverse of :func:`rectified_sigmoid`,
    ``V = log(p / (1 - p))`` with ``p = (fraction - GAMMA) / (ZETA - GAMMA)``.

    Example:
        >>> f = np.array([0.0, 0.25, 0.5, 0.9])
        >>> bool(np.allclose(rectified_sigmoid(initial_v(f)), f))
        True
    """
    f = _real_array(fraction)
    if not ((f >= 0) & (f <= 1)).all():
        raise ValueError("fraction must lie in [0, 1]")
    p = (f - GAMMA) / (ZETA - GAMMA)
    return np.log(p / (1 - p))


def rounding_regularizer(h: ArrayLike, beta: float) -> tuple[float, np.ndarray]:
    """``f_reg = sum(1 - |2h - 1|**beta)`` and its gradient
    ``df/dh = -2 beta |2h - 1|**(beta - 1) sign(2h - 1)``, in ``h``'s float
    dtype.

    Each term is 1 at ``h = 1/2`` and 0 at ``h`` in {0, 1}; a large ``beta``
    keeps it flat around 1/2, so ``h`` moves freely, a small one pulls every
    ``h`` towards the nearer end.

    Example:
        >>> value, grad = rounding_regularizer([0.0, 0.25, 0.5, 1.0], beta=2)
        >>> value, grad
        (1.75, array([ 4.,  2., -0., -4.]))
    """
    b = _positive(beta, "beta")
    if b < 1:
        raise ValueError(f"beta must be >= 1 (the gradient at h = 1/2); got {beta}")
    u = 2 * _real_array(h) - 1
    a = np.abs(u)
    # one power for both: |u|**beta = |u|**(beta-1) |u|.  It is exactly 1
    # where |u| = 1, at h = 0 or 1, where AdaRound sends nearly every h (fc1
    # of LeNet at 3 bits ends 1000 steps with 16 of its 235,200 elsewhere):
    # the power is taken for the others only
    a_b1 = np.ones_like(a)
    rest = np.flatnonzero(a != 1)
    a_b1.flat[rest] = a.flat[rest] ** (b - 1)
    return float(np.sum(1 - a_b1 * a, dtype=np.float64)), (-2 * b) * a_b1 * np.sign(u)


def beta_schedule(
    iterations: int, *, warmup: float = 0.2, beta: tuple[float, float] = (20.0, 2.0)
) -> NDArray[np.float64]:
    """The regularizer's ``beta`` at each iteration: NaN (no regularizer)
    for the first ``round(warmup * iterations)`` iterations, then falling
    linearly from ``beta[0]`` to ``beta[1]``, reached at the last one.

    Example:
        >>> beta_schedule(6, warmup=1 / 3)
        array([nan, nan, 20., 14.,  8.,  2.])
    """
    n = _integer(iterations, "iterations", 1, 2**31)
    if isinstance(warmup, bool) or not isinstance(warmup, numbers.Real):
        raise TypeError(f"warmup must be a real number in [0, 1); got {warmup!r}")
    if not 0 <= warmup < 1:
        raise ValueError(f"warmup must be in [0, 1); got {warmup}")
    if not isinstance(beta, tuple | list) or len(beta) != 2:
        raise TypeError(f"beta must be a pair (start, end); got {beta!r}")
    b0, b1 = (_positive(b, "beta") for b in beta)
    start = round(warmup * n)
    out = np.full(n, np.nan)
    out[start:] = np.linspace(b0, b1, n - start) if n - start > 1 else b1
    return out


# ------------------------------------------------------- the layer's loss
def _code_range(bits: object) -> tuple[int, int]:
    """``(q_min, q_max)`` of signed ``bits``-bit codes, 2 to 16 bits."""
    return value_range(_integer(bits, "bits", 2, 16), "twos_complement")


def init_rounding(
    W: ArrayLike, bits: int
) -> tuple[NDArray[np.floating], np.ndarray, np.ndarray]:
    """AdaRound's starting point for weights ``W`` (out, in):
    ``(scale, floor, V)``.

    ``scale`` is ``linear_qparams(W, bits, symmetric=True, axis=0)``'s, one
    per row; ``floor = floor(W / s)`` with ``W / s`` computed as
    :func:`~qlib.linear.quantize_linear` does; ``V`` makes ``h(V)`` the
    fractional part ``W / s - floor``, so the soft weights start equal to
    ``W`` and rounding up where ``h(V) >= 0.5`` is round-to-nearest (up to
    ties, which ``quantize_linear`` sends to even).  All in ``W``'s float
    dtype (float64 for integers).

    Example:
        >>> scale, floor, V = init_rounding([[0.2, -1.0, 0.45]], bits=3)
        >>> scale, floor, rectified_sigmoid(V).round(6)
        (array([0.33333333]), array([[ 0., -3.,  1.]]), array([[0.6 , 0.  , 0.35]]))
    """
    w = _real_array(_matrix(W, "W"))
    scale, _ = linear_qparams(w, _integer(bits, "bits", 2, 16), symmetric=True, axis=0)
    ratio = w / scale.reshape(-1, 1)  # in quantize_linear's dtype
    floor = np.floor(ratio)
    return scale, floor, initial_v(ratio - floor)


def soft_quantize(
    floor: ArrayLike, h: ArrayLike, scale: ArrayLike, bits: int
) -> tuple[np.ndarray, NDArray[np.bool_]]:
    """``W~ = s * clip(floor + h, q_min, q_max)``, one scale per row, and the
    mask where the clip lets ``h`` through (``dW~/dh = s`` there, else 0).

    ``[q_min, q_max] = [-2**(bits-1), 2**(bits-1) - 1]``: the signed range
    that :func:`~qlib.linear.quantize_linear` saturates to.

    Example:
        >>> w, free = soft_quantize([[2.0, -8.0, 7.0]], [[0.5, 0.0, 1.0]], [0.1], 4)
        >>> w, free
        (array([[ 0.25, -0.8 ,  0.7 ]]), array([[ True,  True, False]]))
    """
    q_min, q_max = _code_range(bits)
    u = _real_array(floor) + _real_array(h)
    free = (u >= q_min) & (u <= q_max)
    np.clip(u, q_min, q_max, out=u)
    u *= _real_array(scale).reshape(-1, 1)
    return u, free


def reconstruction_loss(
    W: ArrayLike, W_tilde: ArrayLike, X: ArrayLike
) -> tuple[float, np.ndarray]:
    """The mean over the rows ``x`` of ``X`` of ``||W x - W~ x||^2``, and its
    gradient with respect to ``W~``, ``-2/N (X (W - W~)^T)^T X``.

    Example:
        >>> loss, grad = reconstruction_loss([[1.0, 2.0]], [[1.0, 1.5]], [[1.0, 2.0]])
        >>> loss, grad
        (1.0, array([[-2., -4.]]))
    """
    x = _real_array(X)
    E = x @ (_real_array(W) - _real_array(W_tilde)).T  # (N, out): output errors
    loss = float(np.sum(E * E, dtype=np.float64)) / len(x)
    grad = E.T @ x
    grad *= -2 / len(x)
    return loss, grad


def objective(
    V: ArrayLike,
    W: ArrayLike,
    floor: ArrayLike,
    scale: ArrayLike,
    X: ArrayLike,
    bits: int,
    *,
    lam: float = 0.0,
    beta: float | None = None,
) -> tuple[float, float, np.ndarray]:
    """AdaRound's objective at ``V`` on the inputs ``X`` and its gradient:
    ``(reconstruction, f_reg, dJ/dV)`` for ``J = reconstruction + lam f_reg``.

    The soft weights are ``soft_quantize(floor, h(V), scale, bits)``; by the
    chain rule ``dJ/dV = (dL/dW~ * s * free + lam df_reg/dh) * dh/dV``.
    ``beta=None`` is the warm-up: no regularizer (``f_reg`` NaN).

    Example:
        >>> scale, floor, V = init_rounding([[0.2, -1.0, 0.45]], bits=3)
        >>> loss, reg, grad = objective(V, [[0.2, -1.0, 0.45]], floor, scale,
        ...                             [[1.0, 1.0, 1.0]], 3, lam=0.1, beta=2.0)
        >>> round(loss, 12), round(reg, 4), grad.round(4)
        (0.0, 1.87, array([[-0.0233,  0.    ,  0.0338]]))
    """
    h, dh_dV = _soft_round(V)
    W_tilde, free = soft_quantize(floor, h, scale, bits)
    loss, dL_dW = reconstruction_loss(W, W_tilde, X)
    dJ_dh = dL_dW  # dL/dW~ * s * free, in place
    dJ_dh *= _real_array(scale).reshape(-1, 1)
    dJ_dh *= free
    reg = np.nan
    if beta is not None:
        reg, dreg_dh = rounding_regularizer(h, beta)
        dJ_dh += lam * dreg_dh
    dJ_dh *= dh_dV
    return loss, reg, dJ_dh


def output_mse(W: ArrayLike, W_q: ArrayLike, X: ArrayLike) -> float:
    """The layer's output mean squared error ``mean((X W^T - X W_q^T)**2)``
    over inputs and outputs (the bias cancels), in float64.

    Example:
        >>> output_mse([[1.0, 2.0]], [[1.0, 1.5]], [[1.0, 2.0], [0.0, 0.0]])
        0.5
    """
    x = np.asarray(X, np.float64)
    E = x @ (np.asarray(W, np.float64) - np.asarray(W_q, np.float64)).T
    return float(np.mean(E * E))


def layer_inputs(model: MLP, index: int, x: ArrayLike) -> np.ndarray:
    """What Dense layer ``index`` (0 = the first) of the float ``model``
    receives for images ``x`` (float, (N, in_features)).

    Example:
        >>> from qlib.nn import lenet_300_100
        >>> layer_inputs(lenet_300_100(), 1, np.zeros((2, 784), np.float32)).shape
        (2, 300)
    """
    i = _integer(index, "index", 0, len(model.dense) - 1)
    stop = model.layers.index(model.dense[i])
    out = _check_images(x, model.dense[0].in_features, "x")
    for layer in model.layers[:stop]:
        out = layer.forward(out)
    return out


# ------------------------------------------------------------- the method
@dataclass(frozen=True, eq=False)
class AdaRoundResult:
    """What :func:`adaround` found for one layer.

    Attributes:
        codes: the integer codes (int8 up to 8 bits), ``W``'s shape.
        scale: one per row of ``W`` (symmetric, zero point 0).
        nearest: round-to-nearest's codes ``quantize_linear(W, scale, axis=0)``.
        h: the soft rounding ``h(V)`` at the end; ``codes`` round up where
            it is ``>= 0.5``.
        mse_nearest, mse: the layer's output MSE (:func:`output_mse`) on the
            calibration inputs with ``nearest`` and with ``codes``.
        loss: the reconstruction loss of the soft weights on each
            iteration's batch.
        regularizer: ``f_reg`` at each iteration (NaN in the warm-up).
    """

    codes: NDArray[np.integer]
    scale: NDArray[np.floating]
    nearest: NDArray[np.integer]
    h: NDArray[np.floating]
    mse_nearest: float
    mse: float
    loss: NDArray[np.float64]
    regularizer: NDArray[np.float64]

    @property
    def weights(self) -> NDArray[np.floating]:
        """The quantized weights ``scale * codes`` (dequantize_linear)."""
        return dequantize_linear(self.codes, self.scale, axis=0)

    @property
    def flipped(self) -> float:
        """The share of weights rounded the other way than nearest."""
        return float(np.mean(self.codes != self.nearest))


def adaround(
    W: ArrayLike,
    X: ArrayLike,
    bits: int,
    *,
    iterations: int = 1000,
    lam: float = 0.01,
    batch_size: int = 32,
    lr: float = 0.03,
    warmup: float = 0.2,
    beta: tuple[float, float] = (20.0, 2.0),
    seed: int = 0,
    v_init: ArrayLike | None = None,
    progress: bool = False,
) -> AdaRoundResult:
    """Round each weight of ``W`` up or down so that the layer's output on
    the inputs ``X`` changes least (AdaRound, Nagel et al. 2020).

    Minimizes ``mean_x ||W x - W~ x||^2 + lam * f_reg(V)`` over ``V`` with
    Adam, each step on ``batch_size`` rows of ``X`` drawn without
    replacement by ``np.random.default_rng(seed)``.  The output is the
    layer's own, before the activation, on the float network's inputs (the
    paper's final form also passes both outputs through the activation and
    feeds ``W~`` the inputs of the already quantized layers before it).

    Args:
        W: the layer's float weights ``(out, in)`` (``y = x @ W.T + b``).
        X: inputs of the layer ``(N, in)`` from calibration data.
        bits: code width, 2 to 16: signed codes, symmetric per-row scales
            (:func:`init_rounding`).
        iterations: Adam steps.
        lam: the regularizer's weight against the reconstruction loss.
        batch_size: rows of ``X`` per step, at most ``N``.
        lr: Adam's learning rate on ``V``.
        warmup, beta: the regularizer's schedule (:func:`beta_schedule`).
        seed: the batches' generator seed.
        v_init: where ``V`` starts, ``W``'s shape; by default where ``h(V)``
            is the fractional part of ``W / s`` (:func:`init_rounding`), so
            the soft weights start equal to ``W``.
        progress: show a progress line on stderr.

    Float32 ``W`` and ``X`` are optimized in float32, anything else in
    float64.  The clip keeps the codes in the signed range that
    ``quantize_linear`` saturates to, extra negative code ``-2**(bits-1)``
    included.  Symmetric scales put ``W / s`` within ``+-(2**(bits-1) -
    1)``, so that code is reached only when a weight at ``-max|W|`` comes out
    just below ``-(2**(bits-1) - 1)`` steps in floating point and is then
    rounded down.  At the top, ``floor + 1`` beyond ``q_max`` is clipped
    back: ``h`` makes no difference there and gets no gradient.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> W, X = rng.normal(size=(4, 16)), rng.random((256, 16))
        >>> r = adaround(W, X, 3, iterations=200, batch_size=64)
        >>> r.codes.dtype, round(r.mse_nearest, 4), round(r.mse, 4)
        (dtype('int8'), 0.1267, 0.0528)

    Taught in ``notebooks/08_post_training_quantization.ipynb``.
    """
    W = _matrix(W, "W")
    X = _matrix(X, "X")
    if X.shape[1] != W.shape[1]:
        raise ValueError(
            f"X must have shape (N, {W.shape[1]}) for W of shape {W.shape}; "
            f"got {X.shape}"
        )
    q_min, q_max = _code_range(bits)
    steps = _integer(iterations, "iterations", 1, 2**31)
    b = _integer(batch_size, "batch_size", 1, len(X))
    if isinstance(lam, bool) or not isinstance(lam, numbers.Real):
        raise TypeError(f"lam must be a real number >= 0; got {lam!r}")
    if not lam >= 0:
        raise ValueError(f"lam must be >= 0; got {lam}")
    betas = beta_schedule(steps, warmup=warmup, beta=beta)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an integer; got {seed!r}")
    work = np.float32 if W.dtype == X.dtype == np.float32 else np.float64
    W, X = W.astype(work, copy=False), X.astype(work, copy=False)

    scale, floor, V = init_rounding(W, bits)
    if v_init is not None:
        start = _matrix(v_init, "v_init")
        if start.shape != W.shape:
            raise ValueError(f"v_init must have W's shape {W.shape}; got {start.shape}")
        V = start.astype(work)  # a copy: Adam updates V in place
    opt = Adam(lr=_positive(lr, "lr"))
    rng = np.random.default_rng(seed)
    loss, reg = np.empty(steps), np.full(steps, np.nan)
    for t in _batches(steps, 1, "adaround", progress):
        batch = X[rng.choice(len(X), b, replace=False)]
        beta_t = None if np.isnan(betas[t]) else float(betas[t])
        loss[t], reg[t], grad = objective(
            V, W, floor, scale, batch, bits, lam=lam, beta=beta_t
        )
        opt.step([V], [grad])

    h = rectified_sigmoid(V)
    nearest = quantize_linear(W, scale, bits=int(bits), axis=0)
    codes = np.clip(floor + (h >= 0.5), q_min, q_max).astype(nearest.dtype)
    mse_nearest = output_mse(W, dequantize_linear(nearest, scale, axis=0), X)
    return AdaRoundResult(
        codes=codes,
        scale=scale,
        nearest=nearest,
        h=h,
        mse_nearest=mse_nearest,
        mse=output_mse(W, dequantize_linear(codes, scale, axis=0), X),
        loss=loss,
        regularizer=reg,
    )

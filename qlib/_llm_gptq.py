"""GPTQ (Frantar et al. 2023): rounding a layer's weight one input column at
a time, each column's error moved onto the columns not yet rounded.

For one linear layer with weight ``W`` (out, in) and calibration inputs
``X`` (tokens, in), the output error ``||X W^T - X W_q^T||^2`` is a
quadratic in each row of ``W_q`` with Hessian ``H = 2 X^T X``
(:func:`hessian`).  Rounding column ``k`` to ``q`` and then moving the
other columns by ``-(w_k - q) / [H^-1]_kk * H^-1[k, :]`` is the best
correction that quadratic allows (Optimal Brain Surgeon); GPTQ does it in
a fixed column order, with the upper Cholesky factor of ``H^-1`` holding
every step's row (:func:`gptq_quantize`), and for every layer of the
model (:func:`gptq`), on the groups of :func:`qlib.ptq.quantize_weight`.

Re-exported by :mod:`qlib.llmquant`.  Taught in
``notebooks/10_llm_quantization.ipynb``.
"""

from __future__ import annotations

import numbers

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import llm
from ._llm_calibrated import SHARED_INPUTS, _split, _stacked
from .adaround import output_mse
from .linear import _integer, linear_qparams
from .ptq import fake_quantize, quantize_weight

__all__ = ["gptq", "gptq_quantize", "hessian"]


def hessian(X: ArrayLike) -> NDArray[np.float64]:
    """``H = 2 X^T X`` (in, in) in float64: the Hessian of the layer's output
    error ``||X W^T - X W_q^T||^2`` with respect to each row of ``W_q``.

    Example:
        >>> hessian([[1.0, 2.0], [0.0, 1.0]])
        array([[ 2.,  4.],
               [ 4., 10.]])
    """
    x = np.asarray(X, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"X must be 2-D (tokens, in); got shape {x.shape}")
    return 2 * x.T @ x


def _inverse_cholesky(H: np.ndarray, damp: float) -> np.ndarray:
    """Upper ``U`` with ``U^T U = (H + damp * mean(diag H) * I)^-1``."""
    h = H + damp * np.mean(np.diag(H)) * np.eye(len(H))
    l_inv = np.linalg.inv(np.linalg.cholesky(h))
    return np.linalg.cholesky(l_inv.T @ l_inv).T


def gptq_quantize(
    W: ArrayLike,
    H: ArrayLike,
    bits: int,
    group_size: int | None = 128,
    *,
    symmetric: bool = False,
    block_size: int = 128,
    damp: float = 0.01,
) -> NDArray[np.floating]:
    """GPTQ: ``W`` (out, in) rounded column by column with error feedback.

    As the reference implementation (``fasterquant``): input channels that
    never fire (``H_jj = 0``) are zeroed; ``H`` is damped by ``damp`` times
    the mean of its diagonal; ``U`` is the upper Cholesky factor of
    ``H^-1``.  Column ``k`` is rounded to ``q`` on its row's group grid
    (:func:`~qlib.linear.linear_qparams` of the group's columns, taken when
    the group's first column is reached, so from the weights as the
    earlier errors left them; ``group_size=None``: one grid per row, from
    the whole row at the start), and the error ``(w_k - q) / U_kk`` is
    subtracted from the columns after it times ``U[k, k+1:]``: inside a
    block of ``block_size`` columns at once, onto the later blocks in one
    matrix product when the block is done.  ``block_size`` must be a
    multiple of ``group_size``.  With ``H`` diagonal no error moves, and the
    result is :func:`~qlib.ptq.quantize_weight`'s rounding to nearest.

    Returns the rounded weights, in float64 (the computation's precision).

    Example:
        >>> X = np.array([[1, 1, 0, 0], [1, 1, 1, 0], [0, 0, 1, 1], [0, 1, 0, 1.0]])
        >>> W = np.array([[-0.75, -0.4, 0.15, 0.1]])
        >>> rtn = quantize_weight(W, 2, "channel", symmetric=False)
        >>> q = gptq_quantize(W, hessian(X), 2, None)
        >>> rtn.round(4), q.round(4)  # the same grid, other points on it
        (array([[-0.6, -0.3,  0. ,  0. ]]), array([[-0.6, -0.6,  0. ,  0.3]]))
        >>> round(output_mse(W, rtn, X), 4), round(output_mse(W, q, X), 4)
        (0.0338, 0.0112)
    """
    w = np.array(W, dtype=np.float64)  # a copy: the errors are written into it
    h = np.array(H, dtype=np.float64)
    if w.ndim != 2 or h.shape != (w.shape[1], w.shape[1]):
        raise ValueError(
            f"H must be (in, in) for W (out, in); got {h.shape} for {w.shape}"
        )
    if isinstance(damp, bool) or not isinstance(damp, numbers.Real) or damp < 0:
        raise ValueError(f"damp must be a real number >= 0; got {damp!r}")
    n = w.shape[1]
    block = _integer(block_size, "block_size", 1, 2**31)
    if group_size is not None:
        g = _integer(group_size, "group_size", 1, 2**31)
        if block % g:
            raise ValueError(f"block_size {block} must be a multiple of group_size {g}")
    dead = np.diag(h) == 0
    h[dead, dead] = 1
    w[:, dead] = 0
    u = _inverse_cholesky(h, float(damp))
    out = np.empty_like(w)
    grid = None
    if group_size is None:
        grid = linear_qparams(w, bits, symmetric=symmetric, axis=0)
    for i1 in range(0, n, block):
        i2 = min(i1 + block, n)
        w1 = w[:, i1:i2]  # a view: the block's columns, updated in place
        err = np.empty_like(w1)
        for j in range(i2 - i1):
            k = i1 + j
            if group_size is not None and k % g == 0:
                grid = linear_qparams(
                    w[:, k : k + g], bits, symmetric=symmetric, axis=0
                )
            q = fake_quantize(w1[:, j], *grid, bits, axis=0)
            out[:, k] = q
            err[:, j] = (w1[:, j] - q) / u[k, k]
            w1[:, j:] -= np.outer(err[:, j], u[k, k:i2])
        w[:, i2:] -= err @ u[i1:i2, i2:]
    return out


def gptq(
    model: llm.Model,
    inputs: dict[tuple[int, str], np.ndarray],
    bits: int,
    group_size: int | None = 128,
    *,
    symmetric: bool = False,
    block_size: int = 128,
    damp: float = 0.01,
) -> tuple[llm.Model, dict[tuple[int, str], tuple[float, float]]]:
    """Every linear layer quantized by :func:`gptq_quantize`, ``H`` from the
    recorded ``inputs`` (:func:`~qlib._llm_calibrated.capture_inputs` of a
    calibration text).

    Returns the model and, keyed by ``(layer, first name of the group)`` of
    :data:`~qlib._llm_calibrated.SHARED_INPUTS`, the
    :func:`qlib.adaround.output_mse` on the calibration
    inputs of round-to-nearest and of GPTQ.

    Example:
        >>> from qlib import llmquant as lq
        >>> model = lq.toy_model()
        >>> q, errors = gptq(model, lq.capture_inputs(model, [1, 2, 3, 4, 5]), 3, 32)
        >>> rtn, ours = errors[1, "ffn_gate"]
        >>> bool(ours < rtn)
        True
    """
    errors: dict[tuple[int, str], tuple[float, float]] = {}
    weights: dict[tuple[int, str], np.ndarray] = {}
    for layer in range(model.config.n_layers):
        for names in SHARED_INPUTS:
            x = inputs[layer, names[0]]
            w = _stacked(model, layer, names)
            w_q = gptq_quantize(
                w,
                hessian(x),
                bits,
                group_size,
                symmetric=symmetric,
                block_size=block_size,
                damp=damp,
            )
            granularity = "channel" if group_size is None else group_size
            rtn = quantize_weight(w, bits, granularity, symmetric=symmetric)
            errors[layer, names[0]] = (output_mse(w, rtn, x), output_mse(w, w_q, x))
            weights |= _split(w_q.astype(np.float32), model, layer, names)
    return llm.transform_weights(model, lambda w, i, n: weights[i, n]), errors

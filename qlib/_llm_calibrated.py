"""Chapter 10's methods that learn from a calibration text.

What the linear layers see on it: :func:`input_absmax` (the largest
``|x_j|`` of each input channel) and :func:`capture_inputs` (the inputs
``X`` themselves, tokens by channels); :func:`output_error`.

* **SmoothQuant** (Xiao et al. 2023) divides each input channel by
  ``s_j = max|X_j|^alpha / max|W_j|^(1 - alpha)`` and multiplies the
  weight's column by it, moving the activations' outliers into the weights
  before both are quantized to int8 -- :func:`smooth_scales`,
  :func:`smoothquant`.

AWQ and GPTQ quantize each linear layer's weight ``W`` (out, in) on the
groups of :func:`qlib.ptq.quantize_weight` and use ``X`` to choose *how*:

* **AWQ** (Lin et al. 2024, activation-aware weight quantization) scales
  input channel ``j`` of the weight by ``s_j = mean|X_j|^a`` before rounding
  and divides the input by it, ``Q(W diag(s)) diag(s)^-1``: the channels that
  carry large activations get finer steps.  The exponent ``a`` is searched
  on a grid to minimize the layer's output error -- :func:`awq_search`,
  :func:`awq`.
* **GPTQ** (Frantar et al. 2023) rounds ``W`` one input column at a time and
  moves each column's rounding error onto the columns not yet rounded, in
  the proportions the inverse Hessian ``H^-1`` (``H = 2 X^T X``) says keep
  the output ``X W^T`` closest -- :func:`gptq_quantize`, :func:`gptq`.

Layers that read the same input (the query, key and value projections after
``attn_norm``; gate and up after ``ffn_norm``) are searched together, their
rows stacked (:data:`SHARED_INPUTS`): one SmoothQuant or AWQ scale per
input channel can then be folded into the RMSNorm weight before them, and
GPTQ's rows are independent of each other anyway.  The inputs come from the
unquantized model (as llm-awq records them; GPTQ's reference code feeds each
block the output of the blocks already quantized, a refinement left out
here), on windows of the calibration text, each run from position 0
(:func:`qlib.llmquant.token_windows`).

Re-exported by :mod:`qlib.llmquant`.  Taught in
``notebooks/10_llm_quantization.ipynb``.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import llm
from .linear import _integer, linear_qparams
from .ptq import fake_quantize, quantize_weight

__all__ = [
    "SHARED_INPUTS",
    "AWQResult",
    "awq",
    "awq_search",
    "capture_inputs",
    "gptq",
    "gptq_quantize",
    "hessian",
    "input_absmax",
    "output_error",
    "smooth_scales",
    "smoothquant",
]

#: The linear layers of a block grouped by the input they read.
SHARED_INPUTS = (
    ("attn_q", "attn_k", "attn_v"),
    ("attn_output",),
    ("ffn_gate", "ffn_up"),
    ("ffn_down",),
)
# the first layer of each group, and the group
_FIRST = {group[0]: group for group in SHARED_INPUTS}


class _Seen(Exception):
    """Raised inside the forward pass once every requested layer is recorded."""


#: Token ids: one sequence, or a list of windows run one at a time.
Tokens = ArrayLike | Sequence[ArrayLike]


def _windows(token_ids: Tokens) -> list[np.ndarray]:
    if isinstance(token_ids, list | tuple) and token_ids and np.ndim(token_ids[0]):
        return [np.asarray(t) for t in token_ids]
    return [np.asarray(token_ids)]


def capture_inputs(
    model: llm.Model, token_ids: Tokens, layers: Iterable[int] | None = None
) -> dict[tuple[int, str], NDArray[np.float32]]:
    """The input ``X`` (tokens, in) of every linear layer on ``token_ids``:
    one sequence, or a list of windows (each its own forward pass from
    position 0, e.g. :func:`~qlib.llmquant.token_windows`), their
    tokens stacked in order.

    Keys are ``(layer, name)`` for every name of :data:`qlib.llm.LINEAR_LAYERS`;
    the layers of one group of :data:`SHARED_INPUTS` share one array.
    ``layers`` (default: all) limits the record to some blocks, and each
    forward pass stops after the last of them.

    Example:
        >>> from qlib.llmquant import toy_model
        >>> X = capture_inputs(toy_model(), [[1, 2, 3], [4, 5]], layers=[1])
        >>> sorted({i for i, _ in X}), X[1, "ffn_down"].shape
        ([1], (5, 96))
        >>> X[1, "attn_q"] is X[1, "attn_v"]
        True
    """
    n = model.config.n_layers
    wanted = set(range(n)) if layers is None else {int(i) for i in layers}
    if not wanted or not wanted <= set(range(n)):
        raise ValueError(f"layers must be a non-empty subset of 0..{n - 1}")
    last = max(wanted)
    seen: dict[tuple[int, str], list[np.ndarray]] = {}

    def record(x, w, layer, name):
        if layer in wanted and name in _FIRST:
            seen.setdefault((layer, name), []).append(x)
        if layer == last and name == "ffn_down":
            raise _Seen
        return x @ w.T

    for ids in _windows(token_ids):
        try:
            llm.forward(model, ids, linear=record)
        except _Seen:
            pass
    inputs = {}
    for (layer, first), xs in seen.items():
        x = np.concatenate(xs)
        inputs |= {(layer, name): x for name in _FIRST[first]}
    return inputs


def input_absmax(
    model: llm.Model, token_ids: Tokens
) -> dict[tuple[int, str], NDArray[np.float32]]:
    """Per input channel, the largest ``|x_j|`` over the tokens of
    ``token_ids`` (one sequence or a list of windows), of every linear
    layer's input (keys ``(layer, name)``).

    Example:
        >>> from qlib.llmquant import toy_model
        >>> m = input_absmax(toy_model(), [1, 2, 3])
        >>> int(m[0, "attn_q"].argmax())  # the toy model's outlier channel
        5
    """
    maxima: dict[tuple[int, str], np.ndarray] = {}

    def record(x, w, layer, name):
        top = np.abs(x).max(axis=0)
        old = maxima.get((layer, name))
        maxima[layer, name] = top if old is None else np.maximum(old, top)
        return x @ w.T

    for ids in _windows(token_ids):
        llm.forward(model, ids, linear=record)
    return maxima


def output_error(X: ArrayLike, W: ArrayLike, W_q: ArrayLike) -> float:
    """The mean squared error of the layer's outputs, ``mean((X W_q^T - X
    W^T)^2)``, computed as ``X (W_q - W)^T`` (float64 mean).

    Example:
        >>> X = np.array([[1.0, 2.0], [3.0, 4.0]])
        >>> output_error(X, np.eye(2), np.array([[1.0, 0.0], [0.0, 1.5]]))
        1.25
    """
    d = np.asarray(X) @ (np.asarray(W_q) - np.asarray(W)).T
    return float(np.mean(np.square(d, dtype=np.float64)))


# -------------------------------------------------------------- SmoothQuant


def smooth_scales(
    x_absmax: ArrayLike, w_absmax: ArrayLike, alpha: float = 0.5
) -> NDArray[np.float32]:
    """SmoothQuant's ``s_j = max|X_j|^alpha / max|W_j|^(1 - alpha)`` per
    input channel; both maxima are floored at 1e-5 and so is ``s``, as in
    the reference code.  ``X / s`` and ``W * s`` then have maxima
    ``max|X_j|^(1-alpha) max|W_j|^(1-alpha)`` and
    ``max|X_j|^alpha max|W_j|^alpha``: ``alpha`` moves the difficulty.

    Example:
        >>> smooth_scales([100.0, 1.0], [1.0, 1.0], 0.5)  # sqrt(100) and 1
        array([10.,  1.], dtype=float32)
    """
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real):
        raise TypeError(f"alpha must be a real number in [0, 1]; got {alpha!r}")
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be in [0, 1]; got {alpha}")
    xm = np.maximum(np.asarray(x_absmax, dtype=np.float64), 1e-5)
    wm = np.maximum(np.asarray(w_absmax, dtype=np.float64), 1e-5)
    if xm.shape != wm.shape or xm.ndim != 1:
        raise ValueError(
            "x_absmax and w_absmax must be 1-D of one length; got "
            f"{xm.shape}, {wm.shape}"
        )
    return np.maximum(xm**alpha / wm ** (1 - alpha), 1e-5).astype(np.float32)


_NORM_BEFORE = {"attn_q": "attn_norm", "ffn_gate": "ffn_norm"}


def smoothquant(
    model: llm.Model,
    x_absmax: dict[tuple[int, str], np.ndarray],
    alpha: float = 0.5,
) -> tuple[llm.Model, dict[tuple[int, str], NDArray[np.float32]]]:
    """The smoothed float model and the input scales it still needs.

    For each group of :data:`SHARED_INPUTS`, :func:`smooth_scales` from the
    calibration maxima ``x_absmax`` (:func:`input_absmax` of a calibration
    text) and the weight maxima over the group's stacked rows; every weight
    of the group becomes ``W * s`` (column ``j`` times ``s_j``).  Where an
    RMSNorm comes first (query/key/value, gate/up), ``1 / s`` is folded into
    its weight: nothing changes at run time.  ``attn_output`` and
    ``ffn_down`` have no norm before them: their ``s`` is returned, for
    :func:`w8a8_linear` to divide their inputs by explicitly.  (``ffn_down``'s
    ``1 / s`` could fold exactly into the rows of ``ffn_up``; ``attn_output``'s
    into ``attn_v`` only if ``s`` agreed over the query heads that share
    each key/value head.)  Before any quantization the smoothed model
    computes the same function: ``(X / s)(W s)^T = X W^T``.

    Example:
        >>> from qlib.llmquant import toy_model
        >>> model = toy_model()
        >>> ids = [1, 2, 3, 4]
        >>> smooth, scales = smoothquant(model, input_absmax(model, ids), 0.5)
        >>> sorted({n for _, n in scales})
        ['attn_output', 'ffn_down']
        >>> y = llm.forward(smooth, ids, linear=lambda x, w, i, n:
        ...     (x / scales[i, n] if (i, n) in scales else x) @ w.T)
        >>> bool(np.allclose(y, llm.forward(model, ids), atol=1e-4))
        True
    """
    layers, explicit = [], {}
    for i, old in enumerate(model.layers):
        new = dict(old)
        for names in SHARED_INPUTS:
            w_max = np.abs(np.concatenate([old[n] for n in names])).max(axis=0)
            s = smooth_scales(x_absmax[i, names[0]], w_max, alpha)
            for n in names:
                new[n] = old[n] * s
            if names[0] in _NORM_BEFORE:
                norm = _NORM_BEFORE[names[0]]
                new[norm] = old[norm] / s
            else:
                explicit[i, names[0]] = s
        layers.append(new)
    return replace(model, layers=tuple(layers)), explicit


# ---------------------------------------------------------------------- AWQ


@dataclass(frozen=True)
class AWQResult:
    """One layer's search: the chosen exponent ``ratio``, its ``scales``
    ``s``, the output error at every grid point (``errors[0]``, at ``a = 0``,
    ``s = 1``, is round-to-nearest's) and the weight ``Q(W s) / s``."""

    ratio: float
    scales: NDArray[np.float32]
    errors: NDArray[np.float64]
    weight: NDArray[np.float32]

    @property
    def error(self) -> float:
        """The output error at the chosen ratio."""
        return float(self.errors.min())


def awq_search(
    X: ArrayLike,
    W: ArrayLike,
    bits: int,
    group_size: int = 128,
    *,
    symmetric: bool = False,
    n_grid: int = 20,
) -> AWQResult:
    """AWQ's scale search for one layer (or the stacked rows of the layers
    that read ``X``).

    For each ``a = i / n_grid``, ``i = 0 .. n_grid - 1`` (llm-awq's grid:
    20 points from 0 to 0.95), the scales are ``s = max(mean|X_j|^a, 1e-4)``
    over the tokens, normalized by ``sqrt(max(s) min(s))``; the weight is
    ``quantize_weight(W * s, bits, group_size) / s`` and its
    :func:`output_error` on ``X`` is measured.  The smallest error wins (the
    first on ties).  ``a = 0`` is round-to-nearest, so the search never does
    worse than it on ``X``.  (llm-awq also searches a clipping range for
    each group afterwards: not done here.)

    Example:
        >>> rng = np.random.default_rng(0)
        >>> X = rng.standard_normal((64, 8)) * [1, 1, 1, 1, 1, 1, 1, 30]
        >>> r = awq_search(X, rng.standard_normal((4, 8)), 3, 8)
        >>> r.ratio > 0, bool(r.error < r.errors[0])  # beats rounding to nearest
        (True, True)
    """
    x = np.asarray(X)
    w = np.asarray(W)
    if x.ndim != 2 or w.ndim != 2 or x.shape[1] != w.shape[1]:
        raise ValueError(
            f"X (tokens, in) and W (out, in) must share their inputs; got "
            f"{x.shape} and {w.shape}"
        )
    n = _integer(n_grid, "n_grid", 1, 10_000)
    x_mean = np.abs(x).mean(axis=0)
    errors, candidates = [], []
    for ratio in np.arange(n) / n:
        s = np.maximum(x_mean**ratio, 1e-4)
        s = (s / np.sqrt(s.max() * s.min())).astype(w.dtype)
        w_q = quantize_weight(w * s, bits, group_size, symmetric=symmetric) / s
        errors.append(output_error(x, w, w_q))
        candidates.append((float(ratio), s, w_q))
    best = int(np.argmin(errors))
    ratio, s, w_q = candidates[best]
    return AWQResult(ratio, s, np.array(errors), w_q.astype(np.float32))


def _stacked(model: llm.Model, layer: int, names: tuple[str, ...]) -> np.ndarray:
    return np.concatenate([model.layers[layer][n] for n in names])


def _split(w: np.ndarray, model: llm.Model, layer: int, names) -> dict:
    rows = np.cumsum([model.layers[layer][n].shape[0] for n in names])[:-1]
    return {(layer, n): part for n, part in zip(names, np.split(w, rows), strict=True)}


def awq(
    model: llm.Model,
    inputs: dict[tuple[int, str], np.ndarray],
    bits: int,
    group_size: int = 128,
    *,
    symmetric: bool = False,
    n_grid: int = 20,
) -> tuple[llm.Model, dict[tuple[int, str], AWQResult]]:
    """Every linear layer quantized by :func:`awq_search` on the recorded
    ``inputs`` (:func:`capture_inputs` of a calibration text).

    Returns the model and each search, keyed by ``(layer, first name of
    the group)`` of :data:`SHARED_INPUTS`.  The model holds
    ``Q(W s) / s``, which is exactly what a deployment computes in exact
    arithmetic: ``Q(W s)`` applied to ``X / s``.  ``1 / s`` folds into the
    RMSNorm weight before the query/key/value and gate/up layers, and into
    the rows of ``ffn_up`` before ``ffn_down``; the input of
    ``attn_output`` has to be divided explicitly (llm-awq skips that layer
    when, as here with grouped key/value heads, ``attn_v`` and
    ``attn_output`` differ in shape).

    Example:
        >>> from qlib.llmquant import toy_model
        >>> model = toy_model()
        >>> q, searches = awq(model, capture_inputs(model, [1, 2, 3, 4, 5]), 3, 32)
        >>> sorted(searches)[:2], q.layers[0]["attn_k"].shape
        ([(0, 'attn_output'), (0, 'attn_q')], (32, 64))
    """
    searches: dict[tuple[int, str], AWQResult] = {}
    weights: dict[tuple[int, str], np.ndarray] = {}
    for layer in range(model.config.n_layers):
        for names in SHARED_INPUTS:
            r = awq_search(
                inputs[layer, names[0]],
                _stacked(model, layer, names),
                bits,
                group_size,
                symmetric=symmetric,
                n_grid=n_grid,
            )
            searches[layer, names[0]] = r
            weights |= _split(r.weight, model, layer, names)
    return llm.transform_weights(model, lambda w, i, n: weights[i, n]), searches


# --------------------------------------------------------------------- GPTQ


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
        >>> round(output_error(X, W, rtn), 4), round(output_error(X, W, q), 4)
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
    recorded ``inputs`` (:func:`capture_inputs` of a calibration text).

    Returns the model and, keyed by ``(layer, first name of the group)`` of
    :data:`SHARED_INPUTS`, the :func:`output_error` on the calibration
    inputs of round-to-nearest and of GPTQ.

    Example:
        >>> from qlib.llmquant import toy_model
        >>> model = toy_model()
        >>> q, errors = gptq(model, capture_inputs(model, [1, 2, 3, 4, 5]), 3, 32)
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
            errors[layer, names[0]] = (output_error(x, w, rtn), output_error(x, w, w_q))
            weights |= _split(w_q.astype(np.float32), model, layer, names)
    return llm.transform_weights(model, lambda w, i, n: weights[i, n]), errors

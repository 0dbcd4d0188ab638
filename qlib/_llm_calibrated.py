"""Chapter 10's methods that learn from a calibration text.

What the linear layers see on it: :func:`input_absmax` (the largest
``|x_j|`` of each input channel) and :func:`capture_inputs` (the inputs
``X`` themselves, tokens by channels).  How close a quantized layer's
output stays is chapter 08's :func:`qlib.adaround.output_mse`.

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
  the output ``X W^T`` closest -- :func:`~qlib._llm_gptq.gptq_quantize`,
  :func:`~qlib._llm_gptq.gptq` (in ``qlib._llm_gptq``).

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
from .adaround import output_mse
from .linear import _integer
from .ptq import quantize_weight

__all__ = [
    "SHARED_INPUTS",
    "AWQResult",
    "awq",
    "awq_search",
    "capture_inputs",
    "input_absmax",
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
    :func:`qlib.adaround.output_mse` on ``X`` is measured.  The smallest error wins (the
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
        errors.append(output_mse(w, w_q, x))
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

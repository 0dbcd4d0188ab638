"""Chapter 10's :class:`SmoothingExplorer`: SmoothQuant's ``alpha`` on one
layer's input, the difficulty moving between activations and weights.

Re-exported by :mod:`qlib.widgets.llm`.  Taught in
``notebooks/10_llm_quantization.ipynb``.
"""

from __future__ import annotations

import functools

import ipywidgets as widgets
import numpy as np
from numpy.typing import ArrayLike

from .. import llm
from .. import llmquant as lq
from .._llm_calibrated import _stacked
from ..linear import _integer
from ..plot import COLORS, new_figure
from ..ptq import quantize_weight
from ..signals import _db
from ._explorer import Explorer, _png_view

__all__ = ["SmoothingExplorer", "strongest_outlier"]

ALPHAS = np.round(np.arange(21) * 0.05, 2)  # the slider's grid
SAMPLE = 256  # activations (tokens) the output error is measured on


def strongest_outlier(results: dict | None = None) -> tuple[int, str]:
    """``(layer, input_of)`` of the linear input whose largest channel
    maximum is the most times its median channel's, in the table's
    ``outliers`` entry (measured on the evaluation text).

    Example:
        >>> strongest_outlier()
        (11, 'ffn_down')
    """
    rows = (lq.load_results() if results is None else results)["entries"]["outliers"]
    top = max(rows["layers"], key=lambda r: r["max"] / r["median"])
    return top["layer"], top["input_of"]


def _group(name: str) -> tuple[str, ...]:
    """The layers of :data:`qlib.llmquant.SHARED_INPUTS` that read ``name``'s input."""
    for group in lq.SHARED_INPUTS:
        if name in group:
            return group
    raise ValueError(
        f"input_of must be one of {', '.join(llm.LINEAR_LAYERS)}; got {name!r}"
    )


def _layer_arrays(
    model: llm.Model, layer: int, input_of: str, token_ids, tokens: int, captured=None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The first ``tokens`` inputs of ``layer``'s group ``input_of`` on
    ``token_ids`` (windows), their per-channel maxima over all of them, and
    the group's weights stacked as :func:`qlib.llmquant.smoothquant` does.
    ``captured``: those inputs already captured, as
    :func:`qlib.llmquant.capture_inputs` returns them."""
    layer = _integer(layer, "layer", 0, model.config.n_layers - 1)
    names = _group(input_of)
    if captured is None:
        captured = lq.capture_inputs(model, token_ids, layers=[layer])
    X = captured.get((layer, names[0])) if isinstance(captured, dict) else None
    if X is None:
        raise ValueError(
            f"captured must hold the inputs of layer {layer}'s {names[0]}, as "
            f"lq.capture_inputs(model, windows, layers=[{layer}]) returns them"
        )
    X = np.asarray(X)
    W = _stacked(model, layer, names)
    if X.ndim != 2 or X.shape[1] != W.shape[1]:
        raise ValueError(
            f"captured[{layer}, {names[0]!r}] must be (tokens, {W.shape[1]}); "
            f"got shape {X.shape}"
        )
    return X[:tokens], W, np.abs(X).max(axis=0)


@functools.cache
def _toy_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The toy model's query/key/value input of block 0, on 256 seeded tokens."""
    ids = np.random.default_rng(0).integers(0, 256, 256)
    return _layer_arrays(lq.toy_model(), 0, "attn_q", lq.token_windows(ids), SAMPLE)


def _difficulty(m: np.ndarray) -> tuple[float, float]:
    """Largest over median channel maximum, and how many int8 steps (one
    per-tensor scale, max / 127) the median channel's maximum spans."""
    ratio = float(m.max() / np.median(m))
    return ratio, 127 / ratio


class SmoothingExplorer(Explorer):
    """SmoothQuant on one layer: slide ``alpha`` and watch the difficulty of
    quantizing move between the activations and the weights.

    Each input channel ``j`` is divided by ``s_j = max|X_j|^alpha /
    max|W_j|^(1 - alpha)`` (:func:`qlib.llmquant.smooth_scales`) and the
    weight's column ``j`` multiplied by it: ``(X / s)(W s)^T = X W^T``.
    Panels: the per-channel maxima of ``X / s`` and of ``W s`` (by channel,
    one log scale; grey: before smoothing), each titled with its difficulty
    (the largest channel maximum over the median one, and how many int8
    steps of a per-tensor scale the median channel spans); the int8 layer
    (activations per tensor, weights per channel: the chapter's W8A8) on
    ``X`` against ``alpha``, as the median over the tokens of each token's
    output SQNR (a few attention-sink tokens hold almost all of the output's
    power: an SQNR over the whole output would see only them), beside the
    unsmoothed layer with activations per tensor and per token.

    ``X`` (tokens, channels) is a sample of the layer's inputs, ``W`` (out,
    channels) its weight, ``x_absmax`` the calibration maxima (default: those
    of ``X``).  :meth:`from_model` takes them from the model; without
    arguments, the toy model's (:func:`qlib.llmquant.toy_model`) first
    query/key/value input, whose channel 5 is an outlier.

    Example:
        >>> ex = SmoothingExplorer(alpha=0.5)  # at 0.5 both maxima are sqrt(x w)
        >>> bool(np.allclose(ex.x_smoothed, ex.w_smoothed))
        True
        >>> ex.controls["alpha"].value = 0.0  # every weight channel's maximum is 1
        >>> bool(np.allclose(ex.w_smoothed, 1))
        True
    """

    title = "SmoothQuant explorer"

    def __init__(
        self,
        X: ArrayLike | None = None,
        W: ArrayLike | None = None,
        *,
        x_absmax: ArrayLike | None = None,
        alpha: float = 0.5,
        label: str | None = None,
    ) -> None:
        lq.smooth_scales([1.0], [1.0], alpha)  # checks alpha
        if X is None and W is None and x_absmax is None:
            X, W, x_absmax = _toy_arrays()
            label = label or "toy model, layer 0, input of attn_q, attn_k, attn_v"
        elif X is None or W is None:
            raise TypeError("X and W must be given together (or neither)")
        self.X, self.W = _matrix(X, "X"), _matrix(W, "W")
        c = self.X.shape[1]
        if self.W.shape[1] != c:
            raise ValueError(
                f"W must have one column per channel of X ({c}); got {self.W.shape}"
            )
        xm = np.abs(self.X).max(axis=0) if x_absmax is None else np.asarray(x_absmax)
        if xm.shape != (c,) or not np.isfinite(xm).all() or (xm < 0).any():
            raise ValueError(
                f"x_absmax must be {c} finite maxima >= 0, one per channel; got "
                f"shape {xm.shape}"
            )
        self.x_absmax = xm.astype(np.float32)
        self.w_absmax = np.abs(self.W).max(axis=0)
        self.label = label or f"{c} input channels, {self.W.shape[0]} outputs"
        self.sqnr = self._sqnr_curve()
        self.controls = {
            "alpha": widgets.FloatSlider(
                value=alpha, min=0, max=1, step=0.05, description="alpha",
                readout_format=".2f",
            )
        }  # fmt: skip
        self.view = _png_view()
        self.fig, (self.ax_x, self.ax_w, self.ax_e) = new_figure(
            1, 3, figsize=(10.4, 3.6), gridspec_kw={"width_ratios": [1.3, 1.3, 1.0]}
        )
        self._panels()
        self.moving = [self.x_line, self.w_line, self.dot, *self.notes, self.note_e]
        self._finish()

    @classmethod
    def from_model(
        cls,
        model: llm.Model,
        layer: int | None = None,
        input_of: str | None = None,
        *,
        alpha: float = 0.5,
        token_ids=None,
        tokens: int = SAMPLE,
        captured: dict | None = None,
    ) -> SmoothingExplorer:
        """The explorer of ``model``'s block ``layer``, on the input read by
        ``input_of`` (``"attn_q"``, ``"attn_output"``, ``"ffn_gate"``,
        ``"ffn_down"``, or any layer of their groups; the weights of a
        group, e.g. query, key and value, stacked).  Default: the strongest
        outlier of the chapter's table (:func:`strongest_outlier`).
        ``x_absmax`` are the maxima over ``token_ids`` (default: the
        calibration text in windows of 64 tokens, as the chapter's
        SmoothQuant), ``X`` their first ``tokens`` inputs (four windows:
        each window's first token, the attention sink, carries the
        outliers).  About 1.5 s for layer 11 of SmolLM2-135M, most of it
        running the model; ``captured``, the inputs of that layer already
        captured by :func:`qlib.llmquant.capture_inputs` (on those windows),
        skips that.

        On SmolLM2-135M, ``SmoothingExplorer.from_model(llm.load_model())``
        shows layer 11's ``ffn_down`` (``X`` 256 by 1536, ``W`` 576 by 1536).

        Example:
            >>> toy = lq.toy_model()  # query, key and value: 64 + 32 + 32 rows
            >>> ex = SmoothingExplorer.from_model(toy, 1, "attn_k", token_ids=[1, 2, 3])
            >>> ex.X.shape, ex.W.shape, ex.label
            ((3, 64), (128, 64), 'layer 1, input of attn_q, attn_k, attn_v')
        """
        if layer is None and input_of is None:
            layer, input_of = strongest_outlier()
        elif layer is None or input_of is None:
            raise TypeError("layer and input_of must be given together (or neither)")
        if token_ids is None and captured is None:
            ids = llm.encode(model, lq.calibration_text())
            token_ids = lq.token_windows(ids)
        n = _integer(tokens, "tokens", 1, 2**31)
        X, W, xm = _layer_arrays(model, layer, input_of, token_ids, n, captured)
        names = ", ".join(_group(input_of))
        return cls(
            X, W, x_absmax=xm, alpha=alpha, label=f"layer {layer}, input of {names}"
        )

    def scales(self, alpha: float) -> np.ndarray:
        """SmoothQuant's ``s`` at ``alpha``, from the maxima of ``X`` and ``W``."""
        return lq.smooth_scales(self.x_absmax, self.w_absmax, alpha)

    def _sqnr_curve(self) -> dict:
        """The median token's output SQNR (dB) at every alpha of the slider,
        and unsmoothed with activations per tensor and per token."""
        X, W = self.X, self.W
        Y = X @ W.T
        power = np.sum(np.square(Y, dtype=np.float64), axis=1)

        def median_db(x_q: np.ndarray, w_q: np.ndarray) -> float:
            noise = np.sum(np.square(x_q @ w_q.T - Y, dtype=np.float64), axis=1)
            return float(np.median(_db(power, noise)))

        w8 = quantize_weight(W, 8, "channel")
        curve = []
        for a in ALPHAS:
            s = self.scales(float(a))
            x_q = lq.quantize_activation(X / s, "tensor")
            curve.append(median_db(x_q, quantize_weight(W * s, 8, "channel")))
        return {
            "alpha": np.array(curve),
            "tensor": median_db(lq.quantize_activation(X, "tensor"), w8),
            "token": median_db(lq.quantize_activation(X, "token"), w8),
        }

    def _panels(self) -> None:
        c = np.arange(self.X.shape[1])
        ends = [self.x_absmax, self.w_absmax]
        for a in (0.0, 1.0):  # log maxima are linear in alpha: the ends bound them
            s = self.scales(a)
            ends += [self.x_absmax / s, self.w_absmax * s]
        values = np.concatenate(ends)
        values = values[values > 0]
        self.notes, lines = [], []
        for ax, m, what, color in (
            (self.ax_x, self.x_absmax, "activations $X/s$", COLORS["blue"]),
            (self.ax_w, self.w_absmax, "weights $W s$", COLORS["orange"]),
        ):
            ax.plot(c, m, color="0.75", lw=0.8, label="before smoothing")
            lines += ax.plot(c, m, color=color, lw=0.8)
            ax.set(
                yscale="log", ylim=(values.min() / 2, values.max() * 8),
                xlim=(-0.5, c[-1] + 0.5), xlabel="input channel $j$",
                ylabel="largest |value| per channel",
            )  # fmt: skip
            ax.set_title(what, fontsize=10)
            self.notes.append(
                ax.text(0.02, 0.97, "", transform=ax.transAxes, va="top", fontsize=8)
            )
        self.x_line, self.w_line = lines
        self.ax_x.legend(fontsize=7, loc="lower right")
        ax = self.ax_e
        ax.plot(ALPHAS, self.sqnr["alpha"], "-", color=COLORS["green"], lw=1.5)
        for key, ls in (("tensor", "--"), ("token", ":")):
            ax.axhline(
                self.sqnr[key], color=COLORS["black"], ls=ls, lw=1,
                label=f"unsmoothed, per {key}",
            )  # fmt: skip
        (self.dot,) = ax.plot([], [], "o", color=COLORS["vermillion"], ms=7)
        top = max(self.sqnr["alpha"].max(), self.sqnr["token"])
        low = min(self.sqnr["alpha"].min(), self.sqnr["tensor"])
        ax.set(
            xlim=(-0.03, 1.03), ylim=(low - 3, top + 3), xlabel=r"$\alpha$",
            ylabel="SQNR of the median token (dB)",
        )  # fmt: skip
        ax.set_title("int8 output (W8A8)", fontsize=10)
        ax.legend(fontsize=7, loc="center left")
        self.note_e = ax.text(0.03, 0.97, "", transform=ax.transAxes, va="top")
        self.note_e.set_fontsize(8)
        self.fig.suptitle(f"SmoothQuant, {self.label}", fontsize=10)

    def _redraw(self) -> None:
        k = int(np.clip(round(self.controls["alpha"].value / 0.05), 0, ALPHAS.size - 1))
        self.alpha = a = float(ALPHAS[k])
        s = self.scales(a)
        self.x_smoothed = self.x_absmax / s
        self.w_smoothed = self.w_absmax * s
        self.x_line.set_ydata(self.x_smoothed)
        self.w_line.set_ydata(self.w_smoothed)
        self.difficulty = {}
        smoothed = (self.x_smoothed, self.w_smoothed)
        for key, note, m in zip("xw", self.notes, smoothed, strict=True):
            ratio, steps = self.difficulty[key] = _difficulty(m)
            note.set_text(
                f"largest / median channel: {ratio:.3g}\n"
                f"median channel: {steps:.3g} int8 steps"
            )
        self.output_sqnr = float(self.sqnr["alpha"][k])
        self.dot.set_data([a], [self.output_sqnr])
        self.note_e.set_text(f"alpha {a:.2f}: {self.output_sqnr:.1f} dB")


def _matrix(a: ArrayLike, name: str) -> np.ndarray:
    m = np.asarray(a)
    if m.ndim != 2 or m.dtype.kind not in "iuf" or not np.isfinite(m).all():
        raise ValueError(
            f"{name} must be a 2-D array of finite numbers; got shape {m.shape}"
        )
    return m.astype(np.float32)

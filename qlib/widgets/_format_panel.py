"""The figure of :class:`~qlib.widgets.floats.FormatHistogram`, one per x axis.

A sample's histogram over a format's grid (scaled into data units) and each
value's error, drawn from the state the explorer computes through
:mod:`qlib.mx`.  Kept apart so that the explorer's module reads as wiring.

Taught in ``notebooks/05_low_precision_floats.ipynb``.
"""

from __future__ import annotations

import math

import numpy as np
from matplotlib.patches import Rectangle

from .. import floats as _floats
from ..plot import COLORS, Layers, new_figure

__all__ = ["FormatPanel", "grid_in_data_units"]


def grid_in_data_units(fmt: _floats.FloatFormat, scale: float) -> np.ndarray:
    """The format's positive values over ``scale``: every one for a format of
    at most 12 bits, else the smallest subnormal and one per binade."""
    if fmt.bits <= 12:
        return fmt.positive_values() / scale
    e = np.arange(1 - fmt.bias, int(np.floor(np.log2(fmt.max))) + 1)
    return np.concatenate([[fmt.min_subnormal], np.ldexp(1.0, e)]) / scale


class FormatPanel:
    """One figure of :class:`~qlib.widgets.floats.FormatHistogram`: an x axis
    (the value over the sample's largest magnitude, or log2 of the magnitude),
    its artists and its kept picture; :meth:`paint` draws a state."""

    def __init__(self, axis: str, samples: dict, amax: dict) -> None:
        self.axis = axis
        if axis == "value":
            self.lim, self.edges = (-1.05, 1.05), np.linspace(-1.05, 1.05, 211)
            xlabel = "value / max|x| of the sample"
        else:
            self.lim, self.edges = (-20.0, 8.0), np.linspace(-20, 8, 169)
            xlabel = r"$\log_2 |x|$"
        self.u = {k: self.coordinate(x, amax[k]) for k, x in samples.items()}
        self.counts = {
            k: np.maximum(np.histogram(u, self.edges)[0], 0.7)
            for k, u in self.u.items()
        }
        self.fig, (self.ax, self.ax_err) = new_figure(2, 1, figsize=(6.4, 4.8))
        ax, top = self.ax, 1e4  # the band above 1e4 keeps the legend clear
        self.hist = ax.stairs(
            self.counts["normal"],
            self.edges,
            fill=True,
            color=COLORS["sky"],
            baseline=0.7,
            label="data",
        )
        # one line with breaks (NaN) between the grid's vertical strokes: one
        # path to transform onto the log axis, not one per stroke
        (self.grid,) = ax.plot(
            [], [], color=COLORS["vermillion"], lw=0.6, label="format's grid (scaled)"
        )
        self.spans = [
            Rectangle(
                (0, 0.7),
                0,
                top - 0.7,
                color=colour,
                alpha=0.18,
                lw=0,
                label=label,
                zorder=0.5,
            )
            for colour, label in (
                (COLORS["purple"], "rounds to 0"),
                (COLORS["orange"], "saturates"),
                (COLORS["orange"], None),
            )
        ]
        for span in self.spans:
            ax.add_patch(span)
        ax.set(
            xlim=self.lim, ylim=(0.7, 2e5), yscale="log", ylabel="count", xlabel=xlabel
        )
        ax.legend(loc="upper right", ncol=4, fontsize=8, frameon=False)
        ax.set_title(" \n ", fontsize=9)
        err = self.ax_err
        (self.dots,) = err.plot(
            [], [], ".", ms=1.5, color=COLORS["blue"], label="each value"
        )
        (self.bound,) = err.plot(
            [],
            [],
            color=COLORS["black"],
            lw=0.9,
            drawstyle="steps-post",
            label="half the gap (largest rounding error)",
        )
        (self.diagonal,) = err.plot(
            [], [], ":", color=COLORS["purple"], lw=1.2, label="|error| = |x|: flushed"
        )
        err.set(
            xlim=self.lim,
            ylim=(1e-8, 1e5),
            yscale="log",
            xlabel=xlabel,
            ylabel="|error| (data units)",
        )
        err.legend(loc="upper right", ncol=3, fontsize=8, frameon=False)
        # a fixed layout: constrained layout costs 0.3 s per figure here
        self.fig.set_layout_engine("none")
        ax.set_position([0.1, 0.58, 0.88, 0.33])
        err.set_position([0.1, 0.09, 0.88, 0.36])
        self.moving = [
            self.hist,
            self.grid,
            *self.spans,
            self.dots,
            self.bound,
            self.diagonal,
            ax.title,
        ]
        self.layers: Layers | None = None

    def coordinate(self, x: np.ndarray, amax: float) -> np.ndarray:
        if self.axis == "value":
            return x / amax
        with np.errstate(divide="ignore"):
            return np.log2(np.abs(x))

    def paint(
        self,
        data: str,
        error: np.ndarray,
        amax: float,
        fmt: _floats.FloatFormat,
        scale: float | None,
        top: float | None,
        title: str,
    ) -> None:
        """Draw sample ``data`` (largest magnitude ``amax``) and its ``error``;
        with a per-tensor ``scale`` (``top`` mapped to ``fmt.max``) also the
        format's grid in data units, the bands that round to zero and
        saturate, and half the gap between neighbouring values."""
        self.hist.set_data(self.counts[data], self.edges)
        u = self.u[data][::4]  # a quarter of the points shows the shape
        self.dots.set_data(u, np.maximum(np.abs(error[::4]), 1.5e-8))
        lo, hi = self.lim
        if self.axis == "value":
            g = np.geomspace(1e-9, hi, 40)
            self.diagonal.set_data(
                np.concatenate([-g[::-1], g]), np.concatenate([g[::-1], g]) * amax
            )
        else:
            self.diagonal.set_data([lo, hi], [2.0**lo, 2.0**hi])
        line_top = 1e4
        if scale is not None:
            grid = grid_in_data_units(fmt, scale)
            half_gap = fmt.ulp(grid * scale) / 2 / scale
            thr = fmt.min_subnormal / 2 / scale
            if self.axis == "value":
                ticks = np.concatenate([-grid, grid]) / amax
                # steps-post: a segment takes the y of its left end, and on the
                # negative side [-g[k+1], -g[k]) has the gap above g[k]
                bx = np.concatenate([-grid[::-1], [0.0], grid]) / amax
                first = [grid[0] / 2] * 2  # (-g[0], g[0]) rounds to 0 or +-g[0]
                by = np.concatenate([half_gap[-2::-1], first, half_gap])
                spans = [(-thr / amax, thr / amax), (top / amax, hi), (lo, -top / amax)]
            else:
                ticks = np.log2(grid)
                bx, by = ticks, half_gap
                spans = [(lo, math.log2(thr)), (math.log2(top), hi), (hi, hi)]
            ticks = ticks[(ticks >= lo) & (ticks <= hi)]
            if ticks.size > 300:  # too dense to draw line by line: every k-th
                ticks = ticks[:: int(np.ceil(ticks.size / 300))]
            strokes = np.full((ticks.size, 3), np.nan)
            strokes[:, :2] = ticks[:, None]
            heights = np.tile([0.7, line_top, np.nan], ticks.size)
            self.grid.set_data(strokes.ravel(), heights)
            self.bound.set_data(bx, by)
        else:
            spans = [(hi, hi)] * 3
            self.grid.set_data([], [])
            self.bound.set_data([], [])
        for rect, (a, b) in zip(self.spans, spans, strict=True):
            a, b = max(a, lo), min(b, hi)
            rect.set_x(a)
            rect.set_width(max(b - a, 0.0))
        self.ax.set_title(title, fontsize=9)

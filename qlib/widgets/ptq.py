"""The explorer of chapter 08: where to clip a layer's activations.

Built on :mod:`qlib.ptq`, :mod:`qlib.calibrate` and the course's
LeNet-300-100.  Taught in ``notebooks/08_post_training_quantization.ipynb``.
"""

from __future__ import annotations

import functools

import ipywidgets as widgets
import numpy as np

from .. import data as _data
from .. import nn as _nn
from .. import ptq as _ptq
from ..plot import COLORS, new_figure
from ..quantnet import calibration_images
from ._explorer import Explorer, _png_view

__all__ = ["ClippingExplorer"]

BITS = tuple(range(2, 9))
GRID = 64  # thresholds t = max * k / GRID, k = 1..GRID
SAMPLE = 50_000  # non-zero activations the MSE curves are measured on


@functools.cache
def _tables() -> dict:
    """Computed once per process: fc1's activations (after its ReLU) on the
    5,000 calibration images, their histogram, and for every width the MSE
    of clipping at each grid threshold and quantizing (on a seeded sample of
    the non-zero activations; the zeros are exact codes); fc1's activations
    on the 10,000 test images, from which an event computes the error rate."""
    model = _nn.load_lenet()
    fc1 = model.dense[0]
    a = np.maximum(fc1.forward(_nn.preprocess(calibration_images())), 0).ravel()
    nonzero = a[a > 0]
    a_max = float(nonzero.max())
    rng = np.random.default_rng(0)
    sample = rng.choice(nonzero, min(SAMPLE, nonzero.size), replace=False)
    share = nonzero.size / a.size
    grid = a_max * np.arange(1, GRID + 1) / GRID
    mse = {}
    for bits in BITS:
        curve = []
        for t in grid:
            s, z = _ptq._act_qparams(0.0, float(t), bits)
            back = _ptq.fake_quantize(np.minimum(sample, t), s, z, bits, signed=False)
            curve.append(share * float(np.mean(np.square(sample - back))))
        mse[bits] = np.array(curve)
    edges = np.linspace(0, a_max, 121)
    images, labels = _data.load_mnist("test")
    x = _nn.preprocess(images)
    x1 = np.maximum(fc1.forward(x), 0)
    flat = np.flatnonzero(x1)  # the zeros stay zeros at every (bits, t)
    return {
        "model": model,
        "a_max": a_max,
        "share": share,
        "grid": grid,
        "mse": mse,
        "hist": np.histogram(nonzero, edges)[0],
        "sorted": np.sort(nonzero),
        "edges": edges,
        "x1_shape": x1.shape,
        "x1_flat": flat,
        "x1_values": x1.ravel()[flat],
        "labels": labels,
        "fp32_error": _nn.error_rate(model, x, labels),
    }


class ClippingExplorer(Explorer):
    """Clip LeNet-300-100's fc1 activations at ``t`` and quantize them to
    ``bits``-bit unsigned codes (``[0, t]`` on ``2**bits`` levels,
    :func:`qlib.ptq.simulate`'s quantizer), the other layers float.

    Controls: ``bits`` (2-8) and ``clip`` (the threshold ``t``, on a grid of
    64 steps up to the largest activation of the calibration images: the
    min-max choice).  Panels: the histogram of fc1's non-zero activations
    (log scale; 73 % are exactly 0) with the clipped part shaded and the
    quantization levels marked; below, the mean squared error of clipping
    and rounding against ``t`` at this width, with the best grid threshold
    and ``t`` marked.  The title gives the clipped share, the MSE and the
    error rate on the 10,000 test images.

    Example:
        >>> ex = ClippingExplorer(bits=4)
        >>> ex.t == float(ex.grid[-1])  # min-max
        True
        >>> ex.controls["clip"].value = ex.best_t
        >>> ex.mse < float(ex.curve[-1])
        True

    Taught in ``notebooks/08_post_training_quantization.ipynb``.
    """

    title = "clipping explorer"

    def __init__(self, bits: int = 4, clip: float | None = None) -> None:
        if bits not in BITS:
            raise ValueError(f"bits must be an integer in [2, 8]; got {bits!r}")
        self.tables = tab = _tables()
        self.grid = tab["grid"]
        step = float(self.grid[0])
        t = float(self.grid[-1]) if clip is None else clip
        if not step <= t <= self.grid[-1]:
            raise ValueError(
                f"clip must be in [{step:.4g}, {self.grid[-1]:.4g}]; got {clip!r}"
            )
        self._errors: dict = {}
        self.controls = {
            "bits": widgets.IntSlider(value=bits, min=2, max=8, description="bits"),
            "clip": widgets.FloatSlider(
                value=t, min=step, max=float(self.grid[-1]), step=step,
                description="clip t", readout_format=".2f",
            ),
        }  # fmt: skip
        self.view = _png_view()
        self.fig, (self.ax, self.ax_mse) = new_figure(
            2, 1, figsize=(6.4, 5.4), gridspec_kw={"height_ratios": [1.2, 1.0]}
        )
        self._panels()
        self.moving = [
            self.clipped, self.t_lines[0], self.t_lines[1], self.levels,
            self.curve_line, self.best, self.here, self.ax.title,
        ]  # fmt: skip
        self._finish()

    def _panels(self) -> None:
        tab, ax, axm = self.tables, self.ax, self.ax_mse
        edges, hist = tab["edges"], tab["hist"]
        ax.stairs(hist, edges, fill=True, color=COLORS["blue"], alpha=0.6, lw=0)
        ax.set(
            yscale="log", xlim=(0, tab["a_max"]), ylim=(0.5, hist.max() * 3),
            ylabel="count (non-zero)",
        )  # fmt: skip
        self.clipped = ax.axvspan(0, 0, color=COLORS["vermillion"], alpha=0.15, lw=0)
        self.t_lines = [ax.axvline(0, color=COLORS["vermillion"], lw=1.5)]
        (self.levels,) = ax.plot(
            [], [], "|", color=COLORS["black"], ms=8, transform=ax.get_xaxis_transform()
        )
        axm.set(
            yscale="log", xlim=(0, tab["a_max"]), ylabel="MSE",
            xlabel="clip threshold $t$ (fc1 activation)",
        )  # fmt: skip
        lo = min(float(c.min()) for c in tab["mse"].values())
        hi = max(float(c.max()) for c in tab["mse"].values())
        axm.set_ylim(lo / 2, hi * 2)
        (self.curve_line,) = axm.plot([], [], color=COLORS["blue"], lw=1.5)
        (self.best,) = axm.plot(
            [], [], "v", color=COLORS["green"], ms=7, label="smallest MSE on the grid"
        )
        (self.here,) = axm.plot(
            [], [], "o", color=COLORS["vermillion"], ms=6, label="$t$"
        )
        self.t_lines.append(axm.axvline(0, color=COLORS["vermillion"], lw=1, ls=":"))
        axm.legend(loc="upper right", fontsize=8)

    def _error_rate(self, bits: int, k: int) -> float:
        if (bits, k) not in self._errors:
            tab = self.tables
            t = float(self.grid[k])
            s, z = _ptq._act_qparams(0.0, t, bits)
            a = np.zeros(tab["x1_shape"], np.float32)
            a.ravel()[tab["x1_flat"]] = _ptq.fake_quantize(
                tab["x1_values"], s, z, bits, signed=False
            )
            for layer in tab["model"].layers[2:]:
                a = layer.forward(a)
            self._errors[bits, k] = float(np.mean(a.argmax(axis=1) != tab["labels"]))
        return self._errors[bits, k]

    def _redraw(self) -> None:
        tab = self.tables
        bits = self.controls["bits"].value
        k = int(
            np.clip(round(self.controls["clip"].value / self.grid[0]) - 1, 0, GRID - 1)
        )
        self.t = t = float(self.grid[k])
        self.curve = curve = tab["mse"][bits]
        self.mse = float(curve[k])
        self.best_t = float(self.grid[int(np.argmin(curve))])
        self.error = self._error_rate(bits, k)
        a_max = tab["a_max"]
        self.clipped.set_x(t)
        self.clipped.set_width(a_max - t)
        for line in self.t_lines:
            line.set_xdata([t, t])
        n = 2**bits
        marks = t * np.arange(n) / (n - 1) if n <= 64 else np.array([])
        self.levels.set_data(marks, np.full(marks.shape, 0.02))
        self.curve_line.set_data(self.grid, curve)
        self.best.set_data([self.best_t], [curve.min()])
        self.here.set_data([t], [self.mse])
        kept = np.searchsorted(tab["sorted"], t, side="right")
        self.clipped_share = 1 - kept / tab["sorted"].size
        self.ax.set_title(
            f"{bits} bits, t = {t:.2f} ({t / a_max:.0%} of the maximum): "
            f"{self.clipped_share:.3%} of the non-zero values clipped\n"
            f"MSE {self.mse:.2e} (best on the grid {curve.min():.2e} at "
            f"t = {self.best_t:.2f}); test error {self.error:.2%} "
            f"(float {tab['fp32_error']:.2%})",
            fontsize=9,
        )

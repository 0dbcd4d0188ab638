"""The explorer of chapter 06: K-means weight sharing of the course's LeNet-300-100.

Built on :mod:`qlib.kmeans`, :mod:`qlib.nn` and :mod:`qlib.data`.  Taught in
``notebooks/06_kmeans_quantization.ipynb``.
"""

from __future__ import annotations

import functools

import ipywidgets as widgets
import numpy as np

from .. import data as _data
from .. import kmeans as _km
from .. import kmeansnet as _kmn
from .. import nn as _nn
from ..plot import COLORS, new_figure
from ._explorer import Explorer, _png_view

__all__ = ["KMeansExplorer"]

LAYERS = ("fc1", "fc2", "fc3")
BITS = tuple(range(1, 9))
_TIMES = "\N{MULTIPLICATION SIGN}"


@functools.cache
def _tables() -> dict:
    """Everything the explorer shows, computed once per process: for every
    width 1-8, the codebooks of :func:`qlib.kmeansnet.quantize_model` (every
    layer at that width), how many weights share each centroid, the test
    error on all 10,000 MNIST test images, and the storage; the float32 test
    error; each layer's weight histogram.  Arrays are read-only."""
    model = _nn.load_lenet()
    images, labels = _data.load_mnist("test")
    x = _nn.preprocess(images)
    tables: dict = {
        "fp32_error": _nn.error_rate(model, x, labels),
        "shapes": [layer.W.shape for layer in model.dense],
        "codebooks": {},
        "counts": {},
        "error": {},
        "storage": {},
        "hist": [],
    }
    for bits in BITS:
        quantized, codebooks, indices = _kmn.quantize_model(model, bits)
        tables["codebooks"][bits] = codebooks
        tables["counts"][bits] = [
            np.bincount(i.ravel(), minlength=len(c))
            for c, i in zip(codebooks, indices, strict=True)
        ]
        tables["error"][bits] = _nn.error_rate(quantized, x, labels)
        tables["storage"][bits] = _kmn.kmeans_storage(model, bits)
    # one set of bins for every layer: the axes stay put when the layer changes
    lo = min(float(layer.W.min()) for layer in model.dense)
    hi = max(float(layer.W.max()) for layer in model.dense)
    edges = np.linspace(lo, hi, KMeansExplorer.n_bins + 1)
    for layer in model.dense:
        tables["hist"].append((np.histogram(layer.W, bins=edges)[0], edges))
    for arrays in (*tables["codebooks"].values(), *tables["counts"].values()):
        for a in arrays:
            a.setflags(write=False)
    for counts, edges in tables["hist"]:
        counts.setflags(write=False)
        edges.setflags(write=False)
    return tables


def _kb(bits: int) -> str:
    return f"{bits / 8000:.1f} kB"


class KMeansExplorer(Explorer):
    """K-means weight sharing of LeNet-300-100 at 1-8 bits, layer by layer.

    Controls: ``bits`` (1-8), the index width of every layer, and ``layer``
    (``"fc1"`` 784 to 300, ``"fc2"`` 300 to 100, ``"fc3"`` 100 to 10), the one
    whose weights are drawn.  Each layer has its own codebook from
    :func:`qlib.kmeansnet.quantize_model` (linear initialization, Lloyd's
    algorithm to convergence); the biases stay float32.

    Panels: the layer's weight histogram (counts on a log scale, so the rare
    large weights show; the same bins and axes for every layer, so the
    layers' spreads compare at a glance) with its ``2**bits`` centroids as
    vertical lines and, on each, a dot at the number of weights that share
    it; the title gives the layer's size, ``n * bits`` index bits plus the
    ``2**bits * 32``-bit codebook.  Below, the test error of the network with
    every layer shared at 1-8 bits, before any fine-tuning, against float32,
    the current width marked; the title gives the whole model's size (biases
    counted as float32) and its compression ratio against float32 (1 kB =
    1000 bytes).

    All eight quantizations and their test errors, on all 10,000 MNIST test
    images, are computed once, when the first explorer is made in a session
    (about a second), and reused: moving a control only redraws.

    Example:
        >>> ex = KMeansExplorer(bits=2)
        >>> ex.codebook.size, ex.storage.total_bits
        (4, 545904)
        >>> ex.controls["bits"].value = 4
        >>> round(ex.storage.ratio, 2), round(100 * ex.error, 2)
        (7.9, 1.64)

    Taught in ``notebooks/06_kmeans_quantization.ipynb``.
    """

    title = "K-means weight sharing explorer"
    n_bins = 150  # over the range of all three layers

    def __init__(self, bits: int = 4, layer: str = "fc1") -> None:
        _km._bits(bits)
        if bits > 8:
            raise ValueError(f"bits must be in [1, 8]; got {bits}")
        if layer not in LAYERS:
            raise ValueError(f"layer must be one of {', '.join(LAYERS)}; got {layer!r}")
        self.tables = _tables()
        self.fp32_error = self.tables["fp32_error"]
        self.controls = {
            "bits": widgets.IntSlider(value=bits, min=1, max=8, description="bits"),
            "layer": widgets.Dropdown(options=LAYERS, value=layer, description="layer"),
        }
        self.view = _png_view()
        self.fig, (self.ax, self.ax_err) = new_figure(
            2, 1, figsize=(6.4, 6.0), gridspec_kw={"height_ratios": [1.6, 1.0]}
        )
        self._histogram_panel()
        self._error_panel()
        self.moving = [
            self.hist,
            self.lines,
            self.shares,
            self.ax.title,
            self.mark,
            self.ax_err.title,
        ]
        self._finish()

    def _histogram_panel(self) -> None:
        ax = self.ax
        ax.set_yscale("log")
        self.hist = ax.stairs(
            [1.0], [0.0, 1.0], baseline=0.5, color=COLORS["sky"], fill=True, alpha=0.8,
            label=f"weights per bin ({self.n_bins} bins)",
        )  # fmt: skip
        # x in data units, y from the bottom (0) to the top (1) of the axes
        (self.lines,) = ax.plot(
            [], [], color=COLORS["vermillion"], lw=0.8, label="centroids",
            transform=ax.get_xaxis_transform(),
        )  # fmt: skip
        (self.shares,) = ax.plot(
            [], [], "o", color=COLORS["black"], ms=3,
            label="weights sharing a centroid",
        )  # fmt: skip
        # fixed limits: the range of all three layers' weights, and up to the
        # largest layer's size (one centroid can hold every weight)
        edges = self.tables["hist"][0][1]
        pad = 0.03 * (edges[-1] - edges[0])
        largest = max(rows * cols for rows, cols in self.tables["shapes"])
        ax.set(
            xlabel="weight value",
            ylabel="number of weights",
            xlim=(edges[0] - pad, edges[-1] + pad),
            ylim=(0.5, 3.0 * largest),
        )
        ax.legend(loc="upper right", fontsize=8)

    def _error_panel(self) -> None:
        ax = self.ax_err
        errors = [100 * self.tables["error"][b] for b in BITS]
        ax.plot(
            BITS, errors, "o-", color=COLORS["blue"], label="K-means, no fine-tuning"
        )
        ax.axhline(
            100 * self.fp32_error, color=COLORS["black"], ls="--", lw=1,
            label=f"float32 ({100 * self.fp32_error:.2f} %)",
        )  # fmt: skip
        (self.mark,) = ax.plot(
            [], [], "o", color=COLORS["vermillion"], ms=10, mfc="none", mew=2
        )
        ax.set_yscale("log")
        ax.set(
            xlabel="bits per weight (every layer)",
            ylabel="test error (%)",
            xlim=(0.5, 8.5),
            ylim=(1.0, 100.0),
            xticks=BITS,
        )
        ticks = (1, 2, 5, 10, 20, 50, 100)
        ax.set_yticks(ticks, [str(t) for t in ticks])
        ax.minorticks_off()
        ax.legend(loc="upper right", fontsize=8)

    def _redraw(self) -> None:
        bits = self.controls["bits"].value
        name = self.controls["layer"].value
        n = LAYERS.index(name)
        t = self.tables
        self.bits, self.layer = bits, name
        self.codebook = t["codebooks"][bits][n]
        self.shared = t["counts"][bits][n]
        self.error = t["error"][bits]
        self.storage = t["storage"][bits]

        # the histogram of the layer, on the axes every layer shares
        counts, edges = t["hist"][n]
        self.hist.set_data(np.maximum(counts, 0.5), edges)  # empty bins at the floor
        nan = np.full(self.codebook.size, np.nan)
        xs = np.stack([self.codebook, self.codebook, nan], 1).ravel()
        ys = np.tile([0.0, 1.0, np.nan], self.codebook.size)
        self.lines.set_data(xs, ys)
        self.shares.set_data(self.codebook, self.shared)
        rows, cols = t["shapes"][n]
        size = self.storage.layer_bits[n]
        self.ax.set_title(
            f"{name}: {rows} {_TIMES} {cols} = {rows * cols} weights, "
            f"{self.codebook.size} centroids\n{bits}-bit indices + "
            f"{2**bits} {_TIMES} 32-bit codebook = {_kb(size)} "
            f"(float32 {_kb(32 * rows * cols)})",
            fontsize=9,
        )

        # the network: the error at this width and the size of the whole model
        self.mark.set_data([bits], [100 * self.error])
        s = self.storage
        self.ax_err.set_title(
            f"{bits} bits: test error {100 * self.error:.2f} % "
            f"(float32 {100 * self.fp32_error:.2f} %)\nmodel {_kb(s.total_bits)} "
            f"against {_kb(s.fp32_bits)}: {s.ratio:.2f}{_TIMES} smaller "
            "(biases float32)",
            fontsize=9,
        )

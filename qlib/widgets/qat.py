"""The explorer of chapter 09: a bit width for each layer of LeNet-300-100.

Built on :mod:`qlib.mixed` and the course's LeNet-300-100.  Taught in
``notebooks/09_quantization_aware_training.ipynb``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

import ipywidgets as widgets
import numpy as np

from .. import data as _data
from .. import mixed as _mixed
from .. import nn as _nn
from ..plot import COLORS, new_figure
from ._explorer import Explorer, _png_view

__all__ = ["BitAllocationExplorer"]

LAYERS = ("fc1", "fc2", "fc3")
BITS = _mixed.BITS


@functools.cache
def _tables() -> dict:
    """Computed once per process: the per-channel asymmetric quantizer of
    every layer at every width (:class:`qlib.mixed.LayerQuantizer`), fc1's
    ReLU outputs on the 10,000 test images at every width of fc1 (so that an
    event runs fc2 and fc3 only), and the uniform allocations' sizes and
    test errors."""
    model = _nn.load_lenet()
    lq = _mixed.LayerQuantizer(model)
    images, labels = _data.load_mnist("test")
    x = _nn.preprocess(images)
    fc1 = model.dense[0]
    for i in range(3):
        for b in BITS:
            lq.weight(i, b)  # quantized once, here: an event only multiplies
    hidden = {b: np.maximum(x @ lq.weight(0, b).T + fc1.b, 0) for b in BITS}
    tables = {"model": model, "lq": lq, "hidden": hidden, "labels": labels}
    tables["fp32_error"] = _nn.error_rate(model, x, labels)
    tables["fp32_kb"] = lq.nbytes((None,) * 3) / 1e3
    tables["uniform"] = [
        (lq.nbytes((b,) * 3) / 1e3, _error(tables, (b,) * 3)) for b in BITS
    ]  # fmt: skip
    return tables


def _error(tables: dict, bits: tuple[int, int, int]) -> float:
    """Test error of the allocation ``bits`` from the cached fc1 outputs (and
    fc2's, kept for the last few (fc1, fc2) widths: moving fc3 alone then
    costs fc3's small product only)."""
    lq, model = tables["lq"], tables["model"]
    kept = tables.setdefault("fc2", {})
    key = bits[:2]
    if key not in kept:
        a = tables["hidden"][bits[0]]
        kept[key] = np.maximum(a @ lq.weight(1, bits[1]).T + model.dense[1].b, 0)
        if len(kept) > 8:  # 4 MB each
            kept.pop(next(iter(kept)))
    logits = kept[key] @ lq.weight(2, bits[2]).T + model.dense[2].b
    return float(np.mean(logits.argmax(axis=1) != tables["labels"]))


class BitAllocationExplorer(Explorer):
    """Choose the width of each layer's weights (per-channel asymmetric,
    :mod:`qlib.mixed`) and see the model's size and test error.

    Controls: ``fc1``, ``fc2``, ``fc3``, each 2-8 bits.  Panels: each layer's
    share of the model's bytes (fc1 holds 88 % of the weights); the test
    error against the size, with the uniform widths 2-8 as a line, the
    current allocation as a dot, and any allocations passed as ``marks``
    (name -> widths).

    Example:
        >>> ex = BitAllocationExplorer(bits=(3, 3, 3))
        >>> ex.controls["fc3"].value = 8
        >>> # fc3's 1000 weights 5 bits wider, and 10 zero points too
        >>> round(ex.kilobytes - ex.tables["uniform"][1][0], 5)
        0.63125
    """

    title = "bit allocation explorer"

    def __init__(
        self,
        bits: Sequence[int] = (4, 4, 4),
        marks: Mapping[str, Sequence[int]] | None = None,
    ) -> None:
        widths = tuple(bits)
        if len(widths) != 3 or any(b not in BITS for b in widths):
            raise ValueError(f"bits must be three widths from 2 to 8; got {bits!r}")
        self.tables = tab = _tables()
        self.marks = {}
        for name, alloc in (marks or {}).items():
            a = tuple(alloc)
            if len(a) != 3 or any(b not in BITS for b in a):
                raise ValueError(f"marks[{name!r}] must be three widths from 2 to 8")
            self.marks[name] = (tab["lq"].nbytes(a) / 1e3, _error(tab, a), a)
        self.controls = {
            name: widgets.IntSlider(value=b, min=2, max=8, description=name)
            for name, b in zip(LAYERS, widths, strict=True)
        }
        self.view = _png_view()
        self.fig, (self.ax_bar, self.ax) = new_figure(
            1, 2, figsize=(8.4, 3.6), gridspec_kw={"width_ratios": [1.0, 2.2]}
        )
        self._panels()
        self.moving = [*self.bars, *self.bar_labels, self.dot, self.ax.title]
        self._finish()

    def _panels(self) -> None:
        tab, ax, axb = self.tables, self.ax, self.ax_bar
        sizes = [s for s, _ in tab["uniform"]]
        errors = [100 * e for _, e in tab["uniform"]]
        ax.plot(
            sizes, errors, "-o", color=COLORS["blue"], ms=4, label="uniform 2-8 bits"
        )
        for b, s, e in zip(BITS, sizes, errors, strict=True):
            ax.annotate(
                f"{b}", (s, e), textcoords="offset points", xytext=(3, 4), fontsize=7
            )
        for name, (s, e, a) in self.marks.items():
            ax.plot([s], [100 * e], "D", color=COLORS["green"], ms=5)
            ax.annotate(
                f"{name} {a}", (s, 100 * e), textcoords="offset points",
                xytext=(6, 6), fontsize=7, color=COLORS["green"],
            )  # fmt: skip
        (self.dot,) = ax.plot(
            [], [], "o", color=COLORS["vermillion"], ms=8, label="your allocation"
        )
        ax.axhline(100 * tab["fp32_error"], color=COLORS["black"], ls=":", lw=1)
        ax.set(xlabel="model size (kB)", ylabel="test error (%)", ylim=(1.3, 3.0))
        ax.legend(fontsize=8, loc="upper right")
        self.bars = list(axb.bar(range(3), [0, 0, 0], color=COLORS["blue"]))
        self.bar_labels = [
            axb.text(i, 0, "", ha="center", fontsize=8) for i in range(3)
        ]
        top = tab["lq"].nbytes((8, 8, 8)) / 1e3
        axb.set(
            xticks=range(3), xticklabels=LAYERS, ylim=(0, top * 1.15),
            ylabel="size of the layer (kB)",
        )  # fmt: skip

    def _redraw(self) -> None:
        tab = self.tables
        self.bits = bits = tuple(self.controls[name].value for name in LAYERS)
        lq = tab["lq"]
        per_layer = [lq.layer_bytes(i, b) / 1e3 for i, b in enumerate(bits)]
        self.kilobytes = sum(per_layer)
        self.error = _error(tab, bits)
        for bar, label, kb, i in zip(
            self.bars, self.bar_labels, per_layer, range(3), strict=True
        ):
            bar.set_height(kb)
            label.set_position((i, kb))
            label.set_text(f"{kb:.1f}")
        self.dot.set_data([self.kilobytes], [100 * self.error])
        ratio = tab["fp32_kb"] / self.kilobytes
        self.ax.set_title(
            f"fc1 {bits[0]}, fc2 {bits[1]}, fc3 {bits[2]} bits: "
            f"{self.kilobytes:.1f} kB, {ratio:.1f}x smaller than float32\n"
            f"test error {self.error:.2%} (float {tab['fp32_error']:.2%}, dotted)",
            fontsize=9,
        )

"""The explorer of chapter 05's scaled formats: :class:`FormatHistogram`.

A sample stored in a low-precision format with a per-tensor or a block
scale, through :mod:`qlib.mx`; its figure, one per x axis, is
``_format_panel.py``'s :class:`FormatPanel`.  Kept out of
``qlib/widgets/floats.py`` so that each module reads in one sitting;
notebooks reach it as ``widgets.FormatHistogram`` (re-exported by
:mod:`qlib.widgets.floats`).

Taught in ``notebooks/05_low_precision_floats.ipynb``.
"""

from __future__ import annotations

from typing import ClassVar

import ipywidgets as widgets
import numpy as np

from .. import floats as _floats
from .. import mx as _mx
from .. import signals as _signals
from ..plot import Layers
from ._explorer import Explorer, _choice, _png_view
from ._float_views import num
from ._format_panel import FormatPanel

__all__ = ["FormatHistogram"]


class FormatHistogram(Explorer):
    """A sample (normal, Laplace, or normal with 1 % outliers of 20 times the
    bulk) stored in a low-precision format with one scale per tensor
    (``scaling="per_tensor"``, :func:`qlib.mx.per_tensor_quantize`) or with the
    block scales of OCP MX (``"mx"``: E8M0 per 32 values) or NVFP4
    (``"nvfp4"``: E4M3 per 16 and an FP32 tensor scale), through :mod:`qlib.mx`.

    Controls: ``format``, ``distribution``, ``scaling``, ``scale`` (per tensor:
    the scale is ``2**k * fmt.max / max|x|``; ``k = 0`` maps the largest
    magnitude to the format's largest value, ``k > 0`` saturates the values
    above ``2**-k * max|x|`` to resolve the small ones more finely, ``k < 0``
    leaves headroom) and ``axis`` (the value over ``max|x|``, or ``log2|x|``,
    where a float's binades are evenly spaced and flushing is seen).

    The top panel shows the sample's histogram (log counts, so that the
    outliers show), the format's grid scaled into data units, and the ranges
    that round to zero or saturate; the bottom panel the size of each value's
    error, in data units, with the largest rounding error of the grid (half
    its gap).  Exact values sit on the floor of the error axis.  A format with
    no MX variant (bf16) switches the scaling to per tensor; NVFP4 stores
    E2M1 elements.

    Example:
        >>> ex = FormatHistogram(fmt="fp8_e4m3fn", distribution="normal")
        >>> ex.controls["format"].value = "fp4_e2m1fn"
        >>> bool(ex.sqnr < 25)
        True
        >>> ex.controls["distribution"].value = "outliers"
        >>> ex.controls["scaling"].value = "mx"
        >>> bool(ex.sqnr > 10)
        True

    Taught in ``notebooks/05_low_precision_floats.ipynb``.
    """

    title = "format histogram"
    FORMATS = (
        "fp8_e4m3fn",
        "fp8_e5m2",
        "fp6_e2m3fn",
        "fp6_e3m2fn",
        "fp4_e2m1fn",
        "bf16",
    )
    DISTRIBUTIONS = ("normal", "laplace", "outliers")
    SCALINGS = ("per_tensor", "mx", "nvfp4")
    AXES = ("value", "log2|x|")
    MX: ClassVar[dict[str, str]] = {e: name for name, e in _mx.MX_ELEMENTS.items()}

    def __init__(
        self,
        fmt: str = "fp8_e4m3fn",
        distribution: str = "normal",
        *,
        scaling: str = "per_tensor",
        scale: int = 0,
        axis: str = "value",
    ) -> None:
        _choice(fmt, "fmt", self.FORMATS)
        _choice(distribution, "distribution", self.DISTRIBUTIONS)
        _choice(scaling, "scaling", self.SCALINGS)
        _choice(axis, "axis", self.AXES)
        if isinstance(scale, bool) or not isinstance(scale, int) or abs(scale) > 6:
            raise ValueError(f"scale must be an integer in [-6, 6]; got {scale!r}")
        rng = np.random.default_rng(0)
        n = 20_000
        normal = rng.standard_normal(n)
        outliers = normal.copy()
        outliers[rng.choice(n, n // 100, replace=False)] *= 20
        self.samples = {
            "normal": normal,
            "laplace": rng.laplace(size=n) / np.sqrt(2),
            "outliers": outliers,
        }
        self.amax = {k: float(np.abs(x).max()) for k, x in self.samples.items()}
        self.controls = {
            "format": widgets.Dropdown(
                options=self.FORMATS, value=fmt, description="format"
            ),
            "distribution": widgets.Dropdown(
                options=self.DISTRIBUTIONS, value=distribution, description="data"
            ),
            "scaling": widgets.Dropdown(
                options=self.SCALINGS, value=scaling, description="scaling"
            ),
            "scale": widgets.IntSlider(
                value=scale, min=-6, max=6, description="scale ×2^k"
            ),
            "axis": widgets.Dropdown(
                options=self.AXES, value=axis, description="x axis"
            ),
        }
        self.view = _png_view()
        self.panels = {a: FormatPanel(a, self.samples, self.amax) for a in self.AXES}
        self._changed = None
        self._use(self.panels[axis])
        c = self.controls
        layout = widgets.VBox(
            [
                widgets.HBox([c["format"], c["distribution"], c["scaling"]]),
                widgets.HBox([c["scale"], c["axis"]]),
                self.view,
            ]
        )
        self._finish(layout)
        self.panel.layers = self.layers
        for panel in self.panels.values():  # the other figure's picture, kept too
            if panel.layers is None:
                self._paint(panel)
                panel.layers = Layers(panel.fig, panel.moving)
                panel.layers.png()

    def grid_lines(self) -> int:
        """How many lines of the format's grid the figure shows."""
        return int(np.isnan(self.panel.grid.get_xdata()).sum())

    def _use(self, panel: FormatPanel) -> None:
        self.panel, self.fig, self.moving = panel, panel.fig, panel.moving
        self.ax, self.ax_err = panel.ax, panel.ax_err
        if panel.layers is not None:
            self.layers = panel.layers

    def _on_change(self, change: dict) -> None:
        if not self._busy:
            self._changed = change["owner"]
            self.update()

    def _settle(self) -> None:
        """Make format and scaling a pair that exists: NVFP4 has E2M1 elements;
        bf16 has no MX variant.  The control just moved wins."""
        c = self.controls
        fmt, scaling = c["format"].value, c["scaling"].value
        moved_scaling = self._changed is c["scaling"]
        self._busy = True
        try:
            if scaling == "nvfp4" and fmt != "fp4_e2m1fn":
                if moved_scaling:
                    c["format"].value = "fp4_e2m1fn"
                else:
                    c["scaling"].value = self.SCALINGS[1 if fmt in self.MX else 0]
            elif scaling == "mx" and fmt not in self.MX:
                if moved_scaling:
                    c["format"].value = "fp8_e4m3fn"
                else:
                    c["scaling"].value = self.SCALINGS[0]
            c["scale"].disabled = c["scaling"].value != self.SCALINGS[0]
        finally:
            self._busy = False

    def _quantize(self) -> None:
        """The state: ``x_q``, ``e``, SQNR, shares flushed and saturated."""
        c = self.controls
        fmt = _floats.FORMATS[c["format"].value]
        data, scaling = c["distribution"].value, c["scaling"].value
        x = self.samples[data]
        self.fmt, self.x = fmt, x
        if scaling == self.SCALINGS[0]:
            self.range = self.amax[data] * 2.0 ** -c["scale"].value
            self.scale = _mx.tensor_scale(x, fmt.name, self.range)
            self.x_q = _mx.per_tensor_quantize(x, fmt.name, self.range)
            element_scale = 1 / self.scale
        elif scaling == self.SCALINGS[1]:
            t = _mx.mx_quantize(x, self.MX[fmt.name])
            self.x_q, self.scale = t.dequantize(), None
            self.block_scales = _mx.E8M0.decode(t.scales)
            element_scale = np.repeat(self.block_scales, t.block_size)
        else:
            t = _mx.nvfp4_quantize(x)
            self.x_q, self.scale = t.dequantize(), None
            self.block_scales = (
                _floats.FORMATS["fp8_e4m3fn"].decode(t.scales) * t.tensor_scale
            )
            self.tensor_scale = t.tensor_scale
            element_scale = np.repeat(self.block_scales, t.block_size)
        self.e = self.x_q - x
        self.sqnr = _signals.sqnr_db(x, self.x_q)
        self.rmse = float(np.sqrt(np.mean(self.e**2)))
        self.flushed = _floats.flushed(x, self.x_q)
        self.saturated = float(np.mean(np.abs(x) > fmt.max * element_scale))

    def _redraw(self) -> None:
        self._settle()
        self._quantize()
        self._use(self.panels[self.controls["axis"].value])
        self._paint(self.panel)

    def _paint(self, panel: FormatPanel) -> None:
        data = self.controls["distribution"].value
        per_tensor = self.scale is not None
        panel.paint(
            data,
            self.e,
            self.amax[data],
            self.fmt,
            self.scale,
            self.range if per_tensor else None,
            self._caption(),
        )

    def _caption(self) -> str:
        c = self.controls
        fmt, scaling = self.fmt, c["scaling"].value
        how_scaled = {
            "per_tensor": "per tensor",
            "mx": "MX (E8M0 scale per 32)",
            "nvfp4": "NVFP4 (E4M3 scale per 16)",
        }[scaling]
        head = (
            f"{fmt.name}, {how_scaled}, {c['distribution'].value} data: "
            f"SQNR {self.sqnr:.1f} dB, rms error {self.rmse:.3g}"
        )
        if self.scale is not None:
            how = f"scale {self.scale:.4g} (±{self.range:.3g} → ±{num(fmt.max)})"
        else:
            exps = np.log2(self.block_scales[self.block_scales > 0])
            how = f"block scales 2^{exps.min():.1f} to 2^{exps.max():.1f}"
            if scaling == self.SCALINGS[1]:
                how = f"block scales 2^{exps.min():.0f} to 2^{exps.max():.0f}"
        shares = f"{self.flushed:.1%} flushed to 0, {self.saturated:.1%} saturate"
        return f"{head}\n{how}: {shares}"

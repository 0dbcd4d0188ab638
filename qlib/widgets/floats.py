"""Explorers of chapters 04 and 05: a float format bit by bit, and a sample in it.

Each is built on :mod:`qlib.floats`.  Taught in ``notebooks/04_ieee754.ipynb``
(:class:`FloatExplorer`) and ``notebooks/05_low_precision_floats.ipynb``
(:class:`FormatHistogram`).
"""

from __future__ import annotations

import html

import ipywidgets as widgets
import numpy as np

from .. import floats as _floats
from .. import signals as _signals
from ..plot import COLORS, new_figure
from ._explorer import Explorer, _png_view

__all__ = ["FloatExplorer", "FormatHistogram"]


class FloatExplorer(Explorer):
    """Any format of :data:`qlib.floats.FORMATS`, bit by bit.

    Pick a format, type a value or click bits; the table shows the sign,
    exponent and mantissa fields colour-coded, the exact decimal value, its
    class, its neighbours, its ULP, and how far the typed value moved when it
    was rounded into the format.

    Example:
        >>> ex = FloatExplorer(fmt="bf16", value=0.1)
        >>> ex.pattern, ex.value
        ('0011110111001101', 0.10009765625)
        >>> ex.controls["value"].value = "-2.5"
        >>> ex.code == 0xC020
        True

    Taught in ``notebooks/04_ieee754.ipynb``.
    """

    title = "float explorer"
    colours = (COLORS["vermillion"], COLORS["blue"], COLORS["green"])  # s, e, m

    def __init__(self, fmt: str = "bf16", value: float | str = 0.1) -> None:
        if fmt not in _floats.FORMATS:
            raise ValueError(
                f"fmt must be one of {tuple(_floats.FORMATS)}; got {fmt!r}"
            )
        self.controls = {
            "format": widgets.Dropdown(
                options=list(_floats.FORMATS), value=fmt, description="format"
            ),
            "value": widgets.Text(
                value=str(value), description="value", continuous_update=False
            ),
        }
        self.view = widgets.HTML()
        self.bit_row = widgets.HBox(layout=widgets.Layout(flex_flow="row wrap"))
        self.buttons: list[widgets.ToggleButton] = []
        self.code = 0
        self._from = "value"
        self._built = None
        top = widgets.HBox([self.controls["format"], self.controls["value"]])
        self._finish(widgets.VBox([top, self.bit_row, self.view]))

    @property
    def fmt(self):
        return _floats.FORMATS[self.controls["format"].value]

    def _on_change(self, change: dict) -> None:
        if self._busy:
            return
        self._from = "value"
        self.update()

    def _on_bit(self, change: dict) -> None:
        if self._busy:
            return
        bits = self.fmt.bits
        self.code = sum(
            1 << (bits - 1 - i) for i, b in enumerate(self.buttons) if b.value
        )
        self._from = "bits"
        self.update()

    def _build_buttons(self) -> None:
        fmt = self.fmt
        parts = [0] * int(fmt.signed) + [1] * fmt.exp_bits + [2] * fmt.man_bits
        self.buttons = []
        for part in parts:
            button = widgets.ToggleButton(
                description="0",
                tooltip=("sign", "exponent", "mantissa")[part],
                layout=widgets.Layout(width="2.2em"),
                button_style=("danger", "info", "success")[part],
            )
            button.observe(self._on_bit, names="value")
            self.buttons.append(button)
        self.bit_row.children = self.buttons
        self._built = fmt.name

    def _redraw(self) -> None:
        from decimal import Decimal, InvalidOperation

        fmt = self.fmt
        if self._built != fmt.name:
            self._build_buttons()
            self._from = "value"
        typed = self.controls["value"].value.strip()
        error_row = ""
        if self._from == "value":
            try:
                exact_typed = Decimal(typed)
                x = float(typed)
            except (ValueError, InvalidOperation):
                self.view.value = f"<p>cannot read <code>{html.escape(typed)}</code>"
                return
            self.code = int(fmt.encode(np.float64(x)))
        self.value = float(fmt.decode(self.code))
        self._busy = True
        try:
            for i, button in enumerate(self.buttons):
                bit = self.code >> (fmt.bits - 1 - i) & 1
                button.value = bool(bit)
                button.description = str(bit)
            if self._from == "bits":
                self.controls["value"].value = repr(self.value)
                exact_typed = None
        finally:
            self._busy = False
        self.pattern = format(self.code, f"0{fmt.bits}b")
        cut = [int(fmt.signed), int(fmt.signed) + fmt.exp_bits]
        fields = (
            self.pattern[: cut[0]],
            self.pattern[cut[0] : cut[1]],
            self.pattern[cut[1] :],
        )
        coloured = "".join(
            f"<span style='color:{c}'>{f}</span>"
            for c, f in zip(self.colours, fields, strict=True)
        )
        kind = str(fmt.classify(self.code))
        finite = np.isfinite(self.value)
        exact = str(Decimal(self.value)) if finite else str(self.value)
        rows = [
            ("fields (s | e | m)", " | ".join(f or "-" for f in fields)),
            ("value", exact),
            ("class", kind),
        ]
        if finite:
            rows += [
                ("next down", repr(float(fmt.next_down(self.value)))),
                ("next up", repr(float(fmt.next_up(self.value)))),
                ("ULP", repr(float(fmt.ulp(self.value)))),
            ]
        if self._from == "value" and finite and exact_typed is not None:
            err = Decimal(self.value) - exact_typed
            rel = abs(err / exact_typed) if exact_typed != 0 else Decimal(0)
            error_row = f"{err:.6e} (relative {rel:.3e})"
            rows.append(("rounding error (stored - typed)", error_row))
        body = "".join(
            f"<tr><td style='text-align:left'>{html.escape(k)}</td>"
            f"<td style='text-align:left'>{html.escape(v)}</td></tr>"
            for k, v in rows
        )
        self.view.value = (
            f"<p>{html.escape(fmt.name)}: code <code>{coloured}</code> = "
            f"0x{self.code:0{(fmt.bits + 3) // 4}X}</p>"
            "<table><tr><th style='text-align:left'>what</th>"
            f"<th style='text-align:left'>{html.escape(fmt.name)}</th></tr>"
            f"{body}</table>"
        )


class FormatHistogram(Explorer):
    """A sample (normal, Laplace, or normal with outliers) rounded to a format.

    The sample is scaled so that its largest magnitude maps to the format's
    largest value (per-tensor scaling), rounded, and scaled back.  The figure
    shows the sample's histogram, the format's grid (scaled), and the error in
    units of the largest possible one: half the gap between the format's two
    largest values (scaled), so that every format fills the same axes.

    Example:
        >>> ex = FormatHistogram(fmt="fp8_e4m3fn", distribution="normal")
        >>> ex.controls["format"].value = "fp4_e2m1fn"
        >>> bool(ex.sqnr < 25)
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

    def __init__(self, fmt: str = "fp8_e4m3fn", distribution: str = "normal") -> None:
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
        self.controls = {
            "format": widgets.Dropdown(
                options=self.FORMATS, value=fmt, description="format"
            ),
            "distribution": widgets.Dropdown(
                options=self.DISTRIBUTIONS, value=distribution, description="data"
            ),
        }
        self.view = _png_view()
        self.fig, (self.ax, self.ax_err) = new_figure(2, 1, figsize=(6.4, 4.6))
        self.edges = np.linspace(-4, 4, 161)
        self.hist = self.ax.stairs(
            np.zeros(160),
            self.edges,
            fill=True,
            color=COLORS["sky"],
            alpha=0.8,
            label="data",
        )
        self.grid = self.ax.vlines(
            [],
            0,
            1,
            color=COLORS["vermillion"],
            lw=0.6,
            label="format's values (scaled)",
        )
        # one height for every distribution, so that they compare at a glance
        self.top = 1.1 * max(
            np.histogram(x, self.edges, density=True)[0].max()
            for x in self.samples.values()
        )
        self.ax.set(xlabel="value", ylabel="density", xlim=(-4, 4), ylim=(0, self.top))
        legend = self.ax.legend(loc="upper right", fontsize=8)
        (self.err,) = self.ax_err.plot([], [], ".", ms=1.5, color=COLORS["blue"])
        self.ax_err.set(
            xlabel="value",
            ylabel="error / worst case",
            xlim=(-4, 4),
            ylim=(-1.15, 1.15),
        )
        self.moving = [self.hist, self.grid, self.err, self.ax.title, legend]
        self._finish()

    def _redraw(self) -> None:
        fmt = _floats.FORMATS[self.controls["format"].value]
        x = self.samples[self.controls["distribution"].value]
        scale = np.abs(x).max() / fmt.max
        x_q = fmt.quantize(x / scale) * scale
        e = x_q - x
        self.sqnr = _signals.sqnr_db(x, x_q)
        flushed = float(np.mean((x_q == 0) & (x != 0)))
        counts, _ = np.histogram(x, self.edges, density=True)
        self.hist.set_data(counts, self.edges)
        values = fmt.all_values() if fmt.bits <= 16 else np.array([])
        grid = np.unique(values[np.isfinite(values)]) * scale
        grid = grid[np.abs(grid) <= 4]
        if grid.size > 400:  # too dense to draw line by line: every 16th
            grid = grid[::16]
        self.grid.set_segments([[(g, 0), (g, self.top)] for g in grid])
        largest = fmt.ulp(fmt.max) / 2 * scale  # half the top binade's gap
        # a quarter of the points shows the shape
        self.err.set_data(x[::4], e[::4] / largest)
        data = self.controls["distribution"].value
        self.ax.set_title(
            f"{fmt.name}, {data} data: SQNR {self.sqnr:.1f} dB, "
            f"{flushed:.1%} flushed to zero",
            fontsize=10,
        )

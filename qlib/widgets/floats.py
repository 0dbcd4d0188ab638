"""Explorers of chapters 04 and 05: a float format bit by bit, and a sample in it.

Each is built on :mod:`qlib.floats` (and :mod:`qlib.mx` for the scales).
Taught in ``notebooks/04_ieee754.ipynb`` (:class:`FloatExplorer`) and
``notebooks/05_low_precision_floats.ipynb`` (:class:`FormatHistogram`).
"""

from __future__ import annotations

import functools
import html
import math
from fractions import Fraction
from typing import ClassVar

import ipywidgets as widgets
import numpy as np

from .. import floats as _floats
from .. import mx as _mx
from .. import signals as _signals
from ..plot import COLORS, Layers
from ._explorer import Explorer, _png_view
from ._float_views import (
    decode_rows,
    every_format,
    neighbour_rows,
    note,
    num,
    number_line,
    parse_real,
    to_float,
)
from ._format_panel import FormatPanel

__all__ = ["FloatExplorer", "FormatHistogram"]


def _choice(value: object, name: str, options) -> object:
    if value not in options:
        raise ValueError(
            f"{name} must be one of {', '.join(map(str, options))}; got {value!r}"
        )
    return value


class FloatExplorer(Explorer):
    """Any format of :data:`qlib.floats.FORMATS`, bit by bit.

    Type a value (a decimal, or arithmetic such as ``1/3`` or ``2**-9``), a
    code in hexadecimal, or click bits; step one code or one value up or
    down.  The view decodes the fields (``e``, ``e - bias``, ``m``) and writes
    the value formula with its numbers, the exact decimal value, the next
    values and codes (and what lies past the largest value), the rounding
    error of the typed value, an overflow note (``saturate`` clamps to the
    largest value first), the value's place on two number lines, and the same
    value rounded into every format side by side.

    Example:
        >>> ex = FloatExplorer(fmt="bf16", value=0.1)
        >>> ex.pattern, ex.value
        ('0011110111001101', 0.10009765625)
        >>> ex.controls["value"].value = "-2.5"
        >>> ex.code == 0xC020
        True
        >>> ex.steps["code +1"].click()
        >>> ex.value
        -2.515625

    Taught in ``notebooks/04_ieee754.ipynb``.
    """

    title = "float explorer"
    colours = (COLORS["vermillion"], COLORS["blue"], COLORS["green"])  # s, e, m
    STEPS: ClassVar[dict[str, str]] = {
        "code -1": "code \N{MINUS SIGN}1",
        "code +1": "code +1",
        "next down": "\N{BLACK LEFT-POINTING TRIANGLE} next down",
        "next up": "next up \N{BLACK RIGHT-POINTING TRIANGLE}",
    }

    def __init__(
        self, fmt: str = "bf16", value: float | str = 0.1, *, saturate: bool = False
    ) -> None:
        _choice(fmt, "fmt", tuple(_floats.FORMATS))
        self.controls = {
            "format": widgets.Dropdown(
                options=list(_floats.FORMATS), value=fmt, description="format"
            ),
            "value": widgets.Text(
                value=str(value),
                description="value",
                placeholder="0.1, 1/3, 2**-9, inf",
                continuous_update=False,
            ),
            "hex": widgets.Text(
                description="code 0x",
                continuous_update=False,
                layout=widgets.Layout(width="14em"),
            ),
            "saturate": widgets.Checkbox(
                value=bool(saturate), description="saturate", indent=False
            ),
        }
        self.steps = {}
        for key, label in self.STEPS.items():
            button = widgets.Button(
                description=label, layout=widgets.Layout(width="9em")
            )
            button.on_click(functools.partial(self._on_step, key))
            self.steps[key] = button
        self.view = widgets.HTML()
        self.bit_row = widgets.HBox(layout=widgets.Layout(flex_flow="row wrap"))
        self.buttons: list[widgets.ToggleButton] = []
        self._rows: dict[tuple, list[widgets.ToggleButton]] = {}
        self.code = 0
        self.typed: Fraction | float | None = None
        self._from = "value"
        self._built = None
        c = self.controls
        top = widgets.HBox([c["format"], c["value"], c["hex"], c["saturate"]])
        self._finish(
            widgets.VBox(
                [top, widgets.HBox(list(self.steps.values())), self.bit_row, self.view]
            )
        )

    @property
    def fmt(self) -> _floats.FloatFormat:
        return _floats.FORMATS[self.controls["format"].value]

    def _on_change(self, change: dict) -> None:
        if self._busy:
            return
        self._from = "hex" if change["owner"] is self.controls["hex"] else "value"
        self.update()

    def _on_bit(self, change: dict) -> None:
        if self._busy:
            return
        bits = self.fmt.bits
        self.code = sum(
            1 << (bits - 1 - i) for i, b in enumerate(self.buttons) if b.value
        )
        self._from = "code"
        self.update()

    def _on_step(self, key: str, _button=None) -> None:
        fmt = self.fmt
        if key.startswith("code"):
            self.code = (self.code + (1 if key.endswith("+1") else -1)) % 2**fmt.bits
        else:
            step = fmt.next_up if key == "next up" else fmt.next_down
            moved = float(step(self.value))
            if math.isnan(moved) or moved == self.value:
                return  # no value past the end (the table says why)
            self.code = int(fmt.encode(np.float64(moved)))
        self._from = "code"
        self.update()

    def _build_buttons(self) -> None:
        """Show the format's bit buttons, made once per layout of the fields."""
        fmt = self.fmt
        layout = (fmt.signed, fmt.exp_bits, fmt.man_bits)
        if layout not in self._rows:
            parts = [0] * int(fmt.signed) + [1] * fmt.exp_bits + [2] * fmt.man_bits
            row = []
            for part in parts:
                button = widgets.ToggleButton(
                    description="0",
                    tooltip=("sign", "exponent", "mantissa")[part],
                    layout=widgets.Layout(width="2.2em"),
                    button_style=("danger", "info", "success")[part],
                )
                button.observe(self._on_bit, names="value")
                row.append(button)
            self._rows[layout] = row
        self.buttons = self._rows[layout]
        self.bit_row.children = self.buttons
        self._built = fmt.name

    def _read(self) -> str | None:
        """Set ``code`` (and ``typed``) from the control that changed; an error
        message if it cannot be read."""
        fmt = self.fmt
        if self._from == "value":
            text = self.controls["value"].value
            try:
                self.typed = parse_real(text)
            except ValueError:
                return (
                    f"cannot read <code>{html.escape(text.strip())}</code> as a number"
                )
            x = np.float64(to_float(self.typed))
            with np.errstate(over="ignore"):  # from 2**1023 up, rounding overflows
                code = fmt.encode(x, saturate=self.controls["saturate"].value)
            self.code = int(code)
        elif self._from == "hex":
            text = self.controls["hex"].value.strip().lower().replace("_", "")
            try:
                code = int(text.removeprefix("0x"), 16)
            except ValueError:
                code_text = f"<code>{html.escape(text)}</code>"
                return f"cannot read {code_text} as a hexadecimal code"
            if not 0 <= code < 2**fmt.bits:
                top = f"0x{2**fmt.bits - 1:X}"
                return f"codes of {fmt.name} are 0x0 to {top}; got 0x{code:X}"
            self.code, self.typed = code, None
        else:
            self.typed = None
        return None

    def _redraw(self) -> None:
        fmt = self.fmt
        if self._built != fmt.name:
            self._build_buttons()
            self._from = "value"
        problem = self._read()
        if problem:
            self.view.value = f"<p>{problem}</p>"
            return
        self.value = float(fmt.decode(self.code))
        self.pattern = format(self.code, f"0{fmt.bits}b")
        digits = (fmt.bits + 3) // 4
        self._busy = True
        try:
            for i, button in enumerate(self.buttons):
                bit = self.pattern[i]
                button.value = bit == "1"
                button.description = bit
            self.controls["hex"].value = f"{self.code:0{digits}X}"
            if self._from != "value":
                self.controls["value"].value = repr(self.value)
        finally:
            self._busy = False
        self.fields = tuple(int(f) for f in fmt.fields(self.code))
        x = to_float(self.typed) if self.typed is not None else self.value
        self.note = note(fmt, self.code, self.typed, self.controls["saturate"].value)
        rows = decode_rows(fmt, self.code)
        self.formula = dict(decode_rows(fmt, self.code, markup=False))["value"]
        rows.append(("class", str(fmt.classify(self.code))))
        if math.isfinite(self.value):
            rows.append(
                (
                    "ULP (gap to the next value up in magnitude)",
                    num(fmt.ulp(self.value)),
                )
            )
        rows += [(k, html.escape(v)) for k, v in neighbour_rows(fmt, self.code)]
        is_exact = isinstance(self.typed, Fraction)
        if is_exact:
            rows.append(("typed", html.escape(self.controls["value"].value.strip())))
            if math.isfinite(self.value):
                err = Fraction(self.value) - self.typed
                rel = abs(err / self.typed) if self.typed != 0 else Fraction(0)
                text = f"{to_float(err):.6e} (relative {float(rel):.3e})"
                rows.append(
                    (
                        "rounding error (stored − typed)",
                        "0: stored exactly" if err == 0 else text.replace("-", "−"),
                    )
                )
        if self.note:
            rows.append(("note", html.escape(self.note)))
        self.comparison, block = every_format(
            x,
            self.typed if is_exact else None,
            self.controls["saturate"].value,
            fmt.name,
        )
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
        body = "".join(
            "<tr><td style='text-align:left;vertical-align:top;white-space:nowrap'>"
            f"{html.escape(k)}</td>"
            f"<td style='text-align:left;overflow-wrap:anywhere'>{v}</td></tr>"
            for k, v in rows
        )
        shown = num(x) + (", saturating" if self.controls["saturate"].value else "")
        self.view.value = (
            f"<p>{html.escape(fmt.name)}: code <code>{coloured}</code> = "
            f"0x{self.code:0{digits}X}</p>"
            "<table><tr><th style='text-align:left'>what</th>"
            f"<th style='text-align:left'>{html.escape(fmt.name)}</th></tr>"
            f"{body}</table>"
            + number_line(fmt, self.code, x if self.typed is not None else None)
            + f"<p style='margin-bottom:0'>{html.escape(shown)} in every format:</p>"
            + block
        )


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

"""Explorers of chapters 04 and 05: a float format bit by bit, and a sample in it.

Each is built on :mod:`qlib.floats` (and :mod:`qlib.mx` for the scales).
Taught in ``notebooks/04_ieee754.ipynb`` (:class:`FloatExplorer`) and
``notebooks/05_low_precision_floats.ipynb`` (:class:`FormatHistogram`, which
lives in ``_format_histogram.py`` with its figure in ``_format_panel.py``, and
is re-exported here).
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
from ..plot import COLORS
from ._explorer import Explorer, _choice
from ._float_lines import number_line
from ._float_views import (
    decode_rows,
    every_format,
    neighbour_rows,
    note,
    num,
    parse_real,
    to_float,
)
from ._format_histogram import FormatHistogram

__all__ = ["FloatExplorer", "FormatHistogram"]


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
            saturate = self.controls["saturate"].value
            if isinstance(self.typed, Fraction):  # rounded once, from the exact number
                self.code = fmt.encode_rational(self.typed, saturate)
            else:  # nan, inf
                self.code = int(fmt.encode(np.float64(self.typed), saturate=saturate))
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
        typed = self.controls["value"].value.strip()
        shown = (typed if is_exact else num(x)) + (
            ", saturating" if self.controls["saturate"].value else ""
        )
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

"""Explorers of chapter 02 (and the environment check of chapter 00).

:class:`LevelsDemo` rounds a sine to the levels of a ``bits``-bit integer;
:class:`BitFlipper` and :class:`NumberWheel` read one code under every
scheme of :mod:`qlib.integers` and walk its overflow.

Taught in ``notebooks/00_start_here.ipynb`` (:class:`LevelsDemo`) and
``notebooks/02_integer_encodings.ipynb``.
"""

from __future__ import annotations

import html

import ipywidgets as widgets
import numpy as np

from .. import integers as _integers
from .._integer_codes import _as_codes, _check_bits
from ..plot import COLORS, new_figure
from ._explorer import Explorer, _png_view

__all__ = ["BitFlipper", "LevelsDemo", "NumberWheel"]


# --------------------------------------------------------------------------
# 00: does this environment run widgets?


class LevelsDemo(Explorer):
    """A sine wave rounded to the 2**bits values of a ``bits``-bit integer.

    The samples are scaled to the integer grid, rounded, saturated into the
    two's-complement range, and scaled back: ``x_q = q / 2**(bits-1)``.

    Example:
        >>> demo = LevelsDemo(bits=3)
        >>> demo.controls["bits"].value = 1
        >>> sorted(set(demo.x_q.tolist()))
        [-1.0, 0.0]

    Taught in ``notebooks/00_start_here.ipynb``.
    """

    title = "levels demo"

    def __init__(self, bits: int = 3) -> None:
        bits = _check_bits(bits, lo=1, hi=8)
        self.t = np.linspace(0.0, 1.0, 400)
        self.x = 0.9 * np.sin(2 * np.pi * 2 * self.t)
        self.controls = {
            "bits": widgets.IntSlider(value=bits, min=1, max=8, description="bits")
        }
        self.view = _png_view()
        self.fig, self.ax = new_figure(figsize=(6.4, 3.0))
        self.ax.plot(self.t, self.x, color=COLORS["sky"], label="signal $x$")
        (self.line,) = self.ax.plot(
            self.t, self.x, color=COLORS["vermillion"], label="rounded $x_q$"
        )
        self.ax.set(xlabel="time (s)", ylabel="amplitude", ylim=(-1.15, 1.15))
        legend = self.ax.legend(loc="upper right")
        self.moving = [self.line, self.ax.title, legend]
        self._finish()

    def _redraw(self) -> None:
        n = self.controls["bits"].value
        scale = 2 ** (n - 1)
        q = _integers.encode(
            np.round(self.x * scale), n, "twos_complement", overflow="saturate"
        )
        self.x_q = _integers.decode(q, n, "twos_complement") / scale
        self.line.set_ydata(self.x_q)
        self.ax.set_title(f"{n} bit{'s' if n > 1 else ''}: {2**n} levels")


# --------------------------------------------------------------------------
# 02: integer encodings


class BitFlipper(Explorer):
    """Toggle ``bits`` bits and read the code under every scheme at once.

    Example:
        >>> flipper = BitFlipper(bits=4)
        >>> flipper.set_code(0b1000)
        >>> flipper.values["twos_complement"], flipper.values["sign_magnitude"]
        (-8, 0)

    Taught in ``notebooks/02_integer_encodings.ipynb``.
    """

    title = "bit flipper"

    def __init__(self, bits: int = 8, code: int | None = None) -> None:
        self.bits = _check_bits(bits, lo=1, hi=16)
        if code is None:  # top and bottom bit set: the schemes disagree most
            code = 2 ** (self.bits - 1) | 1
        code = int(_as_codes(code, self.bits))
        self.controls = {
            f"bit{i}": widgets.ToggleButton(
                value=bool(code >> i & 1),
                description=str(code >> i & 1),
                tooltip=f"bit {i} (weight 2**{i})",
                layout=widgets.Layout(width="2.6em"),
            )
            for i in range(self.bits - 1, -1, -1)  # most significant first
        }
        self.view = widgets.HTML()
        row = widgets.HBox(list(self.controls.values()))
        self._finish(widgets.VBox([row, self.view]))

    @property
    def code(self) -> int:
        """The code the buttons spell, as an unsigned integer."""
        return sum(1 << i for i in range(self.bits) if self.controls[f"bit{i}"].value)

    def set_code(self, code: int) -> None:
        """Set every button from ``code`` and refresh once."""
        code = int(_as_codes(code, self.bits))
        self._busy = True
        try:
            for i in range(self.bits):
                self.controls[f"bit{i}"].value = bool(code >> i & 1)
        finally:
            self._busy = False
        self.update()

    def _redraw(self) -> None:
        code = self.code
        for i in range(self.bits):
            button = self.controls[f"bit{i}"]
            button.description = "1" if button.value else "0"
            button.button_style = "info" if button.value else ""
        self.values = {
            s: int(_integers.decode(code, self.bits, s)) for s in _integers.SCHEMES
        }
        pattern = str(_integers.to_bits(code, self.bits))
        rows = "".join(
            f"<tr><td style='text-align:left'>{html.escape(s)}</td>"
            f"<td style='text-align:right'><b>{v}</b></td>"
            f"<td style='text-align:right'>{list(_integers.value_range(self.bits, s))}"
            "</td></tr>"
            for s, v in self.values.items()
        )
        self.view.value = (
            f"<p>code <code>{pattern}</code> = 0x{code:0{(self.bits + 3) // 4}X}"
            f" ({self.bits} bits)</p>"
            "<table><tr><th style='text-align:left'>scheme</th><th>value</th>"
            f"<th>range</th></tr>{rows}</table>"
        )


class NumberWheel(Explorer):
    """The two's-complement wheel: ``a + b`` walks ``b`` steps around it.

    Codes sit clockwise from the top; crossing the line between the largest
    and the smallest value is an overflow.  The title compares the true sum
    with what wrapping and saturating arithmetic keep.

    Example:
        >>> wheel = NumberWheel(bits=4, a=7, b=2)
        >>> wheel.true_sum, wheel.wrapped, wheel.saturated
        (9, -7, 7)

    Taught in ``notebooks/02_integer_encodings.ipynb``.
    """

    title = "two's-complement number wheel"

    def __init__(self, bits: int = 4, a: int = 5, b: int = 4) -> None:
        bits = _check_bits(bits, lo=2, hi=5)
        lo, hi = _integers.value_range(bits, "twos_complement")
        self.controls = {
            "bits": widgets.IntSlider(value=bits, min=2, max=5, description="bits"),
            "a": widgets.IntSlider(value=a, min=lo, max=hi, description="a"),
            "b": widgets.IntSlider(
                value=b, min=-(2**bits), max=2**bits, description="b"
            ),
        }
        self.view = _png_view()
        self.fig, self.ax = new_figure(figsize=(5.2, 5.2))
        self.ax.set_aspect("equal")
        self.ax.set_axis_off()
        self.ax.set(xlim=(-1.45, 1.45), ylim=(-1.45, 1.45))
        (self.dots,) = self.ax.plot([], [], "o", color=COLORS["blue"], ms=5)
        (self.path,) = self.ax.plot([], [], "-", color=COLORS["orange"], lw=3)
        (self.start,) = self.ax.plot([], [], "o", color=COLORS["green"], ms=12)
        (self.end,) = self.ax.plot([], [], "*", color=COLORS["vermillion"], ms=16)
        (self.seam,) = self.ax.plot([], [], "--", color=COLORS["vermillion"], lw=1.5)
        self.labels: list = []
        self._bits_drawn = 0
        self.moving = [self.path, self.start, self.end, self.ax.title]
        self._finish()

    @staticmethod
    def _angle(code: np.ndarray | float, bits: int) -> np.ndarray:
        return np.pi / 2 - 2 * np.pi * np.asarray(code, float) / 2**bits

    def _draw_wheel(self, bits: int) -> None:
        self.layers.invalidate()  # the dots, labels and seam are not moving
        for text in self.labels:
            text.remove()
        codes = np.arange(2**bits)
        ang = self._angle(codes, bits)
        self.dots.set_data(np.cos(ang), np.sin(ang))
        values = _integers.decode(codes, bits, "twos_complement")
        patterns = _integers.to_bits(codes, bits)
        size = 9 if bits <= 4 else 7 if bits == 5 else 5.5
        self.labels = [
            self.ax.text(
                1.22 * np.cos(t),
                1.22 * np.sin(t),
                p,
                ha="center",
                va="center",
                fontsize=size,
                family="monospace",
            )
            for t, p in zip(ang, patterns, strict=True)
        ] + [
            self.ax.text(
                0.8 * np.cos(t),
                0.8 * np.sin(t),
                str(v),
                ha="center",
                va="center",
                fontsize=size + 1,
            )
            for t, v in zip(ang, values, strict=True)
        ]
        # the seam between the largest value (0111...) and the smallest (1000...)
        seam = self._angle(2 ** (bits - 1) - 0.5, bits)
        self.seam.set_data(
            [0.55 * np.cos(seam), 1.1 * np.cos(seam)],
            [0.55 * np.sin(seam), 1.1 * np.sin(seam)],
        )
        self._bits_drawn = bits

    def _redraw(self) -> None:
        bits = self.controls["bits"].value
        lo, hi = _integers.value_range(bits, "twos_complement")
        self._busy = True
        try:  # keep the sliders' ranges in step with the word size
            a_slider, b_slider = self.controls["a"], self.controls["b"]
            a_slider.min, a_slider.max = min(lo, a_slider.min), max(hi, a_slider.max)
            a_slider.value = int(np.clip(a_slider.value, lo, hi))
            a_slider.min, a_slider.max = lo, hi
            b_slider.min, b_slider.max = -(2**bits), 2**bits
        finally:
            self._busy = False
        if bits != self._bits_drawn:
            self._draw_wheel(bits)
        a, b = self.controls["a"].value, self.controls["b"].value
        self.true_sum = a + b
        self.wrapped = int(
            _integers.decode(
                _integers.encode(self.true_sum, bits, "twos_complement", "wrap"),
                bits,
                "twos_complement",
            )
        )
        self.saturated = int(np.clip(self.true_sum, lo, hi))
        start = int(_integers.encode(a, bits, "twos_complement"))
        steps = np.linspace(start, start + b, 8 * abs(b) + 2)
        ang = self._angle(steps, bits)
        radius = 1.0 - 0.25 * np.abs(steps - start) / 2 ** (bits + 1)
        self.path.set_data(radius * np.cos(ang), radius * np.sin(ang))
        self.start.set_data([np.cos(ang[0])], [np.sin(ang[0])])
        self.end.set_data([np.cos(ang[-1])], [np.sin(ang[-1])])

        def num(v: int) -> str:
            return str(v).replace("-", "\N{MINUS SIGN}")

        fits = lo <= self.true_sum <= hi
        verdict = (
            "fits"
            if fits
            else f"overflows: wrap gives {num(self.wrapped)}, "
            f"saturate gives {num(self.saturated)}"
        )
        term = f"+ {b}" if b >= 0 else f"\N{MINUS SIGN} {-b}"
        self.ax.set_title(
            f"{bits}-bit: {num(a)} {term} = {num(self.true_sum)} {verdict}"
        )

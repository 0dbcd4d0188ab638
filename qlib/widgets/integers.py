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
from .. import signals as _signals
from .._integer_codes import _as_codes, _check_bits
from ..plot import COLORS, Layers, new_figure
from ._explorer import Explorer, _png_view

__all__ = ["BitFlipper", "LevelsDemo", "NumberWheel"]


# --------------------------------------------------------------------------
# 00: does this environment run widgets?


class LevelsDemo(Explorer):
    """A sine wave rounded to the 2**bits values of a ``bits``-bit integer.

    The samples are scaled to the integer grid, rounded to the nearest
    integer (ties upward), saturated into the two's-complement range, and
    scaled back: ``x_q = q / 2**(bits-1)``.  That is the mid-tread uniform
    quantizer of chapter 01, :func:`qlib.signals.quantize_uniform` with
    ``kind="midtread"`` over ``[-1, 1]``, whose step is ``2**(1-bits)``.

    Example:
        >>> demo = LevelsDemo(bits=3)
        >>> demo.controls["bits"].value = 1
        >>> sorted(set(demo.x_q.tolist())), sorted(set(demo.q.tolist()))
        ([-1.0, 0.0], [-1, 0])

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
        self.x_q = _signals.quantize_uniform(self.x, n, kind="midtread")
        self.q = (self.x_q * 2 ** (n - 1)).astype(np.int64)  # the stored integers
        self.line.set_ydata(self.x_q)
        self.ax.set_title(f"{n} bit{'s' if n > 1 else ''}: {2**n} levels")


# --------------------------------------------------------------------------
# 02: integer encodings


class BitFlipper(Explorer):
    """Toggle ``bits`` bits and read the code under every scheme at once.

    The buttons ``-1`` and ``+1`` step the code as an unsigned counter does,
    wrapping from all ones to all zeros and back.  The table gives, for each
    scheme, the weight of every bit (the set ones in bold), the sum they
    make, and the value: unsigned counts ``2**i`` per bit; two's complement
    gives the top bit ``-2**(bits-1)`` and ones' complement
    ``-(2**(bits-1) - 1)``; offset binary counts like unsigned and then
    subtracts its bias ``2**(bits-1)``; sign-magnitude's top bit is a sign,
    not a weight.  The weights are read off :func:`qlib.integers.decode`.

    Example:
        >>> flipper = BitFlipper(bits=4)
        >>> flipper.set_code(0b1000)
        >>> flipper.values["twos_complement"], flipper.values["sign_magnitude"]
        (-8, 0)
        >>> flipper.steps["-1"].click()
        >>> flipper.code, flipper.values["twos_complement"]
        (7, 7)
        >>> flipper.weights["twos_complement"]
        [-8, 4, 2, 1]

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
        self.steps = {}  # buttons: not values, so not among the controls
        for name, step in (("-1", -1), ("+1", +1)):
            button = widgets.Button(
                description=name,
                tooltip=f"code {name}, wrapping around",
                layout=widgets.Layout(width="3.2em", margin="0 0 0 0.8em"),
            )
            button.on_click(lambda _, step=step: self.step(step))
            self.steps[name] = button
        self.weights, self.bias = self._weights(self.bits)
        self.note = ""
        self.view = widgets.HTML()
        row = widgets.HBox([*self.controls.values(), *self.steps.values()])
        self._finish(widgets.VBox([row, self.view]))

    @staticmethod
    def _weights(bits: int) -> tuple[dict[str, list], dict[str, int]]:
        """Each scheme's bit weights, most significant first, and its value at 0.

        For every scheme but sign-magnitude the value of a code is its value
        at 0 plus the weights of its set bits, and the weight of bit ``i`` is
        ``decode(2**i) - decode(0)``.  Sign-magnitude's top bit is marked
        ``"±"``.
        """
        powers = 1 << np.arange(bits - 1, -1, -1)
        weights, bias = {}, {}
        for s in _integers.SCHEMES:
            zero = int(_integers.decode(0, bits, s))
            weights[s] = [int(v) - zero for v in _integers.decode(powers, bits, s)]
            bias[s] = zero
        weights["sign_magnitude"][0] = "±"
        return weights, bias

    @property
    def code(self) -> int:
        """The code the buttons spell, as an unsigned integer."""
        return sum(1 << i for i in range(self.bits) if self.controls[f"bit{i}"].value)

    def set_code(self, code: int) -> None:
        """Set every button from ``code`` and refresh once."""
        self._set(code, note="")

    def _set(self, code: int, note: str) -> None:
        code = int(_as_codes(code, self.bits))
        self.note = note
        self._busy = True
        try:
            for i in range(self.bits):
                self.controls[f"bit{i}"].value = bool(code >> i & 1)
        finally:
            self._busy = False
        self.update()

    def step(self, step: int) -> None:
        """Add ``step`` to the code, modulo ``2**bits`` (what ``+1``/``-1`` do)."""
        before, after = self.code, (self.code + step) % 2**self.bits
        digits = (self.bits + 3) // 4
        note = ""
        if after != before + step:
            note = (
                f"{step:+d} wrapped around: "
                f"0x{before:0{digits}X} → 0x{after:0{digits}X}"
            )
        self._set(after, note)

    def _on_change(self, change: dict) -> None:
        if not self._busy:  # a bit toggled by hand
            self.note = ""
        super()._on_change(change)

    def _redraw(self) -> None:
        code, n = self.code, self.bits
        for i in range(n):
            button = self.controls[f"bit{i}"]
            button.description = "1" if button.value else "0"
            button.button_style = "info" if button.value else ""
        self.values = {s: int(_integers.decode(code, n, s)) for s in _integers.SCHEMES}
        set_bits = [bool(code >> i & 1) for i in range(n - 1, -1, -1)]
        self.view.value = (
            f"<p>code <code>{_integers.to_bits(code, n)}</code>"
            f" = 0x{code:0{(n + 3) // 4}X} ({n} bits)"
            + (f"; {html.escape(self.note)}" if self.note else "")
            + "</p><table><tr><th style='text-align:left'>scheme</th>"
            + "".join(f"<th>b{i}</th>" for i in range(n - 1, -1, -1))
            + "<th>sum</th><th>value</th><th>range</th></tr>"
            + "".join(self._row(s, set_bits) for s in _integers.SCHEMES)
            + "</table>"
        )

    def _row(self, scheme: str, set_bits: list[bool]) -> str:
        """One scheme's row: its weights (set bits in bold), sum, value and range."""
        weights = self.weights[scheme]
        cells = "".join(
            f"<td style='text-align:right'><b>{_num(w)}</b></td>"
            if on
            else f"<td style='text-align:right;opacity:0.4'>{_num(w)}</td>"
            for w, on in zip(weights, set_bits, strict=True)
        )
        terms = [w for w, on in zip(weights, set_bits, strict=True) if on]
        if scheme == "sign_magnitude":
            magnitude = [w for w in terms if w != "±"]
            total = _sum_text(magnitude)
            total = f"−({total})" if set_bits[0] else total
        else:
            total = _sum_text(terms)
            if self.bias[scheme]:
                total = f"{total} − {-self.bias[scheme]}"
        lo, hi = _integers.value_range(self.bits, scheme)
        return (
            f"<tr><td style='text-align:left'>{html.escape(scheme)}</td>{cells}"
            f"<td style='text-align:right'>{total}</td>"
            f"<td style='text-align:right'><b>{_num(self.values[scheme])}</b></td>"
            f"<td style='text-align:right'>[{_num(lo)}, {_num(hi)}]</td></tr>"
        )


class NumberWheel(Explorer):
    """The two's-complement wheel: ``a + b`` walks ``b`` steps around it.

    Codes sit clockwise from the top; crossing the line between the largest
    and the smallest value is an overflow.  The title compares the true sum
    with what wrapping and saturating arithmetic keep.  The centre works the
    sum as an ``bits``-bit adder does, on the codes of ``a`` and of ``b``
    (the low ``bits`` bits of ``b``, which is ``b`` itself when it fits): the
    carries into every column, the carry out of the top bit (flag C, an
    unsigned overflow) and the overflow flag V, the carry into the sign bit
    XOR the carry out of it (a signed overflow).

    Every word size keeps its own picture of the wheel, drawn when the
    explorer is built, so that changing ``bits`` redraws only the walk.

    Example:
        >>> wheel = NumberWheel(bits=4, a=7, b=2)
        >>> wheel.true_sum, wheel.wrapped, wheel.saturated
        (9, -7, 7)
        >>> wheel.carry_in, wheel.carry_out, wheel.overflow_flag
        (1, 0, 1)

    Taught in ``notebooks/02_integer_encodings.ipynb``.
    """

    title = "two's-complement number wheel"
    sizes = range(2, 6)  # the word sizes the slider offers

    def __init__(self, bits: int = 4, a: int = 5, b: int = 4) -> None:
        bits = _check_bits(bits, lo=self.sizes[0], hi=self.sizes[-1])
        lo, hi = _integers.value_range(bits, "twos_complement")
        self.controls = {
            "bits": widgets.IntSlider(
                value=bits, min=self.sizes[0], max=self.sizes[-1], description="bits"
            ),
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
        # the wheel of every word size, shown one at a time
        self._wheels = {n: self._draw_wheel(n) for n in self.sizes}
        (self.path,) = self.ax.plot([], [], "-", color=COLORS["orange"], lw=3)
        (self.start,) = self.ax.plot([], [], "o", color=COLORS["green"], ms=12)
        (self.end,) = self.ax.plot([], [], "*", color=COLORS["vermillion"], ms=16)
        self.adder = self.ax.text(
            0,
            0,
            "",
            ha="center",
            va="center",
            multialignment="left",
            family="monospace",
            fontsize=8.5,
        )
        self.moving = [self.path, self.start, self.end, self.adder, self.ax.title]
        self._bits_drawn = 0
        self._finish()
        # one kept picture per word size, drawn now rather than at a first visit
        self.kept_pictures = {bits: self.layers}
        for n in self.sizes:
            if n != bits:
                self._show_wheel(n)
                self.layers.png()
        self._show_wheel(bits)

    @property
    def dots(self):
        """The dots of the codes on the wheel shown."""
        return self._wheels[self._bits_drawn][0]

    @staticmethod
    def _angle(code: np.ndarray | float, bits: int) -> np.ndarray:
        return np.pi / 2 - 2 * np.pi * np.asarray(code, float) / 2**bits

    def _draw_wheel(self, bits: int) -> list:
        """The dots, labels and seam of the ``bits``-bit wheel (hidden)."""
        codes = np.arange(2**bits)
        ang = self._angle(codes, bits)
        (dots,) = self.ax.plot(
            np.cos(ang), np.sin(ang), "o", color=COLORS["blue"], ms=5
        )
        values = _integers.decode(codes, bits, "twos_complement")
        patterns = _integers.to_bits(codes, bits)
        size = 9 if bits <= 4 else 7
        labels = [
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
                _num(v),
                ha="center",
                va="center",
                fontsize=size + 1,
            )
            for t, v in zip(ang, values, strict=True)
        ]
        # the seam between the largest value (0111...) and the smallest (1000...)
        seam = self._angle(2 ** (bits - 1) - 0.5, bits)
        (line,) = self.ax.plot(
            [0.55 * np.cos(seam), 1.1 * np.cos(seam)],
            [0.55 * np.sin(seam), 1.1 * np.sin(seam)],
            "--",
            color=COLORS["vermillion"],
            lw=1.5,
        )
        parts = [dots, line, *labels]
        for artist in parts:
            artist.set_visible(False)
        return parts

    def _show_wheel(self, bits: int) -> None:
        """Show the ``bits``-bit wheel and switch to its kept picture."""
        for n, parts in self._wheels.items():
            for artist in parts:
                artist.set_visible(n == bits)
        self._bits_drawn = bits
        kept = getattr(self, "kept_pictures", None)
        if kept is not None:
            if bits not in kept:
                kept[bits] = Layers(self.fig, self.moving)
            self.layers = kept[bits]

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
            self._show_wheel(bits)
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
        self._add_codes(a, b, bits)

        fits = lo <= self.true_sum <= hi
        verdict = (
            "fits"
            if fits
            else f"overflows: wrap gives {_num(self.wrapped)}, "
            f"saturate gives {_num(self.saturated)}"
        )
        term = f"+ {b}" if b >= 0 else f"\N{MINUS SIGN} {-b}"
        self.ax.set_title(
            f"{bits}-bit: {_num(a)} {term} = {_num(self.true_sum)} {verdict}"
        )

    def _add_codes(self, a: int, b: int, bits: int) -> None:
        """The adder's column sum of the codes of ``a`` and ``b``, and its flags."""
        code_a = int(_integers.encode(a, bits, "twos_complement"))
        code_b = int(_integers.encode(b, bits, "twos_complement", "wrap"))
        # carries[i] is the carry into column i; carries[bits] the carry out
        carries = [(code_a % 2**i + code_b % 2**i) >> i for i in range(bits + 1)]
        self.carry_in, self.carry_out = carries[bits - 1], carries[bits]
        self.overflow_flag = self.carry_in ^ self.carry_out
        self.code_sum = (code_a + code_b) % 2**bits
        width = bits + 1
        rows = [
            "carry  " + "".join(str(c) for c in reversed(carries)),
            "a      " + str(_integers.to_bits(code_a, bits)).rjust(width),
            "b    + " + str(_integers.to_bits(code_b, bits)).rjust(width),
            "       " + "-" * width,
            "sum    " + str(_integers.to_bits(self.code_sum, bits)).rjust(width),
            "",
            f"C = {self.carry_out} (carry out)",
            f"V = {self.carry_in} XOR {self.carry_out} = {self.overflow_flag}",
        ]
        b_code_value = int(_integers.decode(code_b, bits, "twos_complement"))
        if b_code_value != b:
            rows.append(f"(b wraps to {_num(b_code_value)})")
        longest = max(len(r) for r in rows)
        rows = [r.ljust(longest) for r in rows]
        self.adder.set_text("\n".join(rows))


def _num(v: int | str) -> str:
    """An integer with a true minus sign (U+2212), as the tables print it."""
    return str(v).replace("-", "\N{MINUS SIGN}")


def _sum_text(terms: list[int]) -> str:
    """``"-128 + 1"`` for the weights [-128, 1]; ``"0"`` for none."""
    if not terms:
        return "0"
    text = _num(terms[0])
    for w in terms[1:]:
        text += f" − {_num(-w)}" if w < 0 else f" + {w}"
    return text

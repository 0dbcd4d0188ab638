"""Interactive explorers: thin ipywidgets wiring over qlib's pure functions.

Every explorer follows one pattern:

* its state is computed by a pure qlib function of the control values;
* a change of a control updates matplotlib artists in place (``set_data``,
  ``set_text``) and re-renders the picture, never rebuilding the figure; the
  artists that change are listed in ``moving`` and the rest of the figure is
  kept as a picture (:class:`qlib.plot.Layers`), so that a frame costs a few
  lines, not a whole figure of ticks and labels;
* it draws its default state at creation, and its rich display carries a
  static copy (PNG or HTML) next to the live widget, so a notebook read on
  GitHub, or converted to HTML, still shows the figure.

Tests drive explorers without a browser: set ``explorer.controls[name].value``
and read the state attributes or the artists.

Introduced in ``notebooks/00_start_here.ipynb``; the integer explorers are
taught in ``notebooks/02_integer_encodings.ipynb``.
"""

from __future__ import annotations

import base64
import html

import ipywidgets as widgets
import numpy as np

from . import floats, integers, signals
from .plot import COLORS, Layers, new_figure

__all__ = [
    "BitFlipper",
    "CompandingExplorer",
    "Explorer",
    "FloatExplorer",
    "FormatHistogram",
    "ImageBitDepth",
    "LevelsDemo",
    "NumberWheel",
    "SamplingExplorer",
]


class Explorer:
    """Base class: ``controls`` wired to ``_redraw``, a live view and a static copy.

    Subclasses build ``self.controls`` (name -> widget) and ``self.view`` (an
    ``ipywidgets.Image`` for figures or ``ipywidgets.HTML`` for tables), list
    in ``self.moving`` the artists that ``_redraw`` changes (a figure's axes
    limits may change too; anything else that changes calls
    ``self.layers.invalidate()``), then call :meth:`_finish`.
    """

    title = "explorer"

    controls: dict[str, widgets.Widget]
    view: widgets.Widget
    box: widgets.Box
    moving: list

    def _finish(self, layout: widgets.Box | None = None) -> None:
        self.box = layout or widgets.VBox([*self.controls.values(), self.view])
        if isinstance(self.view, widgets.Image):
            if not self.moving:
                raise TypeError(f"{type(self).__name__}.moving lists no artists")
            self.layers = Layers(self.fig, self.moving)
        for control in self.controls.values():
            control.observe(self._on_change, names="value")
        self._busy = False
        self.update()

    def _on_change(self, change: dict) -> None:
        if not self._busy:
            self.update()

    def update(self) -> None:
        """Recompute the state from the controls and refresh the view."""
        self._redraw()
        if isinstance(self.view, widgets.Image):
            self.view.value = self.layers.png()

    def _redraw(self) -> None:
        raise NotImplementedError

    def _static_bundle(self) -> dict[str, str]:
        if isinstance(self.view, widgets.Image):
            return {"image/png": base64.b64encode(self.view.value).decode("ascii")}
        return {"text/html": self.view.value}

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        data = self.box._repr_mimebundle_()
        data.update(self._static_bundle())
        data["text/plain"] = f"<{self.title}: run the notebook to interact>"
        return data


def _png_view() -> widgets.Image:
    return widgets.Image(
        format="png", layout=widgets.Layout(max_width="100%", align_self="flex-start")
    )


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
        bits = integers._check_bits(bits, lo=1, hi=8)
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
        q = integers.encode(
            np.round(self.x * scale), n, "twos_complement", overflow="saturate"
        )
        self.x_q = integers.decode(q, n, "twos_complement") / scale
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
        self.bits = integers._check_bits(bits, lo=1, hi=16)
        if code is None:  # top and bottom bit set: the schemes disagree most
            code = 2 ** (self.bits - 1) | 1
        code = int(integers._as_codes(code, self.bits))
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
        code = int(integers._as_codes(code, self.bits))
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
            s: int(integers.decode(code, self.bits, s)) for s in integers.SCHEMES
        }
        pattern = str(integers.to_bits(code, self.bits))
        rows = "".join(
            f"<tr><td style='text-align:left'>{html.escape(s)}</td>"
            f"<td style='text-align:right'><b>{v}</b></td>"
            f"<td style='text-align:right'>{list(integers.value_range(self.bits, s))}"
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
        bits = integers._check_bits(bits, lo=2, hi=5)
        lo, hi = integers.value_range(bits, "twos_complement")
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
        values = integers.decode(codes, bits, "twos_complement")
        patterns = integers.to_bits(codes, bits)
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
        lo, hi = integers.value_range(bits, "twos_complement")
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
            integers.decode(
                integers.encode(self.true_sum, bits, "twos_complement", "wrap"),
                bits,
                "twos_complement",
            )
        )
        self.saturated = int(np.clip(self.true_sum, lo, hi))
        start = int(integers.encode(a, bits, "twos_complement"))
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


# --------------------------------------------------------------------------
# 01: signal quantization


class SamplingExplorer(Explorer):
    """Sample a sine at ``rate`` Hz and quantize it to ``bits`` bits.

    Panels: the signal with its samples and their quantized values; the
    quantization error of each sample in units of the step ``delta``, with
    the bounds ``±1/2``; and the
    histogram of the error over many samples against the uniform density
    ``1/delta``.

    Example:
        >>> ex = SamplingExplorer(bits=3, rate=40)
        >>> ex.controls["bits"].value = 2
        >>> sorted(set(ex.x_q.round(3).tolist())) == [-0.75, -0.25, 0.25, 0.75]
        True

    Taught in ``notebooks/01_signal_quantization.ipynb``.
    """

    title = "sampling and quantization explorer"
    freq = 2.0  # Hz: two periods in the one-second window

    def __init__(self, bits: int = 3, rate: int = 40) -> None:
        self.controls = {
            "bits": widgets.IntSlider(value=bits, min=1, max=12, description="bits"),
            "rate": widgets.IntSlider(
                value=rate, min=5, max=200, step=5, description="rate (Hz)"
            ),
        }
        self.view = _png_view()
        self.fig, (self.ax, self.ax_err, self.ax_hist) = new_figure(
            3, 1, figsize=(6.4, 6.0)
        )
        t = np.linspace(0, 1, 300)
        self.ax.plot(
            t,
            signals.sine(t, self.freq, 0.9),
            color=COLORS["sky"],
            label="signal $x(t)$",
        )
        (self.samples,) = self.ax.plot(
            [], [], "o", color=COLORS["blue"], ms=4, label="samples $x[n]$"
        )
        (self.levels,) = self.ax.plot(
            [],
            [],
            drawstyle="steps-post",
            color=COLORS["vermillion"],
            label="quantized $x_q[n]$",
        )
        self.ax.set(xlabel="time (s)", ylabel="amplitude", ylim=(-1.1, 1.1))
        legend = self.ax.legend(loc="upper right", fontsize=8)
        # the error in units of the step: its bounds are +-1/2 at every depth
        (self.err,) = self.ax_err.plot([], [], "o", color=COLORS["vermillion"], ms=3)
        for bound in (-0.5, 0.5):
            self.ax_err.axhline(bound, color=COLORS["black"], ls="--", lw=1)
        self.ax_err.set(
            xlabel="time (s)",
            ylabel="error $e[n]$ / $\\Delta$",
            xlim=(0, 1),
            ylim=(-0.75, 0.75),
        )
        # the histogram uses many samples of an incommensurate sine
        self.busy = signals.sine(np.arange(20_000) / 997.0, 13.1, 0.9)
        self.hist = self.ax_hist.stairs(
            np.zeros(20),
            np.linspace(-1, 1, 21),
            fill=True,
            color=COLORS["orange"],
            alpha=0.7,
        )
        self.ax_hist.plot(
            [-0.5, -0.5, 0.5, 0.5],
            [0, 1, 1, 0],
            color=COLORS["black"],
            label="uniform: $1/\\Delta$",
        )
        # one height for every depth: the tallest histogram is at 1 bit
        top = max(self._error_density(b)[0].max() for b in range(1, 13))
        self.ax_hist.set(
            xlabel="error / $\\Delta$",
            ylabel="density × $\\Delta$",
            xlim=(-0.75, 0.75),
            ylim=(0, 1.1 * top),
        )
        hist_legend = self.ax_hist.legend(loc="upper right", fontsize=8)
        self.moving = [
            self.samples,
            self.levels,
            self.err,
            self.hist,
            self.ax.title,
            legend,
            hist_legend,
        ]
        self._finish()

    def _error_density(self, bits: int) -> tuple[np.ndarray, np.ndarray]:
        """Histogram (density, edges) of the busy sine's error, in units of delta."""
        e = (signals.quantize_uniform(self.busy, bits) - self.busy) / signals.step(bits)
        return np.histogram(e, bins=20, range=(-0.5, 0.5), density=True)

    def _redraw(self) -> None:
        bits, rate = self.controls["bits"].value, self.controls["rate"].value
        delta = signals.step(bits)
        self.t = signals.time_axis(rate, 1.0)
        self.x = signals.sine(self.t, self.freq, 0.9)
        self.x_q = signals.quantize_uniform(self.x, bits)
        self.e = self.x_q - self.x
        self.samples.set_data(self.t, self.x)
        self.levels.set_data(np.append(self.t, 1.0), np.append(self.x_q, self.x_q[-1]))
        self.err.set_data(self.t, self.e / delta)
        self.hist.set_data(*self._error_density(bits))
        self.ax.set_title(
            f"{bits} bits ({2**bits} levels, $\\Delta$ = {delta:.3g}), "
            f"{rate} samples/s; SQNR {signals.sqnr_db(self.x, self.x_q):.1f} dB"
        )


class ImageBitDepth(Explorer):
    """Grace Hopper's photograph at ``bits`` bits per colour channel.

    Example:
        >>> ex = ImageBitDepth(bits=4)
        >>> ex.controls["bits"].value = 1
        >>> sorted(np.unique(ex.shown).tolist())
        [0.0, 1.0]

    Taught in ``notebooks/01_signal_quantization.ipynb``.
    """

    title = "image bit-depth explorer"

    def __init__(self, bits: int = 3) -> None:
        self.image = signals.load_sample_image()[::2, ::2]
        self.controls = {
            "bits": widgets.IntSlider(value=bits, min=1, max=8, description="bits")
        }
        self.view = _png_view()
        self.fig, (self.ax_a, self.ax_b) = new_figure(1, 2, figsize=(6.4, 3.8))
        for ax in (self.ax_a, self.ax_b):
            ax.set_axis_off()
        self.ax_a.imshow(self.image)
        self.ax_a.set_title("8 bits: 256 levels/channel\n(the original)")
        self.im = self.ax_b.imshow(self.image)
        self.moving = [self.im, self.ax_b.title]
        self._finish()

    def _redraw(self) -> None:
        bits = self.controls["bits"].value
        self.shown = signals.quantize_image(self.image, bits)
        self.im.set_data(self.shown)
        sqnr = signals.sqnr_db(self.image, self.shown)
        self.ax_b.set_title(
            f"{bits} bit{'s' if bits > 1 else ''}: {2**bits} levels/channel\n"
            f"SQNR {sqnr:.1f} dB"
        )


class CompandingExplorer(Explorer):
    """Linear versus mu-law quantization of a sine at a chosen input level.

    Left: SQNR against input level for both, with the chosen level marked;
    the axes fit the curves of every depth the slider offers, so a change of
    depth moves the curves.  Right: one period of the sine and its two
    quantized versions, divided by the sine's amplitude.

    Example:
        >>> ex = CompandingExplorer(bits=8, level_db=-40)
        >>> bool(ex.sqnr_mu - ex.sqnr_linear >= 10)
        True

    Taught in ``notebooks/01_signal_quantization.ipynb``.
    """

    title = "companding explorer"

    def __init__(self, bits: int = 8, level_db: float = -40.0) -> None:
        self.t = signals.time_axis(8000, 0.5)
        self.unit = signals.sine(self.t, 50 * np.sqrt(2))
        self.levels_db = np.arange(-70.0, 0.5, 2.0)
        self.controls = {
            "bits": widgets.IntSlider(value=bits, min=4, max=12, description="bits"),
            "level_db": widgets.FloatSlider(
                value=level_db, min=-70, max=0, step=1, description="level (dBFS)"
            ),
        }
        self.view = _png_view()
        self.fig, (self.ax, self.ax_wave) = new_figure(1, 2, figsize=(7.2, 3.4))
        (self.curve_lin,) = self.ax.plot([], [], color=COLORS["blue"], label="linear")
        (self.curve_mu,) = self.ax.plot(
            [], [], color=COLORS["vermillion"], label="$\\mu$-law ($\\mu$ = 255)"
        )
        (self.mark,) = self.ax.plot([], [], "ko", ms=5)
        lowest, _ = self._curves(self.controls["bits"].min)
        highest, _ = self._curves(self.controls["bits"].max)
        self.ax.set(
            xlabel="input level (dBFS)",
            ylabel="SQNR (dB)",
            xlim=(-71, 1),
            ylim=(min(lowest.min(), 0) - 3, highest.max() + 5),
        )
        legend = self.ax.legend(loc="upper left", fontsize=8)
        n = 160  # one period of the 70.7 Hz sine at 8 kHz is ~113 samples
        (self.wave,) = self.ax_wave.plot([], [], color=COLORS["sky"], label="signal")
        (self.wave_lin,) = self.ax_wave.plot(
            [], [], drawstyle="steps-mid", color=COLORS["blue"], label="linear"
        )
        (self.wave_mu,) = self.ax_wave.plot(
            [],
            [],
            drawstyle="steps-mid",
            color=COLORS["vermillion"],
            label="$\\mu$-law",
        )
        self.ax_wave.set(xlabel="time (ms)", ylabel="amplitude / sine's amplitude")
        self.ax_wave.legend(
            loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3, fontsize=8
        )
        self._n = n
        self._bits_drawn = None
        self.moving = [
            self.curve_lin,
            self.curve_mu,
            self.mark,
            self.wave,
            self.wave_lin,
            self.wave_mu,
            self.ax.title,
            legend,
        ]
        self._finish()

    def _curves(self, bits: int) -> tuple[np.ndarray, np.ndarray]:
        amps = 10 ** (self.levels_db / 20)
        x = amps[:, None] * self.unit[None, :]
        lin = [signals.sqnr_db(r, signals.quantize_uniform(r, bits)) for r in x]
        mu = [signals.sqnr_db(r, signals.quantize_companded(r, bits)) for r in x]
        return np.array(lin), np.array(mu)

    def _redraw(self) -> None:
        bits, level = self.controls["bits"].value, self.controls["level_db"].value
        if bits != self._bits_drawn:
            lin, mu = self._curves(bits)
            self.curve_lin.set_data(self.levels_db, lin)
            self.curve_mu.set_data(self.levels_db, mu)
            self._bits_drawn = bits
        x = 10 ** (level / 20) * self.unit
        q_lin = signals.quantize_uniform(x, bits)
        q_mu = signals.quantize_companded(x, bits)
        self.sqnr_linear = signals.sqnr_db(x, q_lin)
        self.sqnr_mu = signals.sqnr_db(x, q_mu)
        self.mark.set_data([level, level], [self.sqnr_linear, self.sqnr_mu])
        n, ms, amplitude = self._n, self.t[: self._n] * 1e3, 10 ** (level / 20)
        self.wave.set_data(ms, x[:n] / amplitude)
        self.wave_lin.set_data(ms, q_lin[:n] / amplitude)
        self.wave_mu.set_data(ms, q_mu[:n] / amplitude)
        # axes of height 1.6 times a power of two: they change only at low
        # levels, when the linear staircase overshoots the sine by far
        over = 1.1 * np.abs(q_lin[:n]).max() / amplitude / 1.6
        peak = 1.6 * 2.0 ** max(0, int(np.ceil(np.log2(over))))
        self.ax_wave.set(xlim=(0, ms[-1]), ylim=(-peak, peak))
        self.ax.set_title(
            f"{bits} bits at {level:.0f} dBFS: linear {self.sqnr_linear:.1f} dB, "
            f"$\\mu$-law {self.sqnr_mu:.1f} dB",
            fontsize=9,
        )


# --------------------------------------------------------------------------
# 04 and 05: floating point


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
        if fmt not in floats.FORMATS:
            raise ValueError(f"fmt must be one of {tuple(floats.FORMATS)}; got {fmt!r}")
        self.controls = {
            "format": widgets.Dropdown(
                options=list(floats.FORMATS), value=fmt, description="format"
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
        return floats.FORMATS[self.controls["format"].value]

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
        fmt = floats.FORMATS[self.controls["format"].value]
        x = self.samples[self.controls["distribution"].value]
        scale = np.abs(x).max() / fmt.max
        x_q = fmt.quantize(x / scale) * scale
        e = x_q - x
        self.sqnr = signals.sqnr_db(x, x_q)
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

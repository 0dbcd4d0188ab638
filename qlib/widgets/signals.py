"""Explorers of chapter 01: sampling, bit depth and companding.

Each is built on :mod:`qlib.signals`.  Taught in
``notebooks/01_signal_quantization.ipynb``.
"""

from __future__ import annotations

import ipywidgets as widgets
import numpy as np

from .. import signals as _signals
from ..plot import COLORS, new_figure
from ._explorer import Explorer, _png_view

__all__ = ["CompandingExplorer", "ImageBitDepth", "SamplingExplorer"]


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
            _signals.sine(t, self.freq, 0.9),
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
        self.busy = _signals.sine(np.arange(20_000) / 997.0, 13.1, 0.9)
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
        delta = _signals.step(bits)
        e = (_signals.quantize_uniform(self.busy, bits) - self.busy) / delta
        return np.histogram(e, bins=20, range=(-0.5, 0.5), density=True)

    def _redraw(self) -> None:
        bits, rate = self.controls["bits"].value, self.controls["rate"].value
        delta = _signals.step(bits)
        self.t = _signals.time_axis(rate, 1.0)
        self.x = _signals.sine(self.t, self.freq, 0.9)
        self.x_q = _signals.quantize_uniform(self.x, bits)
        self.e = self.x_q - self.x
        self.samples.set_data(self.t, self.x)
        self.levels.set_data(np.append(self.t, 1.0), np.append(self.x_q, self.x_q[-1]))
        self.err.set_data(self.t, self.e / delta)
        self.hist.set_data(*self._error_density(bits))
        self.ax.set_title(
            f"{bits} bits ({2**bits} levels, $\\Delta$ = {delta:.3g}), "
            f"{rate} samples/s; SQNR {_signals.sqnr_db(self.x, self.x_q):.1f} dB"
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
        self.image = _signals.load_sample_image()[::2, ::2]
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
        self.shown = _signals.quantize_image(self.image, bits)
        self.im.set_data(self.shown)
        sqnr = _signals.sqnr_db(self.image, self.shown)
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
        self.t = _signals.time_axis(8000, 0.5)
        self.unit = _signals.sine(self.t, 50 * np.sqrt(2))
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
        lin = [_signals.sqnr_db(r, _signals.quantize_uniform(r, bits)) for r in x]
        mu = [_signals.sqnr_db(r, _signals.quantize_companded(r, bits)) for r in x]
        return np.array(lin), np.array(mu)

    def _redraw(self) -> None:
        bits, level = self.controls["bits"].value, self.controls["level_db"].value
        if bits != self._bits_drawn:
            lin, mu = self._curves(bits)
            self.curve_lin.set_data(self.levels_db, lin)
            self.curve_mu.set_data(self.levels_db, mu)
            self._bits_drawn = bits
        x = 10 ** (level / 20) * self.unit
        q_lin = _signals.quantize_uniform(x, bits)
        q_mu = _signals.quantize_companded(x, bits)
        self.sqnr_linear = _signals.sqnr_db(x, q_lin)
        self.sqnr_mu = _signals.sqnr_db(x, q_mu)
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

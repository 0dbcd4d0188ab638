"""The first explorer of chapter 01: :class:`SamplingExplorer`.

A sine sampled at a chosen rate and quantized to a chosen depth, with its
error, the error's histogram and the frequencies the samples can and cannot
tell apart, built on :mod:`qlib.signals`.  Kept out of
``qlib/widgets/signals.py`` so that each module reads in one sitting;
notebooks reach it as ``widgets.SamplingExplorer`` (re-exported by
:mod:`qlib.widgets.signals`).

Taught in ``notebooks/01_signal_quantization.ipynb``.
"""

from __future__ import annotations

import ipywidgets as widgets
import numpy as np

from .. import signals as _signals
from ..plot import COLORS, new_figure
from ._explorer import Explorer, _png_view

__all__ = ["SamplingExplorer"]


class SamplingExplorer(Explorer):
    """Sample a sine at ``rate`` Hz and quantize it to ``bits`` bits.

    Controls: the bits, the rate, and the sine's frequency ``freq`` and
    amplitude.  Panels: the signal with its samples and their quantized
    values, and, once ``freq`` passes the Nyquist frequency ``rate / 2``,
    the slower sine the samples show instead (the alias); the quantization
    error of each sample in units of the step ``delta``, with the bounds
    ``±1/2``; the histogram of the error over 20000 samples of a busier sine
    of the same amplitude (at a frequency and rate that share no period, so
    that its samples meet every phase: the histogram then depends on the
    amplitude only), against the uniform density ``1/delta``, with the errors
    of the samples shown marked below it; and a frequency axis with
    the sine, its images ``|±freq + m rate|``, the Nyquist frequency and the
    alias, ``signals.alias_frequency(freq, rate)``.

    Example:
        >>> ex = SamplingExplorer(bits=3, rate=40)
        >>> ex.controls["bits"].value = 2
        >>> sorted(set(ex.x_q.round(3).tolist())) == [-0.75, -0.25, 0.25, 0.75]
        True
        >>> ex.controls["rate"].value, ex.controls["freq"].value = 10, 7.0
        >>> ex.alias
        3.0

    Taught in ``notebooks/01_signal_quantization.ipynb``.
    """

    title = "sampling and quantization explorer"
    f_top = 25.0  # Hz: the right end of the frequency axis

    def __init__(
        self, bits: int = 3, rate: int = 40, freq: float = 2.0, amplitude: float = 0.9
    ) -> None:
        self.controls = {
            "bits": widgets.IntSlider(value=bits, min=1, max=12, description="bits"),
            "rate": widgets.IntSlider(
                value=rate, min=2, max=200, description="rate (Hz)"
            ),
            "freq": widgets.FloatSlider(
                value=freq, min=0.5, max=20, step=0.5, description="freq (Hz)"
            ),
            "amplitude": widgets.FloatSlider(
                value=amplitude, min=0.05, max=1.0, step=0.05, description="amplitude"
            ),
        }
        self.view = _png_view()
        self.fig, (self.ax, self.ax_err, self.ax_hist, self.ax_f) = new_figure(
            4, 1, figsize=(6.4, 7.4), gridspec_kw={"height_ratios": [2, 1.2, 1.4, 0.9]}
        )
        self.t_fine = np.linspace(0, 1, 2001)
        (self.signal,) = self.ax.plot(
            [], [], color=COLORS["sky"], label="signal $x(t)$"
        )
        (self.alias_line,) = self.ax.plot(
            [], [], "--", color=COLORS["purple"], lw=1.2, label="alias"
        )
        (self.samples,) = self.ax.plot(
            [], [], "o", color=COLORS["blue"], ms=4, label="samples $x[k]$"
        )
        (self.levels,) = self.ax.plot(
            [],
            [],
            drawstyle="steps-post",
            color=COLORS["vermillion"],
            label="quantized $x_q[k]$",
        )
        self.ax.set(
            xlabel="time (s)", ylabel="amplitude", xlim=(0, 1), ylim=(-1.1, 1.1)
        )
        # legends sit outside the axes, where no moving artist is drawn over them
        self.ax.legend(
            loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=4, fontsize=8
        )
        self.headline = self.fig.suptitle(" \n ", fontsize=9)
        # the error in units of the step: its bounds are +-1/2 at every depth
        (self.err,) = self.ax_err.plot([], [], "o", color=COLORS["vermillion"], ms=3)
        for bound in (-0.5, 0.5):
            self.ax_err.axhline(bound, color=COLORS["black"], ls="--", lw=1)
        self.ax_err.set(
            xlabel="time (s)",
            ylabel="error $e[k]$ / $\\Delta$",
            xlim=(0, 1),
            ylim=(-0.75, 0.75),
        )
        # the histogram's sine: 13.1 Hz at 997 samples/s never repeats a phase
        self._busy_unit = _signals.sine(np.arange(20_000) / 997.0, 13.1)
        self.hist = self.ax_hist.stairs(
            np.zeros(20),
            np.linspace(-1, 1, 21),
            fill=True,
            color=COLORS["orange"],
            alpha=0.7,
        )
        self.ax_hist.plot([-0.5, -0.5, 0.5, 0.5], [0, 1, 1, 0], color=COLORS["black"])
        self.ax_hist.text(0.52, 1.0, "uniform: $1/\\Delta$", va="center", fontsize=8)
        # one height for every depth, the tallest histogram of the default
        # amplitude; at small amplitudes taller bars run off the top
        top = max(self._error_density(b, 0.9)[0].max() for b in range(1, 13))
        self._top = 1.1 * top
        (self.rug,) = self.ax_hist.plot([], [], "|", color=COLORS["vermillion"], ms=8)
        self.ax_hist.text(
            0.52, 0.04 * self._top, "the samples\nshown above", va="bottom", fontsize=7
        )
        self.off_scale = self.ax_hist.text(
            0, 0.97 * self._top, "", ha="center", va="top", fontsize=8
        )
        self.ax_hist.set(
            xlabel="error / $\\Delta$",
            ylabel="density × $\\Delta$",
            xlim=(-0.75, 0.75),
            ylim=(0, self._top),
        )
        # the frequency axis: what the samples can and cannot tell apart
        ax_f = self.ax_f
        self.above = ax_f.axvspan(
            0, 0, color=COLORS["black"], alpha=0.08, lw=0, label="above rate/2"
        )
        (self.nyquist,) = ax_f.plot([], [], "--", color=COLORS["black"], lw=1)
        (self.images,) = ax_f.plot(
            [], [], color=COLORS["black"], lw=1, alpha=0.5, label="images"
        )
        (self.f_signal,) = ax_f.plot(
            [], [], color=COLORS["sky"], lw=3, label="$f$ of the sine"
        )
        (self.f_alias,) = ax_f.plot(
            [], [], "v", color=COLORS["purple"], ms=8, label="what the samples show"
        )
        self.f_text = ax_f.text(0, 1.1, "", ha="center", va="bottom", fontsize=8)
        ax_f.set(xlabel="frequency (Hz)", xlim=(0, self.f_top), ylim=(0, 1.6))
        ax_f.set_yticks([])
        ax_f.legend(loc="upper center", bbox_to_anchor=(0.5, -0.5), ncol=4, fontsize=8)
        self.moving = [
            self.signal,
            self.alias_line,
            self.samples,
            self.levels,
            self.err,
            self.hist,
            self.rug,
            self.off_scale,
            self.above,
            self.nyquist,
            self.images,
            self.f_signal,
            self.f_alias,
            self.f_text,
            self.headline,
        ]
        self._finish()

    def _error_density(
        self, bits: int, amplitude: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """Histogram (density, edges) of the error of a busy sine, in steps."""
        busy = amplitude * self._busy_unit
        e = (_signals.quantize_uniform(busy, bits) - busy) / _signals.step(bits)
        return np.histogram(e, bins=20, range=(-0.5, 0.5), density=True)

    def _redraw(self) -> None:
        bits, rate = self.controls["bits"].value, self.controls["rate"].value
        self.freq = freq = self.controls["freq"].value
        self.amplitude = amplitude = self.controls["amplitude"].value
        delta = _signals.step(bits)
        self.t = _signals.time_axis(rate, 1.0)
        self.x = _signals.sine(self.t, freq, amplitude)
        self.x_q = _signals.quantize_uniform(self.x, bits)
        self.e = self.x_q - self.x
        self.alias = float(_signals.alias_frequency(freq, rate))
        # the slowest sine through the same samples: freq minus the nearest
        # multiple of the rate, with its sign (a negative one is mirrored)
        shown = freq - rate * np.round(freq / rate)
        self.signal.set_data(self.t_fine, _signals.sine(self.t_fine, freq, amplitude))
        nyquist = rate / 2
        if freq > nyquist:
            self.alias_line.set_data(
                self.t_fine, _signals.sine(self.t_fine, shown, amplitude)
            )
        else:
            self.alias_line.set_data([], [])
        self.samples.set_data(self.t, self.x)
        self.levels.set_data(np.append(self.t, 1.0), np.append(self.x_q, self.x_q[-1]))
        self.err.set_data(self.t, self.e / delta)
        # the histogram: a busier sine of the same amplitude
        self.busy = amplitude * self._busy_unit
        density, edges = self._error_density(bits, amplitude)
        self.hist.set_data(density, edges)
        self.rug.set_data(self.e / delta, np.full(self.e.size, 0.04 * self._top))
        tallest = density.max()
        self.off_scale.set_text(
            f"tallest bar {tallest:.1f} (off the scale)" if tallest > self._top else ""
        )
        self._draw_frequencies(freq, rate)
        if freq > nyquist:
            said = (
                f"{freq:g} Hz is above rate/2 = {nyquist:g} Hz: "
                f"the samples show {self.alias:g} Hz"
            )
        elif freq == nyquist:
            said = f"{freq:g} Hz is rate/2 itself: every sample falls on a zero"
        else:
            said = f"{freq:g} Hz is below rate/2 = {nyquist:g} Hz: no aliasing"
        self.headline.set_text(
            f"{bits} bits ({2**bits} levels, $\\Delta$ = {delta:.3g}), "
            f"{rate} samples/s; SQNR {_signals.sqnr_db(self.x, self.x_q):.1f} dB\n"
            + said
        )

    def _draw_frequencies(self, freq: float, rate: int) -> None:
        """The sine, its images |±freq + m rate| and the alias on the axis."""
        nyquist = rate / 2
        self.above.set_x(nyquist)
        self.above.set_width(max(self.f_top - nyquist, 0))
        self.nyquist.set_data([nyquist, nyquist], [0, 1.6])
        m = np.arange(1, int(self.f_top / rate) + 2)
        images = np.concatenate([m * rate - freq, m * rate + freq])
        images = np.sort(images[(images >= 0) & (images <= self.f_top)])
        self.images.set_data(
            np.repeat(images, 3), np.tile([0.0, 0.6, np.nan], images.size)
        )
        self.f_signal.set_data([freq, freq], [0, 1])
        self.f_alias.set_data([self.alias], [1.05])
        self.f_text.set_position((self.alias, 1.15))
        self.f_text.set_text(f"{self.alias:g} Hz")

"""Explorers of chapter 01: sampling, bit depth and companding.

Each is built on :mod:`qlib.signals`.  :class:`SamplingExplorer`, the
largest, lives in ``_sampling.py`` and is re-exported here.  Taught in
``notebooks/01_signal_quantization.ipynb``.
"""

from __future__ import annotations

import ipywidgets as widgets
import numpy as np
from matplotlib.patches import Rectangle

from .. import signals as _signals
from ..plot import COLORS, new_figure
from ._explorer import Explorer, _png_view
from ._sampling import SamplingExplorer

__all__ = ["CompandingExplorer", "ImageBitDepth", "SamplingExplorer"]

# CompandingExplorer's signals (label, value) and laws (name, qlib's law)
_SIGNALS = (("sine", "sine"), ("speech-like (Laplacian)", "speech"))
_LAWS = {"linear": None, "mu": "mu", "a": "a"}
# ImageBitDepth's methods (label, value) and zoomed regions (top row, left
# column) in the half-size photograph
_METHODS = (
    ("rounding", "round"),
    ("random dither (RPDF)", "dither"),
    ("error diffusion (Floyd-Steinberg)", "diffusion"),
)
_METHOD_SHORT = {
    "round": "rounding",
    "dither": "random dither",
    "diffusion": "error diffusion",
}
_ZOOMS = {"face": (104, 100), "background": (10, 200), "uniform": (196, 150)}
_ZOOM_SIDE = 48


class ImageBitDepth(Explorer):
    """Grace Hopper's photograph at ``bits`` bits per colour channel.

    Controls: the depth; how each pixel is brought to the levels
    (``method``): rounding (:func:`qlib.signals.quantize_image`), rounding
    after random dither of one step's width (RPDF, which makes the error's
    mean zero whatever the pixel), or Floyd-Steinberg error diffusion
    (:func:`qlib.signals.error_diffusion`, which pushes the error to fine
    detail); and the region shown zoomed (``zoom``), marked on both images.
    Every depth and method is computed when the explorer is built.

    Example:
        >>> ex = ImageBitDepth(bits=4)
        >>> ex.controls["bits"].value = 1
        >>> sorted(np.unique(ex.shown).tolist())
        [0.0, 1.0]
        >>> ex.controls["method"].value = "diffusion"
        >>> bool(abs(ex.shown.mean() - ex.image.mean()) < 0.01)
        True

    Taught in ``notebooks/01_signal_quantization.ipynb``.
    """

    title = "image bit-depth explorer"

    def __init__(
        self, bits: int = 3, method: str = "round", zoom: str = "face"
    ) -> None:
        for name, value, allowed in (
            ("method", method, dict(_METHODS).values()),
            ("zoom", zoom, _ZOOMS),
        ):
            if value not in allowed:
                raise ValueError(
                    f"{name} must be one of {tuple(allowed)}; got {value!r}"
                )
        self.image = _signals.load_sample_image()[::2, ::2]
        self._shown = {}
        for b in range(1, 9):
            delta = 1 / (2**b - 1)  # the step between the image's levels
            noise = _signals.dither(self.image.shape, delta, "rpdf", seed=0)
            self._shown["round", b] = _signals.quantize_image(self.image, b)
            self._shown["dither", b] = _signals.quantize_image(self.image + noise, b)
            self._shown["diffusion", b] = _signals.error_diffusion(self.image, b)
        self._sqnr = {
            key: _signals.sqnr_db(self.image, shown)
            for key, shown in self._shown.items()
        }
        self.controls = {
            "bits": widgets.IntSlider(value=bits, min=1, max=8, description="bits"),
            "method": widgets.Dropdown(
                options=list(_METHODS), value=method, description="method"
            ),
            "zoom": widgets.Dropdown(
                options=list(_ZOOMS), value=zoom, description="zoom"
            ),
        }
        self.view = _png_view()
        self.fig, (self.ax_a, self.ax_b, self.ax_zoom) = new_figure(
            1, 3, figsize=(6.9, 2.9), gridspec_kw={"width_ratios": [1, 1, 1.17]}
        )
        for ax in (self.ax_a, self.ax_b, self.ax_zoom):
            ax.set_axis_off()
        self.ax_a.imshow(self.image)
        self.ax_a.set_title("8 bits: 256 levels/channel\n(the original)", fontsize=9)
        self.im = self.ax_b.imshow(self.image)
        side = _ZOOM_SIDE
        self.im_zoom = self.ax_zoom.imshow(
            self.image[:side, :side], interpolation="nearest"
        )
        self.boxes = [
            ax.add_patch(
                Rectangle((0, 0), side, side, fill=False, ec=COLORS["yellow"], lw=1.5)
            )
            for ax in (self.ax_a, self.ax_b)
        ]
        self.moving = [
            self.im,
            self.im_zoom,
            *self.boxes,
            self.ax_b.title,
            self.ax_zoom.title,
        ]
        self._finish()

    def _redraw(self) -> None:
        bits = self.controls["bits"].value
        self.method = method = self.controls["method"].value
        zoom = self.controls["zoom"].value
        self.shown = self._shown[method, bits]
        self.im.set_data(self.shown)
        row, col = _ZOOMS[zoom]
        side = _ZOOM_SIDE
        self.crop = self.shown[row : row + side, col : col + side]
        self.im_zoom.set_data(self.crop)
        for box in self.boxes:
            box.set_xy((col - 0.5, row - 0.5))
        sqnr = self._sqnr[method, bits]
        how = _METHOD_SHORT[method]
        self.ax_b.set_title(
            f"{bits} bit{'s' if bits > 1 else ''}: {2**bits} levels/channel\n"
            f"{how}, SQNR {sqnr:.1f} dB",
            fontsize=9,
        )
        self.ax_zoom.set_title(
            f"zoom: the {zoom}\n({side} × {side} pixels)", fontsize=9
        )


class CompandingExplorer(Explorer):
    """Linear, mu-law and A-law quantization of a sine or of speech at a chosen level.

    Left: SQNR against input level for the three quantizers, with the chosen
    level marked; the axes fit the curves of every depth and both signals,
    so a change of depth or signal moves the curves.  Right: 20 ms of the
    signal and its three quantized versions, divided by the largest of them
    in that stretch: at low levels the signal shrinks next to the linear
    quantizer's smallest levels.

    The level is in dBFS: the sine's amplitude is ``10**(level/20)``, and the
    speech-like signal (:func:`qlib.signals.speech_like`, Laplacian samples)
    has the rms of that sine, so near 0 dBFS its peaks overload.  mu-law has
    ``mu = 255`` and A-law ``A = 87.6``, the two laws of G.711.

    Example:
        >>> ex = CompandingExplorer(bits=8, level_db=-40)
        >>> bool(ex.sqnr_mu - ex.sqnr_linear >= 10)
        True
        >>> ex.controls["signal"].value = "speech"
        >>> bool(ex.sqnr_a - ex.sqnr_linear >= 10)
        True

    Taught in ``notebooks/01_signal_quantization.ipynb``.
    """

    title = "companding explorer"

    def __init__(
        self, bits: int = 8, level_db: float = -40.0, signal: str = "sine"
    ) -> None:
        if signal not in dict(_SIGNALS).values():
            raise ValueError(
                f"signal must be one of {tuple(dict(_SIGNALS).values())}; "
                f"got {signal!r}"
            )
        rate, self._n = 8000, 160  # 20 ms shown
        self.units = {  # each at 0 dBFS, 2000 samples
            "sine": _signals.sine(_signals.time_axis(rate, 0.25), 50 * np.sqrt(2)),
            "speech": _signals.speech_like(rate, 0.25, frame=0.01),
        }
        # where the 20 ms shown start: the speech stretch spans three frames
        self._start = {"sine": 0, "speech": 440}
        self.levels_db = np.arange(-70.0, 0.5, 2.0)
        self._curves: dict[tuple[str, int, str], np.ndarray] = {}
        self.controls = {
            "bits": widgets.IntSlider(value=bits, min=4, max=12, description="bits"),
            "level_db": widgets.FloatSlider(
                value=level_db, min=-70, max=0, step=1, description="level (dBFS)"
            ),
            "signal": widgets.Dropdown(
                options=list(_SIGNALS), value=signal, description="signal"
            ),
        }
        self.view = _png_view()
        self.fig, (self.ax, self.ax_wave) = new_figure(1, 2, figsize=(7.2, 3.6))
        colors = {
            "linear": COLORS["blue"],
            "mu": COLORS["vermillion"],
            "a": COLORS["green"],
        }
        names = {"linear": "linear", "mu": "$\\mu$-law", "a": "A-law"}
        styles = {"linear": "-", "mu": "-", "a": "--"}
        self.curve = {
            law: self.ax.plot([], [], styles[law], color=colors[law], label=names[law])[
                0
            ]
            for law in _LAWS
        }
        (self.mark,) = self.ax.plot([], [], "ko", ms=5)
        lows = [self._curve(s, self.controls["bits"].min, "linear") for s in self.units]
        highs = [
            self._curve(s, self.controls["bits"].max, "linear") for s in self.units
        ]
        self.ax.set(
            xlabel="input level (dBFS)",
            ylabel="SQNR (dB)",
            xlim=(-71, 1),
            ylim=(min(np.min(lows), 0) - 3, np.max(highs) + 5),
        )
        # legends sit above the axes, where no moving artist is drawn over them
        self.ax.legend(
            loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3, fontsize=8
        )
        (self.wave,) = self.ax_wave.plot([], [], color=COLORS["sky"], label="signal")
        self.wave_q = {
            law: self.ax_wave.plot(
                [],
                [],
                styles[law],
                drawstyle="steps-mid",
                color=colors[law],
                label=names[law],
            )[0]
            for law in _LAWS
        }
        self.ax_wave.set(
            xlabel="time (ms)",
            ylabel="amplitude / largest shown",
            xlim=(0, (self._n - 1) / rate * 1e3),
            ylim=(-1.15, 1.15),
        )
        self.ax_wave.legend(
            loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=4, fontsize=8
        )
        self.headline = self.fig.suptitle(" ", fontsize=9)
        self._rate = rate
        self.moving = [
            *self.curve.values(),
            self.mark,
            self.wave,
            *self.wave_q.values(),
            self.headline,
        ]
        self._finish()

    def _curve(self, signal: str, bits: int, law: str) -> np.ndarray:
        """SQNR against ``levels_db`` (computed once per signal, depth and law)."""
        key = (signal, bits, law)
        if key not in self._curves:
            self._curves[key] = _signals.sqnr_vs_level(
                self.units[signal], self.levels_db, self._quantizer(bits, law)
            )
        return self._curves[key]

    def _quantizer(self, bits: int, law: str):
        if _LAWS[law] is None:
            return lambda x: _signals.quantize_uniform(x, bits)
        return lambda x: _signals.quantize_companded(x, bits, law=_LAWS[law])

    def _redraw(self) -> None:
        bits, level = self.controls["bits"].value, self.controls["level_db"].value
        signal = self.controls["signal"].value
        for law, line in self.curve.items():
            line.set_data(self.levels_db, self._curve(signal, bits, law))
        gain = 10 ** (level / 20)
        x = gain * self.units[signal]
        q = {law: self._quantizer(bits, law)(x) for law in _LAWS}
        self.sqnr = {law: _signals.sqnr_db(x, q[law]) for law in _LAWS}
        self.sqnr_linear, self.sqnr_mu, self.sqnr_a = (
            self.sqnr["linear"],
            self.sqnr["mu"],
            self.sqnr["a"],
        )
        self.mark.set_data([level] * 3, list(self.sqnr.values()))
        shown = slice(self._start[signal], self._start[signal] + self._n)
        ms = np.arange(self._n) / self._rate * 1e3
        largest = max(np.abs(v[shown]).max() for v in (x, *q.values()))
        self.wave.set_data(ms, x[shown] / largest)
        for law, line in self.wave_q.items():
            line.set_data(ms, q[law][shown] / largest)
        label = "sine" if signal == "sine" else "speech-like"
        self.headline.set_text(
            f"{label}, {bits} bits at {level:.0f} dBFS: "
            f"linear {self.sqnr_linear:.1f} dB, $\\mu$-law {self.sqnr_mu:.1f} dB, "
            f"A-law {self.sqnr_a:.1f} dB"
        )

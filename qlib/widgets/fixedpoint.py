"""The explorer of chapter 03: a Qm.n format, its codes, and a sine stored in it.

Built on :mod:`qlib.fixedpoint`.  Taught in ``notebooks/03_fixed_point.ipynb``.
"""

from __future__ import annotations

import ipywidgets as widgets
import numpy as np

from .. import fixedpoint as _fixed
from ..plot import COLORS, new_figure
from ._explorer import Explorer, _png_view

__all__ = ["QFormatExplorer"]

_MINUS = "\N{MINUS SIGN}"
# the error of each rounding mode, in units of the resolution
_BOUNDS = {
    "floor": (-1.0, 0.0),
    "ceil": (0.0, 1.0),
    "toward_zero": (-1.0, 1.0),
    "nearest_away": (-0.5, 0.5),
    "nearest_even": (-0.5, 0.5),
    "stochastic": (-1.0, 1.0),
}


def _value(v: float, frac_bits: int) -> str:
    """A value of a Qm.n format, exactly (``q * 2**-n`` has at most ``n``
    decimals), without trailing zeros."""
    text = f"{v:.{frac_bits}f}"
    text = text.rstrip("0").rstrip(".") if "." in text else text
    return ("0" if text == "-0" else text).replace("-", _MINUS)


class QFormatExplorer(Explorer):
    """A Qm.n format (``int_bits`` without the sign bit) and a sine rounded into it.

    Controls: ``int_bits`` m (0-7), ``frac_bits`` n (0-8), ``signed``,
    ``rounding`` (every mode of :data:`qlib.fixedpoint.ROUNDINGS`; the
    stochastic one draws from a fixed seed, so a frame is always the same) and
    ``overflow``: ``"saturate"`` or ``"wrap"``.  The third rule, ``"error"``,
    is left out: the sine leaves the range of every format with fewer than
    two integer bits, so it would raise at almost every setting and show
    nothing (``qlib.fixedpoint.to_fixed(..., overflow="error")`` shows the
    error itself).  An unsigned word with
    no integer bits needs a fraction bit (UQ0.0 has none), so there the
    ``frac_bits`` slider starts at 1.

    Panels: the format's title line (name, word bits, range, resolution) over
    its number line, every code ``q`` a tick at its value ``q * 2**-n``
    (every ``k``-th code when there are more than 64; the axis spans the
    format's range, so the ticks stay put while the labels give the values);
    the sine of amplitude 2.5 (beyond the range of Q0.n and Q1.n, so that
    saturate and wrap differ) and its stored values ``x_q``; and the error
    ``x_q - x`` in units of the resolution, with the bounds of the rounding
    mode.  Samples whose rounded code falls outside the format are marked as
    overflowed, clipped to the axes when their error is off the scale.

    Example:
        >>> ex = QFormatExplorer(int_bits=1, frac_bits=3)
        >>> ex.fmt.name, ex.fmt.min, ex.fmt.max, ex.fmt.resolution
        ('Q1.3', -2.0, 1.875, 0.125)
        >>> ex.controls["frac_bits"].value = 0
        >>> sorted(set(ex.x_q.tolist()))
        [-2.0, -1.0, 0.0, 1.0]
        >>> ex.controls["overflow"].value = "wrap"
        >>> float(ex.x_q[ex.x.argmax()])   # 2.5 rounds to code 2: wraps to -2
        -2.0

    Taught in ``notebooks/03_fixed_point.ipynb``.
    """

    title = "Qm.n explorer"
    OVERFLOWS = ("saturate", "wrap")
    amplitude = 2.5  # beyond Q0.n's and Q1.n's range, inside Q2.n's
    freq = 2.0  # Hz: two periods in the one-second window
    seed = 0  # stochastic rounding: the same draws at every frame
    most_ticks = 64
    n_labels = 5  # labelled codes on the number line: ends, quarters, middle
    err_edge = 1.4  # errors beyond it are drawn on it

    def __init__(
        self,
        int_bits: int = 1,
        frac_bits: int = 3,
        signed: bool = True,
        rounding: str = "nearest_even",
        overflow: str = "saturate",
    ) -> None:
        _fixed._count(int_bits, "int_bits", 0, 7)
        _fixed._count(frac_bits, "frac_bits", 0, 8)
        _fixed.QFormat(int_bits, frac_bits, signed)  # e.g. UQ0.0: no bits
        _fixed._choice(rounding, "rounding", _fixed.ROUNDINGS)
        if overflow not in self.OVERFLOWS:
            raise ValueError(
                f"overflow must be one of {', '.join(self.OVERFLOWS)}; got "
                f"{overflow!r} ('error' raises instead of storing a value: "
                "call qlib.fixedpoint.to_fixed to see it)"
            )
        self.t = np.linspace(0.0, 1.0, 400, endpoint=False)
        self.x = self.amplitude * np.sin(2 * np.pi * self.freq * self.t)
        self.controls = {
            "int_bits": widgets.IntSlider(
                value=int_bits, min=0, max=7, description="int bits m"
            ),
            "frac_bits": widgets.IntSlider(
                value=frac_bits, min=0, max=8, description="frac bits n"
            ),
            "signed": widgets.Checkbox(value=signed, description="signed"),
            "rounding": widgets.Dropdown(
                options=_fixed.ROUNDINGS, value=rounding, description="rounding"
            ),
            "overflow": widgets.Dropdown(
                options=self.OVERFLOWS, value=overflow, description="overflow"
            ),
        }
        self.view = _png_view()
        self.fig, (self.ax_line, self.ax, self.ax_err) = new_figure(
            3, 1, figsize=(6.4, 6.4), gridspec_kw={"height_ratios": [1.0, 2.2, 1.4]}
        )
        self._number_line()
        self._signal_panel()
        self._error_panel()
        self.moving = [
            self.ticks,
            self.marks,
            *self.value_labels,
            *self.code_labels,
            self.ax_line.title,
            self.stored,
            self.range_lines,
            self.ax.title,
            self.err,
            self.over,
            self.bounds,
        ]  # the legends stay in the kept picture: nothing that moves reaches them
        self._finish()

    def _number_line(self) -> None:
        """Codes at fixed places (0 = the smallest, 1 = the largest code)."""
        ax = self.ax_line
        ax.set(xlim=(-0.12, 1.12), ylim=(-1.0, 1.0), xticks=[], yticks=[])
        ax.grid(False)
        ax.spines["left"].set_visible(False)
        ax.set_xlabel(
            "value $q \\cdot 2^{-n}$ (below), code $q$ (above), smallest to largest"
        )
        ax.plot([0, 1], [0, 0], color=COLORS["black"], lw=1)
        (self.ticks,) = ax.plot(
            [], [], "|", color=COLORS["blue"], ms=9, mew=1.2, ls="none"
        )
        (self.marks,) = ax.plot(
            [], [], "|", color=COLORS["black"], ms=16, mew=1.5, ls="none"
        )
        style = {"ha": "center", "fontsize": 8}
        self.value_labels = [
            ax.text(0, -0.4, "", va="top", **style) for _ in range(self.n_labels)
        ]
        self.code_labels = [
            ax.text(0, 0.4, "", va="bottom", color=COLORS["blue"], **style)
            for _ in range(self.n_labels)
        ]

    def _signal_panel(self) -> None:
        ax = self.ax
        ax.plot(self.t, self.x, color=COLORS["sky"], lw=2, label="signal $x$")
        (self.stored,) = ax.plot(
            [],
            [],
            drawstyle="steps-mid",
            color=COLORS["vermillion"],
            label="stored $x_q$",
        )
        (self.range_lines,) = ax.plot(
            [], [], "--", color=COLORS["black"], lw=1, label="range [min, max]"
        )
        ax.set(xlabel="time (s)", ylabel="value", xlim=(0, 1), ylim=(-4.4, 5.8))
        # above every range the sine reaches (Q2.n's largest values are below 4)
        ax.legend(loc="upper center", ncol=3, fontsize=8)

    def _error_panel(self) -> None:
        ax = self.ax_err
        (self.err,) = ax.plot(
            [], [], "o", color=COLORS["blue"], ms=2, label="rounding error"
        )
        (self.over,) = ax.plot(
            [],
            [],
            "x",
            color=COLORS["vermillion"],
            ms=4,
            label=f"overflowed (clipped to ±{self.err_edge})",
        )
        (self.bounds,) = ax.plot(
            [], [], "--", color=COLORS["black"], lw=1, label="bounds of the rounding"
        )
        edge = self.err_edge + 0.2
        ax.set(
            xlabel="time (s)",
            ylabel="error $(x_q - x)\\,/\\,2^{-n}$",
            xlim=(0, 1),
            ylim=(-edge, edge),
        )
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=3, fontsize=8)

    def _format(self) -> _fixed.QFormat:
        """The controls' format; an unsigned word with m = 0 keeps n >= 1."""
        m, frac = self.controls["int_bits"], self.controls["frac_bits"]
        signed = self.controls["signed"].value
        self._busy = True
        try:
            frac.min = 0 if signed or m.value > 0 else 1  # clamps the value up
        finally:
            self._busy = False
        return _fixed.QFormat(m.value, frac.value, signed)

    def _redraw(self) -> None:
        self.fmt = fmt = self._format()
        rounding = self.controls["rounding"].value
        overflow = self.controls["overflow"].value
        n, delta = fmt.frac_bits, fmt.resolution
        self.codes = _fixed.to_fixed(self.x, fmt, rounding, overflow, rng=self.seed)
        self.x_q = _fixed.from_fixed(self.codes, fmt)
        self.e = self.x_q - self.x
        # the rounded codes before overflow: a format with room for the sine
        # rounds on the same grid (and with the same draws)
        wide = _fixed.QFormat(self.controls["int_bits"].max, n)
        rounded = _fixed.to_fixed(self.x, wide, rounding, rng=self.seed)
        self.overflowed = (rounded < fmt.min_code) | (rounded > fmt.max_code)

        # the number line: every code, or every k-th one, and five labelled
        count = 2**fmt.word_bits
        k = max(1, count // self.most_ticks)
        span = fmt.max_code - fmt.min_code
        # thinned, every k-th code from the smallest: the largest is a labelled mark
        shown = np.arange(fmt.min_code, fmt.max_code + 1, k)
        self.ticks.set_data((shown - fmt.min_code) / span, np.zeros(shown.size))
        # (count - 1) / 2 rounds half to even: the middle label is code 0
        # of a signed format
        picks = np.unique(np.linspace(0, count - 1, self.n_labels).round()).astype(int)
        where = picks / span
        self.marks.set_data(where, np.zeros(picks.size))
        for i, (value, code) in enumerate(
            zip(self.value_labels, self.code_labels, strict=True)
        ):
            visible = i < picks.size
            value.set_visible(visible)
            code.set_visible(visible)
            if visible:
                q = int(fmt.min_code + picks[i])
                value.set_position((where[i], -0.4))
                value.set_text(_value(float(_fixed.from_fixed(q, fmt)), n))
                code.set_position((where[i], 0.4))
                code.set_text(str(q).replace("-", _MINUS))
        self.summary = (
            f"{fmt.name}: {fmt.word_bits}-bit word, range "
            f"[{_value(fmt.min, n)}, {_value(fmt.max, n)}], resolution "
            f"{_value(delta, n)}"
        )
        ordinal = f"{k}{'nd' if k % 10 == 2 else 'th'}"  # k: a power of two
        shown_note = "all shown" if k == 1 else f"every {ordinal} shown"
        self.ax_line.set_title(
            f"{self.summary} = $2^{{{-n}}}$\n{count} codes, {shown_note}", fontsize=9
        )

        # the signal and its stored values
        self.stored.set_data(self.t, self.x_q)
        nan = np.nan
        self.range_lines.set_data(
            [0, 1, nan, 0, 1], [fmt.min, fmt.min, nan, fmt.max, fmt.max]
        )
        rule = "saturate to the ends" if overflow == "saturate" else "wrap around"
        share = self.overflowed.mean()
        verdict = (
            f"{share:.0%} of the samples overflow and {rule}"
            if share
            else "no sample overflows: the range holds the sine"
        )
        self.ax.set_title(
            f"{verdict}; rounding {rounding.replace('_', ' ')}", fontsize=9
        )

        # the error in units of the resolution: the axes fit every format
        scaled = self.e / delta
        fits = ~self.overflowed
        self.err.set_data(self.t[fits], scaled[fits])
        edge = self.err_edge
        self.over.set_data(
            self.t[self.overflowed], np.clip(scaled[self.overflowed], -edge, edge)
        )
        lo, hi = _BOUNDS[rounding]
        self.bounds.set_data([0, 1, nan, 0, 1], [lo, lo, nan, hi, hi])

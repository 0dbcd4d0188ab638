"""The explorer of chapter 07: a real range mapped onto integer codes.

Built on :mod:`qlib.linear`.  Taught in
``notebooks/07_linear_quantization.ipynb``.
"""

from __future__ import annotations

import ipywidgets as widgets
import numpy as np
from matplotlib.patches import Rectangle

from .. import linear as _linear
from ..plot import COLORS, new_figure
from ._explorer import Explorer, _png_view

__all__ = ["LinearQuantExplorer"]

_MINUS = "\N{MINUS SIGN}"


def _num(v: float) -> str:
    return f"{v:.4g}".replace("-", _MINUS)


class LinearQuantExplorer(Explorer):
    """``q = clip(round(r / S) + Z)`` and back, ``r_hat = S (q - Z)``, for a
    range ``[r_min, r_max]`` and signed ``bits``-bit codes.

    Controls: ``r_min`` (-2.5 to 0), ``r_max`` (0.1 to 2.5), ``bits`` (2-8)
    and ``symmetric``.  The scale and zero point are
    :func:`qlib.linear.linear_qparams` of the range (float32, as ONNX),
    the codes :func:`qlib.linear.quantize_linear` of every ``r`` in
    [-3, 3] and the reconstruction :func:`qlib.linear.dequantize_linear`.
    Asymmetric: ``S = (r_max - r_min) / (2**bits - 1)`` and ``Z`` such that
    ``r_min`` is the lowest code; symmetric: ``S = max(|r_min|, r_max) /
    (2**(bits-1) - 1)``, ``Z = 0``, and the codes a lopsided range leaves
    unused are counted.

    Panels: the staircase ``r -> q`` (codes drawn from the lowest, bottom, to
    the highest, top, so the axes stay put at every bit width; their values
    are written beside them), with ``S`` and ``Z`` in the title, the requested
    range dashed, the region beyond the representable range
    ``[S (q_min - Z), S (q_max - Z)]`` shaded as clipped, and the point
    ``r = 0 -> Z``, which is exact; below, the error ``r_hat - r`` in units
    of ``S``: within ``±1/2`` inside the range, growing where values clip
    (drawn at the edge beyond ``±1.5``).

    Example:
        >>> ex = LinearQuantExplorer(r_min=-1.0, r_max=2.0, bits=8)
        >>> round(float(ex.scale), 6), int(ex.zero_point)
        (0.011765, -43)
        >>> ex.controls["symmetric"].value = True
        >>> round(float(ex.scale) * 127, 6), int(ex.zero_point), ex.used
        (2.0, 0, 192)

    Taught in ``notebooks/07_linear_quantization.ipynb``.
    """

    title = "linear quantization explorer"
    r_window = 3.0  # the r axis: [-3, 3], beyond every range the sliders give
    n_points = 4001
    err_edge = 1.5  # errors beyond it are drawn on it
    y_margin = 0.14  # room above and below the codes for their labels

    def __init__(
        self,
        r_min: float = -1.0,
        r_max: float = 2.0,
        bits: int = 3,
        symmetric: bool = False,
    ) -> None:
        if not -2.5 <= r_min <= 0:
            raise ValueError(f"r_min must be in [-2.5, 0]; got {r_min!r}")
        if not 0.1 <= r_max <= 2.5:
            raise ValueError(f"r_max must be in [0.1, 2.5]; got {r_max!r}")
        _linear._integer(bits, "bits", 2, 8)
        w = self.r_window
        self.r = np.linspace(-w, w, self.n_points)
        self.controls = {
            "r_min": widgets.FloatSlider(
                value=r_min, min=-2.5, max=0.0, step=0.05, description="r_min"
            ),
            "r_max": widgets.FloatSlider(
                value=r_max, min=0.1, max=2.5, step=0.05, description="r_max"
            ),
            "bits": widgets.IntSlider(value=bits, min=2, max=8, description="bits"),
            "symmetric": widgets.Checkbox(value=symmetric, description="symmetric"),
        }
        self.view = _png_view()
        self.fig, (self.ax, self.ax_err) = new_figure(
            2, 1, figsize=(6.4, 5.6), gridspec_kw={"height_ratios": [1.7, 1.0]}
        )
        self._staircase_panel()
        self._error_panel()
        self.moving = [
            self.stairs,
            self.zero,
            self.z_line,
            self.z_label,
            *self.code_labels,
            *self.clipped,
            *self.range_lines,
            self.ax.title,
            self.err,
            self.ax_err.title,
        ]  # the legends stay in the kept picture: nothing that moves reaches them
        self._finish()

    def _shade(self, ax, label: str | None = None) -> tuple[Rectangle, Rectangle]:
        """Two spans of the full height (x in data, y in axes units)."""
        style = {"color": COLORS["vermillion"], "alpha": 0.12, "lw": 0}
        spans = tuple(
            Rectangle(
                (0, 0),
                0,
                1,
                transform=ax.get_xaxis_transform(),
                label=label if i == 0 else None,
                **style,
            )
            for i in range(2)
        )
        for span in spans:
            ax.add_patch(span)
        return spans

    def _staircase_panel(self) -> None:
        ax, w = self.ax, self.r_window
        ax.set(
            xlim=(-w, w),
            ylim=(-self.y_margin, 1 + self.y_margin),
            yticks=[],
            xlabel="real value $r$",
            ylabel="code $q$ (lowest to highest)",
        )
        self.clipped = [*self._shade(ax, "clipped")]
        (self.stairs,) = ax.plot([], [], color=COLORS["blue"], lw=1.5, label="$q(r)$")
        (self.z_line,) = ax.plot([], [], ":", color=COLORS["black"], lw=1)
        (self.zero,) = ax.plot(
            [], [], "o", color=COLORS["vermillion"], ms=6, label="$r = 0 \\to Z$"
        )
        (range_line,) = ax.plot(
            [], [], "--", color=COLORS["green"], lw=1, label="$[r_{min}, r_{max}]$"
        )
        # in the margins: below the low end (left), above the high end (right)
        self.code_labels = [
            ax.text(-w + 0.08, -0.02, "", ha="left", va="top", fontsize=8),
            ax.text(w - 0.08, 1.02, "", ha="right", va="bottom", fontsize=8),
        ]
        # left of r = 0 the staircase is at Z or below: above the dotted line
        self.z_label = ax.text(
            -0.1, 0, "", ha="right", va="bottom", color=COLORS["vermillion"],
            fontsize=8,
        )  # fmt: skip
        self.range_lines = [range_line]

    def _error_panel(self) -> None:
        ax, w = self.ax_err, self.r_window
        self.clipped += self._shade(ax)
        (self.err,) = ax.plot([], [], color=COLORS["blue"], lw=1)
        for bound in (-0.5, 0.5):
            ax.axhline(bound, color=COLORS["black"], ls="--", lw=1)
        (range_line,) = ax.plot([], [], "--", color=COLORS["green"], lw=1)
        self.range_lines.append(range_line)
        edge = self.err_edge + 0.2
        ax.set(
            xlim=(-w, w),
            ylim=(-edge, edge),
            xlabel="real value $r$",
            ylabel="error $(\\hat r - r)\\,/\\,S$",
        )
        # one legend for both panels, below them: no moving artist crosses it
        handles, _ = self.ax.get_legend_handles_labels()
        ax.legend(
            handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.32),
            ncol=len(handles), fontsize=8,
        )  # fmt: skip

    def _redraw(self) -> None:
        c = self.controls
        bits, symmetric = c["bits"].value, c["symmetric"].value
        r_min, r_max = c["r_min"].value, c["r_max"].value
        s, z = _linear.linear_qparams(
            np.array([r_min, r_max], np.float32), bits, symmetric=symmetric
        )
        self.scale, self.zero_point = s, z
        self.q_min, self.q_max = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
        self.q = _linear.quantize_linear(self.r, s, z, bits=bits)
        self.r_hat = _linear.dequantize_linear(self.q, s, z).astype(np.float64)
        self.e = self.r_hat - self.r
        s64, zi = float(s), int(z)
        # the representable range: beyond it values clip to q_min or q_max
        self.clip_lo, self.clip_hi = s64 * (self.q_min - zi), s64 * (self.q_max - zi)
        ends = _linear.quantize_linear([r_min, r_max], s, z, bits=bits)
        self.used = int(ends[1]) - int(ends[0]) + 1  # codes the range reaches
        count = 2**bits

        # the staircase, codes from the lowest (0) to the highest (1)
        span = self.q_max - self.q_min
        height = (zi - self.q_min) / span
        self.stairs.set_data(self.r, (self.q.astype(np.int64) - self.q_min) / span)
        self.zero.set_data([0.0], [height])
        self.z_line.set_data([-self.r_window, 0.0], [height, height])
        self.z_label.set_position((-0.1, height))
        self.z_label.set_text(f"Z = {_num(zi)}")
        low, high = self.code_labels
        low.set_text(f"q_min = {_num(self.q_min)}")
        high.set_text(f"q_max = {self.q_max}")
        w = self.r_window
        for left, right in (self.clipped[0:2], self.clipped[2:4]):
            left.set_x(-w)
            left.set_width(max(self.clip_lo - -w, 0.0))
            right.set_x(self.clip_hi)
            right.set_width(max(w - self.clip_hi, 0.0))
        lo, hi = -self.y_margin, 1 + self.y_margin
        self.range_lines[0].set_data(
            [r_min, r_min, np.nan, r_max, r_max], [lo, hi, np.nan, lo, hi]
        )
        edge = self.err_edge + 0.2
        self.range_lines[1].set_data(
            [r_min, r_min, np.nan, r_max, r_max], [-edge, edge, np.nan, -edge, edge]
        )
        kind = "symmetric" if symmetric else "asymmetric"
        self.summary = (
            f"{bits}-bit {kind}: S = {_num(s64)}, Z = {_num(zi)}; representable "
            f"[{_num(self.clip_lo)}, {_num(self.clip_hi)}]"
        )
        # r = 0 is a code: it goes to Z and comes back as 0 exactly
        self.q_of_zero = int(_linear.quantize_linear(0.0, s, z, bits=bits))
        back = float(_linear.dequantize_linear(self.q_of_zero, s, z))
        self.ax.set_title(
            f"{self.summary}\nr = 0 \u2192 q = Z = {_num(self.q_of_zero)} \u2192 "
            f"S(q \u2212 Z) = {_num(back)} exactly; the range [r_min, r_max] uses "
            f"{self.used} of {count} codes",
            fontsize=9,
        )

        # the error in units of S: the same axes at every scale
        scaled = self.e / s64
        inside = (self.r >= self.clip_lo) & (self.r <= self.clip_hi)
        self.err.set_data(self.r, np.clip(scaled, -self.err_edge, self.err_edge))
        worst = np.abs(scaled[inside]).max()
        self.ax_err.set_title(
            f"rounding error inside the range: at most {worst:.3f} S; "
            "beyond it (shaded) values clip",
            fontsize=9,
        )

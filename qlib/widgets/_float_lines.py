"""The two number lines of :class:`~qlib.widgets.floats.FloatExplorer`, as
inline SVG: where a value lies in its format's range, and its neighbours with
the rounding boundaries between them.

A pure function of a :class:`~qlib.floats.FloatFormat` and a code, kept apart
from the other views (``_float_views.py``) so that each reads in one sitting.

Taught in ``notebooks/04_ieee754.ipynb`` and
``notebooks/05_low_precision_floats.ipynb``.
"""

from __future__ import annotations

import html
import math

import numpy as np

from .. import floats as _floats
from ..plot import COLORS
from ._float_views import MINUS, num

__all__ = ["number_line"]

_W, _LEFT, _RIGHT = 600, 46, 560


def _svg_text(x: float, y: float, text: str, anchor: str = "middle", **style) -> str:
    extra = "".join(f' {k.replace("_", "-")}="{v}"' for k, v in style.items())
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{extra}>'
        f"{html.escape(text)}</text>"
    )


def _binade_step(span: float) -> int:
    return next(s for s in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512) if span / s <= 24)


def number_line(fmt: _floats.FloatFormat, code: int, typed: float | None = None) -> str:
    """Two number lines as inline SVG: where the value lies in the format's
    range (log2 of its magnitude, subnormals shaded, every value ticked for a
    format of at most 8 bits), and its neighbours on a linear scale with the
    rounding boundaries, so a typed value (``typed``) is seen rounding.

    Example:
        >>> svg = number_line(_floats.FORMATS["fp4_e2m1fn"], 0x3, typed=1.3)
        >>> svg.startswith("<svg") and "rounds to this code" in svg
        True
    """
    value = float(fmt.decode(code))
    blue, red, sky = COLORS["blue"], COLORS["vermillion"], COLORS["sky"]
    lo, hi = math.log2(fmt.min_subnormal), math.log2(fmt.max)
    pad = 0.06 * (hi - lo) + 0.5
    a, b = lo - pad, hi + pad

    def at(t: float) -> float:
        return _LEFT + (t - a) / (b - a) * (_RIGHT - _LEFT)

    y = 34
    parts = [
        _svg_text(_LEFT - 40, 12, "magnitude on a log2 scale", "start", fill="#555"),
        f'<line x1="{at(lo):.1f}" y1="{y}" x2="{at(hi):.1f}" y2="{y}" stroke="#444"/>',
    ]
    sub_end = at(math.log2(fmt.min_normal))
    if fmt.specials != "e8m0" and sub_end - at(lo) > 1:
        parts.append(
            f'<rect x="{at(lo):.1f}" y="{y - 6}" width="{sub_end - at(lo):.1f}" '
            f'height="12" fill="{sky}" opacity="0.35"/>'
        )
        if sub_end - at(lo) > 50:
            parts.append(
                _svg_text((at(lo) + sub_end) / 2, y - 9, "subnormal", fill="#555")
            )
    if fmt.bits <= 8:
        ticks = np.log2(fmt.positive_values())
    else:
        step = _binade_step(hi - lo)
        ticks = np.arange(math.ceil(lo / step) * step, hi + 1e-9, step)
    parts += [
        f'<line x1="{at(t):.1f}" y1="{y - 4}" x2="{at(t):.1f}" y2="{y + 4}" '
        'stroke="#444" stroke-width="0.8"/>'
        for t in ticks
    ]
    labels = [(lo, num(fmt.min_subnormal, 3)), (hi, num(fmt.max, 4))]
    if min(abs(at(0) - at(lo)), abs(at(hi) - at(0))) > 40:
        labels.append((0.0, "1"))
    parts += [_svg_text(at(t), y + 17, text, font_size="10") for t, text in labels]
    if fmt.specials != "e8m0":  # E8M0 has no zero
        parts.append(_svg_text(at(a), y + 4, "0", fill="#444"))
    if fmt.has_inf:
        parts.append(_svg_text(at(b), y + 4, "inf", fill="#444"))
    if math.isnan(value):
        parts.append(
            _svg_text(_RIGHT, 12, "NaN has no place on the line", "end", fill=red)
        )
    else:
        t = a if value == 0 else b if math.isinf(value) else math.log2(abs(value))
        where = at(min(max(t, a), b))
        sign = MINUS if math.copysign(1.0, value) < 0 else ""
        parts.append(
            f'<path d="M{where - 5:.1f},{y - 13} h10 l-5,9 z" fill="{red}"/>'
            + _svg_text(where, y - 16, f"{sign}{num(abs(value), 5)}", fill=red)
        )
    if typed is not None and math.isfinite(typed) and typed != value:
        t = a if typed == 0 else math.log2(abs(typed))
        parts.append(
            f'<circle cx="{at(min(max(t, a), b)):.1f}" cy="{y + 8}" r="3" '
            f'fill="none" stroke="{blue}"/>'
        )
    local = _neighbour_line(fmt, value, typed, y=92)
    height = 128 if local else 62
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{height}" '
        f'viewBox="0 0 {_W} {height}" font-family="sans-serif" font-size="11">'
        + "".join(parts + local)
        + "</svg>"
    )


def _neighbour_line(fmt, value: float, typed: float | None, y: int) -> list[str]:
    """The value and its two neighbours on a linear scale."""
    if not math.isfinite(value):
        return []
    blue, red, sky = COLORS["blue"], COLORS["vermillion"], COLORS["sky"]
    down, up = float(fmt.next_down(value)), float(fmt.next_up(value))
    down = down if math.isfinite(down) else None
    up = up if math.isfinite(up) else None
    if down is None and up is None:
        return []
    lo = down if down is not None else value - (up - value)
    hi = up if up is not None else value + (value - down)
    left, right = _LEFT + 40, _RIGHT - 40

    def at(v: float) -> float:
        return left + (v - lo) / (hi - lo) * (right - left)

    low_mid = (down + value) / 2 if down is not None else lo
    high_mid = (value + up) / 2 if up is not None else hi
    parts = [
        _svg_text(
            _LEFT - 40, y - 26, "neighbours on a linear scale", "start", fill="#555"
        ),
        f'<rect x="{at(low_mid):.1f}" y="{y - 7}" '
        f'width="{at(high_mid) - at(low_mid):.1f}" height="14" fill="{sky}" '
        'opacity="0.35"/>',
        _svg_text(
            (at(low_mid) + at(high_mid)) / 2, y - 10, "rounds to this code", fill="#555"
        ),
        f'<line x1="{left - 20}" y1="{y}" x2="{right + 20}" y2="{y}" stroke="#444"/>',
    ]
    for mid in (m for m, n in ((low_mid, down), (high_mid, up)) if n is not None):
        parts.append(
            f'<line x1="{at(mid):.1f}" y1="{y - 8}" x2="{at(mid):.1f}" y2="{y + 8}" '
            'stroke="#444" stroke-dasharray="3,2"/>'
        )
    for v, colour, size in ((down, "#444", 5), (value, red, 9), (up, "#444", 5)):
        if v is None:
            continue
        parts.append(
            f'<line x1="{at(v):.1f}" y1="{y - size}" x2="{at(v):.1f}" y2="{y + size}" '
            f'stroke="{colour}" stroke-width="2"/>'
            + _svg_text(at(v), y + 20, num(v, 6), fill=colour, font_size="10")
        )
    if up is None:
        parts.append(_svg_text(right + 20, y + 20, "none above", "end", fill="#555"))
    if down is None:
        parts.append(_svg_text(left - 20, y + 20, "none below", "start", fill="#555"))
    if typed is not None and math.isfinite(typed) and lo <= typed <= hi:
        parts.append(
            f'<circle cx="{at(typed):.1f}" cy="{y}" r="3.5" fill="none" '
            f'stroke="{blue}" stroke-width="1.5"/>'
        )
    return parts

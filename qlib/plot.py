"""One figure style for the whole course.

Colours are the Okabe-Ito palette, which stays distinguishable for the common
forms of colour blindness.  Notebooks call :func:`use_style` once; widgets build
their figures with :func:`new_figure`, which applies the same style without
touching pyplot's global state.

Introduced in ``notebooks/00_start_here.ipynb``.
"""

from __future__ import annotations

import io

import matplotlib as mpl
import numpy as np
import PIL.Image
from cycler import cycler
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["COLORS", "STYLE", "new_figure", "png_bytes", "use_style"]

COLORS = {
    "blue": "#0072B2",
    "orange": "#E69F00",
    "green": "#009E73",
    "vermillion": "#D55E00",
    "purple": "#CC79A7",
    "sky": "#56B4E9",
    "yellow": "#F0E442",
    "black": "#000000",
}

STYLE = {
    "figure.figsize": (6.4, 3.6),
    "figure.dpi": 100,
    "savefig.dpi": 100,
    "figure.constrained_layout.use": True,
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.prop_cycle": cycler(
        color=[COLORS[k] for k in ("blue", "orange", "green", "vermillion", "purple")]
    ),
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "image.cmap": "viridis",
}


def use_style() -> None:
    """Apply the course style to pyplot figures made from now on.

    Example:
        >>> use_style()
        >>> import matplotlib as mpl
        >>> mpl.rcParams["axes.spines.top"]
        False
    """
    mpl.rcParams.update(STYLE)


def new_figure(
    nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float] | None = None, **kw
):
    """A styled :class:`~matplotlib.figure.Figure` that pyplot does not manage.

    Such a figure is never shown twice by the inline backend, and is drawn
    with :func:`png_bytes` whenever a widget needs a fresh picture.

    Example:
        >>> fig, ax = new_figure()
        >>> len(fig.axes)
        1
    """
    with mpl.rc_context(STYLE):
        fig = Figure(figsize=figsize or STYLE["figure.figsize"])
        FigureCanvasAgg(fig)
        axes = fig.subplots(nrows, ncols, **kw)
    return fig, axes


def png_bytes(fig: Figure) -> bytes:
    """Render ``fig`` with Agg and encode it as PNG, with no varying metadata.

    The layout is computed at the first rendering and then kept, so that a
    widget's later frames only redraw (a constrained layout would cost more
    than the drawing itself).

    Example:
        >>> fig, ax = new_figure()
        >>> png_bytes(fig)[:4]
        b'\\x89PNG'
    """
    canvas = fig.canvas
    if not isinstance(canvas, FigureCanvasAgg):
        canvas = FigureCanvasAgg(fig)
    with mpl.rc_context(STYLE):
        canvas.draw()
        if fig.get_layout_engine() is not None:
            fig.set_layout_engine("none")
    rgba = np.asarray(canvas.buffer_rgba())
    buf = io.BytesIO()
    PIL.Image.fromarray(rgba[..., :3]).save(buf, format="png", compress_level=3)
    return buf.getvalue()

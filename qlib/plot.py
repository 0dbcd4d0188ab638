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
from matplotlib.layout_engine import PlaceHolderLayoutEngine

__all__ = ["COLORS", "STYLE", "Layers", "new_figure", "use_style"]

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

    Such a figure is never shown twice by the inline backend; a widget draws
    it with :class:`Layers` whenever it needs a fresh picture.

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


class Layers:
    """Frames of a figure in which only a few artists change.

    Drawing a figure is mostly drawing its axes: ticks, tick labels, grid.
    When a widget moves a line and leaves the axes alone, those need not be
    drawn again.  ``Layers`` draws the figure once without the ``moving``
    artists (they are marked animated), keeps that picture, and for each
    frame pastes it back and draws the moving artists on top, in z-order.
    The layout is computed at the first frame and then kept (a constrained
    layout would cost more than the drawing itself).

    The kept picture is drawn again whenever any axes' limits change, or
    after :meth:`invalidate` (call it when a widget changes anything else
    that is not in ``moving``: text, ticks, a static line).  Every frame, the
    first included, goes through the same path, so a frame does not depend on
    whether the kept picture was fresh.

    Example:
        >>> fig, ax = new_figure()
        >>> (line,) = ax.plot([0, 1], [0, 1])
        >>> layers = Layers(fig, [line])
        >>> first = layers.png()
        >>> line.set_ydata([1, 0])
        >>> layers.png() != first
        True
        >>> line.set_ydata([0, 1])
        >>> layers.png() == first
        True
    """

    def __init__(self, fig: Figure, moving) -> None:
        self.fig = fig
        self.moving = sorted(moving, key=lambda artist: artist.get_zorder())
        self._background = None
        self._key: tuple | None = None
        self.redraws = 0  # how many times the kept picture was drawn

    def invalidate(self) -> None:
        """Draw the kept picture again at the next frame."""
        self._background = None

    def _limits(self) -> tuple:
        return tuple((*ax.get_xlim(), *ax.get_ylim()) for ax in self.fig.axes)

    def png(self) -> bytes:
        """The current frame as PNG bytes."""
        canvas = _agg_canvas(self.fig)
        with mpl.rc_context(STYLE):
            if _has_layout(self.fig):
                # lay out once with every artist in place, then keep it
                canvas.draw()
                self.fig.set_layout_engine("none")
            key = self._limits()
            if self._background is None or key != self._key:
                for artist in self.moving:
                    artist.set_animated(True)
                canvas.draw()
                self._background = canvas.copy_from_bbox(self.fig.bbox)
                self._key = key
                self.redraws += 1
            else:
                canvas.restore_region(self._background)
            renderer = canvas.get_renderer()
            for artist in self.moving:
                artist.draw(renderer)
        return _encode(canvas)


def _agg_canvas(fig: Figure) -> FigureCanvasAgg:
    canvas = fig.canvas
    if not isinstance(canvas, FigureCanvasAgg):
        canvas = FigureCanvasAgg(fig)
    return canvas


def _has_layout(fig: Figure) -> bool:
    """Whether drawing ``fig`` would lay it out (again)."""
    engine = fig.get_layout_engine()
    return engine is not None and not isinstance(engine, PlaceHolderLayoutEngine)


def _encode(canvas: FigureCanvasAgg) -> bytes:
    rgba = np.asarray(canvas.buffer_rgba())
    buf = io.BytesIO()
    PIL.Image.fromarray(rgba[..., :3]).save(buf, format="png", compress_level=3)
    return buf.getvalue()

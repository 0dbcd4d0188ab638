"""The shared machinery of the explorers: :class:`Explorer` and its live view.

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

Introduced in ``notebooks/00_start_here.ipynb``.
"""

from __future__ import annotations

import base64

import ipywidgets as widgets

from ..plot import Layers

__all__ = ["Explorer"]


def _choice(value: object, name: str, options) -> object:
    """``value`` if it is one of ``options``, else a ValueError naming ``name``."""
    if value not in options:
        raise ValueError(
            f"{name} must be one of {', '.join(map(str, options))}; got {value!r}"
        )
    return value


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

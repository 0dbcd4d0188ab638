"""Find the code cells of a notebook that display a qlib explorer.

Shared by ``tests/test_static_render.py`` (the static HTML of every stored
notebook shows each explorer's default picture) and
``tests/browser/test_browser.py`` (every explorer answers in a real browser).
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import matplotlib
import nbformat

matplotlib.use("Agg")

from qlib import widgets as _widgets

#: every explorer class of ``qlib.widgets`` (each subclass of ``Explorer``)
EXPLORERS = tuple(
    name
    for name in _widgets.__all__
    if isinstance(getattr(_widgets, name), type)
    and issubclass(getattr(_widgets, name), _widgets.Explorer)
    and name != "Explorer"
)


@functools.cache
def explorer_parts(kind: str) -> tuple[str, int]:
    """What an explorer's live view is made of: ``("figure" | "table", sliders)``."""
    import ipywidgets

    explorer = getattr(_widgets, kind)()
    view = "figure" if isinstance(explorer.view, ipywidgets.Image) else "table"
    sliders = sum(
        isinstance(c, ipywidgets.IntSlider | ipywidgets.FloatSlider)
        for c in explorer.controls.values()
    )
    return view, sliders


def _kind(node: ast.AST, bound: dict[str, str]) -> str | None:
    """The explorer an expression builds or names, else None."""
    if isinstance(node, ast.Call):
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if name not in EXPLORERS and isinstance(func, ast.Attribute):
            inner = func.value  # a classmethod that builds one: Explorer.from_model
            name = getattr(inner, "attr", getattr(inner, "id", ""))
        return name if name in EXPLORERS else None
    if isinstance(node, ast.Name):
        return bound.get(node.id)
    return None


def displayed_explorers(source: str) -> list[str]:
    """The explorers a code cell displays: its last expression, or ``display(...)``.

    Example:
        >>> displayed_explorers("from qlib import widgets\\nwidgets.LevelsDemo(bits=3)")
        ['LevelsDemo']
        >>> displayed_explorers("w = NumberWheel(bits=4)\\ndisplay(w, BitFlipper())")
        ['NumberWheel', 'BitFlipper']
        >>> displayed_explorers("widgets.SmoothingExplorer.from_model(model)")
        ['SmoothingExplorer']
        >>> displayed_explorers("w = widgets.BitFlipper()")  # built, never shown
        []
        >>> displayed_explorers("widgets.BitFlipper();")  # the semicolon hides it
        []
    """
    from IPython.core.inputtransformer2 import TransformerManager

    try:  # IPython syntax (%magics, !shell) becomes plain Python first
        tree = ast.parse(TransformerManager().transform_cell(source))
    except SyntaxError:
        return []
    bound: dict[str, str] = {}
    shown: list[str] = []
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
            target, kind = stmt.targets[0], _kind(stmt.value, bound)
            if isinstance(target, ast.Name) and kind:
                bound[target.id] = kind
        for node in ast.walk(stmt):
            if isinstance(node, ast.Call):
                func = node.func
                name = getattr(func, "attr", getattr(func, "id", ""))
                if name == "display":
                    shown += [k for a in node.args if (k := _kind(a, bound))]
    last = tree.body[-1] if tree.body else None
    if isinstance(last, ast.Expr) and not source.rstrip().endswith(";"):
        kind = _kind(last.value, bound)
        if kind:
            shown.append(kind)
    return shown


def explorer_cells(path: Path) -> dict[int, list[str]]:
    """``{cell index: explorers displayed}`` for the code cells that show any."""
    nb = nbformat.read(path, as_version=4)
    return {
        i: kinds
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code" and (kinds := displayed_explorers(cell.source))
    }

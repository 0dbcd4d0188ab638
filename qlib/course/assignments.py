"""Notebook machinery: store executed notebooks, and make exercises from solutions.

Two rules keep the course honest:

* ``notebooks/`` and ``solutions/`` are stored *executed*, so a reader on GitHub
  sees every figure and number.  :func:`execute` runs a notebook and
  :func:`clean` removes what would change from run to run (widget model ids,
  widget state, timings, the Python patch version), so executing twice gives
  the same file.
* ``exercises/`` is *generated* from ``solutions/`` by :func:`make_exercise`:
  code between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` becomes
  ``raise NotImplementedError``; ``### BEGIN HIDDEN TESTS`` ...
  ``### END HIDDEN TESTS`` is removed, and a cell left empty is dropped;
  markdown between ``<!-- BEGIN SOLUTION -->`` and ``<!-- END SOLUTION -->``
  becomes "*Your answer here.*".

The command-line front ends are ``tools/run_notebooks.py`` and
``tools/make_exercises.py``.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import nbformat

__all__ = [
    "BEGIN_HIDDEN",
    "BEGIN_SOLUTION",
    "END_HIDDEN",
    "END_SOLUTION",
    "STUB",
    "MarkerError",
    "clean",
    "execute",
    "make_exercise",
    "read",
    "strip_outputs",
    "write",
]

BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
MD_BEGIN, MD_END = "<!-- BEGIN SOLUTION -->", "<!-- END SOLUTION -->"
STUB = 'raise NotImplementedError("not answered yet")'
MD_STUB = "*Your answer here.*"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"

KERNELSPEC = {
    "display_name": "Python 3 (ipykernel)",
    "language": "python",
    "name": "python3",
}


class MarkerError(ValueError):
    """A solution notebook's markers do not pair up."""


def read(path: str | Path) -> nbformat.NotebookNode:
    return nbformat.read(str(path), as_version=4)


def write(nb: nbformat.NotebookNode, path: str | Path) -> bool:
    """Write ``nb`` to ``path`` unless the file already holds exactly that.

    Returns True when the file changed.  The file is replaced atomically.
    """
    path = Path(path)
    text = nbformat.writes(nb) + "\n"
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return True


def _normalize_metadata(nb: nbformat.NotebookNode) -> None:
    nb.metadata = nbformat.from_dict(
        {"kernelspec": dict(KERNELSPEC), "language_info": {"name": "python"}}
    )


def clean(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Drop everything in an executed notebook that varies between runs.

    Widget views keep their static copy (PNG or HTML) and lose the model id;
    a display that was nothing but a widget view is dropped.  Consecutive
    chunks of one stream (stdout or stderr) are merged into one output.  Notebook-level
    widget metadata, which GitHub cannot render without its state, is dropped.
    """
    nb = copy.deepcopy(nb)
    _normalize_metadata(nb)
    for cell in nb.cells:
        if cell.cell_type != "code":
            cell.pop("outputs", None)
            cell.pop("execution_count", None)
            continue
        cell.metadata.pop("execution", None)
        kept = []
        for out in cell.outputs:
            data = out.get("data")
            if data is not None and WIDGET_VIEW in data:
                del data[WIDGET_VIEW]
                if set(data) <= {"text/plain"}:
                    continue
            previous = kept[-1] if kept else None
            if (
                previous is not None
                and out.output_type == previous.output_type == "stream"
                and out.name == previous.name
            ):
                # the kernel splits a stream into chunks as timing dictates
                previous.text += out.text
                continue
            kept.append(out)
        cell.outputs = kept
    return nb


def strip_outputs(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of ``nb`` with no outputs and no execution counts."""
    nb = copy.deepcopy(nb)
    _normalize_metadata(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
            cell.metadata.pop("execution", None)
    return nb


def execute(
    nb: nbformat.NotebookNode, cwd: str | Path, timeout: int = 600
) -> nbformat.NotebookNode:
    """Run ``nb`` top to bottom in a fresh kernel started in ``cwd``, then clean it."""
    from nbclient import NotebookClient  # imported here: only the tools need it

    nb = strip_outputs(nb)
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        record_timing=False,
        resources={"metadata": {"path": str(cwd)}},
    )
    client.execute()
    return clean(nb)


def _replace_blocks(
    text: str, begin: str, end: str, stub: str | None, where: str
) -> str:
    lines, out, inside = text.split("\n"), [], False
    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        if stripped == begin:
            if inside:
                raise MarkerError(f"{where}: line {number}: {begin!r} inside a block")
            inside = True
            if stub is not None:
                out.append(line[: len(line) - len(line.lstrip())] + stub)
        elif stripped == end:
            if not inside:
                raise MarkerError(f"{where}: line {number}: {end!r} without {begin!r}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise MarkerError(f"{where}: {begin!r} is never closed by {end!r}")
    return "\n".join(out)


def make_exercise(
    solution: nbformat.NotebookNode, name: str = "notebook"
) -> nbformat.NotebookNode:
    """The student version of a solution notebook (see the module docstring).

    Example:
        >>> lines = ["def f():", "    ### BEGIN SOLUTION", "    return 1"]
        >>> source = "\\n".join([*lines, "    ### END SOLUTION"])
        >>> nb = nbformat.v4.new_notebook(
        ...     cells=[nbformat.v4.new_code_cell(source, id="a")]
        ... )
        >>> print(make_exercise(nb).cells[0].source)
        def f():
            raise NotImplementedError("not answered yet")
    """
    nb = strip_outputs(solution)
    cells = []
    for index, cell in enumerate(nb.cells):
        where = f"{name}, cell {index}"
        if cell.cell_type == "code":
            source = _replace_blocks(cell.source, BEGIN_HIDDEN, END_HIDDEN, None, where)
            source = _replace_blocks(source, BEGIN_SOLUTION, END_SOLUTION, STUB, where)
            source = re.sub(r"\n{3,}", "\n\n", source).strip("\n")
            if not source.strip() and cell.source.strip():
                continue  # the cell held hidden tests only
            cell.source = source
        elif cell.cell_type == "markdown":
            cell.source = _replace_blocks(cell.source, MD_BEGIN, MD_END, MD_STUB, where)
        cells.append(cell)
    nb.cells = cells
    return nb

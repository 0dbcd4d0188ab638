"""The exercise generator and the storage rules, on small notebooks made here."""

from __future__ import annotations

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from qlib.course import assignments

SOLUTION_CELL = '''def f(x):
    """Double x."""
    ### BEGIN SOLUTION
    y = 2 * x
    return y
    ### END SOLUTION'''


def notebook(*cells):
    return new_notebook(cells=list(cells))


def test_solution_becomes_indented_stub():
    nb = notebook(new_code_cell(SOLUTION_CELL, id="a"))
    out = assignments.make_exercise(nb).cells[0].source
    assert out == 'def f(x):\n    """Double x."""\n    ' + assignments.STUB
    namespace: dict = {}
    exec(out, namespace)
    with pytest.raises(NotImplementedError, match="not answered yet"):
        namespace["f"](1)


def test_hidden_tests_removed_and_hidden_only_cell_dropped():
    hidden = "### BEGIN HIDDEN TESTS\nassert f(2) == 4\n### END HIDDEN TESTS"
    mixed = "check(Q, f)\n" + hidden
    nb = notebook(
        new_code_cell(SOLUTION_CELL, id="a"),
        new_code_cell(hidden, id="b"),
        new_code_cell(mixed, id="c"),
        new_code_cell("", id="d"),
    )
    ex = assignments.make_exercise(nb)
    assert [c.id for c in ex.cells] == ["a", "c", "d"]
    assert ex.cells[1].source == "check(Q, f)"
    assert "HIDDEN" not in nbformat.writes(ex) and "SOLUTION" not in nbformat.writes(ex)


def test_markdown_answer_replaced():
    md = "Why?\n\n<!-- BEGIN SOLUTION -->\nBecause.\n<!-- END SOLUTION -->"
    ex = assignments.make_exercise(notebook(new_markdown_cell(md, id="m")))
    assert ex.cells[0].source == "Why?\n\n" + assignments.MD_STUB


def test_outputs_and_counts_are_dropped():
    cell = new_code_cell("print(1)", id="p", execution_count=3)
    cell.outputs = [new_output("stream", name="stdout", text="1\n")]
    ex = assignments.make_exercise(notebook(cell))
    assert ex.cells[0].outputs == [] and ex.cells[0].execution_count is None


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("### BEGIN SOLUTION\nx = 1", "never closed"),
        ("x = 1\n### END SOLUTION", "without"),
        ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION", "inside a block"),
        ("### BEGIN HIDDEN TESTS\nx = 1", "never closed"),
    ],
)
def test_unbalanced_markers_name_the_cell(source, message):
    nb = notebook(new_code_cell("x = 0", id="a"), new_code_cell(source, id="b"))
    with pytest.raises(
        assignments.MarkerError, match=rf"sol\.ipynb, cell 1.*{message}"
    ):
        assignments.make_exercise(nb, name="sol.ipynb")


def test_clean_drops_widget_ids_and_keeps_static_copy():
    cell = new_code_cell("w", id="w", execution_count=1)
    cell.outputs = [
        new_output(
            "execute_result",
            data={
                "text/plain": "<explorer>",
                "image/png": "iVBORw0KGgo=",
                assignments.WIDGET_VIEW: {"model_id": "abc", "version_major": 2},
            },
            execution_count=1,
        ),
        new_output(
            "display_data",
            data={"text/plain": "VBox()", assignments.WIDGET_VIEW: {"model_id": "d"}},
        ),
    ]
    nb = notebook(cell)
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {}}
    nb.metadata["language_info"] = {"name": "python", "version": "3.11.7"}
    cleaned = assignments.clean(nb)
    assert "widgets" not in cleaned.metadata
    assert cleaned.metadata.language_info == {"name": "python"}
    [out] = cleaned.cells[0].outputs
    assert set(out.data) == {"text/plain", "image/png"}
    assert assignments.clean(cleaned) == cleaned


def test_clean_merges_stream_chunks():
    cell = new_code_cell("for i in range(3): print(i)", id="s", execution_count=1)
    cell.outputs = [
        new_output("stream", name="stdout", text="0\n"),
        new_output("stream", name="stdout", text="1\n"),
        new_output("stream", name="stderr", text="warning\n"),
        new_output("stream", name="stdout", text="2\n"),
        new_output("stream", name="stdout", text="3\n"),
    ]
    outs = assignments.clean(notebook(cell)).cells[0].outputs
    assert [(o.name, o.text) for o in outs] == [
        ("stdout", "0\n1\n"),
        ("stderr", "warning\n"),
        ("stdout", "2\n3\n"),
    ]


def test_write_is_atomic_and_reports_change(tmp_path):
    nb = notebook(new_code_cell("x = 1", id="a"))
    path = tmp_path / "n.ipynb"
    assert assignments.write(nb, path) is True
    assert assignments.write(nb, path) is False
    assert not list(tmp_path.glob("*.tmp"))
    assert assignments.read(path) == nb

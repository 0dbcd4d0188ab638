"""The stored notebooks obey the course's storage rules.

notebooks/ and solutions/ are stored executed and clean; exercises/ is exactly
what the generator makes from solutions/.  (nbval, run by the same pytest
command, re-executes them and compares the stored outputs.)
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from qlib.course import assignments

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import make_exercises  # noqa: E402

LECTURES = sorted((ROOT / "notebooks").glob("*.ipynb"))
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))
EXERCISES = sorted((ROOT / "exercises").glob("*.ipynb"))
STORED = LECTURES + SOLUTIONS


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_the_course_has_its_notebooks():
    names = {p.name for p in LECTURES}
    assert "00_start_here.ipynb" in names
    assert {p.name for p in SOLUTIONS} == {p.name for p in EXERCISES}
    assert SOLUTIONS, "no solution notebooks"


@pytest.mark.parametrize("path", STORED, ids=rel)
def test_stored_notebook_is_executed_and_clean(path):
    nb = assignments.read(path)
    assert "widgets" not in nb.metadata, "widget metadata breaks GitHub rendering"
    assert nb == assignments.clean(nb), "not stored by tools/run_notebooks.py"
    code = [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]
    unexecuted = [i for i, c in enumerate(code) if c.execution_count is None]
    assert not unexecuted, f"code cells never executed: {unexecuted}"
    counts = [c.execution_count for c in code]
    assert counts == list(range(1, len(code) + 1)), "not a clean top-to-bottom run"
    for cell in code:
        for out in cell.outputs:
            assert out.output_type != "error", f"stored error in cell {cell.id}"
            assert assignments.WIDGET_VIEW not in out.get("data", {})


@pytest.mark.parametrize("path", EXERCISES, ids=rel)
def test_exercise_has_no_outputs_and_no_answers(path):
    nb = assignments.read(path)
    text = path.read_text(encoding="utf-8")
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "HIDDEN TESTS"):
        assert marker not in text
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None


@pytest.mark.parametrize("path", SOLUTIONS, ids=rel)
def test_solution_has_answers_and_hidden_tests(path):
    text = path.read_text(encoding="utf-8")
    assert assignments.BEGIN_SOLUTION in text
    assert assignments.BEGIN_HIDDEN in text


def test_exercises_are_generated_from_solutions():
    stale = [
        rel(path)
        for path, nb in make_exercises.expected_exercises(ROOT).items()
        if not path.exists() or assignments.read(path) != nb
    ]
    assert not stale, f"run `make exercises`; stale: {stale}"

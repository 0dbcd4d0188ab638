"""What a submission is graded against: the reference solution's questions
and cases, the limits, and the result of grading one submission.

Part of the batch grader (:mod:`qlib.course.grade`).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from .. import feedback
from ..feedback import Case, Question

__all__ = [
    "COURSE_ROOT",
    "STATUSES",
    "CaseOutcome",
    "GradedQuestion",
    "Limits",
    "Reference",
    "SubmissionResult",
    "find_solution",
    "load_reference",
    "read_cells",
    "run_solution",
]

STATUSES = ("ok", "timeout", "crashed", "invalid", "error")
COURSE_ROOT = Path(__file__).resolve().parents[2]  # holds qlib/ and solutions/


@dataclass(frozen=True)
class Limits:
    """Resource limits for one submission's kernel."""

    cell_timeout: float = 10.0
    call_timeout: float = 5.0
    total_timeout: float = 120.0
    memory_mb: int = 2048
    file_mb: int = 64
    disk_mb: int = 128
    processes: int = 64
    max_restarts: int = 8


@dataclass
class GradedQuestion:
    question: Question
    cases: list[tuple[Case, bool]]  # (case, hidden)


@dataclass
class Reference:
    """What the solution notebook declares: questions and all their cases."""

    assignment: str
    path: Path
    questions: dict[str, GradedQuestion]

    @property
    def max_score(self) -> Fraction:
        return sum(
            (Fraction(q.question.points) for q in self.questions.values()), Fraction(0)
        )


@dataclass
class CaseOutcome:
    passed: bool
    verdict: str  # "exact", "close", "different", "error", "timeout", ...
    shown: str = ""  # public text: a visible case's wrong answer or error


@dataclass
class SubmissionResult:
    submission: str
    status: str
    score: Fraction = Fraction(0)
    max_score: Fraction = Fraction(0)
    questions: dict[str, Fraction] = field(default_factory=dict)
    outcomes: dict[str, list[CaseOutcome]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


# ------------------------------------------------------------------ reference


def find_solution(assignment: str, solutions: Path) -> Path:
    if not re.fullmatch(r"\d\d", assignment):
        raise ValueError(
            f"assignment must be two digits such as 02; got {assignment!r}"
        )
    found = sorted(solutions.glob(f"{assignment}_*.ipynb"))
    if len(found) != 1:
        have = sorted(p.name[:2] for p in solutions.glob("[0-9][0-9]_*.ipynb"))
        raise ValueError(
            f"no solution notebook for assignment {assignment} in {solutions}; "
            f"available: {', '.join(have) or 'none'}"
        )
    return found[0]


def run_solution(path: Path, check: Callable[..., None]) -> dict[str, Any]:
    """Execute the solution notebook ``path`` here, cell by cell, with
    ``check`` in place of :func:`qlib.feedback.check` (and ``qlib.check``),
    figures drawn off screen, printed output dropped; its namespace.
    ValueError for a cell with a magic, which could not be graded."""
    import matplotlib

    import qlib

    matplotlib.use("Agg")
    nb = json.loads(path.read_text(encoding="utf-8"))
    namespace: dict[str, Any] = {"__name__": "__main__"}
    original, cwd = feedback.check, os.getcwd()
    try:
        feedback.check = qlib.check = check
        os.chdir(path.parent)
        with contextlib.redirect_stdout(io.StringIO()):
            for index, cell in enumerate(nb["cells"]):
                if cell["cell_type"] != "code":
                    continue
                source = "".join(cell["source"])
                if re.search(r"^\s*[%!]", source, re.MULTILINE):
                    raise ValueError(
                        f"{path.name} cell {index}: magics cannot be graded"
                    )
                exec(compile(source, f"{path.name}[{index}]", "exec"), namespace)
    finally:
        feedback.check = qlib.check = original
        os.chdir(cwd)
    return namespace


def load_reference(assignment: str, solutions: Path | None = None) -> Reference:
    """Run the solution notebook here and record every ``check`` it makes."""
    path = find_solution(assignment, solutions or COURSE_ROOT / "solutions")
    recorded: list[tuple[Question, list[Case], bool]] = []
    original = feedback.check

    def recording_check(question, func, cases=None, *, hidden=False):
        chosen = list(question.cases if cases is None else cases)
        recorded.append((question, chosen, hidden))
        original(question, func, chosen, hidden=hidden)
        outcome = feedback.RESULTS[f"{question.id}:hidden" if hidden else question.id]
        if not outcome.ok:
            raise RuntimeError(f"the reference solution fails question {question.id}")

    run_solution(path, recording_check)
    questions: dict[str, GradedQuestion] = {}
    for question, cases, hidden in recorded:
        graded = questions.setdefault(question.id, GradedQuestion(question, []))
        if (graded.question.points, graded.question.function) != (
            question.points,
            question.function,
        ):
            raise ValueError(f"question {question.id} is declared twice, differently")
        graded.cases += [(case, hidden) for case in cases]
    if not questions:
        raise ValueError(f"{path.name} declares no graded question (no check calls)")
    return Reference(assignment, path, questions)


# ------------------------------------------------------------- the submission


def read_cells(path: Path) -> list[str]:
    """The code cells of a notebook file, in order; ValueError if unreadable."""
    try:
        nb = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError) as err:
        raise ValueError(f"not a readable notebook: {str(err)[:200]}") from None
    cells = nb.get("cells") if isinstance(nb, dict) else None
    if not isinstance(cells, list):
        raise ValueError("not a notebook: no list of cells")
    sources = []
    for cell in cells:
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        if isinstance(source, list) and all(isinstance(s, str) for s in source):
            source = "".join(source)
        if not isinstance(source, str):
            raise ValueError("not a notebook: a code cell has no source text")
        sources.append(source)
    return sources

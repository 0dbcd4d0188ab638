"""Batch grader: a folder of exercise notebooks in, a gradebook out.

    grade --assignment 02 --out graded/ submissions/
    python -m qlib.course --assignment 02 --out graded/ alice.ipynb bob.ipynb

How a submission is graded:

1. The reference: the grader runs ``solutions/NN_*.ipynb`` in its own process
   and records every ``check(...)`` call in it -- each question's id, points
   and function name, and every visible and hidden case with its expected
   answer.  Expected answers never leave this process.
2. The submission's code cells run top to bottom in a separate kernel process
   (:mod:`qlib.course.worker`, driven by :mod:`qlib.course.kernel`, isolated
   as :mod:`qlib.course.sandbox` says), in a fresh folder, with a per-cell time limit,
   a memory limit, a process limit, a file-size limit, and its output thrown
   away.  As root, the kernel runs in new PID and mount namespaces (nothing it
   starts survives it; the solutions, the submissions and the output folder
   are hidden; /tmp is private) as an unprivileged user.
3. The grader sends each case's inputs; the kernel calls the student's
   function and returns the value as plain data (:mod:`qlib.course.wire`).  The
   grader compares it with the expected answer using :func:`qlib.feedback.compare`.
4. A cell that hangs or kills the kernel is skipped and the run is restarted
   without it; a call that hangs or kills the kernel fails alone.

Before any submission, the reference solution itself is graded through the
very same sandbox and limits (the canary).  Unless it scores full marks the
grader writes nothing and exits with status 3 (see :mod:`qlib.course.cli`), printing
what went wrong, the kernel's own error output included: a sandbox that hides
the Python installation, a memory limit no kernel can start under, a missing
package.  A kernel that dies before it has run its first cell is likewise the
grader's failure (status ``error``, exit status 4), never a student's.  The
kernel reads the grader's own Python installation and the very qlib the
grader imported, wherever they live (under ``/tmp``, which the sandbox
otherwise replaces by a private tmpfs, or found through ``PYTHONPATH``).

A question scores ``points * passed / cases`` over its visible and hidden
cases.  Statuses: ``ok`` (graded normally), ``timeout`` (some cell or call
ran out of time and was skipped; the rest is graded), ``crashed`` (some cell or
call killed the kernel; the rest is graded), ``invalid`` (not a readable
notebook; score 0), ``error`` (the grader failed on this submission; score 0).
The reports are written by :mod:`qlib.course.reports`.

Taught nowhere: this is the instructors' tool; see the README's instructor guide.
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path
from typing import Any

from .. import feedback
from . import wire
from .kernel import run_attempt
from .reference import (
    CaseOutcome,
    Limits,
    Reference,
    SubmissionResult,
    load_reference,
    read_cells,
)
from .reports import _how, _number, feedback_markdown, results_json, write_gradebook
from .sandbox import COURSE_ROOT, Sandbox, prepare_sandbox

__all__ = ["GraderBroken", "canary", "collect", "grade_batch", "grade_submission"]

_SHOWN_LIMIT = 1000  # characters kept of a visible case's explanation


def grade_submission(
    path: Path, name: str, reference: Reference, limits: Limits, sandbox: Sandbox
) -> SubmissionResult:
    result = SubmissionResult(name, "ok", max_score=reference.max_score)
    try:
        cells = read_cells(path)
    except ValueError as err:
        result.status = "invalid"
        result.notes.append(str(err))
        score_outcomes(result, reference, {})
        return result

    expected = [
        (qid, case, hidden)
        for qid, graded in reference.questions.items()
        for case, hidden in graded.cases
    ]
    calls = [
        {
            "id": call_id,
            "function": reference.questions[qid].question.function,
            "args": wire.encode(tuple(case.args)),
            "kwargs": wire.encode(dict(case.kwargs)),
        }
        for call_id, (qid, case, _hidden) in enumerate(expected)
    ]
    # every visible case before any hidden one: nothing the kernel learns from
    # a hidden input can show up in what the student is told
    calls.sort(key=lambda call: expected[call["id"]][2])

    def judge(call_id: int, kind: str, payload: Any) -> CaseOutcome:
        qid, case, hidden = expected[call_id]
        if kind == "error":
            return CaseOutcome(False, "error", "" if hidden else str(payload))
        question = reference.questions[qid].question
        try:
            got = wire.decode(payload)
        except (wire.WireError, ValueError, TypeError, RecursionError) as err:
            return CaseOutcome(False, "error", f"unreadable answer: {str(err)[:100]}")
        verdict, _detail = feedback.compare(
            case.expected, got, question.rtol, question.atol, question.check_dtype
        )
        passed = verdict == "exact" or (verdict == "close" and not question.exact)
        # a visible case's explanation, as the notebook's check prints it
        shown = "" if hidden or passed else feedback.explain(question, case, got)
        return CaseOutcome(passed, verdict, shown[:_SHOWN_LIMIT])

    outcomes: dict[int, CaseOutcome] = {}
    skip: set[int] = set()
    deadline = time.monotonic() + limits.total_timeout
    problems = {"timeout": False, "crashed": False}
    for _ in range(limits.max_restarts + 1):
        pending = [c for c in calls if c["id"] not in outcomes]
        if not pending or time.monotonic() >= deadline:
            break
        attempt = run_attempt(cells, skip, pending, judge, limits, sandbox, deadline)
        outcomes.update(attempt.answers)
        for index, error in sorted(attempt.cell_errors.items()):
            note = f"code cell {index + 1} raised {error}"
            if note not in result.notes:
                result.notes.append(note)
        if attempt.fatal:
            result.status = "error"
            result.notes.append(
                f"the grader could not run this submission: {attempt.fatal}"
            )
            break
        if attempt.finished:
            break
        problems[attempt.how] = True
        if attempt.stopped_in is None:  # died or stalled between cells
            result.notes.append(f"the kernel {_how(attempt.how)} between cells")
            break
        kind, index = attempt.stopped_in
        if kind == "cell":
            skip.add(index)
            result.notes.append(
                f"code cell {index + 1} {_how(attempt.how)}; it was skipped and the "
                "notebook run again without it"
            )
        else:
            outcomes[index] = CaseOutcome(False, attempt.how)
    if time.monotonic() >= deadline:
        problems["timeout"] = True
        result.notes.append(f"grading stopped after {limits.total_timeout:g} s")
    if result.status == "ok":
        if problems["timeout"]:
            result.status = "timeout"
        elif problems["crashed"]:
            result.status = "crashed"
    for call_id in range(len(expected)):
        outcomes.setdefault(call_id, CaseOutcome(False, "not run"))
    score_outcomes(result, reference, outcomes, expected)
    return result


def score_outcomes(
    result: SubmissionResult,
    reference: Reference,
    outcomes: dict[int, CaseOutcome],
    expected: list | None = None,
) -> None:
    per_question: dict[str, list[CaseOutcome]] = {q: [] for q in reference.questions}
    for call_id, (qid, _case, _hidden) in enumerate(expected or []):
        per_question[qid].append(outcomes[call_id])
    result.outcomes = per_question
    for qid, graded in reference.questions.items():
        passed = sum(o.passed for o in per_question[qid])
        total = len(graded.cases)
        result.questions[qid] = Fraction(graded.question.points) * passed / total
    result.score = sum(result.questions.values(), Fraction(0))


# ---------------------------------------------------------------------- batch


def collect(paths: list[Path]) -> list[tuple[Path, str]]:
    """(file, name) for every submission; a folder contributes its notebooks."""
    found: list[tuple[Path, str]] = []
    for p in paths:
        if p.is_dir():
            for nb in sorted(p.rglob("*.ipynb")):
                if ".ipynb_checkpoints" not in nb.parts:
                    found.append((nb, str(nb.relative_to(p).with_suffix(""))))
        elif p.exists():
            found.append((p, p.stem))
        else:
            raise FileNotFoundError(f"submission not found: {p}")
    used: set[str] = set()
    unique = []
    for path, name in found:
        base = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "submission"
        name, n = base, 1
        while name in used:
            n += 1
            name = f"{base}-{n}"
        used.add(name)
        unique.append((path, name))
    return unique


class GraderBroken(RuntimeError):
    """The grader cannot grade here: the reference solution, graded through
    the sandbox, did not score full marks.  Nothing was written."""


def canary(reference: Reference, limits: Limits, sandbox: Sandbox) -> SubmissionResult:
    """Grade the reference solution like a submission; raise GraderBroken
    unless it scores full marks with status ok."""
    result = grade_submission(
        reference.path, "reference solution", reference, limits, sandbox
    )
    if result.status == "ok" and result.score == reference.max_score:
        return result
    lines = [
        f"the reference solution {reference.path.name}, graded through the "
        f"sandbox ({sandbox.describe()}), scored {_number(result.score)}/"
        f"{_number(reference.max_score)} with status {result.status}, so the "
        "grader cannot be trusted here and graded nothing."
    ]
    lines += [f"  {note}" for note in result.notes]
    for qid, outcomes in result.outcomes.items():
        failed = [o.verdict for o in outcomes if not o.passed]
        if failed:
            lines.append(
                f"  {qid}: {len(failed)}/{len(outcomes)} cases failed "
                f"({', '.join(sorted(set(failed)))})"
            )
    raise GraderBroken("\n".join(lines))


def check_writable(out: Path) -> None:
    """Refuse an output folder that cannot be made or written, before grading."""
    folder = out.resolve()
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise NotADirectoryError(f"--out {out}: {folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(f"--out {out}: {folder} is not writable")


def grade_batch(
    assignment: str,
    submissions: list[Path],
    out: Path,
    *,
    limits: Limits | None = None,
    workers: int | None = None,
    solutions: Path | None = None,
    sandbox_user: str | None = None,
    visible_only: bool = False,
    log=print,
) -> list[SubmissionResult]:
    """Grade ``submissions`` against the solution of ``assignment`` into ``out``."""
    limits = limits or Limits()
    reference = load_reference(assignment, solutions)
    if visible_only:
        for graded in reference.questions.values():
            graded.cases = [(c, h) for c, h in graded.cases if not h]
    items = collect(submissions)
    check_writable(out)
    sandbox = prepare_sandbox(sandbox_user, reference.path.parent, out, submissions)
    log(
        f"grading {len(items)} submission(s) of {reference.path.name} with qlib "
        f"from {COURSE_ROOT / 'qlib'} and Python {sys.prefix}; sandbox: "
        f"{sandbox.describe()}"
    )
    digest = reference.path.read_bytes()
    canary(reference, limits, sandbox)
    log("  the reference solution scored full marks through the sandbox")
    out.mkdir(parents=True, exist_ok=True)
    (out / "feedback").mkdir(exist_ok=True)
    (out / "results").mkdir(exist_ok=True)

    lock = threading.Lock()

    def one(item: tuple[Path, str]) -> SubmissionResult:
        path, name = item
        try:
            result = grade_submission(path, name, reference, limits, sandbox)
        except Exception as err:  # a grader bug must not stop the batch
            result = SubmissionResult(name, "error", max_score=reference.max_score)
            result.notes.append(f"grader error: {type(err).__name__}: {err}")
            score_outcomes(result, reference, {})
        with lock:
            (out / "feedback" / f"{name}.md").write_text(
                feedback_markdown(result, reference), encoding="utf-8"
            )
            (out / "results" / f"{name}.json").write_text(
                json.dumps(results_json(result, reference), indent=1), encoding="utf-8"
            )
            log(
                f"  {name}: {result.status}, {_number(result.score)}/"
                f"{_number(result.max_score)}"
            )
        return result

    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        results = list(pool.map(one, items))
    write_gradebook(results, reference, out)
    if reference.path.read_bytes() != digest:
        log(f"WARNING: {reference.path} changed during grading")
    return results

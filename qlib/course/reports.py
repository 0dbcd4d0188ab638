"""What the grader writes: the gradebook, per-student feedback (public
information only) and results in Gradescope's shape.

Part of the batch grader (:mod:`qlib.course.grade`).
"""

from __future__ import annotations

import csv
from fractions import Fraction
from pathlib import Path

from .reference import Reference, SubmissionResult

__all__ = [
    "feedback_markdown",
    "question_feedback",
    "results_json",
    "write_gradebook",
]


def _how(how: str) -> str:
    return "ran out of time" if how == "timeout" else "killed the kernel"


def _number(x: Fraction) -> str:
    return f"{float(x):.4g}" if x.denominator != 1 else str(x.numerator)


def write_gradebook(
    results: list[SubmissionResult], reference: Reference, out: Path
) -> None:
    qids = list(reference.questions)
    tmp = out / "gradebook.csv.tmp"
    with tmp.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["submission", "status", "score", "max_score", *qids])
        for r in results:
            writer.writerow(
                [
                    r.submission,
                    r.status,
                    _number(r.score),
                    _number(r.max_score),
                    *(_number(r.questions.get(q, Fraction(0))) for q in qids),
                ]
            )
    tmp.replace(out / "gradebook.csv")


def _safe(text: str, limit: int = 200) -> str:
    text = " ".join(str(text).split())[:limit]
    return text.replace("`", "'").replace("<", "&lt;").replace(">", "&gt;")


def question_feedback(
    result: SubmissionResult, reference: Reference, qid: str
) -> tuple[list[str], int, int]:
    """The public lines of one question: its visible cases with PASS/FAIL,
    inputs and answers; and the hidden cases only as ``(passed, total)``."""
    graded = reference.questions[qid]
    q = graded.question
    lines = []
    hidden_total = hidden_passed = 0
    for (case, hidden), outcome in zip(
        graded.cases, result.outcomes.get(qid, []), strict=False
    ):
        if hidden:
            hidden_total += 1
            hidden_passed += outcome.passed
            continue
        mark = "PASS" if outcome.passed else "FAIL"
        kind = {"exact": "bit-exact", "close": "close"}.get(outcome.verdict, "")
        line = f"- {mark} `{_safe(case.call_text(q.function))}`"
        if outcome.passed:
            line += f" ({kind})"
        elif outcome.verdict in ("different", "close"):
            line += "".join(
                f"\n  - {_safe(text, 300)}" for text in outcome.shown.splitlines()
            )
        elif outcome.verdict == "error":
            line += f": {_safe(outcome.shown)}"
        elif outcome.verdict in ("timeout", "crashed"):
            line += f": {_how(outcome.verdict)}"
        else:
            line += f": {outcome.verdict}"
        lines.append(line)
    return lines, hidden_passed, hidden_total


def feedback_markdown(result: SubmissionResult, reference: Reference) -> str:
    """Per-question results with public information only: visible cases are
    shown with inputs and answers, hidden cases only as a count."""
    lines = [
        f"# Assignment {reference.assignment}: {_safe(result.submission)}",
        "",
        f"**Score: {_number(result.score)} / {_number(result.max_score)}**"
        f" (status: {result.status})",
        "",
    ]
    for qid, graded in reference.questions.items():
        q = graded.question
        earned = _number(result.questions.get(qid, Fraction(0)))
        lines += [
            f"## {qid} `{q.function}`: {earned} / {_number(Fraction(q.points))} points",
            "",
        ]
        visible, hidden_passed, hidden_total = question_feedback(result, reference, qid)
        lines += visible
        if hidden_total:
            lines.append(f"- hidden checks: {hidden_passed}/{hidden_total} passed")
        lines.append("")
    if result.notes:
        lines += ["## Notes", ""] + [f"- {_safe(n, 300)}" for n in result.notes] + [""]
    return "\n".join(lines)


def results_json(result: SubmissionResult, reference: Reference) -> dict:
    """Gradescope's results.json for one graded submission.

    Each question gives one test for its visible cases (their feedback shown)
    and, if it has hidden cases, one for those, whose only detail is a count
    and whose visibility is ``after_published``.  Every case counts.
    """
    tests = []
    for qid, graded in reference.questions.items():
        q = graded.question
        outcomes = result.outcomes.get(qid, [])
        per_case = Fraction(q.points) / len(graded.cases)
        visible, hidden_passed, hidden_total = question_feedback(result, reference, qid)
        visible_passed = sum(
            o.passed
            for (_c, hidden), o in zip(graded.cases, outcomes, strict=False)
            if not hidden
        )
        parts = [
            (
                f"{qid} {q.function}",
                visible_passed,
                len(graded.cases) - hidden_total,
                "\n".join(visible),
                "visible",
            )
        ]
        if hidden_total:
            parts.append(
                (
                    f"{qid} {q.function} (hidden checks)",
                    hidden_passed,
                    hidden_total,
                    f"hidden checks: {hidden_passed}/{hidden_total} passed",
                    "after_published",
                )
            )
        for name, passed, total, output, visibility in parts:
            tests.append(
                {
                    "name": name,
                    "score": float(per_case * passed),
                    "max_score": float(per_case * total),
                    "status": "passed" if passed == total else "failed",
                    "output": output,
                    "output_format": "md",
                    "visibility": visibility,
                }
            )
    notes = "".join(f"\n- {_safe(n, 300)}" for n in result.notes)
    return {
        "score": float(result.score),
        "output": f"status: {result.status}{notes}",
        "output_format": "md",
        "tests": tests,
    }

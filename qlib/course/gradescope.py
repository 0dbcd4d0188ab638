"""A Gradescope autograder for one assignment, built from its solution.

    grade --assignment 02 --gradescope autograder-02.zip

writes a zip laid out as Gradescope's autograder specification asks:

- ``setup.sh`` (run once when Gradescope builds the image: makes a virtual
  environment and installs ``requirements.txt``, the library's runtime
  dependencies) and ``run_autograder`` (run per submission) at its root;
- ``lib/qlib/``: the library, imported through ``PYTHONPATH``;
- ``reference/reference.json``: the recorded questions and every case with
  its expected answer -- not the solution notebook;
- ``limits.json``: the resource limits of each submission's kernel, those
  given to ``grade`` with ``--gradescope`` (``--cell-timeout`` and the
  others; the batch grader's defaults when none are given).

At grading time Gradescope puts the student's notebook in
``/autograder/submission``; ``run_autograder`` grades it with the batch
grader's sandbox and limits and writes ``/autograder/results/results.json``:
``score``, ``output`` and ``tests``.  Each question gives one test for its
visible cases (inputs, expected and returned values shown) and, if it has
hidden cases, one for those, whose only detail is a count and whose
visibility is ``after_published``.  Every case counts in the score.

Before grading, a canary notebook that answers every case from the recorded
answers is graded through the same sandbox; unless it scores full marks the
autograder writes no results and exits with status 3, so Gradescope reports
a failed autograder instead of a zero.  ``AUTOGRADER_ROOT`` (default
``/autograder``) and ``AUTOGRADER_PYTHON`` (default: the environment
``setup.sh`` made) let the autograder run elsewhere, as the tests do.

Taught nowhere: this is the instructors' tool; see the README's instructor guide.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import json
import os
import stat
import sys
import tempfile
import zipfile
from pathlib import Path

from ..feedback import Case, Question
from . import wire
from .cli import EXIT_BROKEN, EXIT_OK
from .grade import (
    GraderBroken,
    canary,
    check_writable,
    grade_submission,
    score_outcomes,
)
from .reference import (
    GradedQuestion,
    Limits,
    Reference,
    SubmissionResult,
    load_reference,
)
from .reports import _number, results_json
from .sandbox import detect_sandbox, prepare_sandbox

__all__ = [
    "build_zip",
    "load_recorded",
    "main",
    "recorded_json",
    "recorded_limits",
    "results_json",
    "run",
]

_SETUP = """\
#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder image.
set -euo pipefail
ROOT="${AUTOGRADER_ROOT:-/autograder}"
SOURCE="$ROOT/source"
chmod -R go-rwx "$SOURCE/reference"   # recorded answers: root only
if [ -n "${AUTOGRADER_PYTHON:-}" ]; then
    PYTHON="$AUTOGRADER_PYTHON"       # an existing environment (the tests)
else
    if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip'; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv
    fi
    python3 -m venv "$ROOT/venv"
    PYTHON="$ROOT/venv/bin/python"
fi
"$PYTHON" -m pip install --quiet --disable-pip-version-check \\
    -r "$SOURCE/requirements.txt"
PYTHONPATH="$SOURCE/lib" "$PYTHON" -c 'import qlib.course.grade, IPython'
"""

_RUN = """\
#!/usr/bin/env bash
# Gradescope runs this for every submission.
ROOT="${AUTOGRADER_ROOT:-/autograder}"
PYTHON="${AUTOGRADER_PYTHON:-$ROOT/venv/bin/python}"
cd "$ROOT/source" || exit 3
export PYTHONPATH="$ROOT/source/lib"
exec "$PYTHON" -m qlib.course.gradescope run --root "$ROOT"
"""


# ------------------------------------------------------------------ recording


def _question_json(graded: GradedQuestion) -> dict:
    q = graded.question
    return {
        "id": q.id,
        "points": q.points,
        "function": q.function,
        "exact": q.exact,
        "rtol": q.rtol,
        "atol": q.atol,
        "check_dtype": q.check_dtype,
        "cases": [
            {
                "args": wire.encode(tuple(case.args)),
                "kwargs": wire.encode(dict(case.kwargs)),
                "expected": wire.encode(case.expected),
                "hidden": hidden,
            }
            for case, hidden in graded.cases
        ],
    }


def recorded_json(reference: Reference) -> dict:
    """What ``reference/reference.json`` holds: the assignment, and every
    question with its cases in the wire format (:func:`load_recorded` reads
    it back)."""
    return {
        "assignment": reference.assignment,
        "questions": [_question_json(g) for g in reference.questions.values()],
    }


def load_recorded(data: dict, path: Path) -> Reference:
    """A :class:`~qlib.course.reference.Reference` from ``reference.json``'s content;
    ``path`` is the notebook the canary grades."""
    questions = {}
    for item in data["questions"]:
        cases = [
            (
                Case(
                    wire.decode(c["args"]),
                    wire.decode(c["expected"]),
                    wire.decode(c["kwargs"]),
                ),
                bool(c["hidden"]),
            )
            for c in item["cases"]
        ]
        question = Question(
            item["id"],
            item["points"],
            item["function"],
            [case for case, _hidden in cases],
            exact=item["exact"],
            rtol=item["rtol"],
            atol=item["atol"],
            check_dtype=item["check_dtype"],
        )
        questions[question.id] = GradedQuestion(question, cases)
    return Reference(data["assignment"], path, questions)


def _canary_notebook(data: dict) -> dict:
    """A notebook whose functions answer every recorded case from the record:
    graded through the sandbox it must score full marks."""
    answers: dict[str, dict[str, object]] = {}
    for item in data["questions"]:
        table = answers.setdefault(item["function"], {})
        for case in item["cases"]:
            key = wire.dumps({"a": case["args"], "k": case["kwargs"]})
            table[key] = case["expected"]
    setup = (
        "import json\n"
        "from qlib.course import wire\n"
        f"_ANSWERS = json.loads({json.dumps(answers)!r})\n\n"
        "def _answer(name, args, kwargs):\n"
        "    key = wire.dumps({'a': wire.encode(args), 'k': wire.encode(kwargs)})\n"
        "    return wire.decode(_ANSWERS[name][key])\n"
    )
    functions = "".join(
        f"\ndef {name}(*args, **kwargs):\n    return _answer({name!r}, args, kwargs)\n"
        for name in answers
    )
    cell = {
        "cell_type": "code",
        "execution_count": None,
        "id": "canary",
        "metadata": {},
        "outputs": [],
        "source": setup + functions,
    }
    return {"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def _requirements() -> list[str]:
    """The library's runtime dependencies, without its test extra and without
    JupyterLab: grading runs kernels, not a notebook server."""
    found = importlib.metadata.requires("qlib") or []
    return [r for r in found if "extra ==" not in r and not r.startswith("jupyterlab")]


def build_zip(
    assignment: str,
    target: Path,
    solutions: Path | None = None,
    log=print,
    limits: Limits | None = None,
) -> Reference:
    """Record the solution of ``assignment`` and write the autograder zip,
    whose submissions are graded under ``limits`` (default ``Limits()``).

    The solution is graded through this machine's sandbox first, under the
    same limits (the canary): a reference that does not score full marks
    writes no zip.
    """
    limits = limits or Limits()
    reference = load_reference(assignment, solutions)
    if target.suffix != ".zip":
        raise ValueError(f"--gradescope must name a .zip file; got {target}")
    check_writable(target.parent)
    sandbox = prepare_sandbox(None, reference.path.parent, target.parent, [])
    canary(reference, limits, sandbox)
    data = recorded_json(reference)
    package = Path(__file__).resolve().parents[1]
    tmp = target.with_name(target.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:

        def add(name: str, text: str, mode: int = 0o644) -> None:
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = (stat.S_IFREG | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, text)

        add("setup.sh", _SETUP, 0o755)
        add("run_autograder", _RUN, 0o755)
        add("requirements.txt", "\n".join(_requirements()) + "\n")
        add("reference/reference.json", json.dumps(data, indent=1), 0o600)
        add("limits.json", json.dumps(dataclasses.asdict(limits), indent=1) + "\n")
        for source in sorted(package.rglob("*.py")):
            name = source.relative_to(package.parent).as_posix()
            add(f"lib/{name}", source.read_text(encoding="utf-8"))
    tmp.replace(target)
    log(
        f"wrote {target}: {len(reference.questions)} questions, "
        f"{sum(len(g.cases) for g in reference.questions.values())} cases, "
        f"{_number(reference.max_score)} points"
    )
    return reference


# -------------------------------------------------------------------- grading


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=".results-")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1)
    os.chmod(name, 0o644)
    os.replace(name, path)


def _find_submission(folder: Path, assignment: str) -> Path | str:
    """The submitted notebook, or why there is none."""
    found = sorted(p for p in folder.rglob("*.ipynb") if p.is_file())
    found = [p for p in found if ".ipynb_checkpoints" not in p.parts]
    named = [p for p in found if p.name.startswith(f"{assignment}_")]
    if len(named) == 1:
        return named[0]
    if len(found) == 1:
        return found[0]
    names = ", ".join(p.name for p in found) or "none"
    return (
        f"upload exactly one notebook, exercises/{assignment}_*.ipynb; found: {names}"
    )


def recorded_limits(source: Path) -> Limits:
    """The limits ``build_zip`` wrote to ``source/limits.json``
    (``Limits()`` for a zip that has none)."""
    path = source / "limits.json"
    if not path.exists():
        return Limits()
    data = json.loads(path.read_text(encoding="utf-8"))
    known = {f.name for f in dataclasses.fields(Limits)}
    if not isinstance(data, dict) or set(data) - known:
        raise ValueError(f"{path}: expected an object with keys among {sorted(known)}")
    return Limits(**data)


def run(root: Path, limits: Limits | None = None, log=print) -> int:
    """Grade the submission under ``root`` into ``root/results/results.json``,
    under ``limits`` (default: the zip's ``limits.json``).

    Returns the exit status: 0 when results were written, 3 when the canary
    failed (no results written, so Gradescope shows a failed autograder).
    """
    limits = limits or recorded_limits(root / "source")
    log(
        f"limits: cell {limits.cell_timeout:g} s, call {limits.call_timeout:g} s, "
        f"submission {limits.total_timeout:g} s, memory {limits.memory_mb} MB"
    )
    recorded = root / "source" / "reference"
    data = json.loads((recorded / "reference.json").read_text(encoding="utf-8"))
    results = root / "results" / "results.json"
    scratch = Path(tempfile.mkdtemp(prefix="qlib-canary-"))
    try:
        notebook = scratch / f"{data['assignment']}_canary.ipynb"
        notebook.write_text(json.dumps(_canary_notebook(data)), encoding="utf-8")
        reference = load_recorded(data, notebook)
        submissions = root / "submission"
        user = None
        found = detect_sandbox(None)
        if os.geteuid() == 0 and not found.namespaces:
            user = "nobody"  # no namespaces here: at least not root
        sandbox = prepare_sandbox(
            user, scratch, root / "results", [submissions, recorded]
        )
        log(f"sandbox: {sandbox.describe()}")
        try:
            canary(reference, limits, sandbox)
        except GraderBroken as err:
            log(f"the autograder is broken here, no results written: {err}")
            return EXIT_BROKEN
        path = _find_submission(submissions, data["assignment"])
        if isinstance(path, str):
            result = SubmissionResult(
                "submission", "invalid", max_score=reference.max_score
            )
            result.notes.append(path)
            score_outcomes(result, reference, {})
        else:
            result = grade_submission(path, path.stem, reference, limits, sandbox)
        _write_json(results, results_json(result, reference))
        log(f"{result.status}: {_number(result.score)}/{_number(result.max_score)}")
        return EXIT_OK
    finally:
        for item in sorted(scratch.rglob("*"), reverse=True):
            item.unlink() if item.is_file() else item.rmdir()
        scratch.rmdir()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m qlib.course.gradescope",
        description="Run the Gradescope autograder (build it with grade --gradescope).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    runner = sub.add_parser("run", help="grade /autograder/submission")
    runner.add_argument(
        "--root",
        type=Path,
        default=Path(os.environ.get("AUTOGRADER_ROOT", "/autograder")),
    )
    args = parser.parse_args(argv)
    return run(args.root, log=lambda m: print(m, flush=True))


if __name__ == "__main__":
    sys.exit(main())

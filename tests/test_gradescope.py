"""The Gradescope autograder zip, run in a simulated autograder root.

The zip is built from the solution of exercise 02; a temporary folder is laid
out as Gradescope lays out ``/autograder`` (``source`` holding the unzipped
autograder, ``submission``, ``results``); ``setup.sh``'s install step runs
against this test run's own environment with pip forbidden to reach any index;
then ``run_autograder`` grades a correct, a wrong, a stub and two hostile
submissions (an endless loop, and a forged ``results.json``), and each
``results.json`` is checked field by field, with the exact scores the
adversarial corpus (tests/grader_corpus.py) works out for them.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import stat
import subprocess
import sys
import zipfile
from fractions import Fraction
from pathlib import Path

import grader_corpus as corpus
import pytest
from test_grader import LIMITS

REPO = corpus.REPO
VISIBILITIES = {"hidden", "after_due_date", "after_published", "visible"}
FORGED_SCORE = 1000.0


@pytest.fixture(scope="module")
def autograder(tmp_path_factory) -> Path:
    """The zip, built by the command line."""
    target = tmp_path_factory.mktemp("zip") / "autograder-02.zip"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "qlib.course",
            "--assignment",
            "02",
            "--gradescope",
            str(target),
            # the corpus's limits (tests/grader_corpus.py): the endless loop
            # below then runs 3 s, not the default 10
            "--cell-timeout",
            str(LIMITS.cell_timeout),
            "--call-timeout",
            str(LIMITS.call_timeout),
            "--timeout",
            str(LIMITS.total_timeout),
            "--memory-mb",
            str(LIMITS.memory_mb),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return target


def test_zip_layout(autograder):
    with zipfile.ZipFile(autograder) as archive:
        infos = {i.filename: i for i in archive.infolist()}
        names = set(infos)
        assert {"setup.sh", "run_autograder"} <= names  # at the root
        for name in ("setup.sh", "run_autograder"):
            assert infos[name].external_attr >> 16 & stat.S_IXUSR, name
        assert {"lib/qlib/course/grade.py", "lib/qlib/course/worker.py"} <= names
        assert "reference/reference.json" in names
        limits = json.loads(archive.read("limits.json"))
        assert not [n for n in names if n.endswith(".ipynb")], names
        recorded = archive.read("reference/reference.json").decode()
        requirements = archive.read("requirements.txt").decode().split()
    assert "BEGIN SOLUTION" not in recorded
    # the recorded answers, not the solution's code
    solution = json.loads(corpus.SOLUTION.read_text(encoding="utf-8"))
    answers = [
        line.strip()
        for source in corpus.SOLUTION_ANSWERS.values()
        for line in source.splitlines()
        if len(line.strip()) > 20 and "def " not in line
    ]
    assert answers and not [a for a in answers if json.dumps(a)[1:-1] in recorded]
    assert solution["cells"]
    data = json.loads(recorded)
    assert [q["id"] for q in data["questions"]] == list(corpus.QUESTIONS)
    for q in data["questions"]:
        function, points, visible, hidden = corpus.QUESTIONS[q["id"]]
        assert (q["function"], q["points"]) == (function, points)
        assert sum(not c["hidden"] for c in q["cases"]) == visible
        assert sum(c["hidden"] for c in q["cases"]) == hidden
    # the limits given on the command line, the others the grader's defaults
    assert limits == dataclasses.asdict(LIMITS)
    assert any(r.startswith("numpy") for r in requirements)
    assert not any(r.startswith(("pytest", "jupyterlab")) for r in requirements)


@pytest.fixture(scope="module")
def root(autograder, tmp_path_factory) -> Path:
    """A simulated /autograder after setup.sh ran (offline, this environment)."""
    root = tmp_path_factory.mktemp("autograder")
    source = root / "source"
    with zipfile.ZipFile(autograder) as archive:
        archive.extractall(source)
        for info in archive.infolist():  # extractall drops the modes
            (source / info.filename).chmod(info.external_attr >> 16 & 0o777)
    (root / "submission").mkdir()
    (root / "results").mkdir()
    done = subprocess.run(
        ["bash", str(source / "setup.sh")],
        env={**_env(root), "PIP_NO_INDEX": "1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    mode = (source / "reference" / "reference.json").stat().st_mode
    assert mode & 0o077 == 0, f"recorded answers readable by others: {oct(mode)}"
    return root


def _env(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    return {**env, "AUTOGRADER_ROOT": str(root), "AUTOGRADER_PYTHON": sys.executable}


def _forged(root: Path) -> bytes:
    """The stub, plus a cell that writes a perfect results.json where the
    autograder will write its own, and prints another."""
    fake = {"score": FORGED_SCORE, "tests": []}
    source = (
        "import json, pathlib\n"
        f"fake = {fake!r}\n"
        "print(json.dumps(fake))\n"
        f"for folder in ({str(root / 'results')!r}, '/autograder/results'):\n"
        "    try:\n"
        "        pathlib.Path(folder, 'results.json').write_text(json.dumps(fake))\n"
        "    except OSError:\n"
        "        pass\n"
    )
    nb = corpus.insert(
        corpus._load(corpus.EXERCISE), source, after="setup", cell_id="forge"
    )
    return json.dumps(nb).encode()


def _run(root: Path, notebook: bytes, name: str = "02_integer_encodings.ipynb"):
    for old in (root / "submission").iterdir():
        old.unlink()
    results = root / "results" / "results.json"
    results.unlink(missing_ok=True)
    (root / "submission" / name).write_bytes(notebook)
    done = subprocess.run(
        [str(root / "source" / "run_autograder")],
        env=_env(root),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(results.read_text(encoding="utf-8")), done.stdout


def _validate(data: dict) -> None:
    """Gradescope's results.json fields and types, and scores that add up."""
    assert isinstance(data["score"], float)
    assert isinstance(data["output"], str)
    assert isinstance(data["tests"], list) and data["tests"]
    for test in data["tests"]:
        assert set(test) >= {
            "name",
            "score",
            "max_score",
            "status",
            "output",
            "visibility",
        }, test
        assert isinstance(test["name"], str)
        assert isinstance(test["score"], float) and isinstance(test["max_score"], float)
        assert 0 <= test["score"] <= test["max_score"]
        assert test["status"] in ("passed", "failed")
        assert (test["status"] == "passed") == (test["score"] == test["max_score"])
        assert test["visibility"] in VISIBILITIES
        assert isinstance(test["output"], str)
    assert math.isclose(sum(t["max_score"] for t in data["tests"]), 20)
    assert math.isclose(sum(t["score"] for t in data["tests"]), data["score"])


def _per_question(data: dict) -> dict[str, float]:
    scores: dict[str, float] = {}
    for test in data["tests"]:
        qid = test["name"].split()[0]
        scores[qid] = scores.get(qid, 0.0) + test["score"]
    return scores


@pytest.mark.parametrize("name", ["correct", "wrong", "stub", "loop_top_level"])
def test_grades_exactly(root, name):
    data, log = _run(root, corpus.build(name))
    _validate(data)
    # graded under the limits the zip recorded, not the grader's defaults
    assert (
        f"limits: cell {LIMITS.cell_timeout:g} s, call {LIMITS.call_timeout:g} s, "
        f"submission {LIMITS.total_timeout:g} s, memory {LIMITS.memory_mb} MB"
    ) in log
    expected = corpus.entries()[name]
    assert data["score"] == float(expected.score), data["output"]
    assert _per_question(data) == pytest.approx(
        {q: float(s) for q, s in expected.questions.items()}, abs=1e-12
    )
    assert f"status: {expected.status}" in data["output"]


def test_hidden_cases_stay_hidden(root):
    """Hidden cases count in the score; their detail is only a count, shown
    after publication; a visible case's detail shows its call."""
    data, _log = _run(root, corpus.build("wrong"))
    hidden = [t for t in data["tests"] if "hidden" in t["name"]]
    visible = [t for t in data["tests"] if "hidden" not in t["name"]]
    assert len(hidden) == len(visible) == len(corpus.QUESTIONS)
    for test in hidden:
        assert test["visibility"] == "after_published"
        assert test["output"].startswith("hidden checks: ")
        assert len(test["output"].splitlines()) == 1
    for test in visible:
        assert test["visibility"] == "visible"
        function = test["name"].split()[1]
        assert f"`{function}(" in test["output"]
    qid = "02.1"
    function, points, n_visible, n_hidden = corpus.QUESTIONS[qid]
    share = {
        t["visibility"]: t["max_score"]
        for t in data["tests"]
        if t["name"].split()[0] == qid
    }
    total = n_visible + n_hidden
    assert share == {
        "visible": float(Fraction(points * n_visible, total)),
        "after_published": float(Fraction(points * n_hidden, total)),
    }


def test_forged_results_are_overwritten(root):
    data, _log = _run(root, _forged(root))
    _validate(data)
    assert data["score"] == 0.0  # the stub's score, not the forged one
    assert FORGED_SCORE not in [t["score"] for t in data["tests"]]


def test_no_notebook_is_a_clear_zero(root):
    data, _log = _run(root, b"not a notebook", name="answers.txt")
    _validate(data)
    assert data["score"] == 0.0
    assert "upload exactly one notebook" in data["output"]


def test_python_without_packages_writes_no_results(root, tmp_path):
    """A Python without the library's dependencies (setup.sh never ran): the
    autograder stops at its first import, writes no results.json and exits
    non-zero, so Gradescope reports a failed autograder, not a zero."""
    bare = tmp_path / "bare"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(bare)],
        check=True,
        timeout=120,
    )
    (root / "results" / "results.json").unlink(missing_ok=True)
    (root / "submission" / "02_integer_encodings.ipynb").write_bytes(
        corpus.build("correct")
    )
    done = subprocess.run(
        [str(root / "source" / "run_autograder")],
        env={**_env(root), "AUTOGRADER_PYTHON": str(bare / "bin" / "python")},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode != 0
    assert "No module named" in done.stderr, done.stderr
    assert not (root / "results" / "results.json").exists()


def test_failed_canary_writes_no_results(root):
    """A memory limit no kernel starts under: the canary (a notebook answering
    from the recorded answers) fails, run returns 3 and writes nothing."""
    from qlib.course import cli, gradescope, reference

    (root / "results" / "results.json").unlink(missing_ok=True)
    (root / "submission" / "02_integer_encodings.ipynb").write_bytes(
        corpus.build("correct")
    )
    said: list[str] = []
    status = gradescope.run(root, reference.Limits(memory_mb=40), log=said.append)
    assert status == cli.EXIT_BROKEN == 3
    assert any("the autograder is broken here" in line for line in said), said
    assert not (root / "results" / "results.json").exists()


def test_recorded_limits_default_and_bad_file(tmp_path):
    from qlib.course import gradescope
    from qlib.course.reference import Limits

    assert gradescope.recorded_limits(tmp_path) == Limits()  # an older zip
    (tmp_path / "limits.json").write_text('{"cell_timeout": 3, "speed": 9}')
    with pytest.raises(ValueError, match=r"limits\.json: expected an object"):
        gradescope.recorded_limits(tmp_path)

"""The grader works wherever the course and its Python live, and cannot
silently hand out zeros.

A copy of the course and a copy of this test run's Python environment are
placed under ``/tmp`` -- the folder the kernel's sandbox covers with a private
tmpfs -- behind a dot-folder, with qlib found only through ``PYTHONPATH`` (the
copied environment's own qlib points back at the original checkout).  From
there the whole grader suite runs again, and the solution is graded from a
read-only mount of the copy.  Then the sandbox is broken on purpose: the
grader must stop with status 3, say why, and write nothing; and a kernel that
dies before its first cell during a batch is the grader's failure (status 4),
never a student's ``crashed``.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import grader_corpus as corpus
import pytest
from test_grader import require_sandbox

from qlib.course import cli, grade, kernel

REPO = corpus.REPO


def _copy_tree(source: Path, target: Path) -> None:
    """Hard links where the file system allows them (fast), copies elsewhere."""

    def link_or_copy(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(source, target, symlinks=True, copy_function=link_or_copy)


@dataclasses.dataclass
class Placed:
    course: Path
    python: Path
    env: dict[str, str]

    def run(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(self.python), *args],
            cwd=self.course,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


@pytest.fixture(scope="module")
def placed():
    """The course and its environment under /tmp/.../.hidden/ (removed after)."""
    if sys.prefix == sys.base_prefix:
        pytest.fail("these tests copy the virtual environment they run in")
    top = Path(tempfile.mkdtemp(prefix="qlib-anywhere-", dir="/tmp"))
    course = top / ".hidden" / "course"
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO,
            capture_output=True,
            check=True,
        ).stdout.split(b"\0")
        for name in filter(None, (n.decode() for n in listed)):
            source = REPO / name
            if source.is_file():
                (course / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, course / name)
        _copy_tree(Path(sys.prefix), course / ".venv")
        env = {
            key: value
            for key, value in os.environ.items()
            if key not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")
            and not key.startswith("PYTEST_")
        }
        env["PYTHONPATH"] = str(course)
        yield Placed(course, course / ".venv" / "bin" / "python", env)
    finally:
        shutil.rmtree(top, ignore_errors=True)


def test_the_copy_imports_its_own_qlib(placed):
    done = placed.run("-c", "import qlib, sys; print(qlib.__file__); print(sys.prefix)")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [
        str(placed.course / "qlib" / "__init__.py"),
        str(placed.course / ".venv"),
    ]


def test_grader_suite_from_tmp(placed):
    """tests/test_grader.py, the whole adversarial corpus, from the copy."""
    done = placed.run(
        "-m", "pytest", "tests/test_grader.py", "-q", "-p", "no:cacheprovider"
    )
    tail = "\n".join((done.stdout + done.stderr).splitlines()[-30:])
    assert done.returncode == 0, tail
    assert re.search(r"\d+ passed", tail) and not re.search(r"\d+ failed", tail), tail


def _book(out: Path) -> dict[str, tuple[str, str]]:
    with (out / "gradebook.csv").open(newline="", encoding="utf-8") as f:
        return {r["submission"]: (r["status"], r["score"]) for r in csv.DictReader(f)}


def test_full_marks_from_a_read_only_copy(placed, tmp_path):
    """The copy mounted read-only over itself: the solution gets 20/20 and a
    wrong notebook its exact score."""
    require_sandbox()
    subs = tmp_path / "subs"
    subs.mkdir()
    shutil.copy(corpus.SOLUTION, subs / "alice.ipynb")
    (subs / "bob.ipynb").write_bytes(corpus.build("wrong"))
    out = tmp_path / "out"
    course = str(placed.course)
    command = (
        f'mount -o bind,ro "{course}" "{course}" && '
        f'exec "{placed.python}" -m qlib.course --assignment 02 --out "{out}" "{subs}"'
    )
    done = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", command],
        cwd=placed.course,
        env=placed.env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert f"qlib from {placed.course / 'qlib'}" in done.stderr
    wrong = corpus.entries()["wrong"].score
    assert _book(out) == {"alice": ("ok", "20"), "bob": ("ok", f"{float(wrong):.4g}")}


# ------------------------------------------------------------ broken on purpose


def _submissions(tmp_path: Path) -> list[str]:
    folder = tmp_path / "subs"
    folder.mkdir()
    for name in ("correct", "wrong"):
        (folder / f"{name}.ipynb").write_bytes(corpus.build(name))
    return [str(folder)]


def _assert_nothing_written(out: Path) -> None:
    assert not out.exists(), f"the grader wrote {sorted(out.rglob('*'))}"


def test_hidden_environment_stops_the_grader(tmp_path, monkeypatch, capsys):
    """The Python environment hidden from the kernel: exit status 3, the
    kernel's own import error in the message, no gradebook, feedback or
    results."""
    require_sandbox()
    prefix = Path(sys.prefix).resolve()
    real = grade.prepare_sandbox

    def hiding_the_environment(*args):
        sandbox = real(*args)
        keep = tuple(k for k in sandbox.keep if prefix not in Path(k).parents)
        keep = tuple(k for k in keep if Path(k) != prefix)
        return dataclasses.replace(
            sandbox, keep=keep, hide=(*sandbox.hide, str(prefix))
        )

    monkeypatch.setattr(grade, "prepare_sandbox", hiding_the_environment)
    out = tmp_path / "out"
    status = cli.main(
        ["--assignment", "02", "--out", str(out), *_submissions(tmp_path)]
    )
    err = capsys.readouterr().err
    assert status == cli.EXIT_BROKEN == 3, err
    assert "the grader is broken here" in err
    assert "scored 0/20 with status error" in err
    assert "No module named" in err  # the kernel's own error output
    assert f"nothing was written to {out}" in err
    _assert_nothing_written(out)


def test_too_little_memory_stops_the_grader(tmp_path):
    """A memory limit no kernel can start under is a broken setup, not 30
    students who wrote code that crashed."""
    out = tmp_path / "out"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "qlib.course",
            "--assignment",
            "02",
            "--out",
            str(out),
            "--memory-mb",
            "40",
            *_submissions(tmp_path),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 3, done.stderr
    assert "before running any cell" in done.stderr or "could not start" in done.stderr
    assert "MemoryError" in done.stderr, done.stderr
    _assert_nothing_written(out)


def test_kernel_dying_at_start_is_the_graders_failure(tmp_path, monkeypatch, capsys):
    """After the canary passed, kernels that die before their first cell: the
    rows say error (not crashed), the note says why, and the exit status is 4."""
    started = []
    real = kernel.kernel_command

    def failing_after_the_canary(command):
        started.append(command)
        if len(started) == 1:
            return real(command)
        return [sys.executable, "-c", "import sys; sys.exit('kernel start-up failed')"]

    monkeypatch.setattr(kernel, "kernel_command", failing_after_the_canary)
    out = tmp_path / "out"
    status = cli.main(
        [
            "--assignment",
            "02",
            "--out",
            str(out),
            "--workers",
            "1",
            *_submissions(tmp_path),
        ]
    )
    err = capsys.readouterr().err
    assert status == cli.EXIT_GRADER_ERRORS == 4, err
    assert "the grader failed on 2 submission(s)" in err
    assert _book(out) == {"correct": ("error", "0"), "wrong": ("error", "0")}
    text = (out / "feedback" / "correct.md").read_text(encoding="utf-8")
    assert "before running any cell" in text
    assert "kernel start-up failed" in text
    assert "crashed" not in text

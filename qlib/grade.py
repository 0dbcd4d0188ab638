"""Batch grader: a folder of exercise notebooks in, a gradebook out.

    grade --assignment 02 --out graded/ submissions/
    python -m qlib.grade --assignment 02 --out graded/ alice.ipynb bob.ipynb

How a submission is graded:

1. The reference: the grader runs ``solutions/NN_*.ipynb`` in its own process
   and records every ``check(...)`` call in it -- each question's id, points
   and function name, and every visible and hidden case with its expected
   answer.  Expected answers never leave this process.
2. The submission's code cells run top to bottom in a separate kernel process
   (:mod:`qlib._grade_worker`), in a fresh folder, with a per-cell time limit,
   a memory limit, a process limit, a file-size limit, and its output thrown
   away.  As root, the kernel runs in new PID and mount namespaces (nothing it
   starts survives it; the solutions, the submissions and the output folder
   are hidden; /tmp is private) as an unprivileged user.
3. The grader sends each case's inputs; the kernel calls the student's
   function and returns the value as plain data (:mod:`qlib.wire`).  The
   grader compares it with the expected answer using :func:`qlib.feedback.compare`.
4. A cell that hangs or kills the kernel is skipped and the run is restarted
   without it; a call that hangs or kills the kernel fails alone.

Before any submission, the reference solution itself is graded through the
very same sandbox and limits (the canary).  Unless it scores full marks the
grader writes nothing and exits with status 3 (:data:`EXIT_BROKEN`), printing
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
notebook; score 0), ``error`` (the grader could not start a kernel; score 0).

Taught nowhere: this is the instructors' tool; see the README's instructor guide.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import os
import pwd
import re
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from . import feedback, wire
from .feedback import Case, Question

__all__ = [
    "STATUSES",
    "Limits",
    "Reference",
    "SubmissionResult",
    "grade_batch",
    "load_reference",
    "main",
]

STATUSES = ("ok", "timeout", "crashed", "invalid", "error")
COURSE_ROOT = Path(__file__).resolve().parents[1]
_MAX_LINE = 64 * 1024 * 1024
_STARTUP_SECONDS = 60
_SHOWN_LIMIT = 1000  # characters kept of a visible case's explanation
# exit statuses of the command line (the README lists them)
EXIT_OK, EXIT_USAGE, EXIT_BROKEN, EXIT_GRADER_ERRORS = 0, 2, 3, 4


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


def load_reference(assignment: str, solutions: Path | None = None) -> Reference:
    """Run the solution notebook here and record every ``check`` it makes."""
    path = find_solution(assignment, solutions or COURSE_ROOT / "solutions")
    nb = json.loads(path.read_text(encoding="utf-8"))
    recorded: list[tuple[Question, list[Case], bool]] = []
    original = feedback.check

    def recording_check(question, func, cases=None, *, hidden=False):
        chosen = list(question.cases if cases is None else cases)
        recorded.append((question, chosen, hidden))
        original(question, func, chosen, hidden=hidden)
        outcome = feedback.RESULTS[f"{question.id}:hidden" if hidden else question.id]
        if not outcome.ok:
            raise RuntimeError(f"the reference solution fails question {question.id}")

    import matplotlib

    matplotlib.use("Agg")
    namespace: dict[str, Any] = {"__name__": "__main__"}
    cwd = os.getcwd()
    try:
        feedback.check = recording_check
        import qlib

        qlib.check = recording_check
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
        feedback.check = original
        qlib.check = original
        os.chdir(cwd)
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


# -------------------------------------------------------------------- sandbox


@dataclass(frozen=True)
class Sandbox:
    """How kernels are isolated on this machine (see :func:`detect_sandbox`)."""

    namespaces: bool
    user: str | None
    cgroup: bool
    hide: tuple[str, ...] = ()
    keep: tuple[str, ...] = ()  # folders the kernel reads even under /tmp
    pythonpath: tuple[str, ...] = ()  # where the kernel finds qlib and the rest

    def describe(self) -> str:
        parts = [
            "PID, mount and network namespaces" if self.namespaces else "no namespaces"
        ]
        if self.user:
            parts.append(f"user {self.user}")
        elif self.namespaces:
            parts.append("root without capabilities, read-only file system")
        else:
            parts.append("the grader's own user")
        parts.append("pids and memory cgroups" if self.cgroup else "no cgroups")
        return ", ".join(parts)


def detect_sandbox(user: str | None) -> Sandbox:
    root = os.geteuid() == 0
    unshare = shutil.which("unshare")
    namespaces = False
    if root and unshare:
        probe = subprocess.run(
            [
                unshare,
                "--pid",
                "--mount",
                "--net",
                "--ipc",
                "--fork",
                "--mount-proc",
                "true",
            ],
            capture_output=True,
            check=False,
        )
        namespaces = probe.returncode == 0
    if user:
        pwd.getpwnam(user)  # KeyError for an unknown user
        if not root:
            raise ValueError("--sandbox-user needs the grader to run as root")
    cgroup = root and all(
        os.access(Path("/sys/fs/cgroup") / c, os.W_OK) for c in ("pids", "memory")
    )
    return Sandbox(namespaces, user, cgroup)


class _Cgroup:
    """A cgroup (v1) per kernel: a process cap (pids) or a memory cap (memory).

    The kernel joins it itself, before it runs anything submitted, so all its
    descendants are inside; at the end every process in it is killed.
    """

    def __init__(self, controller: str, settings: dict[str, int]) -> None:
        root = Path("/sys/fs/cgroup") / controller
        self.path = Path(tempfile.mkdtemp(prefix="qlib-grade-", dir=root))
        for name, value in settings.items():
            (self.path / name).write_text(str(value))

    def kill_all(self) -> None:
        for _ in range(400):
            pids = (self.path / "cgroup.procs").read_text().split()
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)
            time.sleep(0.005)
        with contextlib.suppress(OSError):
            self.path.rmdir()


def _kernel_command(command: list[str]) -> list[str]:
    """The command that starts a kernel (a seam for the tests that break it)."""
    return command


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


# --------------------------------------------------------------------- kernel


class _Lines:
    """Newline-separated messages from a pipe, in linear time, size-capped."""

    def __init__(self, fd: int) -> None:
        self.fd, self.parts, self.size, self.ready = fd, [], 0, []

    def read(self) -> bool:
        """Read what is there; False at end of file or on an oversized line."""
        chunk = os.read(self.fd, 1 << 20)
        if not chunk:
            return False
        while chunk:
            head, newline, chunk = chunk.partition(b"\n")
            self.parts.append(head)
            self.size += len(head)
            if self.size > _MAX_LINE:
                return False
            if newline:
                self.ready.append(b"".join(self.parts))
                self.parts, self.size = [], 0
        return True


@dataclass
class _Attempt:
    cell_errors: dict[int, str] = field(default_factory=dict)
    answers: dict[int, tuple[bool, Any]] = field(default_factory=dict)
    stopped_in: tuple[str, int] | None = None  # ("cell" | "call", index)
    how: str = ""  # "timeout" | "crashed"
    fatal: str | None = None
    finished: bool = False


class _Kernel:
    """One kernel process, driven by the grader.

    The cells run first (the kernel reports start and end of each, which only
    steers the time limits).  Then the grader sends one request at a time,
    each with a fresh random nonce, and accepts exactly one reply carrying
    that id and nonce: whatever else appears on the channel is ignored.
    """

    def __init__(self, cells, skip, limits: Limits, sandbox: Sandbox) -> None:
        self.limits = limits
        events_r, events_w = os.pipe()
        requests_r, requests_w = os.pipe()
        self.cwd = tempfile.mkdtemp(prefix="qlib-grade-cwd-")
        self.cgroups = []
        if sandbox.cgroup:
            self.cgroups = [
                _Cgroup("pids", {"pids.max": limits.processes}),
                _Cgroup("memory", {"memory.limit_in_bytes": limits.memory_mb << 20}),
            ]
        command = [
            sys.executable,
            "-m",
            "qlib._grade_worker",
            "--events-fd",
            str(events_w),
            "--requests-fd",
            str(requests_r),
            *[arg for cg in self.cgroups for arg in ("--cgroup", str(cg.path))],
        ]
        if sandbox.namespaces:
            unshare = shutil.which("unshare") or "unshare"
            namespaces = ["--pid", "--mount", "--net", "--ipc", "--mount-proc"]
            command = [
                unshare,
                *namespaces,
                "--fork",
                "--kill-child",
                "--propagation",
                "private",
                *command,
                "--tmpfs",
                *[arg for folder in sandbox.keep for arg in ("--keep", folder)],
                *[arg for folder in sandbox.hide for arg in ("--hide", folder)],
            ]
        if sandbox.user:
            command += ["--user", sandbox.user]
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "MPLBACKEND": "Agg",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONHASHSEED": "0",
            "OPENBLAS_NUM_THREADS": "1",
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
        }
        if sandbox.pythonpath:
            env["PYTHONPATH"] = os.pathsep.join(sandbox.pythonpath)
        # what the kernel and unshare say before any submitted code runs (the
        # kernel points its own stderr at /dev/null before running cells)
        self.stderr = tempfile.TemporaryFile()
        try:
            self.proc = subprocess.Popen(
                _kernel_command(command),
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=self.stderr,
                pass_fds=(events_w, requests_r),
                env=env,
                cwd=self.cwd,
                start_new_session=True,
            )
        finally:
            os.close(events_w)
            os.close(requests_r)
        self.lines = _Lines(events_r)
        self.requests = requests_w
        self.selector = selectors.DefaultSelector()
        self.selector.register(events_r, selectors.EVENT_READ)
        job = {
            "cells": cells,
            "skip": sorted(skip),
            "limits": {
                "memory_mb": limits.memory_mb,
                "file_mb": limits.file_mb,
                "disk_mb": limits.disk_mb,
                "cpu_s": int(limits.total_timeout) + 5,
                "processes": limits.processes,
            },
        }
        try:
            self.proc.stdin.write(json.dumps(job).encode())
            self.proc.stdin.close()
        except BrokenPipeError:
            pass

    def next_event(self, deadline: float) -> dict | str | None:
        """The next well-formed message, "timeout", or None when the kernel died."""
        while not self.lines.ready:
            left = deadline - time.monotonic()
            if left <= 0:
                return "timeout"
            if self.selector.select(timeout=left) and not self.lines.read():
                return None
        line = self.lines.ready.pop(0)
        try:
            return wire.loads(line.decode("utf-8", "replace"))
        except wire.WireError:
            return {}  # noise on the channel counts for nothing

    def error_output(self, limit: int = 2000) -> str:
        """The end of what the kernel wrote to stderr before running cells."""
        self.stderr.seek(0, os.SEEK_END)
        size = self.stderr.tell()
        self.stderr.seek(max(0, size - limit))
        text = self.stderr.read().decode("utf-8", "replace").strip()
        return ("..." if size > limit else "") + text

    def run_cells(self, attempt: _Attempt, deadline: float) -> bool:
        """Follow the cells until the kernel says they are done."""
        current: tuple[str, int] | None = None
        ready = False
        step = time.monotonic() + _STARTUP_SECONDS
        while True:
            event = self.next_event(min(step, deadline))
            if (event is None or event == "timeout") and not ready:
                # nothing submitted has run yet: this is the grader's failure
                self.proc.poll()
                how = (
                    f"exited with status {self.proc.returncode}"
                    if event is None and self.proc.returncode is not None
                    else "died"
                    if event is None
                    else f"did not start within {_STARTUP_SECONDS} s"
                )
                output = self.error_output() if event is None else ""
                attempt.fatal = f"the kernel {how} before running any cell" + (
                    f"; its error output:\n{output}" if output else ""
                )
                return False
            if event is None or event == "timeout":
                attempt.stopped_in = current
                attempt.how = "crashed" if event is None else "timeout"
                return False
            if "fatal" in event:
                output = self.error_output()
                attempt.fatal = str(event["fatal"])[:1000] + (
                    f"; its error output:\n{output}" if output else ""
                )
                return False
            if event.get("ready") is True:
                ready = True
                continue
            if event.get("cells_done") is True:
                return True
            index = event.get("cell")
            if type(index) is not int:
                continue
            if event.get("phase") == "start":
                current = ("cell", index)
                step = time.monotonic() + self.limits.cell_timeout
            elif event.get("phase") == "end" and current == ("cell", index):
                if event.get("error") is not None:
                    attempt.cell_errors[index] = str(event["error"])[:300]
                current = None
                step = time.monotonic() + self.limits.cell_timeout

    def call(self, call: dict, deadline: float) -> tuple[str, Any]:
        """Send one request and wait for its reply.

        Returns ("value", data), ("error", text), ("timeout", None) or
        ("crashed", None).
        """
        nonce = secrets.token_hex(16)
        request = {**call, "nonce": nonce}
        try:
            os.write(self.requests, (wire.dumps(request) + "\n").encode())
        except BrokenPipeError:
            return "crashed", None
        limit = min(deadline, time.monotonic() + self.limits.call_timeout)
        while True:
            event = self.next_event(limit)
            if event is None:
                return "crashed", None
            if event == "timeout":
                return "timeout", None
            if event.get("reply") != call["id"] or event.get("nonce") != nonce:
                continue
            if "value" in event:
                return "value", event["value"]
            return "error", str(event.get("error"))[:300]

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.requests)
        for pid in _descendants(self.proc.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        self.proc.wait()
        for cgroup in self.cgroups:
            cgroup.kill_all()
        self.selector.close()
        os.close(self.lines.fd)
        self.stderr.close()
        shutil.rmtree(self.cwd, ignore_errors=True)


def _attempt(
    cells: list[str],
    skip: set[int],
    calls: list[dict],
    judge,
    limits: Limits,
    sandbox: Sandbox,
    deadline: float,
) -> _Attempt:
    """Run the cells once, then as many of ``calls`` as the kernel survives."""
    attempt = _Attempt()
    kernel = _Kernel(cells, skip, limits, sandbox)
    try:
        if not kernel.run_cells(attempt, deadline):
            return attempt
        for call in calls:
            kind, payload = kernel.call(call, deadline)
            if kind in ("timeout", "crashed"):
                attempt.stopped_in, attempt.how = ("call", call["id"]), kind
                return attempt
            attempt.answers[call["id"]] = judge(call["id"], kind, payload)
        attempt.finished = True
        return attempt
    finally:
        kernel.close()


# -------------------------------------------------------------------- grading


def grade_submission(
    path: Path, name: str, reference: Reference, limits: Limits, sandbox: Sandbox
) -> SubmissionResult:
    result = SubmissionResult(name, "ok", max_score=reference.max_score)
    try:
        cells = read_cells(path)
    except ValueError as err:
        result.status = "invalid"
        result.notes.append(str(err))
        _score(result, reference, {})
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
        attempt = _attempt(cells, skip, pending, judge, limits, sandbox, deadline)
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
    _score(result, reference, outcomes, expected)
    return result


def _how(how: str) -> str:
    return "ran out of time" if how == "timeout" else "killed the kernel"


def _score(
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


# -------------------------------------------------------------------- outputs


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


def _results_json(result: SubmissionResult, reference: Reference) -> dict:
    """Gradescope's results.json shape, one test per question."""
    return {
        "score": float(result.score),
        "output": f"status: {result.status}",
        "tests": [
            {
                "name": f"{qid} {g.question.function}",
                "score": float(result.questions.get(qid, Fraction(0))),
                "max_score": float(g.question.points),
            }
            for qid, g in reference.questions.items()
        ],
    }


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


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _python_paths(private: list[Path]) -> tuple[list[Path], list[str]]:
    """What the kernel needs to run the grader's own Python and qlib.

    Returns ``(keep, pythonpath)``: the folders the kernel must keep reading
    wherever they are (the installation's prefixes, the folder qlib is
    imported from, and the grader's other ``sys.path`` entries -- from
    ``PYTHONPATH``, ``.pth`` files or editable installs -- unless they lie in
    one of the ``private`` folders), each under its given and its resolved
    name; and the entries the kernel's ``PYTHONPATH`` must list so that it
    imports the very qlib the grader runs.
    """
    import qlib

    package = Path(os.path.abspath(qlib.__file__)).parent
    package_home = package.parent
    prefixes = {
        Path(os.path.abspath(p))
        for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix)
    }
    extra = []
    for entry in sys.path[1:]:  # [0] is the grader's script folder or cwd
        path = Path(os.path.abspath(entry)) if entry else None
        if path is None or not path.is_dir() or path == package_home:
            continue
        if any(_inside(path, p) or _inside(path.resolve(), p) for p in private):
            continue
        extra.append(path)
    pythonpath = [
        str(p)
        for p in dict.fromkeys([package_home, *extra])
        if not any(_inside(p, prefix) for prefix in prefixes)
    ]
    keep = {package_home, package, *prefixes, *extra}
    keep |= {p.resolve() for p in keep}
    return sorted(keep), pythonpath


def _folders_to_hide(
    solutions: Path, out: Path, submissions: list[Path], keep: list[Path]
) -> list[str]:
    """What a kernel must not see: the solutions, the output, the submissions,
    every git history around them, and the course's other folders -- all but
    what the kernel needs to run (``keep``: the library and the Python
    installation)."""
    folders = {solutions.resolve(), out.resolve()}
    folders |= {p.resolve().parent if p.is_file() else p.resolve() for p in submissions}
    folders |= {p for p in COURSE_ROOT.iterdir() if p.is_dir() and not p.is_symlink()}
    for start in (solutions.resolve(), COURSE_ROOT, *folders.copy()):
        for folder in (start, *start.parents):
            if (folder / ".git").is_dir():
                folders.add(folder / ".git")
    return sorted(
        str(f) for f in folders if f.is_dir() and not any(_inside(n, f) for n in keep)
    )


class GraderBroken(RuntimeError):
    """The grader cannot grade here: the reference solution, graded through
    the sandbox, did not score full marks.  Nothing was written."""


def _canary(reference: Reference, limits: Limits, sandbox: Sandbox) -> SubmissionResult:
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


def _check_writable(out: Path) -> None:
    """Refuse an output folder that cannot be made or written, before grading."""
    folder = out.resolve()
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise NotADirectoryError(f"--out {out}: {folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(f"--out {out}: {folder} is not writable")


def _prepare_sandbox(
    user: str | None, solutions: Path, out: Path, submissions: list[Path]
) -> Sandbox:
    found = detect_sandbox(user)
    private = [solutions.resolve(), out.resolve()]
    private += [p.resolve().parent if p.is_file() else p.resolve() for p in submissions]
    keep, pythonpath = _python_paths(private)
    hide = _folders_to_hide(solutions, out, submissions, keep)
    return Sandbox(
        found.namespaces,
        found.user,
        found.cgroup,
        tuple(hide),
        tuple(str(p) for p in keep),
        tuple(pythonpath),
    )


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
    _check_writable(out)
    sandbox = _prepare_sandbox(sandbox_user, reference.path.parent, out, submissions)
    log(
        f"grading {len(items)} submission(s) of {reference.path.name} with qlib "
        f"from {COURSE_ROOT / 'qlib'} and Python {sys.prefix}; sandbox: "
        f"{sandbox.describe()}"
    )
    digest = reference.path.read_bytes()
    _canary(reference, limits, sandbox)
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
            _score(result, reference, {})
        with lock:
            (out / "feedback" / f"{name}.md").write_text(
                feedback_markdown(result, reference), encoding="utf-8"
            )
            (out / "results" / f"{name}.json").write_text(
                json.dumps(_results_json(result, reference), indent=1), encoding="utf-8"
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="grade", description="Grade exercise notebooks into a gradebook."
    )
    parser.add_argument("--assignment", required=True, help="two digits, e.g. 02")
    parser.add_argument("--out", type=Path, help="output folder")
    parser.add_argument("submissions", nargs="*", type=Path, help="files or folders")
    parser.add_argument(
        "--gradescope",
        type=Path,
        metavar="ZIP",
        help="instead of grading, write a Gradescope autograder zip for the assignment",
    )
    parser.add_argument("--solutions", type=Path, help="folder of solution notebooks")
    parser.add_argument("--workers", type=int, default=None, help="default: cores")
    parser.add_argument(
        "--visible-only",
        action="store_true",
        help="only the visible checks (what a student can run)",
    )
    parser.add_argument(
        "--sandbox-user",
        default=None,
        help="run submissions as this user (the grader runs as root; the Python "
        "install must be readable by that user)",
    )
    defaults = Limits()
    parser.add_argument("--cell-timeout", type=float, default=defaults.cell_timeout)
    parser.add_argument("--call-timeout", type=float, default=defaults.call_timeout)
    parser.add_argument(
        "--timeout",
        type=float,
        default=defaults.total_timeout,
        help="wall-clock seconds per submission",
    )
    parser.add_argument("--memory-mb", type=int, default=defaults.memory_mb)
    args = parser.parse_args(argv)
    limits = Limits(
        cell_timeout=args.cell_timeout,
        call_timeout=args.call_timeout,
        total_timeout=args.timeout,
        memory_mb=args.memory_mb,
    )
    user = args.sandbox_user
    if args.gradescope is not None:
        if args.out is not None or args.submissions:
            parser.error("--gradescope ZIP takes no --out and no submissions")
        from . import gradescope

        try:
            gradescope.build_zip(
                args.assignment,
                args.gradescope,
                args.solutions,
                log=lambda m: print(m, file=sys.stderr),
            )
        except GraderBroken as err:
            print(f"grade: the grader is broken here: {err}", file=sys.stderr)
            return EXIT_BROKEN
        except (ValueError, KeyError, RuntimeError, OSError) as err:
            print(f"grade: error: {err}", file=sys.stderr)
            return EXIT_USAGE
        return EXIT_OK
    if args.out is None or not args.submissions:
        parser.error("give --out FOLDER and at least one submission")
    try:
        results = grade_batch(
            args.assignment,
            args.submissions,
            args.out,
            limits=limits,
            workers=args.workers,
            solutions=args.solutions,
            sandbox_user=user,
            visible_only=args.visible_only,
            log=lambda m: print(m, file=sys.stderr),
        )
    except GraderBroken as err:
        print(f"grade: the grader is broken here: {err}", file=sys.stderr)
        print(f"grade: nothing was written to {args.out}", file=sys.stderr)
        return EXIT_BROKEN
    except (ValueError, KeyError, RuntimeError, OSError) as err:
        # misuse: unknown assignment or user, unwritable output, a reference
        # solution that fails its own checks
        print(f"grade: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    failed = [r.submission for r in results if r.status == "error"]
    if failed:
        print(
            f"grade: the grader failed on {len(failed)} submission(s), whose rows "
            f"say 'error' (not the students' fault; grade them again): "
            f"{', '.join(failed)}",
            file=sys.stderr,
        )
        return EXIT_GRADER_ERRORS
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())

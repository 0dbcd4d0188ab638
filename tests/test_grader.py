"""The batch grader against the adversarial corpus of tests/grader_corpus.py.

The whole corpus is graded in ONE batch (two workers, so hostile submissions
run next to others), once per session; then one test per submission asserts
its exact status and score, and further tests check the gradebook, the
feedback (public information only), the processes and files left behind, and
the command line.

The sandbox assertions need root and ``unshare``: without them they fail with
a message, except on a developer's machine (not root and CI unset), where they
are skipped with the reason.
"""

from __future__ import annotations

import contextlib
import csv
import ctypes
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import grader_corpus as corpus
import numpy as np
import pytest

from qlib import feedback
from qlib.course import grade, kernel, reference, sandbox

REPO = corpus.REPO
LIMITS = reference.Limits(
    cell_timeout=3, call_timeout=3, total_timeout=60, memory_mb=corpus.MEMORY_MB
)
WORKERS = 2
BATCH_SECONDS = 60  # the whole corpus, two workers
GRADEBOOK_HEADER = ["submission", "status", "score", "max_score", *corpus.QUESTIONS]
# files no submission may change: the reference and the grader's own code
PROTECTED = [corpus.SOLUTION, *sorted((REPO / "qlib").rglob("*.py"))]
PROCESS_MARKERS = (
    corpus.SLEEP_POPEN,
    corpus.SLEEP_DAEMON,
    corpus.FILE_MARKER,
    "qlib.course.worker",
)


# -------------------------------------------------------------------- sandbox


def _sandbox_problem() -> str | None:
    if os.geteuid() != 0:
        return "the tests do not run as root"
    if shutil.which("unshare") is None:
        return "the unshare binary is missing"
    found = sandbox.detect_sandbox(None)
    if not found.namespaces:
        return "unshare cannot create PID, mount and network namespaces here"
    if not found.cgroup:
        return "there is no writable pids cgroup (/sys/fs/cgroup/pids)"
    return None


SANDBOX_PROBLEM = _sandbox_problem()


def require_sandbox() -> None:
    """Fail without the root sandbox -- skip only off CI and not as root."""
    if SANDBOX_PROBLEM is None:
        return
    message = f"the sandbox assertions need root and unshare: {SANDBOX_PROBLEM}"
    if os.environ.get("CI") is None and os.geteuid() != 0:
        pytest.skip(f"{message} (skipped: not root and CI is unset)")
    pytest.fail(message)


# ----------------------------------------------------------- host inspection


def marked_processes() -> list[str]:
    """Processes that carry a corpus marker or sit in a cgroup of this
    process's grader (other test processes may be grading at the same time)."""
    found, ours = [], sandbox.scratch_prefix()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            cgroups = (entry / "cgroup").read_text()
        except (OSError, UnicodeDecodeError):
            continue
        if any(m in cmdline for m in PROCESS_MARKERS) or ours in cgroups:
            found.append(f"pid {entry.name}: {cmdline.strip()[:100]!r}")
    return found


def grader_leftovers() -> set[str]:
    """Cgroups and scratch folders this process's grader makes for each kernel
    -- not those of a grader in another test process, which may be running."""
    folders = [Path(tempfile.gettempdir())]
    folders += [Path("/sys/fs/cgroup", c) for c in ("pids", "memory", "cpu")]
    return {str(p) for f in folders for p in f.glob(f"{sandbox.scratch_prefix()}*")}


def shm_segments(key: int) -> list[int]:
    """ids of the SysV shared memory segments with ``key``."""
    try:
        lines = Path("/proc/sysvipc/shm").read_text().splitlines()[1:]
    except OSError:
        return []
    return [int(line.split()[1]) for line in lines if int(line.split()[0]) == key]


def remove_shm(ids: list[int]) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    for shmid in ids:
        libc.shmctl(shmid, 0, None)  # IPC_RMID


# ---------------------------------------------------------------------- batch


@dataclass
class Batch:
    expected: dict[str, corpus.Expected]
    results: dict[str, reference.SubmissionResult]
    reference: reference.Reference
    out: Path
    seconds: float
    log: list[str]
    processes: list[str]  # marked processes found after the batch
    changed: list[str]  # protected files changed (and restored) by the batch
    new_files: list[str]  # files that appeared in solutions/ or qlib/
    leftovers: set[str]  # cgroups and scratch folders left by the grader
    host_files: list[str] = field(default_factory=list)  # corpus files on the host
    shm: list[int] = field(default_factory=list)  # SysV segments that survived


@pytest.fixture(scope="module")
def batch(tmp_path_factory, request) -> Batch:
    folder = tmp_path_factory.mktemp("corpus")
    out = tmp_path_factory.mktemp("graded")
    expected = corpus.write_corpus(folder, sandboxed=SANDBOX_PROBLEM is None)
    protected = {path: (path.read_bytes(), path.stat()) for path in PROTECTED}
    watched = {str(p) for d in ("solutions", "qlib") for p in (REPO / d).iterdir()}
    before = grader_leftovers()
    remove_shm(shm_segments(corpus.SHM_KEY))
    log: list[str] = []
    start = time.perf_counter()
    try:
        results = grade.grade_batch(
            corpus.ASSIGNMENT,
            [folder],
            out,
            limits=LIMITS,
            workers=WORKERS,
            log=log.append,
        )
    finally:
        seconds = time.perf_counter() - start
        changed = []
        for path, (content, stat) in protected.items():  # undo any damage now
            now = path.stat() if path.exists() else None
            if (
                now is None
                or path.read_bytes() != content
                or (now.st_mode, now.st_mtime_ns) != (stat.st_mode, stat.st_mtime_ns)
            ):
                changed.append(str(path.relative_to(REPO)))
                path.write_bytes(content)
                path.chmod(stat.st_mode & 0o7777)
                os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    new_files = sorted(
        str(p) for d in ("solutions", "qlib") for p in (REPO / d).iterdir()
    )
    new_files = [p for p in new_files if p not in watched and "__pycache__" not in p]
    processes = marked_processes()
    for _ in range(20):  # a process being killed may take a moment to go
        if not processes:
            break
        time.sleep(0.05)
        processes = marked_processes()
    host_files = [  # in /tmp, or in a kernel's folder there
        str(p)
        for pattern in (f"{corpus.FILE_MARKER}*", f"*/{corpus.FILE_MARKER}*")
        for p in Path("/tmp").glob(pattern)
    ]
    shm = shm_segments(corpus.SHM_KEY)
    remove_shm(shm)
    reporter = request.config.pluginmanager.getplugin("terminalreporter")
    summary = (
        f"graded {len(results)} corpus submissions in {seconds:.1f} s "
        f"on {WORKERS} workers ({log[0] if log else ''})"
    )
    if reporter is not None:
        reporter.write_line("")
        reporter.write_line(summary)
    print(summary)
    return Batch(
        expected=expected,
        results={r.submission: r for r in results},
        reference=reference.load_reference(corpus.ASSIGNMENT),
        out=out,
        seconds=seconds,
        log=log,
        processes=processes,
        changed=changed,
        new_files=new_files,
        leftovers=grader_leftovers() - before,
        host_files=host_files,
        shm=shm,
    )


def _describe(result: reference.SubmissionResult) -> str:
    scores = {q: str(s) for q, s in result.questions.items()}
    # a probe entry reports what it found as its first 02.1 answer
    reports = [
        o.shown for outs in result.outcomes.values() for o in outs[:1] if o.shown
    ]
    return (
        f"status {result.status}, score {result.score}, per question {scores}, "
        f"notes {result.notes}, reports {reports}"
    )


# ----------------------------------------------------------------- outcomes


ENTRIES = corpus.entries()


def test_corpus_matches_the_reference(batch):
    """QUESTIONS in the corpus (points, case counts) is what the grader records."""
    for qid, graded in batch.reference.questions.items():
        visible = sum(1 for _case, hidden in graded.cases if not hidden)
        hidden = len(graded.cases) - visible
        q = graded.question
        assert corpus.QUESTIONS[qid] == (q.function, q.points, visible, hidden), qid
    assert set(batch.reference.questions) == set(corpus.QUESTIONS)
    assert batch.reference.max_score == corpus.MAX_SCORE == 20


def test_corpus_is_big_enough():
    assert len(ENTRIES) >= 30
    assert all(e.why for e in ENTRIES.values())


def test_every_submission_graded(batch):
    assert set(batch.results) == set(batch.expected)


# A known hole, kept visible: on this project's machines (Linux 6.18, cgroup v1)
# the memory cgroup lets three processes hold 1.2 GB under a 1 GB limit for a
# moment, and the grader's 50 ms memory watch misses so short a peak.  Each
# process stays under RLIMIT_AS, so the total is bounded by processes x limit.
KNOWN_HOLES = {
    "memory_across_processes": "a brief peak of memory summed over processes "
    "escapes the memory cgroup (v1) and the 50 ms watch",
}


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=pytest.mark.xfail(reason=KNOWN_HOLES[n], strict=False))
        if n in KNOWN_HOLES
        else n
        for n in sorted(ENTRIES)
    ],
)
def test_outcome(batch, name):
    """Exact status and exact score (fractions) of one corpus submission."""
    expected = ENTRIES[name]
    if expected.sandbox:
        require_sandbox()
    result = batch.results[name]
    why = f"{name}: {expected.why}\n  got {_describe(result)}"
    assert result.status in (expected.status, *expected.other_statuses), why
    assert result.score == expected.score, why
    assert result.questions == expected.questions, why
    assert result.max_score == corpus.MAX_SCORE


def test_batch_time(batch):
    print(f"batch of {len(batch.results)}: {batch.seconds:.1f} s")
    assert batch.seconds < BATCH_SECONDS, f"the batch took {batch.seconds:.1f} s"


# ------------------------------------------------------------------- outputs


def test_gradebook(batch):
    with (batch.out / "gradebook.csv").open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == GRADEBOOK_HEADER
    body = rows[1:]
    assert sorted(r[0] for r in body) == sorted(batch.results)
    for row in body:
        result = batch.results[row[0]]
        assert row[1] == result.status
        assert row[3] == "20"
        for text, value in zip(
            row[2:3] + row[4:],
            [result.score, *(result.questions[q] for q in corpus.QUESTIONS)],
            strict=True,
        ):
            assert math.isclose(float(text), float(value), rel_tol=5e-4), row
            if value.denominator == 1:
                assert text == str(value.numerator), row


def test_results_json(batch):
    for name, result in batch.results.items():
        data = json.loads((batch.out / "results" / f"{name}.json").read_text())
        assert math.isclose(data["score"], float(result.score))
        qids = [t["name"].split()[0] for t in data["tests"]]
        assert list(dict.fromkeys(qids)) == list(corpus.QUESTIONS)
        per_question: dict[str, float] = {}
        for test, qid in zip(data["tests"], qids, strict=True):
            per_question[qid] = per_question.get(qid, 0.0) + test["score"]
        for qid, value in result.questions.items():
            assert math.isclose(per_question[qid], float(value), abs_tol=1e-12), qid


def _integers(x) -> set[int]:
    array = np.asarray(x)
    if array.dtype.kind not in "iub":
        return set()
    return {int(v) for v in array.ravel().tolist()}


@pytest.fixture(scope="module")
def secrets(batch) -> dict[str, set[str] | set[int]]:
    """What feedback must never show: hidden inputs and answers that no
    visible case shares, and the solution's code."""
    visible_numbers: set[int] = set()
    visible_texts: set[str] = set()
    hidden_numbers: set[int] = set()
    hidden_texts: set[str] = set()
    for graded in batch.reference.questions.values():
        for case, hidden in graded.cases:
            values = [*case.args, case.expected]
            numbers = set().union(*(_integers(v) for v in values))
            texts = {feedback._short(v) for v in values}
            if hidden:
                hidden_numbers |= numbers
                hidden_texts |= texts
            else:
                visible_numbers |= numbers
                visible_texts |= texts
    # large numbers only, and none of the round ones (2**k, 2**k - 1) that a
    # wrong formula on a visible input can produce as well
    round_ones = {
        s * (2**k + d) for k in range(66) for d in (-1, 0, 1) for s in (1, -1)
    }
    numbers = {
        n for n in hidden_numbers - visible_numbers - round_ones if abs(n) >= 100_000
    }
    # reprs of hidden arrays of more than 8 elements (elided with "..."): a
    # wrong answer to a small visible input cannot print one by chance
    texts = {t for t in hidden_texts - visible_texts if "..." in t and len(t) > 30}
    exercise = corpus.EXERCISE.read_text(encoding="utf-8")
    code = set()
    for source in corpus.SOLUTION_ANSWERS.values():
        for line in source.splitlines():
            line = line.strip()
            if len(line) >= 12 and json.dumps(line)[1:-1] not in exercise:
                code.add(line)
    assert len(numbers) > 1000 and texts and len(code) > 10
    return {"numbers": numbers, "texts": texts, "code": code}


@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_feedback_is_public(batch, secrets, name):
    """The feedback exists and shows no hidden input, hidden answer or
    solution code -- whatever the submission returned or raised."""
    if name not in batch.results:
        require_sandbox()
    result = batch.results[name]
    text = (batch.out / "feedback" / f"{name}.md").read_text(encoding="utf-8")
    assert f"(status: {result.status})" in text
    numbers = {int(n) for n in re.findall(r"-?\d+", text)}
    leaked = sorted(numbers & secrets["numbers"])[:5]
    assert not leaked, f"hidden inputs or answers in {name}'s feedback: {leaked}"
    shown = [t for t in secrets["texts"] if t in text][:3]
    assert not shown, f"hidden cases in {name}'s feedback: {shown}"
    code = [line for line in secrets["code"] if line in text][:3]
    assert not code, f"solution code in {name}'s feedback: {code}"


def test_feedback_explains_visible_failures(batch):
    """A failed visible case in the feedback file carries the text the
    notebook's check prints (feedback.explain): here the corpus's wrong answer
    to 02.1, which computes a - b as a + (-b)."""
    text = (batch.out / "feedback" / "wrong.md").read_text(encoding="utf-8")
    graded = batch.reference.questions["02.1"]
    question = graded.question
    namespace = {"np": np}
    exec(corpus.WRONG[question.function], namespace)
    wrong = namespace[question.function]
    failed = 0
    for case, hidden in graded.cases:
        if hidden:
            continue
        got = wrong(*case.args)
        verdict, _ = feedback.compare(
            case.expected, got, check_dtype=question.check_dtype
        )
        if verdict == "exact":  # this mistake does not touch the case
            continue
        failed += 1
        explained = feedback.explain(question, case, got)
        assert "first difference" in explained
        for line in explained.splitlines():  # markdown: runs of spaces are one
            assert f"  - {' '.join(line.split())}" in text, line
    assert failed, "the wrong answer fails no visible case"


def test_results_keep_no_large_answers(batch):
    """A returned value is compared and dropped: the results of a batch must
    not hold every submission's answers (a 40 MB answer per call would hold
    gigabytes per submission in the grader until the batch ends)."""
    big = [
        f"{name} {qid} case {i}: {len(o.shown)} characters"
        for name, result in batch.results.items()
        for qid, outs in result.outcomes.items()
        for i, o in enumerate(outs)
        if not isinstance(o.shown, str) or len(o.shown) > 1000
    ]
    assert not big, f"the grader keeps large answers: {big}"


# ------------------------------------------------------------------- sandbox


def test_no_process_survives(batch):
    require_sandbox()
    assert not batch.processes, f"processes outlived the batch: {batch.processes}"


def test_reference_and_grader_unchanged(batch):
    require_sandbox()
    assert not batch.changed, f"a submission changed (restored now): {batch.changed}"
    assert not batch.new_files, f"a submission made files: {batch.new_files}"


def test_nothing_left_on_the_host(batch):
    require_sandbox()
    assert not batch.leftovers, f"grader cgroups/folders left: {batch.leftovers}"
    assert not batch.host_files, f"submission files on the host: {batch.host_files}"
    assert not batch.shm, (
        f"SysV shared memory made by a submission outlived it: ids {batch.shm} "
        f"(key {corpus.SHM_KEY:#x}; removed now)"
    )


def test_leftover_checks_see_this_grader_and_no_other():
    """The checks above count what this process's grader left behind, and
    see it: a live kernel's cgroups and its folder, all named after the
    grading process, are found, and after the kernel closes none is; what a
    grader in another process makes (here, named for pid 0, which no process
    has) is not counted -- another test process grading at the same time
    made this suite fail on a neighbour's live kernel."""
    require_sandbox()
    foreign = Path(tempfile.mkdtemp(prefix="qlib-grade-0-"))
    try:
        before = grader_leftovers()
        assert str(foreign) not in before
        found = sandbox.detect_sandbox(None)
        live = kernel._Kernel([], set(), LIMITS, found)
        try:
            made = grader_leftovers() - before
            controllers = {Path(cg.path).parent.name for cg in live.cgroups}
            assert controllers == {"pids", "memory", *(["cpu"] if found.cpu else [])}
            assert made == {live.cwd, *(str(cg.path) for cg in live.cgroups)}
            assert all(
                Path(p).name.startswith(f"qlib-grade-{os.getpid()}-") for p in made
            )
        finally:
            live.close()
        assert grader_leftovers() == before
    finally:
        foreign.rmdir()


def test_fork_bomb_contained(batch):
    """The fork bomb hit the pids cgroup, was killed, and its neighbours in
    the batch (graded at the same time) got their exact scores."""
    require_sandbox()
    assert batch.results["fork_bomb"].status == "timeout"
    assert batch.results["fork_bomb"].score == 20
    assert not batch.processes


# ---------------------------------------------------------------- collecting


def test_names_are_unique(tmp_path):
    """Three files whose names clean up alike get three names, three feedback
    files and three gradebook rows (none overwrites another)."""
    folder = tmp_path / "in"
    folder.mkdir()
    for stem in ("a b", "a_b", "a_b-2"):
        (folder / f"{stem}.ipynb").write_text("{}")
    names = [name for _path, name in grade.collect([folder])]
    assert len(set(names)) == 3, f"names collide: {names}"
    results = grade.grade_batch(
        corpus.ASSIGNMENT, [folder], tmp_path / "out", log=lambda m: None
    )
    assert len({r.submission for r in results}) == 3
    assert len(list((tmp_path / "out" / "feedback").glob("*.md"))) == 3


# -------------------------------------------------------------- command line


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "qlib.course", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _write(folder: Path, *names: str) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in names:
        path = folder / f"{name}.ipynb"
        path.write_bytes(corpus.build(name))
        paths.append(str(path))
    return paths


def _gradebook(out: Path) -> dict[str, dict[str, str]]:
    with (out / "gradebook.csv").open(newline="", encoding="utf-8") as f:
        return {row["submission"]: row for row in csv.DictReader(f)}


def test_cli_exit_0_with_wrong_submissions(tmp_path):
    paths = _write(tmp_path / "in", "wrong", "stub", "invalid_json")
    done = run_cli("--assignment", "02", "--out", str(tmp_path / "out"), *paths)
    assert done.returncode == 0, done.stderr
    book = _gradebook(tmp_path / "out")
    assert {n: (r["status"], r["score"]) for n, r in book.items()} == {
        "wrong": ("ok", f"{float(ENTRIES['wrong'].score):.4g}"),
        "stub": ("ok", "0"),
        "invalid_json": ("invalid", "0"),
    }


def test_cli_unknown_assignment(tmp_path):
    paths = _write(tmp_path / "in", "correct")
    done = run_cli("--assignment", "99", "--out", str(tmp_path / "out"), *paths)
    assert done.returncode == 2
    assert "no solution notebook for assignment 99" in done.stderr


def test_cli_unwritable_out(tmp_path):
    paths = _write(tmp_path / "in", "correct")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    done = run_cli("--assignment", "02", "--out", str(blocker / "out"), *paths)
    assert done.returncode == 2, done.stderr
    assert "grade: error" in done.stderr


def test_cli_visible_only(tmp_path):
    """--visible-only: the correct notebook gets full marks, and so does the
    visible-case lookup table: only visible cases are graded."""
    paths = _write(tmp_path / "in", "correct", "visible_lookup")
    out = tmp_path / "out"
    done = run_cli("--assignment", "02", "--visible-only", "--out", str(out), *paths)
    assert done.returncode == 0, done.stderr
    book = _gradebook(out)
    assert {n: (r["status"], r["score"]) for n, r in book.items()} == {
        "correct": ("ok", "20"),
        "visible_lookup": ("ok", "20"),
    }
    for name in book:
        text = (out / "feedback" / f"{name}.md").read_text(encoding="utf-8")
        assert "hidden checks" not in text
        visible = sum(spec[2] for spec in corpus.QUESTIONS.values())
        assert text.count("- PASS ") == visible


# -------------------------------------------------------------------- safety


@pytest.fixture(autouse=True, scope="module")
def _kill_corpus_processes_at_the_end():
    """Whatever the outcome, leave no corpus sleeper running on this machine
    (only processes carrying this corpus's own markers)."""
    yield
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, UnicodeDecodeError):
            continue
        if corpus.SLEEP_POPEN in cmdline or corpus.SLEEP_DAEMON in cmdline:
            with contextlib.suppress(OSError, ValueError):
                os.kill(int(entry.name), 9)

"""Parallel kernels share the machine's CPUs fairly, whatever a submission
does: each grading kernel is held to one CPU by a cpu cgroup of its own.

Apart from tests/test_grader.py, which tests/test_grader_anywhere.py runs a
second time from /tmp: fair shares do not depend on where the course lives.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import grader_corpus as corpus
from test_grader import LIMITS, grader_leftovers, require_sandbox

from qlib.course import grade, sandbox

# 32 processes that spin, each in a session of its own: Linux's per-session
# fair share (autogroup) would count them as 32 claimants, not one
CPU_HOG = (
    "import os\n\n"
    "for _ in range(5):\n"
    "    if os.fork() == 0:\n"
    "        os.setsid()\n"
    "while True:\n"
    "    pass\n"
)
# 1.5 s of waiting (the hog is spinning by then), then about 0.3 s of work
HONEST_WORK = (
    "import time\n\n"
    "time.sleep(1.5)\n"
    "total = 0\n"
    "for i in range(4_000_000):\n"
    "    total += i\n"
)


def test_a_cpu_hog_leaves_its_neighbour_on_time(tmp_path):
    """A hog and an honest notebook graded side by side: the honest cell needs
    about 0.3 s of CPU, and gets it inside its 3 s limit because each kernel
    is held to one CPU (cpu cgroup); with the hog's 32 processes sharing the
    machine's two CPUs with it on equal terms, the cell took about 5 s and
    timed out, a wrong status for an honest submission."""
    require_sandbox()
    found = sandbox.detect_sandbox(None)
    assert found.cpu, "no writable cpu cgroup (/sys/fs/cgroup/cpu) on this machine"
    assert "one CPU per kernel" in found.describe()
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    notebooks = {
        "hog": corpus.insert(corpus.answered(), CPU_HOG, after="setup", cell_id="hog"),
        "honest": corpus.insert(
            corpus.answered(), HONEST_WORK, after="setup", cell_id="work"
        ),
    }
    for name, nb in notebooks.items():
        (folder / f"{name}.ipynb").write_text(json.dumps(nb), encoding="utf-8")
    before = grader_leftovers()
    results = grade.grade_batch(
        corpus.ASSIGNMENT, [folder], out, limits=LIMITS, workers=2
    )
    got = {r.submission: (r.status, r.score) for r in results}
    assert got == {"hog": ("timeout", 20), "honest": ("ok", 20)}, got
    assert grader_leftovers() == before  # the hog's cgroups went, so did it


def test_no_cpu_cap_where_the_parent_has_less_than_one_cpu():
    """In a cgroup held to half a CPU (a container so limited), the kernel
    refuses a child quota of one CPU: the grader then runs its kernels
    without the cap instead of failing at the first kernel, and leaves
    nothing behind; at the top of the hierarchy the cap can be made."""
    require_sandbox()
    top = Path("/sys/fs/cgroup/cpu")
    assert sandbox.can_cap_cpu(top)
    half = Path(tempfile.mkdtemp(prefix="qlib-grade-test-", dir=top))
    try:
        (half / "cpu.cfs_quota_us").write_text("50000")  # of a 100 ms period
        assert not sandbox.can_cap_cpu(half)
        assert not [p for p in half.iterdir() if p.is_dir()]  # no child left
    finally:
        half.rmdir()

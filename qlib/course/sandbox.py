"""How a grading kernel is isolated: namespaces, cgroups, the folders it must
not see and the ones it must keep reading (its Python and qlib, wherever
they live).

Part of the batch grader (:mod:`qlib.course.grade`); the kernel side of the
sandbox is :mod:`qlib.course.worker`.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .reference import COURSE_ROOT

__all__ = [
    "ONE_CPU",
    "Sandbox",
    "can_cap_cpu",
    "detect_sandbox",
    "folders_to_hide",
    "prepare_sandbox",
    "python_paths",
    "scratch_prefix",
]


@dataclass(frozen=True)
class Sandbox:
    """How kernels are isolated on this machine (see :func:`detect_sandbox`)."""

    namespaces: bool
    user: str | None
    cgroup: bool
    hide: tuple[str, ...] = ()
    keep: tuple[str, ...] = ()  # folders the kernel reads even under /tmp
    pythonpath: tuple[str, ...] = ()  # where the kernel finds qlib and the rest
    # with cgroup: a cpu cgroup per kernel too, at most one CPU whatever it forks
    cpu: bool = False

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
        if self.cpu:
            parts.append("pids, memory and cpu cgroups (one CPU per kernel)")
        else:
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
    cgroups = Path("/sys/fs/cgroup")
    cgroup = root and all(os.access(cgroups / c, os.W_OK) for c in ("pids", "memory"))
    cpu = cgroup and can_cap_cpu(cgroups / "cpu")
    return Sandbox(namespaces, user, cgroup, cpu=cpu)


def scratch_prefix() -> str:
    """How the grader's cgroups and kernel folders are named:
    ``qlib-grade-<pid>-``, after the grading process.  Whoever finds one can
    tell which grader made it and whether that grader still runs, and two
    graders on one machine (or two test processes) never mistake each
    other's kernels for their own."""
    return f"qlib-grade-{os.getpid()}-"


# a cpu cgroup's settings (v1): one CPU's worth of time in every 100 ms
ONE_CPU = {"cpu.cfs_period_us": 100_000, "cpu.cfs_quota_us": 100_000}


def can_cap_cpu(parent: Path) -> bool:
    """Whether a cgroup holding its processes to :data:`ONE_CPU` can be made
    in ``parent`` (a cpu controller's folder): tried once, then removed.  A
    parent with less than one CPU itself (a container limited to half a CPU)
    refuses the quota, and the kernels then go without."""
    if not (os.access(parent, os.W_OK) and (parent / "cpu.cfs_quota_us").is_file()):
        return False
    try:
        _Cgroup("cpu", ONE_CPU, parent=parent).kill_all()  # empty: just removed
    except OSError:
        return False
    return True


class _Cgroup:
    """A cgroup (v1) per kernel: a process cap (pids), a memory cap (memory) or
    a CPU cap (cpu: however many processes a submission runs, and however they
    leave their session, together they get one CPU's time, so that parallel
    kernels stay on time).

    The kernel joins it itself, before it runs anything submitted, so all its
    descendants are inside; at the end every process in it is killed.
    """

    def __init__(
        self, controller: str, settings: dict[str, int], parent: Path | None = None
    ) -> None:
        root = parent or Path("/sys/fs/cgroup") / controller
        self.path = Path(tempfile.mkdtemp(prefix=scratch_prefix(), dir=root))
        try:
            for name, value in settings.items():
                (self.path / name).write_text(str(value))
        except OSError:
            self.path.rmdir()  # nothing half made is left behind
            raise

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


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def python_paths(private: list[Path]) -> tuple[list[Path], list[str]]:
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


def folders_to_hide(
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


def prepare_sandbox(
    user: str | None, solutions: Path, out: Path, submissions: list[Path]
) -> Sandbox:
    found = detect_sandbox(user)
    private = [solutions.resolve(), out.resolve()]
    private += [p.resolve().parent if p.is_file() else p.resolve() for p in submissions]
    keep, pythonpath = python_paths(private)
    hide = folders_to_hide(solutions, out, submissions, keep)
    return Sandbox(
        found.namespaces,
        found.user,
        found.cgroup,
        tuple(hide),
        tuple(str(p) for p in keep),
        tuple(pythonpath),
        cpu=found.cpu,
    )

"""One grading kernel process, driven by the grader: start it, follow its
cells, send it one call at a time, and kill it with everything it started.

Part of the batch grader (:mod:`qlib.course.grade`); the process itself runs
:mod:`qlib.course.worker`.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

from . import wire
from .reference import Limits
from .sandbox import ONE_CPU, Sandbox, _Cgroup, _descendants, scratch_prefix

__all__ = ["kernel_command", "run_attempt"]

_MAX_LINE = 64 * 1024 * 1024
_STARTUP_SECONDS = 60


def kernel_command(command: list[str]) -> list[str]:
    """The command that starts a kernel (a seam for the tests that break it)."""
    return command


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
        self.cwd = tempfile.mkdtemp(prefix=f"{scratch_prefix()}cwd-")
        self.cgroups = []
        if sandbox.cgroup:
            self.cgroups = [
                _Cgroup("pids", {"pids.max": limits.processes}),
                _Cgroup("memory", {"memory.limit_in_bytes": limits.memory_mb << 20}),
            ]
        if sandbox.cpu:
            self.cgroups.append(_Cgroup("cpu", ONE_CPU))
        command = [
            sys.executable,
            "-m",
            "qlib.course.worker",
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
                kernel_command(command),
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


def run_attempt(
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

"""The test suite against its budget: pytest's share of ``.ci/run``.

The budget is 6 minutes for ``make test``'s pytest run on two cores, with
every chapter.  CPUs of this machine kind differ by 1.5-2x, so a run here
should leave that margin.  This script runs the suite as ``make test`` does
(qlib byte-compiled first, then ``-n 2 --dist loadfile``, one BLAS
thread, ``CI=true`` so that nothing skips) and prints, per run:

* the wall time and the margin ``360 s / wall``;
* the CPU-seconds the whole machine spent meanwhile (from ``/proc/stat``:
  the suite, its kernels, JupyterLab, chromium, and anything else running),
  and the idle seconds of the two cores.  The CPU-seconds tell whether a
  change saved work or only moved it.  Both numbers drift with the
  machine's speed (the same commit: 340 s and 656 CPU-s in one hour, 277 s
  and 529 CPU-s in another; on a 2-core AMD EPYC Zen 3, pytest took 375 s
  to 637 s for nearly the same code in one afternoon, and on a Zen 5 one
  commit took 318 s, then 275 s an hour and a half later), so compare
  commits in runs back to back.

Usage: ``.venv/bin/python benchmarks/bench_suite.py [--repeat N] [pytest
args...]`` from the repository (about 5 minutes per run).  Linux only.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUDGET = 360.0  # seconds: pytest's share of .ci/run
MARGIN = 1.5  # CPUs of one machine kind differ by 1.5-2x
PYTEST = ["-n", "2", "--dist", "loadfile", "-q", "-p", "no:cacheprovider"]
BYTECODE = ["-m", "compileall", "-q", "qlib"]  # make test's step before pytest


def cpu_counters() -> tuple[float, float, float]:
    """Machine-wide (busy, idle, steal) seconds since boot, from /proc/stat."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, idle, iowait, irq, softirq, steal = map(int, fields[:8])
    tick = os.sysconf("SC_CLK_TCK")
    busy = user + nice + system + irq + softirq
    return busy / tick, (idle + iowait) / tick, steal / tick


def run_once(extra: list[str]) -> tuple[float, float, float, str]:
    subprocess.run([sys.executable, *BYTECODE], cwd=ROOT, check=True)
    env = dict(os.environ, CI="true")
    env.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    busy0, idle0, _ = cpu_counters()
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", *PYTEST, *extra],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - start
    busy1, idle1, _ = cpu_counters()
    lines = (done.stdout + done.stderr).strip().splitlines()
    summary = next((ln for ln in reversed(lines) if re.search(r"\d+ passed", ln)), "")
    if done.returncode != 0:
        summary = f"FAILED (exit {done.returncode}): {summary or lines[-1:]}"
    return wall, busy1 - busy0, idle1 - idle0, summary.strip("= ")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=1)
    args, extra = parser.parse_known_args()
    if args.repeat < 1:
        parser.error(f"--repeat must be >= 1; got {args.repeat}")
    asked = BUDGET / MARGIN
    print(f"budget {BUDGET:.0f} s; the margin asked for: {MARGIN}x ({asked:.0f} s)")
    print(f"{'run':>3} {'wall':>8} {'margin':>7} {'CPU-s':>7} {'idle':>6}  pytest")
    for i in range(1, args.repeat + 1):
        wall, busy, idle, summary = run_once(extra)
        row = f"{i:>3} {wall:>7.1f}s {BUDGET / wall:>6.2f}x {busy:>7.0f} {idle:>5.0f}s"
        print(f"{row}  {summary}", flush=True)


if __name__ == "__main__":
    main()

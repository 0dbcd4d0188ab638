"""Re-execute notebooks and store their outputs, deterministically.

    python tools/run_notebooks.py [PATH ...]        # default: notebooks solutions
    python tools/run_notebooks.py --check [PATH ...]

Each notebook runs top to bottom in a fresh kernel started in its own folder;
outputs that vary between runs are removed (see qlib.course.assignments.clean) and the
file is rewritten only if something changed.  Running it twice changes
nothing.  The kernels compute with the CPU code every stored output was made
with (tools/pin_cpu.py).  With --check nothing is written: the exit
status is 1 when a stored notebook differs from a fresh execution.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pin_cpu  # tools/, beside this script; before numpy loads

pin_cpu.pin()  # for the kernels, which inherit this environment

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from qlib.course import assignments  # noqa: E402


def notebooks_in(paths: list[str]) -> list[Path]:
    found: list[Path] = []
    for p in map(Path, paths):
        found += sorted(p.glob("*.ipynb")) if p.is_dir() else [p]
    return found


def main(argv: list[str] | None = None) -> int:
    pin_cpu.require()  # the CPU code of every stored number, or stop
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", default=["notebooks", "solutions"])
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    args = parser.parse_args(argv)
    stale = []
    for path in notebooks_in(args.paths):
        start = time.perf_counter()
        fresh = assignments.execute(assignments.read(path), cwd=path.parent)
        seconds = time.perf_counter() - start
        if args.check:
            same = assignments.read(path) == fresh
            status = "up to date" if same else "STALE"
            if not same:
                stale.append(path)
        else:
            status = "written" if assignments.write(fresh, path) else "unchanged"
        print(f"{path}: {status} ({seconds:.1f} s)")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())

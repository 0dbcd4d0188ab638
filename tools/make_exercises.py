"""Generate exercises/NN_*.ipynb from solutions/NN_*.ipynb.

    python tools/make_exercises.py          # write exercises/
    python tools/make_exercises.py --check  # exit 1 if exercises/ is stale
    python tools/make_exercises.py --force  # overwrite even a worked-on copy

See qlib.course.assignments.make_exercise for the marker rules.  Generated exercises
carry no outputs, so an exercise notebook with outputs is somebody's work in
progress: it is left alone unless --force is given.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from qlib.course import assignments  # noqa: E402


def expected_exercises(root: Path = ROOT) -> dict[Path, object]:
    """Map each exercise path to the notebook the generator makes for it."""
    return {
        root / "exercises" / sol.name: assignments.make_exercise(
            assignments.read(sol), name=str(sol.relative_to(root))
        )
        for sol in sorted((root / "solutions").glob("*.ipynb"))
    }


def has_outputs(path: Path) -> bool:
    return any(
        cell.get("outputs") or cell.get("execution_count")
        for cell in assignments.read(path).cells
        if cell.cell_type == "code"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    parser.add_argument(
        "--force", action="store_true", help="overwrite worked-on copies"
    )
    args = parser.parse_args(argv)
    stale = 0
    for path, nb in expected_exercises().items():
        if args.check:
            ok = path.exists() and assignments.read(path) == nb
            stale += not ok
            print(f"{path.relative_to(ROOT)}: {'up to date' if ok else 'STALE'}")
        elif path.exists() and not args.force and has_outputs(path):
            stale += 1
            print(
                f"{path.relative_to(ROOT)}: KEPT, it has outputs (work in progress?);"
                " use --force to overwrite"
            )
        else:
            changed = assignments.write(nb, path)
            print(f"{path.relative_to(ROOT)}: {'written' if changed else 'unchanged'}")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())

"""The ``grade`` command: grade a folder of submissions into a gradebook, or
write a Gradescope autograder zip.

    grade --assignment 02 --out graded/ submissions/
    python -m qlib.course --assignment 02 --out graded/ alice.ipynb bob.ipynb
    grade --assignment 02 --gradescope autograder-02.zip

Exit statuses: :data:`EXIT_OK` 0 (graded), :data:`EXIT_USAGE` 2 (misuse,
nothing graded), :data:`EXIT_BROKEN` 3 (the reference solution did not score
full marks through the sandbox; nothing written), :data:`EXIT_GRADER_ERRORS`
4 (graded, but the grader failed on some submissions).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .grade import GraderBroken, grade_batch
from .reference import Limits

__all__ = ["EXIT_BROKEN", "EXIT_GRADER_ERRORS", "EXIT_OK", "EXIT_USAGE", "main"]

# exit statuses of the command line (the README lists them)
EXIT_OK, EXIT_USAGE, EXIT_BROKEN, EXIT_GRADER_ERRORS = 0, 2, 3, 4


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
                limits=limits,
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

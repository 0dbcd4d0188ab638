"""Batch-grade 30 realistic submissions of exercise 02 and time it.

    python benchmarks/bench_grade.py [--workers 2] [--out DIR]

The mix, generated from the solution and exercise notebooks (as in
tests/grader_corpus.py): 14 correct (two with plots, prints and warnings),
7 with typical wrong answers, 6 partly answered, 2 correct but with a cell that
sleeps 3 s, 1 untouched stub.  Grading uses the default limits
(``qlib.course.reference.Limits()``) on 2 workers.  The target is the whole batch in at
most 2 minutes; the ratio printed is wall time / 120 s (<= 1 meets it).
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import grader_corpus as corpus  # noqa: E402

from qlib.course import grade, reference  # noqa: E402

TARGET_SECONDS = 120.0
FUNCTIONS = list(corpus.QID)


def _noisy(nb: dict) -> dict:
    corpus.insert(
        nb,
        "import warnings\n\nwarnings.warn('checking my work')\n"
        "print('starting', flush=True)\n",
        after="setup",
        cell_id="noise1",
    )
    return corpus.insert(
        nb,
        "import matplotlib.pyplot as plt\n\n"
        "plt.plot(np.arange(-8, 8), np.arange(-8, 8) & 0xF)\nplt.show()\n",
        after="q3-check",
        cell_id="noise2",
    )


def _sleepy(nb: dict) -> dict:
    source = "import time\n\ntime.sleep(3)  # waiting for something\n"
    return corpus.insert(nb, source, after="q5-check", cell_id="nap")


def submissions() -> dict[str, dict]:
    """30 notebooks by name."""
    made: dict[str, dict] = {}
    for i in range(14):
        nb = corpus.answered()
        made[f"correct_{i:02}"] = _noisy(nb) if i < 2 else nb
    for i in range(7):
        # wrong everywhere, or wrong in all but i of the questions
        right = FUNCTIONS[:i]
        answers = {f: corpus.WRONG[f] for f in FUNCTIONS if f not in right}
        made[f"wrong_{i:02}"] = corpus.answered(answers)
    for i in range(6):
        # the first 2 + i questions right, the rest left as handed out
        nb = corpus.answered()
        exercise = json.loads(corpus.EXERCISE.read_text(encoding="utf-8"))
        stubs = {c["id"]: c for c in exercise["cells"] if c["cell_type"] == "code"}
        for cell in nb["cells"]:
            text = "".join(cell["source"])
            if any(text.startswith(f"def {f}(") for f in FUNCTIONS[2 + i :]):
                cell["source"] = stubs[cell["id"]]["source"]
        made[f"partial_{i:02}"] = nb
    for i in range(2):
        made[f"sleepy_{i:02}"] = _sleepy(corpus.answered())
    made["stub"] = json.loads(corpus.EXERCISE.read_text(encoding="utf-8"))
    assert len(made) == 30
    return made


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="keep outputs here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-grade-") as tmp:
        folder = Path(tmp) / "submissions"
        folder.mkdir()
        for name, nb in submissions().items():
            (folder / f"{name}.ipynb").write_text(json.dumps(nb), encoding="utf-8")
        out = args.out or Path(tmp) / "graded"
        log: list[str] = []
        start = time.perf_counter()
        results = grade.grade_batch(
            corpus.ASSIGNMENT,
            [folder],
            out,
            limits=reference.Limits(),
            workers=args.workers,
            log=log.append,
        )
        seconds = time.perf_counter() - start

    statuses = collections.Counter(r.status for r in results)
    full = sum(r.score == r.max_score for r in results)
    ratio = seconds / TARGET_SECONDS
    print(log[0] if log else "")
    print(
        f"graded {len(results)} submissions of exercise {corpus.ASSIGNMENT} "
        f"in {seconds:.1f} s on {args.workers} workers (default limits)"
    )
    print(f"  statuses: {dict(statuses)}; full marks: {full}")
    print(f"  mean per submission: {seconds / len(results):.2f} s (wall)")
    print(
        f"  ratio to the {TARGET_SECONDS:.0f} s target: {ratio:.2f} "
        f"({'meets' if ratio <= 1 else 'MISSES'} it)"
    )
    return 0 if ratio <= 1 else 1


if __name__ == "__main__":
    sys.exit(main())

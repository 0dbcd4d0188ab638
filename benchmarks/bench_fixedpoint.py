"""qlib.fixedpoint.to_fixed of 10 million float64 values into Q7.8, per rounding.

    python benchmarks/bench_fixedpoint.py [--n 10000000] [--repeat 5]

The data are normal with standard deviation 50, so about 1% falls outside
Q7.8's range [-128, 128) and saturates.  The peer is ``np.round(x * 256)``
on the same data: the bare scaling and rounding, with no range check, no
overflow rule and no conversion to integer codes.  The ratio is the median
to_fixed time over the median np.round time (target <= 5); stochastic
rounding draws from a seeded generator.  tests/test_fixedpoint.py checks the
codes against exact rational arithmetic.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _timing import median_time

from qlib.fixedpoint import ROUNDINGS, QFormat, to_fixed

TARGET = 5.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    x = np.random.default_rng(0).standard_normal(args.n) * 50
    fmt = QFormat(7, 8)
    saturated = np.mean((x < fmt.min) | (x > fmt.max))
    print(
        f"{args.n:,} float64 values -> {fmt} ({saturated:.1%} saturate), "
        f"median of {args.repeat} runs; the peer is timed next to each mode"
    )
    print(f"{'rounding':14s} {'to_fixed':>9s} {'np.round':>9s} {'ratio':>6s}")
    for rounding in ROUNDINGS:
        rng = 0 if rounding == "stochastic" else None
        peer = median_time(lambda: np.round(x * 256), args.repeat)
        ours = median_time(
            lambda r=rounding, g=rng: to_fixed(x, fmt, r, rng=g), args.repeat
        )
        ratio = ours / peer
        verdict = "PASS" if ratio <= TARGET else "FAIL"
        print(
            f"{rounding:14s} {ours * 1e3:7.1f}ms {peer * 1e3:7.1f}ms {ratio:6.2f}  "
            f"{verdict} (target <= {TARGET:g}, margin {TARGET / ratio:.2f}x)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""qlib.integers encode/decode of 10 million values, side by side with NumPy casts.

    python benchmarks/bench_integers.py [--n 10000000] [--repeat 7]

The peer is NumPy's own two's-complement conversion on the same data:
``values.astype(np.int8)`` for encoding (it wraps; it checks nothing) and
``codes.view(np.int8).astype(np.int64)`` for decoding.  The ratio is the median
qlib time over the median NumPy time; the target is <= 3.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _timing import median_time

from qlib import integers


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    values = rng.integers(-128, 128, size=args.n, dtype=np.int64)
    wide = rng.integers(-(2**40), 2**40, size=args.n, dtype=np.int64)
    codes = integers.encode(values, 8, "twos_complement")

    rows = [
        (
            "encode int8 two's complement, overflow='error'",
            lambda: integers.encode(values, 8, "twos_complement"),
            lambda: values.astype(np.int8),
        ),
        (
            "encode int8 two's complement, overflow='wrap'",
            lambda: integers.encode(wide, 8, "twos_complement", overflow="wrap"),
            lambda: wide.astype(np.int8),
        ),
        (
            "decode int8 two's complement -> int64",
            lambda: integers.decode(codes, 8, "twos_complement"),
            lambda: codes.view(np.int8).astype(np.int64),
        ),
        (
            "encode 4-bit two's complement, overflow='error'",
            lambda: integers.encode(values // 16, 4, "twos_complement"),
            lambda: (values // 16).astype(np.int8),
        ),
        (
            "encode int8 sign-magnitude, overflow='saturate'",
            lambda: integers.encode(values, 8, "sign_magnitude", overflow="saturate"),
            lambda: values.astype(np.int8),
        ),
    ]
    print(f"{args.n:,} values, median of {args.repeat} runs, peer: numpy astype")
    print(f"{'operation':50s} {'qlib':>9s} {'numpy':>9s} {'ratio':>6s}")
    worst = 0.0
    for name, ours, peer in rows:
        t_ours, t_peer = median_time(ours, args.repeat), median_time(peer, args.repeat)
        ratio = t_ours / t_peer
        worst = max(worst, ratio)
        print(f"{name:50s} {t_ours * 1e3:7.1f}ms {t_peer * 1e3:7.1f}ms {ratio:6.2f}")
    print(f"worst ratio {worst:.2f} (target <= 3)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""qlib.floats encoding of 10 million float32 values, next to ml_dtypes' astype.

    python benchmarks/bench_floats.py [--n 10000000] [--repeat 5]

Both produce the same codes (tests/test_floats.py checks it bit for bit); the
ratio is the median qlib time over the median ml_dtypes time (target <= 1).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import ml_dtypes
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _timing import median_time

from qlib.floats import FORMATS


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    x = (np.random.default_rng(0).standard_normal(args.n) * 50).astype(np.float32)
    print(f"{args.n:,} float32 values, median of {args.repeat} runs")
    for name, dtype in (
        ("fp8_e4m3fn", ml_dtypes.float8_e4m3fn),
        ("fp4_e2m1fn", ml_dtypes.float4_e2m1fn),
    ):
        ours = median_time(lambda name=name: FORMATS[name].encode(x), args.repeat)
        peer = median_time(lambda dtype=dtype: x.astype(dtype), args.repeat)
        print(
            f"{name:12s} qlib {ours * 1e3:7.1f} ms  ml_dtypes {peer * 1e3:7.1f} ms  "
            f"ratio {ours / peer:5.2f} (target <= 1)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

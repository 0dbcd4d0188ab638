"""qlib.floats encoding of float32 data, next to the peer cast, every format.

    python benchmarks/bench_floats.py [--n 2000000] [--repeat 15] [--formats ...]

For each format of ``qlib.floats.FORMATS`` and three float32 distributions
(N(0, 1), weight-like N(0, 0.02^2), N(0, 50^2) with overflow for the narrow
formats), ``FloatFormat.encode(x)`` is timed next to its peer on the very same
array: NumPy's ``astype`` for fp64/fp32/fp16, ml_dtypes' ``astype`` for the
others. TF32 has no dtype in NumPy or ml_dtypes; its peer is ml_dtypes'
bfloat16 cast, the same float32-to-narrower rounding. The two calls alternate
(qlib, peer, qlib, peer, ...) so that both see the same machine load, and each
gets its best of ``--repeat`` runs. The ratio is qlib's best over the peer's
best (target <= 1, and <= 0.8 for margin across CPUs of one kind). Both give
the same codes: tests/test_floats.py and tests/test_float_codec.py check it
bit for bit.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import ml_dtypes
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qlib.floats import FORMATS

SIGMAS = {"N(0,1)": 1.0, "N(0,0.02^2)": 0.02, "N(0,50^2)": 50.0}


def peer_of(name: str) -> tuple[str, type]:
    """The peer's name and type: NumPy's own for fp64/fp32/fp16, else ml_dtypes'
    (``fp8_e4m3fn`` -> ``float8_e4m3fn``); tf32 has none: bf16's cast stands in."""
    if name in ("fp64", "fp32", "fp16"):
        return "numpy", getattr(np, "float" + name[2:])
    if name in ("tf32", "bf16"):
        return ("ml_dtypes bf16" if name == "tf32" else "ml_dtypes"), ml_dtypes.bfloat16
    spelled = "float8_e8m0fnu" if name == "e8m0fnu" else "float" + name[2:]
    return "ml_dtypes", getattr(ml_dtypes, spelled)


def best_alternating(ours, peer, repeat: int) -> tuple[float, float]:
    """Best wall time of each of two functions, called in turn ``repeat`` times
    after one warm-up call each (page faults, caches, lookup tables)."""
    ours()
    peer()
    best = [float("inf"), float("inf")]
    for _ in range(repeat):
        for i, fn in enumerate((ours, peer)):
            start = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - start)
    return best[0], best[1]


def cpu_name() -> str:
    """The CPU's model name, as ``lscpu`` prints it (Linux), else the machine."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2_000_000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--formats", nargs="*", default=list(FORMATS))
    args = parser.parse_args()
    unknown = sorted(set(args.formats) - set(FORMATS))
    if unknown:
        parser.error(f"--formats must be among {', '.join(FORMATS)}; got {unknown}")
    z = np.random.default_rng(0).standard_normal(args.n)
    data = {dist: (z * s).astype(np.float32) for dist, s in SIGMAS.items()}
    print(
        f"{args.n:,} float32 values, best of {args.repeat} alternating runs; "
        f"{cpu_name()}, numpy {np.__version__}, "
        f"ml_dtypes {ml_dtypes.__version__}"
    )
    print(f"{'format':13s} {'data':12s} {'qlib ms':>8s} {'peer ms':>8s} ratio  peer")
    worst = 0.0
    for name in args.formats:
        fmt, (peer_name, dtype) = FORMATS[name], peer_of(name)
        for dist, x in data.items():
            with np.errstate(over="ignore", invalid="ignore"):  # overflow to inf
                ours, peer = best_alternating(
                    lambda fmt=fmt, x=x: fmt.encode(x),
                    lambda dtype=dtype, x=x: x.astype(dtype),
                    args.repeat,
                )
            worst = max(worst, ours / peer)
            print(
                f"{name:13s} {dist:12s} {ours * 1e3:8.3f} {peer * 1e3:8.3f} "
                f"{ours / peer:5.2f}  {peer_name}"
            )
    print(f"worst ratio {worst:.2f} (target <= 1.0, <= 0.8 for margin)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

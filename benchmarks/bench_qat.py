"""What quantization-aware training costs here: one epoch of LeNet-300-100.

    python benchmarks/bench_qat.py [--threads 1] [--repeat 3] [--images 60000]

Each row trains from the committed float model (``qlib.nn.load_lenet``) for
one pass over ``--images`` training images in batches of 100 with SGD (lr
0.01, momentum 0.9: ``qlib.qatnet.QAT_RECIPE``): the float network with
``qlib.optim.train_epoch``, then ``qlib.qatnet.qat_model`` networks
(fake-quantized weights and ReLU outputs at 4 and 2 bits with the
straight-through estimator or LSQ, binary and ternary weights) with
``qlib.qatnet.finetune_qat``.  Reported: the median seconds of ``--repeat``
epochs and the ratio to the float epoch.

Last, the XNOR-popcount product (``qlib.binary.xnor_matmul``) of 1000 sign
vectors of length 784 with 300 (fc1's shape) against the int64 matmul of
the same +-1 matrices, and against the float32 matmul.

Threads: ``--threads N`` sets ``OPENBLAS_NUM_THREADS`` (and OMP/MKL) before
numpy loads; 1 by default, as ``tools/qat_lenet.py``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--images", type=int, default=60000)
    return parser.parse_args()


ARGS = parse()
for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = str(ARGS.threads)  # before numpy loads

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _timing import median_time  # noqa: E402

from qlib import binary, nn, optim, qatnet  # noqa: E402
from qlib.data import load_mnist  # noqa: E402
from qlib.quantnet import calibration_images  # noqa: E402

CONFIGS = {
    "float": None,
    "ste W4A4": (4, 4, "ste"),
    "ste W2A2": (2, 2, "ste"),
    "lsq W4A4": (4, 4, "lsq"),
    "lsq W2A2": (2, 2, "lsq"),
    "binary": ("binary", None, "ste"),
    "ternary": ("ternary", None, "ste"),
}


def epoch_seconds(config, x, y, calibration) -> list[float]:
    r = qatnet.QAT_RECIPE
    times = []
    for _ in range(ARGS.repeat):
        model = nn.load_lenet()
        opt = optim.SGD(r["lr"], r["momentum"])
        start = time.perf_counter()
        if config is None:
            rng = np.random.default_rng(r["seed"])
            optim.train_epoch(model, opt, x, y, batch_size=r["batch_size"], rng=rng)
        else:
            weights, activations, method = config
            q = qatnet.qat_model(
                model,
                calibration,
                weights=weights,
                activations=activations,
                method=method,
            )
            start = time.perf_counter()  # the epoch alone, not the calibration
            qatnet.finetune_qat(q, x, y, optimizer=opt, batch_size=r["batch_size"])
        times.append(time.perf_counter() - start)
    return times


def main() -> int:
    images, labels = load_mnist("train")
    x, y = nn.preprocess(images[: ARGS.images]), labels[: ARGS.images]
    calibration = calibration_images()
    print(
        f"one epoch of LeNet-300-100 over {len(x)} images, batch 100, SGD; "
        f"OPENBLAS/OMP/MKL_NUM_THREADS={ARGS.threads}, numpy {np.__version__}"
    )
    base = None
    for name, config in CONFIGS.items():
        times = epoch_seconds(config, x, y, calibration)
        median = statistics.median(times)
        base = base or median
        runs = " ".join(f"{t:.2f}" for t in times)
        print(f"  {name:10s} median {median:5.2f} s  x{median / base:4.2f}   ({runs})")

    rng = np.random.default_rng(0)
    a = rng.choice([-1, 1], (1000, 784)).astype(np.int64)
    b = rng.choice([-1, 1], (300, 784)).astype(np.int64)
    wa, wb = binary.pack_signs(a), binary.pack_signs(b)
    assert np.array_equal(binary.xnor_matmul(wa, wb, 784), a @ b.T)
    fa, fb = a.astype(np.float32), b.astype(np.float32)
    t_xnor = median_time(lambda: binary.xnor_matmul(wa, wb, 784), ARGS.repeat)
    t_int = median_time(lambda: a @ b.T, ARGS.repeat)
    t_float = median_time(lambda: fa @ fb.T, ARGS.repeat)
    print(
        f"  xnor_matmul 1000x784 by 300x784 ({wa.shape[1]} words a row): "
        f"{1e3 * t_xnor:.1f} ms; int64 matmul {1e3 * t_int:.1f} ms; "
        f"float32 matmul {1e3 * t_float:.2f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

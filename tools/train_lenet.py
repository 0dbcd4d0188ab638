"""Train LeNet-300-100 with qlib.nn; write qlib/models/lenet_300_100.npz.

    python tools/train_lenet.py [--out qlib/models/lenet_300_100.npz]

The recipe is fixed (every value below is stored in the file's ``recipe``):
784-300-100-10 with ReLU, He init (Glorot for the output layer) from seed 0;
float32; 20 epochs over the 60,000 training images in batches of 100,
shuffled by ``np.random.default_rng(0)``; SGD with momentum 0.9 and weight
decay 1e-4; learning rate 0.1 on a per-epoch cosine schedule
``lr_e = 0.1 * (1 + cos(pi * e / 20)) / 2``.  Then the error on the 60,000
training and 10,000 test images.

BLAS runs on one thread (``OPENBLAS_NUM_THREADS=1`` unless set): for these
small matrices a second thread gains little on an idle machine and costs ten
times over on a busy one, and a fixed thread count gives the same bytes on
the same machine.  The kernels are OpenBLAS's Haswell ones, and NumPy's own
loops its AVX2 ones, on any x86-64 Linux CPU with AVX2 (tools/pin_cpu.py):
other kernels add a dot product in another order, AVX-512's ``exp`` rounds
differently, and the last bits change.

MNIST comes from ``qlib.data.load_mnist`` (``QLIB_DATA`` or the cache).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import pin_cpu  # tools/, beside this script; before numpy loads

pin_cpu.pin()

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from qlib import nn, optim  # noqa: E402
from qlib.data import load_mnist  # noqa: E402

RECIPE = {
    "architecture": "784-300-100-10, ReLU",
    "init": "He normal (Glorot uniform for the output layer), seed 0",
    "seed": 0,
    "epochs": 20,
    "batch_size": 100,
    "optimizer": "SGD",
    "lr": 0.1,
    "momentum": 0.9,
    "weight_decay": 1e-4,
    "schedule": "cosine per epoch: lr * (1 + cos(pi * epoch / epochs)) / 2",
    "inputs": "float32 (N, 784), uint8 pixels / 255",
}


def main() -> int:
    pin_cpu.require()  # the CPU code of every stored number, or stop
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "qlib" / nn.LENET_FILE)
    args = parser.parse_args()

    x_train, y_train = load_mnist("train")
    x_test, y_test = load_mnist("test")
    x_train, x_test = nn.preprocess(x_train), nn.preprocess(x_test)

    r = RECIPE
    model = nn.lenet_300_100(seed=r["seed"])
    optimizer = optim.SGD(
        r["lr"], momentum=r["momentum"], weight_decay=r["weight_decay"]
    )

    def schedule(epoch: int) -> float:
        return r["lr"] * (1 + math.cos(math.pi * epoch / r["epochs"])) / 2

    start = time.perf_counter()
    optim.train(
        model,
        x_train,
        y_train,
        optimizer=optimizer,
        epochs=r["epochs"],
        batch_size=r["batch_size"],
        seed=r["seed"],
        lr_schedule=schedule,
        progress=True,
    )
    seconds = time.perf_counter() - start
    train_error = nn.error_rate(model, x_train, y_train)
    test_error = nn.error_rate(model, x_test, y_test)
    recipe = {**r, "train_error": train_error, "test_error": test_error}

    args.out.parent.mkdir(parents=True, exist_ok=True)
    nn.save(model, args.out, recipe)
    print(
        f"trained in {seconds:.1f} s ({r['epochs']} epochs, numpy {np.__version__}, "
        f"OPENBLAS_NUM_THREADS={os.environ['OPENBLAS_NUM_THREADS']}); "
        f"train error {100 * train_error:.2f} %, test error {100 * test_error:.2f} %"
    )
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""AdaRound on each layer of the course's LeNet-300-100: time, output MSE, test error.

    python benchmarks/bench_adaround.py [--threads 1] [--iterations 1000] [--bits 4 3 2]

For each Dense layer and width: the run time of ``qlib.adaround.adaround``
with its defaults (Adam, lr 0.03, batches of 32, lam 0.01, beta 20 -> 2 after
20 % warm-up), fitted on the layer's float inputs for 1024 calibration
images (the even rows of ``calibration_images(2048, seed=0)``); the layer's
output MSE on the other 1024 (held out), round-to-nearest vs AdaRound; the
test error on the 10,000 test images with only that layer quantized.  Then,
per width, every layer quantized: all round-to-nearest, fc1 AdaRound and the
rest nearest, all AdaRound (each layer fitted on the float network's
inputs).  Scales: symmetric, per output channel (``linear_qparams``).

Threads: ``--threads N`` sets ``OPENBLAS_NUM_THREADS``, ``OMP_NUM_THREADS``
and ``MKL_NUM_THREADS`` before NumPy loads.  The default is 1: AdaRound makes
two small matrix products per step, and on a busy two-core machine a second
BLAS thread waits for a core on each of them (fc1 at 3 bits: 2-3 s with one
thread, 34 s with two at load 2.6).  tests/test_adaround.py asserts the 3-
and 2-bit fc1 rows.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--bits", type=int, nargs="+", default=[4, 3, 2])
    return parser.parse_args()


ARGS = parse()
for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = str(ARGS.threads)  # before numpy loads

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qlib import nn  # noqa: E402
from qlib.adaround import adaround, layer_inputs, output_mse  # noqa: E402
from qlib.data import load_mnist  # noqa: E402
from qlib.linear import dequantize_linear  # noqa: E402
from qlib.quantnet import calibration_images  # noqa: E402


def main() -> int:
    model = nn.load_lenet()
    images = nn.preprocess(calibration_images(2048, seed=0))
    fit, held = images[0::2], images[1::2]
    test_images, labels = load_mnist("test")
    x_test = nn.preprocess(test_images)

    def error(weights: dict[int, np.ndarray]) -> float:
        net = nn.load_lenet()
        for i, w in weights.items():
            net.dense[i].W = w
        return nn.error_rate(net, x_test, labels)

    print(
        f"LeNet-300-100, fp32 test error {error({}):.2%}; {ARGS.iterations} "
        f"iterations, {ARGS.threads} BLAS thread(s), load "
        f"{os.getloadavg()[0]:.1f}"
    )
    print(
        "bits layer  time    held-out MSE nearest -> AdaRound   "
        "test error nearest -> AdaRound   flipped"
    )
    for bits in ARGS.bits:
        nearest, rounded = {}, {}
        for i, layer in enumerate(model.dense):
            start = time.perf_counter()
            x_fit = layer_inputs(model, i, fit)
            r = adaround(layer.W, x_fit, bits, iterations=ARGS.iterations)
            seconds = time.perf_counter() - start
            nearest[i] = dequantize_linear(r.nearest, r.scale, axis=0)
            rounded[i] = r.weights
            x_held = layer_inputs(model, i, held)
            mse_n = output_mse(layer.W, nearest[i], x_held)
            mse_a = output_mse(layer.W, r.weights, x_held)
            err_n, err_a = error({i: nearest[i]}), error({i: r.weights})
            print(
                f"{bits:>4} fc{i + 1}  {seconds:5.2f} s  {mse_n:10.5f} -> {mse_a:.5f}"
                f" ({mse_a / mse_n:.3f}x)   {err_n:7.2%} -> {err_a:.2%}"
                f"        {r.flipped:.1%}"
            )
        mixed = nearest | {0: rounded[0]}
        print(
            f"{bits:>4} all layers: nearest {error(nearest):.2%}, fc1 AdaRound "
            f"{error(mixed):.2%}, all AdaRound {error(rounded):.2%}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

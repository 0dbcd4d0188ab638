"""Chapter 09's table: QAT of LeNet-300-100; writes qlib/models/qat_lenet.json.

    python tools/qat_lenet.py [--out qlib/models/qat_lenet.json] [--only RUN ...]

Starting from the committed float model (``qlib.nn.load_lenet``), each run
builds ``qlib.qatnet.qat_model`` and fine-tunes it with ``qlib.qatnet.finetune_qat``
and ``qlib.qatnet.QAT_RECIPE``: one epoch over the 60,000 training images, SGD
lr 0.01 with momentum 0.9, batches of 100, shuffled by seed 0.  Activation
quantizers start from ``qlib.quantnet.calibration_images()`` (5000 training
images, seed 0).  The runs:

* ``ptq``: post-training quantization through ``qlib.ptq`` at 4/3/2 bits
  (weights per channel, round to nearest; ReLU outputs on min-max ranges of
  the calibration images), no training;
* ``ste-4``, ``ste-3``, ``ste-2``: weights and ReLU outputs at 4/3/2 bits,
  per-channel min-max weight scales and EMA activation ranges; untrained,
  this is the same network as ``ptq``;
* ``lsq-4``, ``lsq-3``, ``lsq-2``: the same widths with LSQ's learned steps;
* ``binary``, ``ternary``: BWN / TWN weights, float activations.

For each: the test error on the 10,000 test images untrained and trained,
the mean training loss, and the activation quantizers' final ranges (EMA) or
steps (LSQ).  The file holds no timing; the time of each epoch is printed.

NumPy runs OpenBLAS's Haswell kernels on one thread and its own AVX2 loops
(tools/pin_cpu.py), as in ``tools/train_lenet.py``: any x86-64 Linux machine
with AVX2 then writes the same bytes.
``--only`` runs the named runs and writes only those (tests/test_qat.py
checks one against the committed file).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import pin_cpu  # tools/, beside this script; before numpy loads

pin_cpu.pin()

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from qlib import nn, optim, ptq, qat, qatnet  # noqa: E402
from qlib.data import load_mnist  # noqa: E402
from qlib.quantnet import calibration_images  # noqa: E402

RUNS = {
    **{f"{m}-{b}": (b, b, m) for m in ("ste", "lsq") for b in (4, 3, 2)},
    "binary": ("binary", None, "ste"),
    "ternary": ("ternary", None, "ste"),
}


def activation_state(model: qatnet.QATMLP) -> list[list[float]]:
    """Each activation quantizer's final range (EMA) or step (LSQ)."""
    out = []
    for layer in model.layers:
        if isinstance(layer, qatnet.FakeQuant):
            q = layer.quantizer
            state = q.r_range if isinstance(q, qat.EMAActivations) else q.step
            out.append([float(v) for v in state])
    return out


def run(name: str, data: dict, model: nn.MLP, calibration: np.ndarray) -> dict:
    weights, activations, method = RUNS[name]
    r = qatnet.QAT_RECIPE
    q = qatnet.qat_model(
        model, calibration, weights=weights, activations=activations, method=method
    )
    untrained = nn.error_rate(q, data["x_test"], data["y_test"])
    n = r["images"]
    start = time.perf_counter()
    (loss,) = qatnet.finetune_qat(
        q,
        data["x_train"][:n],
        data["y_train"][:n],
        optimizer=optim.SGD(r["lr"], r["momentum"]),
        batch_size=r["batch_size"],
        seed=r["seed"],
        progress=True,
    )
    seconds = time.perf_counter() - start
    trained = nn.error_rate(q, data["x_test"], data["y_test"])
    print(
        f"{name:8s} untrained {100 * untrained:6.2f} %  trained {100 * trained:5.2f} %"
        f"  ({seconds:.1f} s for {n} images)",
        flush=True,
    )
    return {
        "weights": weights,
        "activations": activations,
        "method": method,
        "untrained": untrained,
        "trained": trained,
        "train_loss": loss,
        "activation_state": activation_state(q),
    }


def main() -> int:
    pin_cpu.require()  # the CPU code of every stored number, or stop
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "qlib" / qatnet.RESULTS_FILE)
    parser.add_argument("--only", nargs="+", choices=sorted(RUNS), default=list(RUNS))
    args = parser.parse_args()

    x_train, y_train = load_mnist("train")
    x_test, y_test = load_mnist("test")
    data = {
        "x_train": nn.preprocess(x_train),
        "y_train": y_train,
        "x_test": nn.preprocess(x_test),
        "y_test": y_test,
    }
    model = nn.load_lenet()
    calibration = calibration_images()
    results: dict = {
        "fp32": nn.error_rate(model, data["x_test"], data["y_test"]),
        "recipe": {
            **qatnet.QAT_RECIPE,
            "optimizer": "SGD",
            "epochs": 1,
            "calibration": "calibration_images(5000, seed=0)",
            "ema_momentum": 0.99,
        },
    }
    ranges = ptq.activation_ranges(model, nn.preprocess(calibration))
    results["ptq"] = {
        str(b): ptq.error_rate(
            ptq.quantize_model(model, b, "channel"),
            data["x_test"],
            data["y_test"],
            act_bits=b,
            ranges=ranges,
        )
        for b in (4, 3, 2)
    }
    print(
        "ptq      "
        + "  ".join(f"{b} bits {100 * e:.2f} %" for b, e in results["ptq"].items())
    )
    for name in args.only:
        results[name] = run(name, data, model, calibration)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, args.out)
    print(
        f"wrote {args.out} ({args.out.stat().st_size} bytes; numpy {np.__version__}, "
        f"OPENBLAS_NUM_THREADS={os.environ['OPENBLAS_NUM_THREADS']})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

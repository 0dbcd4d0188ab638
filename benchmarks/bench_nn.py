"""One epoch of LeNet-300-100 training in qlib.nn, side by side with PyTorch (CPU).

    python benchmarks/bench_nn.py [--threads 1] [--repeat 3]

Both train 784-300-100-10 (ReLU) from the same initial weights on the 60,000
MNIST training images (float32, pixels / 255), in the same shuffled order, in
batches of 100, with SGD (lr 0.1, momentum 0.9, weight decay 1e-4) and
softmax cross-entropy: the recipe of ``tools/train_lenet.py``.  The peer is
the usual PyTorch loop: ``nn.Sequential`` of ``nn.Linear``/``nn.ReLU``,
``F.cross_entropy``, ``loss.backward()``, ``torch.optim.SGD``.

Threads: ``--threads N`` sets ``OPENBLAS_NUM_THREADS``, ``OMP_NUM_THREADS``
and ``MKL_NUM_THREADS`` before numpy loads (and ``threadpoolctl`` limits if it
is installed), and ``torch.set_num_threads(N)``.  The default is 1: on a
shared two-core machine a second BLAS thread mostly waits.

Reported: the median of ``--repeat`` epochs for each (interleaved, a fresh
model each time), the ratio qlib / torch (target <= 1.2) and each one's mean
loss over the epoch, which agree when both compute the same thing.

PyTorch is only needed here, never by qlib: ``pip install torch==2.13.0``
(the CPU build, where a local wheel provides it; elsewhere
``pip install torch --index-url https://download.pytorch.org/whl/cpu``).
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
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    return parser.parse_args()


ARGS = parse()
for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = str(ARGS.threads)  # before numpy and torch load

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qlib import nn, optim  # noqa: E402
from qlib.data import load_mnist  # noqa: E402


def qlib_epoch(x, y, order_seed: int) -> tuple[float, float]:
    """(seconds, mean loss) of one qlib.nn epoch."""
    model = nn.lenet_300_100(seed=0)
    opt = optim.SGD(ARGS.lr, momentum=ARGS.momentum, weight_decay=ARGS.weight_decay)
    rng = np.random.default_rng(order_seed)
    start = time.perf_counter()
    loss = optim.train_epoch(
        model, opt, x, y, batch_size=ARGS.batch_size, rng=rng, progress=False
    )
    return time.perf_counter() - start, loss


def torch_epoch(torch, x, y, order_seed: int) -> tuple[float, float]:
    """(seconds, mean loss) of one PyTorch epoch, same weights and order."""
    F = torch.nn.functional
    init = nn.lenet_300_100(seed=0)
    model = torch.nn.Sequential(
        torch.nn.Linear(784, 300),
        torch.nn.ReLU(),
        torch.nn.Linear(300, 100),
        torch.nn.ReLU(),
        torch.nn.Linear(100, 10),
    )
    with torch.no_grad():
        linears = [m for m in model if isinstance(m, torch.nn.Linear)]
        for linear, dense in zip(linears, init.dense, strict=True):
            linear.weight.copy_(torch.from_numpy(dense.W))
            linear.bias.copy_(torch.from_numpy(dense.b))
    opt = torch.optim.SGD(
        model.parameters(),
        lr=ARGS.lr,
        momentum=ARGS.momentum,
        weight_decay=ARGS.weight_decay,
    )
    order = torch.from_numpy(np.random.default_rng(order_seed).permutation(len(x)))
    xt, yt = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))
    start = time.perf_counter()
    total = 0.0
    for i in range(0, len(x), ARGS.batch_size):
        batch = order[i : i + ARGS.batch_size]
        loss = F.cross_entropy(model(xt[batch]), yt[batch])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total += loss.item() * len(batch)
    return time.perf_counter() - start, total / len(x)


def main() -> int:
    try:
        import torch
    except ImportError:
        print(
            "PyTorch is not installed: this benchmark compares qlib.nn with it.\n"
            "Install the CPU build into this environment with\n"
            "    pip install torch==2.13.0\n"
            "(here a local CPU wheel provides it; elsewhere use\n"
            "    pip install torch --index-url https://download.pytorch.org/whl/cpu\n"
            "since plain 'pip install torch' may fetch a multi-GB CUDA build).\n"
            "Skipping bench_nn."
        )
        return 0
    torch.set_num_threads(ARGS.threads)
    limits = "threadpoolctl not installed"
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(ARGS.threads)
        limits = f"threadpoolctl limits {ARGS.threads}"
    except ImportError:
        pass

    images, labels = load_mnist("train")
    x = nn.preprocess(images)
    print(
        f"threads: OPENBLAS/OMP/MKL_NUM_THREADS={ARGS.threads}, "
        f"torch.set_num_threads({ARGS.threads}), {limits}; "
        f"numpy {np.__version__}, torch {torch.__version__}"
    )
    print(
        f"one epoch of LeNet-300-100: {len(x)} images, batch {ARGS.batch_size}, "
        f"SGD lr {ARGS.lr} momentum {ARGS.momentum} weight decay {ARGS.weight_decay}"
    )
    times: dict[str, list[float]] = {"qlib": [], "torch": []}
    losses = {}
    for seed in range(ARGS.repeat):
        t, losses["qlib"] = qlib_epoch(x, labels, seed)
        times["qlib"].append(t)
        t, losses["torch"] = torch_epoch(torch, x, labels, seed)
        times["torch"].append(t)
    q, t = statistics.median(times["qlib"]), statistics.median(times["torch"])
    for name, median in (("qlib.nn", q), ("torch", t)):
        key = name.split(".")[0]
        runs = " ".join(f"{s:.2f}" for s in times[key])
        print(
            f"  {name:8s} median {median:6.2f} s   (runs: {runs})   "
            f"mean loss {losses[key]:.4f}"
        )
    print(f"  ratio qlib / torch = {q / t:.2f}  (target <= 1.2)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

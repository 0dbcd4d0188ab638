"""SmolLM2-135M in qlib.llm: prefill and cached decoding, tokens per second.

    python benchmarks/bench_llm.py [--threads 1] [--repeat 3] [--decode 32]

Prefill: one forward pass over the course's evaluation text (368 tokens,
the pass :func:`qlib.llm.perplexity` makes), timed with the perplexity
itself.  Decoding: after a prompt, ``--decode`` tokens generated one at a
time on the KV cache (each step reads every weight once: memory-bound).
Reported: the median of ``--repeat`` runs after a warm-up, the model's load
time, and the process's peak resident memory.

Threads: ``--threads N`` sets ``OPENBLAS_NUM_THREADS``, ``OMP_NUM_THREADS``
and ``MKL_NUM_THREADS`` before numpy loads.  The default is 1: on a shared
two-core machine a second BLAS thread often waits for a busy core (measured
prefill times: 1.3-4.7 s with one thread, 1.9-11 s with two, under load).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--decode", type=int, default=32)
    return parser.parse_args()


ARGS = parse()
for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = str(ARGS.threads)  # before numpy loads

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _timing import median_time  # noqa: E402

from qlib import llm  # noqa: E402

PROMPT = "The capital of France is"


def main() -> int:
    start = time.perf_counter()
    model = llm.load_model()
    load = time.perf_counter() - start
    ids = llm.encode(model, llm.evaluation_text())
    ppl = llm.perplexity(model, ids)
    prefill = median_time(lambda: llm.perplexity(model, ids), ARGS.repeat)

    prompt = llm.encode(model, PROMPT)

    def decode() -> None:
        cache = llm.KVCache()
        logits = llm.forward(model, prompt, cache)
        for _ in range(ARGS.decode):
            logits = llm.forward(model, [int(logits[-1].argmax())], cache)

    def prompt_only() -> None:
        llm.forward(model, prompt, llm.KVCache())

    steps = median_time(decode, ARGS.repeat) - median_time(prompt_only, ARGS.repeat)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux
    print(f"SmolLM2-135M, qlib.llm (NumPy), {ARGS.threads} BLAS thread(s)")
    print(f"  load (read GGUF, dequantize to float32)  {load:6.2f} s")
    print(
        f"  prefill {ids.size} tokens (perplexity {ppl:.4f})  {prefill:6.2f} s  "
        f"{ids.size / prefill:7.1f} tokens/s"
    )
    print(
        f"  decode {ARGS.decode} tokens on the KV cache     {steps:6.2f} s  "
        f"{ARGS.decode / steps:7.1f} tokens/s"
    )
    print(f"  peak resident memory                    {peak:6.0f} MB")
    print(f"  load average (1 min)                    {os.getloadavg()[0]:6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Chapter 10's calibration on held-out text: windows, GPTQ and AWQ.

    python tools/llm_window.py [--out qlib/models/llm_window.json]

GPTQ and AWQ (3 bits, asymmetric groups of 128) calibrated on the first 896 tokens of
the course's calibration text (:func:`qlib.llmquant.calibration_text`), cut
into windows of each length (896: one window, a single first token), and
measured by the perplexity of the rest of the calibration text (463 tokens,
one sequence), which the fitted part does not contain.  The chapter's
evaluation text is not read: this is how the window length of
``tools/llm_results.py`` (``WINDOW``, 64) fares on text of its own.
Measured on a two-core AMD EPYC (about 10 minutes): round to nearest
125.6 (float 29.0); GPTQ 140.2, 118.6, 137.7, 121.6, 145.0 for windows of
16, 32, 64, 128, 256 tokens and 270.3 for one window of 896; AWQ 103.3
on windows of 64, 91.0 on one window.  For GPTQ many windows matter and
their length does not, and its gain over rounding to nearest on the
evaluation text (91 against 114) hardly holds here; AWQ's does.
BLAS runs on one thread, as in ``tools/llm_results.py``; the results go to
``qlib/models/llm_window.json`` (perplexities to 5 significant digits), which
notebook 10 prints and tests/test_claims_10.py checks (rerunning the cheap
rows: float and round to nearest).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pin_cpu  # tools/, beside this script; before numpy loads

pin_cpu.pin()

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from llm_results import dump, sig  # noqa: E402  (tools/, beside this script)

from qlib import llm  # noqa: E402
from qlib import llmquant as lq  # noqa: E402

DIGITS = 5  # significant digits of a perplexity
FIT = 896  # calibration tokens fitted on (14 windows of 64); the rest held out
OUT = Path(__file__).resolve().parents[1] / "qlib" / "models" / "llm_window.json"


def held_out(model):
    """The calibration tokens fitted on and the ones held out."""
    ids = llm.encode(model, lq.calibration_text())
    return ids[:FIT], ids[FIT:]


def main(argv: list[str] | None = None) -> int:
    pin_cpu.require()  # the CPU code of every stored number, or stop
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--lengths", type=int, nargs="*", default=[16, 32, 64, 128, 256, FIT]
    )
    parser.add_argument("--awq-lengths", type=int, nargs="*", default=[64, FIT])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    model = llm.load_model()
    fit, held = held_out(model)
    rows = [{"method": "float", "perplexity": sig(llm.perplexity(model, held), DIGITS)}]
    rtn = lq.rtn_model(model, 3, 128, symmetric=False)
    rows.append({"method": "RTN", "perplexity": sig(llm.perplexity(rtn, held), DIGITS)})
    del rtn
    print(f"fitted on {fit.size} tokens, held out {held.size}")
    print(
        f"float {rows[0]['perplexity']}, int3 g128 to nearest {rows[1]['perplexity']}"
    )
    runs = [("GPTQ", lq.gptq, n) for n in args.lengths]
    runs += [("AWQ", lq.awq, n) for n in args.awq_lengths]
    for name, method, length in runs:
        start = time.perf_counter()
        windows = lq.token_windows(fit, length)
        q, _ = method(model, lq.capture_inputs(model, windows), 3, 128)
        ppl = sig(llm.perplexity(q, held), DIGITS)
        rows.append({"method": name, "window": length, "perplexity": ppl})
        print(
            f"{name:<4} int3 g128, {len(windows):3d} windows of {length:4d} tokens: "
            f"held-out perplexity {ppl}  ({time.perf_counter() - start:.0f} s)",
            flush=True,
        )
    results = {"fitted_tokens": int(fit.size), "held_out_tokens": int(held.size)}
    results["rows"] = rows
    args.out.write_text(dump(results) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

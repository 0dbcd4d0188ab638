"""Chapter 10's table: every quantization method on SmolLM2-135M; writes
qlib/models/llm_results.json.

    python tools/llm_results.py [--out qlib/models/llm_results.json] [--only ENTRY ...]

Each entry is one configuration of :mod:`qlib.llmquant` on the model of
:mod:`qlib.llm`, measured by the perplexity of the course's evaluation text
(368 tokens, :func:`qlib.llm.evaluation_text`).  "Float" is the shipped Q4_1
weights dequantized to float32 (5.0 bits per weight in the file); every other
entry re-quantizes those weights.  The calibrated methods (SmoothQuant, AWQ,
GPTQ) learn from the course's calibration text
(:func:`qlib.llmquant.calibration_text`, 1359 tokens, no overlap with the
evaluation text), cut into 22 windows of 64 tokens
(:func:`qlib.llmquant.token_windows`), each run from position 0.  The
entries:

* ``float``; round to nearest, ``rtn-w{4,3,2}-g{32,64,128}-{sym,asym}``
  and ``rtn-w{4,3}-channel-asym``; int8 weights ``w8-channel``, ``w8-tensor``;
* activations: ``w8a8-tensor``, ``w8a8-token`` (dynamic int8, per-channel
  int8 weights), ``w8a8-tensor-wtensor`` (per-tensor weights too),
  ``llm-int8`` (threshold 6.0, float weights for the outlier columns);
* SmoothQuant then W8A8 per tensor, ``smoothquant-a{0,0.25,0.5,0.75,1}``
  (per-channel weights) and ``smoothquant-a0.5-wtensor``;
* ``awq-w{4,3}-g128``, ``gptq-w{4,3}-g128``, ``gptq-w{4,3}-channel``
  (asymmetric, as the papers), with each layer's search in ``layers``;
  ``awq-w3-g128-one-window``, ``gptq-w3-g128-one-window``: the same
  calibrated on the whole text as one window (a single first token);
* KV cache ``kv-int8``, ``kv-int4`` (keys per channel in groups of 32
  tokens, values per token);
* chapter 05's formats ``fp8-e4m3-tensor``, ``mxfp4``, ``nvfp4``;
* every entry that quantizes weights only (``float``, ``rtn-*``, ``w8-*``,
  ``awq-*``, ``gptq-*``, the formats) also holds the greedy continuation of
  ``prompt`` (24 tokens);
* ``outliers``: per layer, the per-channel maxima of the linear layers'
  inputs on the evaluation text (the largest, the median, how many > 6).

Perplexities are rounded to 5 significant digits, errors to 4.  NumPy runs
OpenBLAS's Haswell kernels on one thread and its own AVX2 loops
(tools/pin_cpu.py): any x86-64 Linux machine with AVX2 then writes the same
bytes.  The file holds no
timing; each entry's time is printed.  ``--only`` runs the named entries and
writes only those (tests/test_llmquant.py checks two against the committed
file).
"""

from __future__ import annotations

import argparse
import functools
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

from qlib import llm  # noqa: E402
from qlib import llmquant as lq  # noqa: E402

OUT = ROOT / "qlib" / "models" / "llm_results.json"
ALPHAS = (0, 0.25, 0.5, 0.75, 1)
WINDOW = 64  # calibration tokens per window
PROMPT = "Once upon a time, a little robot"
CONTINUATION = 24  # greedy tokens after PROMPT, for every weight-only entry


def sig(value: float, digits: int) -> float:
    """``value`` rounded to ``digits`` significant digits (stable JSON)."""
    return float(f"{value:.{digits}g}")


class Setup:
    """The model, the token ids and what the calibrated entries share."""

    def __init__(self) -> None:
        self.model = llm.load_model()
        self.ids = llm.encode(self.model, llm.evaluation_text())
        self.text = llm.encode(self.model, lq.calibration_text())
        self.calibration = lq.token_windows(self.text, WINDOW)

    @functools.cached_property
    def absmax(self):
        return lq.input_absmax(self.model, self.calibration)

    @functools.cached_property
    def inputs(self):
        return lq.capture_inputs(self.model, self.calibration)

    @functools.cached_property
    def inputs_one_window(self):
        return lq.capture_inputs(self.model, self.text)

    def continuation(self, model=None) -> dict:
        """The greedy continuation of PROMPT (weight-only entries)."""
        q = self.model if model is None else model
        return {"continuation": llm.generate(q, PROMPT, CONTINUATION)}

    def ppl(self, model=None, **kw) -> float:
        return sig(
            llm.perplexity(self.model if model is None else model, self.ids, **kw), 5
        )


def row(method: str, weights: str, ppl: float, bpw: float, **more) -> dict:
    out = {"method": method, "weights": weights, "perplexity": ppl}
    out |= {"bits_per_weight": sig(bpw, 5), "activations": "float", "kv_cache": "float"}
    return out | more


def rtn(s: Setup, bits: int, granularity, symmetric: bool) -> dict:
    kind = "sym" if symmetric else "asym"
    where = f"g{granularity}" if isinstance(granularity, int) else f"per {granularity}"
    q = lq.rtn_model(s.model, bits, granularity, symmetric=symmetric)
    bpw = lq.rtn_bits_per_weight(s.model, bits, granularity, symmetric=symmetric)
    return row("RTN", f"int{bits} {kind} {where}", s.ppl(q), bpw, **s.continuation(q))


def w8(s: Setup, granularity: str = "channel"):
    return lq.rtn_model(s.model, 8, granularity, symmetric=True)


def w8_bpw(s: Setup, granularity: str = "channel") -> float:
    return lq.rtn_bits_per_weight(s.model, 8, granularity, symmetric=True)


def w8a8(s: Setup, act: str, granularity: str = "channel") -> dict:
    ppl = s.ppl(w8(s, granularity), linear=lq.w8a8_linear(act))
    weights = f"int8 sym per {granularity}"
    return row(
        "W8A8", weights, ppl, w8_bpw(s, granularity), activations=f"int8 per {act}"
    )


def llm_int8(s: Setup) -> dict:
    ppl = s.ppl(linear=lq.llm_int8_linear(6.0))
    return row(
        "LLM.int8",
        "int8 sym per channel; float for the outlier columns",
        ppl,
        w8_bpw(s),
        activations="int8 per token; columns with |x| > 6 in float",
    )


def smooth(s: Setup, alpha: float, granularity: str = "channel") -> dict:
    model, scales = lq.smoothquant(s.model, s.absmax, alpha)
    q = lq.rtn_model(model, 8, granularity, symmetric=True)
    ppl = s.ppl(q, linear=lq.w8a8_linear("tensor", input_scales=scales))
    return row(
        "SmoothQuant",
        f"int8 sym per {granularity}, smoothed (alpha {alpha})",
        ppl,
        w8_bpw(s, granularity),
        activations="int8 per tensor, smoothed",
        alpha=alpha,
    )


def error_rows(items: dict, fields) -> list[dict]:
    """One row per searched group, in the model's order."""
    return [
        {"layer": i, "group": name, **dict(fields(v))} for (i, name), v in items.items()
    ]


def dump(obj, pad: str = "") -> str:
    """JSON with one line per row of a table (a list of flat dicts)."""
    inner = pad + " "
    if isinstance(obj, dict):
        items = [f"{inner}{json.dumps(k)}: {dump(v, inner)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    if isinstance(obj, list) and obj and isinstance(obj[0], dict):
        return "[\n" + ",\n".join(inner + json.dumps(r) for r in obj) + f"\n{pad}]"
    return json.dumps(obj)


def calibrated(s: Setup, one_window: bool, layers: list) -> dict:
    """How an AWQ or GPTQ entry was calibrated; its layers' searches (kept
    for the windowed runs only)."""
    if one_window:
        return {"calibration": f"one window of {s.text.size} tokens"}
    n = len(s.calibration)
    return {"calibration": f"{n} windows of {WINDOW} tokens", "layers": layers}


def awq(s: Setup, bits: int, one_window: bool = False) -> dict:
    inputs = s.inputs_one_window if one_window else s.inputs
    q, searches = lq.awq(s.model, inputs, bits, 128)
    layers = error_rows(
        searches,
        lambda r: (
            ("ratio", round(r.ratio, 2)),
            ("rtn_mse", sig(r.errors[0], 4)),
            ("mse", sig(r.error, 4)),
        ),
    )
    bpw = lq.rtn_bits_per_weight(s.model, bits, 128)
    weights = f"int{bits} asym g128, scaled"
    more = calibrated(s, one_window, layers) | s.continuation(q)
    return row("AWQ", weights, s.ppl(q), bpw, **more)


def gptq(s: Setup, bits: int, group_size, one_window: bool = False) -> dict:
    inputs = s.inputs_one_window if one_window else s.inputs
    q, errors = lq.gptq(s.model, inputs, bits, group_size)
    layers = error_rows(
        errors, lambda e: (("rtn_mse", sig(e[0], 4)), ("mse", sig(e[1], 4)))
    )
    granularity = "channel" if group_size is None else group_size
    where = "per channel" if group_size is None else f"g{group_size}"
    bpw = lq.rtn_bits_per_weight(s.model, bits, granularity)
    weights = f"int{bits} asym {where}"
    more = calibrated(s, one_window, layers) | s.continuation(q)
    return row("GPTQ", weights, s.ppl(q), bpw, **more)


def kv(s: Setup, bits: int) -> dict:
    ppl = sig(lq.cache_perplexity(s.model, s.ids, lq.QuantizedKVCache(bits, 32)), 5)
    return row(
        "KV cache",
        "Q4_1 as shipped, dequantized to float32",
        ppl,
        5.0,
        kv_cache=f"int{bits} asym: keys per channel in groups of 32 tokens, "
        "values per token",
        kv_bytes_per_token=lq.kv_bytes_per_token(s.model.config, bits, 32),
        fp16_bytes_per_token=lq.kv_bytes_per_token(s.model.config),
    )


def formats(s: Setup, fmt: str, label: str) -> dict:
    q = lq.format_model(s.model, fmt)
    bpw = lq.format_bits_per_weight(s.model, fmt)
    return row("format", label, s.ppl(q), bpw, **s.continuation(q))


def outliers(s: Setup) -> dict:
    maxima = lq.input_absmax(s.model, s.ids)
    layers = [
        {
            "layer": i,
            "input_of": name,
            "max": sig(float(m.max()), 4),
            "median": sig(float(np.median(m)), 4),
            "channel": int(m.argmax()),
            "over_6": int((m > 6).sum()),
        }
        for i in range(s.model.config.n_layers)
        for name, m in ((g[0], maxima[i, g[0]]) for g in lq.SHARED_INPUTS)
    ]
    return {"method": "statistics", "layers": layers}


def entries() -> dict:
    """Every entry of the table, by name: a function of the Setup."""
    table = {
        "float": lambda s: row(
            "float",
            "Q4_1 as shipped, dequantized to float32",
            s.ppl(),
            5.0,
            **s.continuation(),
        )
    }
    for bits in (4, 3, 2):
        for g in (32, 64, 128):
            for sym in (True, False):
                name = f"rtn-w{bits}-g{g}-{'sym' if sym else 'asym'}"
                table[name] = functools.partial(
                    rtn, bits=bits, granularity=g, symmetric=sym
                )
    for bits in (4, 3):
        table[f"rtn-w{bits}-channel-asym"] = functools.partial(
            rtn, bits=bits, granularity="channel", symmetric=False
        )
    for g in ("channel", "tensor"):
        table[f"w8-{g}"] = functools.partial(rtn, bits=8, granularity=g, symmetric=True)
    table["w8a8-tensor"] = functools.partial(w8a8, act="tensor")
    table["w8a8-token"] = functools.partial(w8a8, act="token")
    table["w8a8-tensor-wtensor"] = functools.partial(
        w8a8, act="tensor", granularity="tensor"
    )
    table["llm-int8"] = llm_int8
    for a in ALPHAS:
        table[f"smoothquant-a{a}"] = functools.partial(smooth, alpha=a)
    table["smoothquant-a0.5-wtensor"] = functools.partial(
        smooth, alpha=0.5, granularity="tensor"
    )
    for bits in (4, 3):
        table[f"awq-w{bits}-g128"] = functools.partial(awq, bits=bits)
        table[f"gptq-w{bits}-g128"] = functools.partial(gptq, bits=bits, group_size=128)
        table[f"gptq-w{bits}-channel"] = functools.partial(
            gptq, bits=bits, group_size=None
        )
    table["awq-w3-g128-one-window"] = functools.partial(awq, bits=3, one_window=True)
    table["gptq-w3-g128-one-window"] = functools.partial(
        gptq, bits=3, group_size=128, one_window=True
    )
    table["kv-int8"] = functools.partial(kv, bits=8)
    table["kv-int4"] = functools.partial(kv, bits=4)
    table["fp8-e4m3-tensor"] = functools.partial(
        formats, fmt="fp8_e4m3fn", label="FP8 E4M3, one FP32 scale per tensor"
    )
    table["mxfp4"] = functools.partial(
        formats, fmt="mxfp4", label="MXFP4: E2M1, an E8M0 scale per 32"
    )
    table["nvfp4"] = functools.partial(
        formats, fmt="nvfp4", label="NVFP4: E2M1, an E4M3 scale per 16, FP32 per tensor"
    )
    table["outliers"] = outliers
    return table


def main() -> int:
    pin_cpu.require()  # the CPU code of every stored number, or stop
    table = entries()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--only", nargs="+", choices=list(table), default=list(table))
    args = parser.parse_args()

    start = time.perf_counter()
    s = Setup()
    results = {
        "model": llm.MODEL_REQUIREMENT,
        "evaluation_tokens": int(s.ids.size),
        "calibration_tokens": int(s.text.size),
        "calibration_windows": [len(w) for w in s.calibration],
        "linear_weights": lq.linear_weights(s.model.config),
        "prompt": PROMPT,
        "entries": {},
    }
    for name in args.only:
        t = time.perf_counter()
        results["entries"][name] = table[name](s)
        got = results["entries"][name].get("perplexity", "")
        print(f"{name:26s} {got!s:>10}  {time.perf_counter() - t:6.1f} s", flush=True)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(dump(results) + "\n")
    os.replace(tmp, args.out)
    print(
        f"wrote {args.out} ({args.out.stat().st_size} bytes; numpy {np.__version__}, "
        f"OPENBLAS_NUM_THREADS={os.environ['OPENBLAS_NUM_THREADS']}); "
        f"{time.perf_counter() - start:.0f} s in all"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Latency of every explorer's event: set a control, the figure is redrawn.

    python benchmarks/bench_widgets.py [--repeat 15]

For each explorer and each of its controls, the control is moved back and
forth (a pair of buttons, such as BitFlipper's or FloatExplorer's ``steps``,
is clicked in turn); the time from setting ``control.value`` until the view
holds the new picture is measured (the explorer's own update, the Agg
drawing, and the PNG encoding that goes to the browser). Explorers keep the
unchanging part of their figure as a picture (``qlib.plot.Layers``, or one
per word size for NumberWheel); the column "whole" times a full Agg drawing
of the figure for comparison (what every event would cost without it), and
"kept" counts the events that reused the kept picture. Prints medians in ms
against the 50 ms target. KMeansExplorer reads MNIST from ``QLIB_DATA`` (as
the tests do) and quantizes the network once, before its first event.
Chapter 10: FormatExplorer reads its table and the model file's metadata;
``smoothing_layer_11`` is the SmoothingExplorer of notebook 10 (SmolLM2-135M's
layer 11 ``ffn_down``, 1536 channels: the model is loaded once, for it), the
plain SmoothingExplorer the toy model's 64 channels.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qlib import widgets


@functools.cache
def smoothing_layer_11() -> widgets.SmoothingExplorer:
    from qlib import llm

    return widgets.SmoothingExplorer.from_model(llm.load_model())


CASES = [
    (widgets.LevelsDemo, "bits", (3, 4)),
    (widgets.NumberWheel, "b", (4, 5)),
    (widgets.NumberWheel, "a", (4, 5)),
    (widgets.NumberWheel, "bits", (4, 5)),
    (widgets.NumberWheel, "bits", (2, 5)),
    (widgets.BitFlipper, "bit0", (True, False)),
    (widgets.BitFlipper, "steps", ("-1", "+1")),
    (widgets.SamplingExplorer, "bits", (3, 4)),
    (widgets.SamplingExplorer, "rate", (40, 45)),
    (widgets.SamplingExplorer, "rate", (10, 40)),
    (widgets.SamplingExplorer, "freq", (2.0, 7.0)),
    (widgets.SamplingExplorer, "amplitude", (0.9, 0.5)),
    (widgets.ImageBitDepth, "bits", (3, 4)),
    (widgets.ImageBitDepth, "method", ("round", "diffusion")),
    (widgets.ImageBitDepth, "method", ("round", "dither")),
    (widgets.ImageBitDepth, "zoom", ("face", "uniform")),
    (widgets.CompandingExplorer, "level_db", (-40.0, -39.0)),
    (widgets.CompandingExplorer, "level_db", (-70.0, 0.0)),
    (widgets.CompandingExplorer, "bits", (8, 9)),
    (widgets.CompandingExplorer, "signal", ("sine", "speech")),
    (widgets.QFormatExplorer, "int_bits", (1, 2)),
    (widgets.QFormatExplorer, "frac_bits", (3, 4)),
    (widgets.QFormatExplorer, "signed", (True, False)),
    (widgets.QFormatExplorer, "rounding", ("nearest_even", "stochastic")),
    (widgets.QFormatExplorer, "overflow", ("saturate", "wrap")),
    (widgets.KMeansExplorer, "bits", (3, 4)),
    (widgets.KMeansExplorer, "layer", ("fc1", "fc2")),
    (widgets.LinearQuantExplorer, "r_min", (-1.0, -0.95)),
    (widgets.ClippingExplorer, "clip", (3.0, 3.1)),
    (widgets.ClippingExplorer, "bits", (3, 4)),
    (widgets.BitAllocationExplorer, "fc1", (3, 4)),
    (widgets.BitAllocationExplorer, "fc2", (3, 4)),
    (widgets.BitAllocationExplorer, "fc3", (3, 4)),
    (widgets.LinearQuantExplorer, "r_max", (2.0, 1.95)),
    (widgets.LinearQuantExplorer, "bits", (3, 8)),
    (widgets.LinearQuantExplorer, "symmetric", (False, True)),
    (widgets.FloatExplorer, "value", ("0.1", "0.2")),
    (widgets.FloatExplorer, "value", ("1/3", "2**-1074")),
    (widgets.FloatExplorer, "format", ("bf16", "fp8_e4m3fn")),
    (widgets.FloatExplorer, "format", ("bf16", "fp64")),
    (widgets.FloatExplorer, "hex", ("3DCD", "7F80")),
    (widgets.FloatExplorer, "saturate", (False, True)),
    (widgets.FloatExplorer, "steps", ("next down", "next up")),
    (widgets.FloatExplorer, "steps", ("code -1", "code +1")),
    (widgets.FormatHistogram, "format", ("fp8_e4m3fn", "fp4_e2m1fn")),
    (widgets.FormatHistogram, "distribution", ("normal", "outliers")),
    (widgets.FormatHistogram, "scaling", ("per_tensor", "mx")),
    (widgets.FormatHistogram, "scaling", ("per_tensor", "nvfp4")),
    (widgets.FormatHistogram, "scale", (0, 3)),
    (widgets.FormatHistogram, "axis", ("value", "log2|x|")),
    (widgets.FormatExplorer, "method", ("rtn", "nvfp4")),
    (widgets.FormatExplorer, "bits", (4, 3)),
    (widgets.FormatExplorer, "group", (128, 32)),
    (widgets.FormatExplorer, "group", (128, "tensor")),
    (widgets.FormatExplorer, "symmetric", (False, True)),
    (widgets.SmoothingExplorer, "alpha", (0.5, 0.55)),
    (smoothing_layer_11, "alpha", (0.5, 0.55)),
    (smoothing_layer_11, "alpha", (0.0, 1.0)),
]


def _redraws(ex) -> int:
    """How many times the explorer drew a kept picture, over all it keeps
    (NumberWheel keeps one per word size, in ``kept_pictures``)."""
    pictures = [getattr(ex, "layers", None), *getattr(ex, "kept_pictures", {}).values()]
    unique = {id(p): p for p in pictures if p is not None}
    return sum(p.redraws for p in unique.values())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    print(f"median of {args.repeat} events; target 50 ms per event")
    print(f"{'explorer':20s} {'control':13s} {'event':>8s} {'whole':>8s} {'kept':>6s}")
    worst = 0.0
    for cls, name, (a, b) in CASES:
        ex = cls()
        control = ex.controls.get(name)
        events, wholes, kept = [], [], 0
        for i in range(args.repeat):
            layers = getattr(ex, "layers", None)
            redraws = _redraws(ex)
            start = time.perf_counter()
            if control is None:  # buttons: click b, then a, ...
                getattr(ex, name)[b if i % 2 == 0 else a].click()
            else:
                control.value = b if i % 2 == 0 else a
            events.append(time.perf_counter() - start)
            if layers:
                kept += _redraws(ex) == redraws
        if hasattr(ex, "fig"):
            for artist in ex.layers.moving:  # the whole figure, as without Layers
                artist.set_animated(False)
            for _ in range(args.repeat):
                start = time.perf_counter()
                ex.fig.canvas.draw()
                wholes.append(time.perf_counter() - start)
        event = statistics.median(events) * 1e3
        whole = f"{statistics.median(wholes) * 1e3:6.1f}ms" if wholes else "-"
        share = f"{kept}/{args.repeat}" if hasattr(ex, "fig") else "-"
        worst = max(worst, event)
        print(f"{cls.__name__:20s} {name:13s} {event:6.1f}ms {whole:>8s} {share:>6s}")
    print(f"slowest event {worst:.1f} ms (target <= 50 ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

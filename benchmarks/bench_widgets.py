"""Latency of every explorer's event: set a control, the figure is redrawn.

    python benchmarks/bench_widgets.py [--repeat 15]

For each explorer and each of its controls, the control is moved back and
forth; the time from setting ``control.value`` until the view holds the new
picture is measured (the explorer's own update, the Agg drawing, and the PNG
encoding that goes to the browser).  Explorers keep the unchanging part of
their figure as a picture (``qlib.plot.Layers``); the column "whole" times a
full Agg drawing of the figure for comparison (what every event would cost
without it), and "kept" counts the events that reused the kept picture.
Prints medians in ms against the 50 ms target.  KMeansExplorer reads MNIST
from ``QLIB_DATA`` (as the tests do) and quantizes the network once, before
its first event.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qlib import widgets

CASES = [
    (widgets.LevelsDemo, "bits", (3, 4)),
    (widgets.NumberWheel, "b", (4, 5)),
    (widgets.NumberWheel, "bits", (4, 5)),
    (widgets.BitFlipper, "bit0", (True, False)),
    (widgets.SamplingExplorer, "bits", (3, 4)),
    (widgets.SamplingExplorer, "rate", (40, 45)),
    (widgets.ImageBitDepth, "bits", (3, 4)),
    (widgets.CompandingExplorer, "level_db", (-40.0, -39.0)),
    (widgets.CompandingExplorer, "bits", (8, 9)),
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
    (widgets.FloatExplorer, "format", ("bf16", "fp8_e4m3fn")),
    (widgets.FormatHistogram, "format", ("fp8_e4m3fn", "fp4_e2m1fn")),
    (widgets.FormatHistogram, "distribution", ("normal", "outliers")),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    print(f"median of {args.repeat} events; target 50 ms per event")
    print(f"{'explorer':20s} {'control':13s} {'event':>8s} {'whole':>8s} {'kept':>6s}")
    worst = 0.0
    for cls, name, (a, b) in CASES:
        ex = cls()
        control = ex.controls[name]
        events, wholes, kept = [], [], 0
        for i in range(args.repeat):
            layers = getattr(ex, "layers", None)
            redraws = layers.redraws if layers else 0
            start = time.perf_counter()
            control.value = b if i % 2 == 0 else a
            events.append(time.perf_counter() - start)
            if layers:
                kept += layers.redraws == redraws
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

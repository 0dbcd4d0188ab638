"""Latency of every explorer's event: set a control, the figure is redrawn.

    python benchmarks/bench_widgets.py [--repeat 15]

For each explorer and each of its controls, the control is moved back and
forth; the time from setting ``control.value`` until the view holds the new
picture is measured (the explorer's own redraw, the Agg canvas drawing the
figure, and the PNG encoding that goes to the browser).  The Agg drawing alone
is timed separately.  Prints medians in ms against the 50 ms target.
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
    print(f"{'explorer':20s} {'control':9s} {'event':>8s} {'Agg draw':>9s}")
    worst = 0.0
    for cls, name, (a, b) in CASES:
        ex = cls()
        control = ex.controls[name]
        events, draws = [], []
        for i in range(args.repeat):
            start = time.perf_counter()
            control.value = b if i % 2 == 0 else a
            events.append(time.perf_counter() - start)
            if hasattr(ex, "fig"):
                start = time.perf_counter()
                ex.fig.canvas.draw()
                draws.append(time.perf_counter() - start)
        event = statistics.median(events) * 1e3
        draw = f"{statistics.median(draws) * 1e3:7.1f}ms" if draws else "      -"
        worst = max(worst, event)
        print(f"{cls.__name__:20s} {name:9s} {event:6.1f}ms {draw:>9s}")
    print(f"slowest event {worst:.1f} ms (target <= 50 ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

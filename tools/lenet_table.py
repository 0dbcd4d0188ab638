"""The README's table: every method of chapters 06-09 on LeNet-300-100.

    python tools/lenet_table.py            # print the table
    python tools/lenet_table.py --write    # put it into README.md
    python tools/lenet_table.py --check    # exit 1 if README.md's copy differs

The rows are :func:`qlib.compare.methods`: each quantizes the committed
model (``qlib.nn.load_lenet``) as its chapter does, with the test error on
the 10,000 MNIST test images and the storage of the weights (codes,
codebooks, scales and zero points) and float32 biases.  Needs MNIST
(``QLIB_DATA``).  ``tests/test_lenet_table.py``
fails when README.md's table and this script's output differ.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from qlib.compare import methods  # noqa: E402

README = ROOT / "README.md"
BEGIN = "<!-- lenet-table: begin (tools/lenet_table.py --write) -->"
END = "<!-- lenet-table: end -->"


def table() -> str:
    """The markdown table of :func:`qlib.compare.methods`."""
    lines = [
        "| ch. | method | weights | activations | size (kB) | test error |",
        "|---|---|---|---|---:|---:|",
    ]
    for m in methods():
        cells = (m.chapter, m.method, m.weights, m.activations, f"{m.nbytes / 1e3:.1f}")
        lines.append("| " + " | ".join(cells) + f" | {m.error:.2%} |")
    return "\n".join(lines)


def readme_table(text: str) -> str:
    """The table between the markers of README.md's ``text``."""
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    return text[start:end].strip("\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="update README.md")
    mode.add_argument("--check", action="store_true", help="compare with README.md")
    args = parser.parse_args(argv)
    fresh = table()
    text = README.read_text(encoding="utf-8")
    if args.check:
        same = readme_table(text) == fresh
        print(
            "README.md's table is up to date" if same else "README.md's table is STALE"
        )
        return 0 if same else 1
    if args.write:
        start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
        README.write_text(
            text[:start] + "\n" + fresh + "\n" + text[end:], encoding="utf-8"
        )
    print(fresh)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

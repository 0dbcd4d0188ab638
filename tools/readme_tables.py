"""The README's tables of measured results, written from qlib.

    python tools/readme_tables.py            # print the tables
    python tools/readme_tables.py --write    # put them into README.md
    python tools/readme_tables.py --check    # exit 1 if README.md's copies differ

* ``lenet``: every method of chapters 06-09 on LeNet-300-100,
  :func:`qlib.compare.methods`: each quantizes the committed model
  (``qlib.nn.load_lenet``) as its chapter does, with the test error on the
  10,000 MNIST test images and the storage of the weights (codes, codebooks,
  scales and zero points) and float32 biases.  Needs MNIST (``QLIB_DATA``).
* ``llm``: every method of chapter 10 on SmolLM2-135M,
  :func:`qlib.llmquant.results_table` of the committed results of
  ``tools/llm_results.py`` (which ``tests/test_llmquant.py`` ties to the
  code).

The numbers are computed with the CPU code of every stored output
(tools/pin_cpu.py).  Each table sits in README.md between its two markers;
``tests/test_readme_tables.py`` fails when a copy and this script's output
differ.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pin_cpu  # tools/, beside this script; before numpy loads

pin_cpu.pin()

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

README = ROOT / "README.md"


def lenet() -> str:
    """The markdown table of :func:`qlib.compare.methods`."""
    from qlib.compare import methods

    lines = [
        "| ch. | method | weights | activations | size (kB) | test error |",
        "|---|---|---|---|---:|---:|",
    ]
    for m in methods():
        cells = (m.chapter, m.method, m.weights, m.activations, f"{m.nbytes / 1e3:.1f}")
        lines.append("| " + " | ".join(cells) + f" | {m.error:.2%} |")
    return "\n".join(lines)


def llm() -> str:
    """The markdown table of chapter 10's committed results."""
    from qlib.llmquant import results_table

    return results_table(markdown=True)


TABLES = {"lenet": lenet, "llm": llm}


def markers(name: str) -> tuple[str, str]:
    """The two lines that enclose table ``name`` in README.md."""
    return (
        f"<!-- {name}-table: begin (tools/readme_tables.py --write) -->",
        f"<!-- {name}-table: end -->",
    )


def readme_table(text: str, name: str) -> str:
    """Table ``name`` as README.md's ``text`` holds it."""
    begin, end = markers(name)
    return text[text.index(begin) + len(begin) : text.index(end)].strip("\n")


def main(argv: list[str] | None = None) -> int:
    pin_cpu.require()  # the CPU code of every stored number, or stop
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="update README.md")
    mode.add_argument("--check", action="store_true", help="compare with README.md")
    args = parser.parse_args(argv)
    text = README.read_text(encoding="utf-8")
    stale = 0
    for name, make in TABLES.items():
        fresh = make()
        if args.check:
            same = readme_table(text, name) == fresh
            stale += not same
            print(f"README.md's {name} table is {'up to date' if same else 'STALE'}")
            continue
        if args.write:
            begin, end = markers(name)
            start, stop = text.index(begin) + len(begin), text.index(end)
            text = text[:start] + "\n" + fresh + "\n" + text[stop:]
        print(fresh, end="\n\n")
    if args.write:
        README.write_text(text, encoding="utf-8")
    return 1 if stale else 0


if __name__ == "__main__":
    raise SystemExit(main())

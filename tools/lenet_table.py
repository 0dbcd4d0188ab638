"""The README's table: every method of chapters 06-09 on LeNet-300-100.

    python tools/lenet_table.py            # print the table
    python tools/lenet_table.py --write    # put it into README.md
    python tools/lenet_table.py --check    # exit 1 if README.md's copy differs

Each row quantizes the committed model (``qlib.nn.load_lenet``) as its
chapter does, and measures the test error on the 10,000 MNIST test images
and the storage of the weights (codes, codebooks, scales and zero points)
and float32 biases.  Needs MNIST (``QLIB_DATA``).  ``tests/test_lenet_table.py``
fails when README.md's table and this script's output differ.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from qlib import kmeansnet, nn, ptq  # noqa: E402
from qlib.data import load_mnist  # noqa: E402
from qlib.quantnet import QuantizedMLP, calibration_images  # noqa: E402

README = ROOT / "README.md"
BEGIN = "<!-- lenet-table: begin (tools/lenet_table.py --write) -->"
END = "<!-- lenet-table: end -->"


def rows() -> list[tuple[str, str, str, str, float, float]]:
    """(chapter, method, weights, activations, kB, test error) per method."""
    model = nn.load_lenet()
    images, labels = load_mnist("test")
    x = nn.preprocess(images)
    cal_images = calibration_images()
    x_cal = nn.preprocess(cal_images)
    fp32 = nn.error_rate(model, x, labels)
    out = [("—", "float32", "32-bit float", "float", ptq.model_bytes(model), fp32)]

    train_images, train_labels = load_mnist("train")
    for bits, tuned in ((8, False), (4, False), (2, False), (2, True)):
        q, codebooks, indices = kmeansnet.quantize_model(model, bits)
        if tuned:
            kmeansnet.finetune_codebooks(
                q, codebooks, indices, nn.preprocess(train_images), train_labels,
                **kmeansnet.FINETUNE_RECIPE, progress=False,
            )  # fmt: skip
        kb = kmeansnet.kmeans_storage(model, bits).kilobytes * 1000
        method = "k-means weight sharing" + (", codebooks fine-tuned" if tuned else "")
        w = f"{bits}-bit indices"
        out.append(("06", method, w, "float", kb, nn.error_rate(q, x, labels)))

    qnet = QuantizedMLP.from_float(model, cal_images, signed=True)
    wrong = qnet.predict(images) != labels
    kb = ptq.model_bytes(model, 8, "tensor", scale_bits=32)
    out.append(
        ("07", "integer-only, min-max", "int8 per tensor", "int8", kb, wrong.mean())
    )

    names = {"tensor": "per tensor", "channel": "per channel", 32: "groups of 32"}
    for bits, g, sym in (
        (4, "tensor", True), (4, "channel", True), (3, "channel", True),
        (2, "channel", True), (2, "channel", False), (2, 32, True), (2, 32, False),
    ):  # fmt: skip
        q = ptq.quantize_model(model, bits, g, symmetric=sym)
        kind = "" if sym else ", asymmetric"
        w = f"int{bits} {names[g]}{kind}"
        kb = ptq.model_bytes(model, bits, g, symmetric=sym)
        out.append(("08", "weights only", w, "float", kb, ptq.error_rate(q, x, labels)))
    q4 = ptq.quantize_model(model, 4, "channel")
    for bits, name in ((4, "min-max"), (4, "MSE"), (3, "MSE")):
        ranges = ptq.activation_ranges(model, x_cal, ptq.calibrators(bits)[name])
        err = ptq.error_rate(q4, x, labels, bits, ranges)
        kb = ptq.model_bytes(model, 4, "channel")
        a = f"uint{bits}, {name}"
        out.append(("08", "weights and activations", "int4 per channel", a, kb, err))
    return out


def table() -> str:
    """The markdown table of :func:`rows`."""
    lines = [
        "| ch. | method | weights | activations | size (kB) | test error |",
        "|---|---|---|---|---:|---:|",
    ]
    for chapter, method, w, a, kb, err in rows():
        lines.append(
            f"| {chapter} | {method} | {w} | {a} | {kb / 1e3:.1f} | {err:.2%} |"
        )
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

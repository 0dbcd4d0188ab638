"""Every method of chapters 06-09 on LeNet-300-100, in one table.

:func:`methods` quantizes the committed model (:func:`qlib.nn.load_lenet`)
as each chapter does and measures the test error on the 10,000 MNIST test
images and the storage: weight codes, codebooks, scales (fp16, except
chapter 07's float32 ones) and zero points, and float32 biases.  Training
runs (chapter 06's fine-tuned codebooks are recomputed, in about a second;
chapter 09's quantization-aware training, binary and ternary runs come from
:func:`qlib.qatnet.load_results`, made by ``tools/qat_lenet.py``).

The README's table (``tools/readme_tables.py``) and chapter 09's Pareto plot
are both this function's output.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from . import kmeansnet, mixed, nn, ptq, qatnet
from .data import load_mnist
from .quantnet import QuantizedMLP, calibration_images

__all__ = ["Method", "methods"]


@dataclass(frozen=True)
class Method:
    """One row: ``chapter`` ("06".."09", "—" for float), what was done,
    how the weights and activations are stored, bytes, test error."""

    chapter: str
    method: str
    weights: str
    activations: str
    nbytes: float
    error: float


@functools.cache
def methods() -> tuple[Method, ...]:
    """The rows, float32 first, then chapter by chapter (about 5 s)."""
    model = nn.load_lenet()
    images, labels = load_mnist("test")
    x = nn.preprocess(images)
    cal_images = calibration_images()
    x_cal = nn.preprocess(cal_images)
    rows: list[Method] = []

    def add(chapter: str, method: str, w: str, a: str, nbytes: float, error) -> None:
        rows.append(Method(chapter, method, w, a, float(nbytes), float(error)))

    add(
        "—",
        "float32",
        "float32",
        "float",
        ptq.model_bytes(model),
        nn.error_rate(model, x, labels),
    )

    train_images, train_labels = load_mnist("train")
    for bits, tuned in ((8, False), (4, False), (2, False), (2, True)):
        q, codebooks, indices = kmeansnet.quantize_model(model, bits)
        if tuned:
            kmeansnet.finetune_codebooks(
                q, codebooks, indices, nn.preprocess(train_images), train_labels,
                **kmeansnet.FINETUNE_RECIPE, progress=False,
            )  # fmt: skip
        name = "k-means weight sharing" + (", codebooks fine-tuned" if tuned else "")
        size = kmeansnet.kmeans_storage(model, bits).kilobytes * 1000
        add(
            "06",
            name,
            f"{bits}-bit indices",
            "float",
            size,
            nn.error_rate(q, x, labels),
        )

    qnet = QuantizedMLP.from_float(model, cal_images, signed=True)
    error = float((qnet.predict(images) != labels).mean())
    size = ptq.model_bytes(model, 8, "tensor", scale_bits=32)
    rows.append(
        Method("07", "integer-only, min-max", "int8 per tensor", "int8", size, error)
    )

    names = {"tensor": "per tensor", "channel": "per channel", 32: "groups of 32"}
    for bits, g, sym in (
        (4, "tensor", True), (4, "channel", True), (3, "channel", True),
        (2, "channel", True), (2, "channel", False), (2, 32, True), (2, 32, False),
    ):  # fmt: skip
        q = ptq.quantize_model(model, bits, g, symmetric=sym)
        w = f"int{bits} {names[g]}" + ("" if sym else ", asymmetric")
        size = ptq.model_bytes(model, bits, g, symmetric=sym)
        rows.append(
            Method("08", "weights only", w, "float", size, ptq.error_rate(q, x, labels))
        )
    q4 = ptq.quantize_model(model, 4, "channel")
    for bits, name in ((4, "min-max"), (4, "MSE"), (3, "MSE")):
        ranges = ptq.activation_ranges(model, x_cal, ptq.calibrators(bits)[name])
        size = ptq.model_bytes(model, 4, "channel")
        error = ptq.error_rate(q4, x, labels, bits, ranges)
        add("08", "weights and activations", "int4 per channel", f"uint{bits}, {name}",
            size, error)  # fmt: skip

    results = qatnet.load_results()
    for bits in (4, 3, 2):
        size = ptq.model_bytes(model, bits, "channel")
        w, a = f"int{bits} per channel", f"uint{bits}"
        rows.append(
            Method(
                "09", "post-training, min-max", w, a, size, results["ptq"][str(bits)]
            )
        )
        for key, label in (
            ("ste", "QAT, min-max/EMA scales"),
            ("lsq", "QAT, LSQ steps"),
        ):
            rows.append(
                Method("09", label, w, a, size, results[f"{key}-{bits}"]["trained"])
            )
    for kind, width in (("binary", 1), ("ternary", 2)):
        size = (
            sum(
                ptq.weight_bits(d.W.shape, width, "channel") + 32 * d.b.size
                for d in model.dense
            )
            / 8
        )  # one fp16 alpha per output channel
        for trained in (False, True):
            label = f"{kind} weights" + (", trained" if trained else "")
            w = f"{'±α' if kind == 'binary' else '0, ±α'} per channel"
            add(
                "09",
                label,
                w,
                "float",
                size,
                results[kind]["trained" if trained else "untrained"],
            )

    lq = mixed.LayerQuantizer(model)
    low, high = lq.nbytes((2, 2, 2)), lq.nbytes((3, 3, 3))
    alloc = mixed.greedy_allocation(lq, x_cal, (low + high) / 2)
    w = "fc1/fc2/fc3 at " + "/".join(map(str, alloc)) + " bits, per channel, asym."
    error = (lq.model(alloc).predict(x) != labels).mean()
    add(
        "09",
        "mixed precision (greedy, 2.5 bits/weight)",
        w,
        "float",
        lq.nbytes(alloc),
        error,
    )
    return tuple(rows)

"""The explorers of chapter 10: a weight format for SmolLM2-135M, and
SmoothQuant's ``alpha`` on one layer.

:class:`FormatExplorer` reads the chapter's measured table
(:func:`qlib.llmquant.load_results`, written by ``tools/llm_results.py``):
it never runs the model, so every choice answers at once.
:class:`SmoothingExplorer` (in ``_smoothing.py``, re-exported) smooths one
layer's input with :func:`qlib.llmquant.smooth_scales`.  Taught in
``notebooks/10_llm_quantization.ipynb``.
"""

from __future__ import annotations

import itertools
import textwrap

import ipywidgets as widgets
import numpy as np

from .. import llm
from .. import llmquant as lq
from ..plot import COLORS, new_figure
from ._explorer import Explorer, _choice, _png_view
from ._smoothing import SmoothingExplorer, strongest_outlier

__all__ = [
    "FormatExplorer",
    "SmoothingExplorer",
    "entry_name",
    "strongest_outlier",
]

#: (label, value) of the weight formats; the first three round integers
METHODS = (
    ("round to nearest", "rtn"),
    ("AWQ", "awq"),
    ("GPTQ", "gptq"),
    ("FP8 E4M3", "fp8-e4m3-tensor"),
    ("MXFP4", "mxfp4"),
    ("NVFP4", "nvfp4"),
    ("float", "float"),
)
INTEGER = ("rtn", "awq", "gptq")
BITS = (8, 4, 3, 2)
GROUPS = (("32", 32), ("64", 64), ("128", 128), ("channel", "channel"))
GROUPS += (("tensor", "tensor"),)


def entry_name(method: str, bits: int, group: int | str, symmetric: bool) -> str:
    """The name in the table (``load_results()["entries"]``) of the weights
    ``method`` makes (``"rtn"``, ``"awq"``, ``"gptq"``: ``bits``-bit codes,
    one scale per ``group`` inputs, per ``"channel"`` or per ``"tensor"``);
    a format (``"mxfp4"``...) or ``"float"`` is its own name.  Whether the
    table holds it is the caller's question.

    Example:
        >>> entry_name("rtn", 4, 128, False), entry_name("gptq", 3, "channel", False)
        ('rtn-w4-g128-asym', 'gptq-w3-channel')
        >>> entry_name("rtn", 8, "tensor", True), entry_name("nvfp4", 4, 32, True)
        ('w8-tensor', 'nvfp4')
    """
    if method not in INTEGER:
        return method
    where = f"g{group}" if isinstance(group, int) else group
    if method == "rtn" and bits == 8:
        return f"w8-{where}" + ("" if symmetric else "-asym")
    if method == "rtn":
        return f"rtn-w{bits}-{where}-{'sym' if symmetric else 'asym'}"
    return f"{method}-w{bits}-{where}" + ("-sym" if symmetric else "")


class FormatExplorer(Explorer):
    """Choose how SmolLM2-135M's linear weights are stored and read what
    the chapter measured: the perplexity of the evaluation text, the bits
    per weight (scales and zero points counted), the size of the linear
    layers in MB, and the greedy continuation of the table's prompt.

    Controls: ``method`` (round to nearest, AWQ, GPTQ, chapter 05's FP8
    E4M3 per tensor, MXFP4, NVFP4, or the float model: the shipped Q4_1
    weights dequantized), and for the integer methods ``bits`` (8, 4, 3, 2),
    ``group`` (32, 64, 128 inputs per scale, per channel or per tensor) and
    ``symmetric``.  A choice the table does not hold says so and names the
    ones it does.  The figure places every measured choice by perplexity
    (log scale) against bits per weight, the float model dotted, the choice
    ringed.  Everything comes from :func:`qlib.llmquant.load_results`
    (``results``); the number of linear weights that the sizes count from
    ``config`` (``model.config``), else the table's ``linear_weights``.

    Example:
        >>> ex = FormatExplorer(bits=4, group=32, symmetric=False)
        >>> ex.name, ex.perplexity, ex.bits_per_weight
        ('rtn-w4-g32-asym', 31.994, 4.625)
        >>> ex.controls["method"].value = "awq"  # AWQ is measured at g128 only
        >>> ex.name is None
        True
    """

    title = "weight format explorer"

    def __init__(
        self,
        method: str = "rtn",
        bits: int = 4,
        group: int | str = 128,
        symmetric: bool = False,
        *,
        config: llm.Config | None = None,
        results: dict | None = None,
    ) -> None:
        _choice(method, "method", [v for _, v in METHODS])
        _choice(bits, "bits", BITS)
        _choice(group, "group", [v for _, v in GROUPS])
        if not isinstance(symmetric, bool | np.bool_):
            raise TypeError(f"symmetric must be True or False; got {symmetric!r}")
        self.results = lq.load_results() if results is None else results
        if not isinstance(self.results.get("entries"), dict):
            raise ValueError("results must hold 'entries', as load_results() does")
        entries = self.results["entries"]
        keys = itertools.product(INTEGER, BITS, [v for _, v in GROUPS], (False, True))
        names = {entry_name(*k) for k in keys} | {v for _, v in METHODS}
        #: every entry the controls can reach, in the table's order
        self.entries = {n: entries[n] for n in entries if n in names}
        if "float" not in self.entries:
            raise ValueError("results must hold the 'float' entry")
        if config is not None:
            self.n_weights = lq.linear_weights(config)
        elif "linear_weights" in self.results:
            self.n_weights = int(self.results["linear_weights"])
        else:
            raise ValueError(
                "results must hold 'linear_weights' (tools/llm_results.py writes "
                "it), or give config=model.config"
            )
        self.controls = {
            "method": widgets.ToggleButtons(
                options=METHODS, value=method, description="format"
            ),
            "bits": widgets.ToggleButtons(options=BITS, value=bits, description="bits"),
            "group": widgets.ToggleButtons(
                options=GROUPS, value=group, description="scale per"
            ),
            "symmetric": widgets.ToggleButtons(
                options=(("asymmetric", False), ("symmetric", True)),
                value=bool(symmetric),
                description="codes",
            ),
        }
        for control in self.controls.values():
            control.style.button_width = "auto"
        self.view = _png_view()
        self.fig, (self.ax, self.ax_text) = new_figure(
            2, 1, figsize=(7.2, 4.8), gridspec_kw={"height_ratios": [4.0, 0.7]}
        )
        self._panels()
        self.moving = [self.ring, self.ax.title, self.text]
        self._finish()

    def _panels(self) -> None:
        ax, float_ppl = self.ax, self.entries["float"]["perplexity"]
        styles = {
            "rtn-asym": ("o", COLORS["blue"], "round to nearest, asymmetric"),
            "rtn-sym": ("o", COLORS["sky"], "round to nearest, symmetric"),
            "awq": ("s", COLORS["green"], "AWQ"),
            "gptq": ("D", COLORS["orange"], "GPTQ"),
            "format": ("^", COLORS["purple"], "FP8 E4M3, MXFP4, NVFP4"),
            "float": ("*", COLORS["black"], "float (Q4_1 dequantized)"),
        }
        for kind, (marker, color, label) in styles.items():
            points = [
                (e["bits_per_weight"], e["perplexity"])
                for n, e in self.entries.items()
                if _kind(n) == kind
            ]
            if points:
                x, y = zip(*points, strict=True)
                ax.plot(x, y, marker, color=color, ms=6, ls="", label=label)
        ax.axhline(float_ppl, color=COLORS["black"], ls=":", lw=1)
        ppl = [e["perplexity"] for e in self.entries.values()]
        bpw = [e["bits_per_weight"] for e in self.entries.values()]
        ax.set(
            yscale="log", xlim=(min(bpw) - 0.4, max(bpw) + 0.4),
            ylim=(min(ppl) / 1.6, max(ppl) * 2.5),
            xlabel=f"bits per weight (of the {self.n_weights / 1e6:.1f} M weights of "
            "the linear layers)",
            ylabel="perplexity (evaluation text)",
        )  # fmt: skip
        (self.ring,) = ax.plot(
            [], [], "o", ms=15, mfc="none", mec=COLORS["vermillion"], mew=2,
            label="your choice",
        )  # fmt: skip
        ax.legend(fontsize=7, loc="upper right", ncols=2)
        self.ax_text.set_axis_off()
        prompt = self.results.get("prompt")
        head = f'greedy continuation of "{prompt}"' if prompt else "(no prompt)"
        self.ax_text.text(
            0, 1, head, va="top", fontsize=9, transform=self.ax_text.transAxes,
            parse_math=False,
        )  # fmt: skip
        self.text = self.ax_text.text(
            0, 0.62, "", va="top", fontsize=9, color=COLORS["blue"],
            transform=self.ax_text.transAxes, parse_math=False,
        )  # fmt: skip

    def _redraw(self) -> None:
        c = {k: w.value for k, w in self.controls.items()}
        for k in ("bits", "group", "symmetric"):
            self.controls[k].disabled = c["method"] not in INTEGER
        name = entry_name(c["method"], c["bits"], c["group"], c["symmetric"])
        self.name = name = name if name in self.entries else None
        float_ppl = self.entries["float"]["perplexity"]
        if name is None:
            self.perplexity = self.bits_per_weight = self.megabytes = None
            self.continuation = None
            self.ring.set_data([], [])
            self.ax.set_title(self._missing(c), fontsize=9)
            self.text.set_text("")
            return
        e = self.entries[name]
        self.perplexity, self.bits_per_weight = e["perplexity"], e["bits_per_weight"]
        self.megabytes = self.n_weights * self.bits_per_weight / 8e6
        self.continuation = e.get("continuation")
        self.ring.set_data([self.bits_per_weight], [self.perplexity])
        what = e["weights"] if e["method"] in ("format", "float") else (
            f"{e['method']}, {e['weights']}"
        )  # fmt: skip
        smaller = 16 / self.bits_per_weight
        self.ax.set_title(
            f"{what}: perplexity {_number(self.perplexity)} (float {float_ppl:.5g})\n"
            f"{self.bits_per_weight:.4g} bits per weight, {self.megabytes:.1f} MB "
            f"({smaller:.1f}x smaller than fp16)",
            fontsize=9,
        )
        if self.continuation is None:
            self.text.set_text("(no continuation in the table)")
        else:  # a newline shows as a symbol; lines of at most 100 characters
            shown = "\u2026" + self.continuation.replace("\n", " \u21b5 ")
            self.text.set_text(textwrap.fill(shown, 100))

    def _missing(self, c: dict) -> str:
        kind = "sym" if c["symmetric"] else "asym"
        where = f"g{c['group']}" if isinstance(c["group"], int) else c["group"]
        label = dict((v, k) for k, v in METHODS)[c["method"]]
        held = [
            e["weights"].split(",")[0]
            for n, e in self.entries.items()
            if _kind(n).startswith(c["method"])
        ]
        same = [w for w in held if w.startswith(f"int{c['bits']} ")]
        return (
            f"{label}, int{c['bits']} {kind} {where}: not in the table\n"
            f"{label} is measured at {', '.join(same or held)}"
        )


def _number(x: float) -> str:
    """Five significant digits, written out in full when large (4,074,000)."""
    return f"{x:.5g}" if x < 1e5 else f"{x:,.0f}"


def _kind(name: str) -> str:
    """How :class:`FormatExplorer` draws an entry of the table."""
    if name == "float":
        return "float"
    if name.startswith(("awq", "gptq")):
        return name.split("-")[0]
    if name.startswith(("rtn", "w8")):
        return "rtn-asym" if name.endswith("-asym") else "rtn-sym"
    return "format"

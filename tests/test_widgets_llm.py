"""Chapter 10's explorers driven without a browser (qlib.widgets.llm).

FormatExplorer shows the committed table: every number it shows is checked
against the table's entry, found here by the table's own fields (weights
only, calibrated on windows) and names parsed independently of
``entry_name``; the sizes against the linear layers counted by hand from
SmolLM2-135M's architecture.  SmoothingExplorer is checked against
SmoothQuant's scales and an int8 quantizer written out here.  Only the last
test loads the model (and fails, never skips, without it).
"""

from __future__ import annotations

import copy
import re

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

from qlib import llm, widgets
from qlib import llmquant as lq
from qlib.widgets import llm as wl

# SmolLM2-135M: 30 blocks, d 576, 9 query and 3 key/value heads of 64, d_ff 1536
CONFIG = llm.Config(30, 576, 9, 3, 64, 1536, 49152, 8192, 1e5, 1e-5, True, 2)
LINEAR = 30 * (2 * 576 * 576 + 2 * 576 * 192 + 3 * 576 * 1536)  # 106,168,320


@pytest.fixture(scope="module")
def results():
    return lq.load_results()


@pytest.fixture(scope="module")
def fmt():
    return widgets.FormatExplorer(config=CONFIG)


def controls_of(name: str) -> dict:
    """The control values that show entry ``name``, parsed from the name."""
    if m := re.fullmatch(r"rtn-w(\d)-(g\d+|channel)-(sym|asym)", name):
        bits, where, kind = m.groups()
        return {"method": "rtn", "bits": int(bits), "group": where, "sym": kind}
    if m := re.fullmatch(r"w8-(channel|tensor)", name):
        return {"method": "rtn", "bits": 8, "group": m[1], "sym": "sym"}
    if m := re.fullmatch(r"(awq|gptq)-w(\d)-(g\d+|channel)", name):
        method, bits, where = m.groups()
        return {"method": method, "bits": int(bits), "group": where, "sym": "asym"}
    return {"method": name}


def set_controls(ex, values: dict) -> None:
    c = ex.controls
    c["method"].value = values["method"]
    if "bits" in values:
        g = values["group"]
        c["bits"].value = values["bits"]
        c["group"].value = int(g[1:]) if g.startswith("g") else g
        c["symmetric"].value = values["sym"] == "sym"


def test_the_controls_reach_every_weight_only_entry(results):
    """Weight-only entries (float activations and KV cache) calibrated on
    windows: 22 round-to-nearest, 2 AWQ, 4 GPTQ, 3 formats and the float
    model; the two calibrated on one window are the chapter's aside."""
    wanted = {
        n
        for n, e in results["entries"].items()
        if e.get("activations") == "float"
        and e.get("kv_cache") == "float"
        and e["method"] != "KV cache"
        and not e.get("calibration", "").startswith("one window")
    }
    ex = widgets.FormatExplorer(config=CONFIG, results=results)
    assert set(ex.entries) == wanted and len(wanted) == 32
    for name in wanted:
        v = controls_of(name)
        if "bits" in v:
            g = v["group"]
            g = int(g[1:]) if g.startswith("g") else g
            assert wl.entry_name(v["method"], v["bits"], g, v["sym"] == "sym") == name


def test_every_entry_shows_the_table(fmt, results):
    float_ppl = results["entries"]["float"]["perplexity"]
    for name, e in results["entries"].items():
        if name not in fmt.entries:
            continue
        set_controls(fmt, controls_of(name))
        assert fmt.name == name
        assert (fmt.perplexity, fmt.bits_per_weight) == (
            e["perplexity"],
            e["bits_per_weight"],
        )
        assert fmt.megabytes == pytest.approx(LINEAR * e["bits_per_weight"] / 8e6)
        assert list(fmt.ring.get_data()[0]) == [e["bits_per_weight"]]
        assert list(fmt.ring.get_data()[1]) == [e["perplexity"]]
        title = fmt.ax.get_title()
        ppl = e["perplexity"]
        shown = f"{ppl:.5g}" if ppl < 1e5 else f"{round(ppl):,d}"
        assert f"perplexity {shown} (float {float_ppl:.5g})" in title
        assert f"{fmt.megabytes:.1f} MB" in title and e["weights"] in title
        integer = controls_of(name)["method"] in ("rtn", "awq", "gptq")
        assert fmt.controls["bits"].disabled is not integer
        assert fmt.controls["group"].disabled is not integer


def test_int4_g128_round_to_nearest_in_mb(fmt):
    set_controls(fmt, controls_of("rtn-w4-g128-asym"))
    # 4 bits, one fp16 scale and a 4-bit zero point per 128 inputs; 576 and
    # 1536 inputs hold 4.5 and 12 groups: the short last group counts whole
    assert fmt.megabytes == pytest.approx(55.33, abs=0.01)
    assert "3.8x smaller than fp16" in fmt.ax.get_title()
    assert "106.2 M weights" in fmt.ax.get_xlabel()


@pytest.mark.parametrize(
    ("values", "measured"),
    [
        (("awq", 4, 32, False), "AWQ is measured at int4 asym g128"),
        (("awq", 2, 128, False), "int4 asym g128, int3 asym g128"),
        (("gptq", 3, 128, True), "int3 asym g128, int3 asym per channel"),
        (("rtn", 8, 32, False), "int8 sym per channel, int8 sym per tensor"),
        (("rtn", 2, "tensor", True), "int2 sym g32, int2 asym g32"),
    ],
)
def test_a_choice_not_in_the_table_says_so(fmt, values, measured):
    set_controls(fmt, {"method": "float"})
    c = fmt.controls
    for key, value in zip(
        ("method", "bits", "group", "symmetric"), values, strict=True
    ):
        c[key].value = value
    assert fmt.name is None and fmt.perplexity is None and fmt.megabytes is None
    assert "not in the table" in fmt.ax.get_title()
    assert measured in fmt.ax.get_title()
    assert len(fmt.ring.get_xdata()) == 0 and fmt.text.get_text() == ""
    assert fmt.view.value  # a frame, no error


def test_the_greedy_continuation_of_the_prompt(results):
    """The table's ``prompt`` and each weight-only entry's ``continuation``
    (``tools/llm_results.py``); a table without them says so."""
    t = copy.deepcopy(results)
    t["prompt"] = "Once upon a time, a little robot"
    t["entries"]["nvfp4"]["continuation"] = " named Bolt.\nHe beeped."
    ex = widgets.FormatExplorer("nvfp4", config=CONFIG, results=t)
    assert ex.continuation == " named Bolt.\nHe beeped."
    assert ex.text.get_text() == "\u2026 named Bolt. \u21b5 He beeped."
    static = [x.get_text() for x in ex.ax_text.texts if x is not ex.text]
    assert static == ['greedy continuation of "Once upon a time, a little robot"']
    del t["entries"]["nvfp4"]["continuation"]
    ex.controls["method"].value = "float"
    ex.controls["method"].value = "nvfp4"
    assert ex.text.get_text() == "(no continuation in the table)"
    assert results["prompt"] == "Once upon a time, a little robot"
    for name in ex.entries:  # every weight-only entry of the committed table
        assert results["entries"][name]["continuation"].strip(), name


def test_format_explorer_rejects_bad_arguments():
    with pytest.raises(ValueError, match="method must be one of rtn, awq"):
        widgets.FormatExplorer("int4", config=CONFIG)
    with pytest.raises(ValueError, match="bits must be one of 8, 4, 3, 2"):
        widgets.FormatExplorer(bits=5, config=CONFIG)
    with pytest.raises(ValueError, match="group must be one of 32, 64, 128"):
        widgets.FormatExplorer(group=16, config=CONFIG)
    with pytest.raises(TypeError, match="symmetric must be True or False"):
        widgets.FormatExplorer(symmetric="yes", config=CONFIG)
    with pytest.raises(ValueError, match="results must hold 'entries'"):
        widgets.FormatExplorer(config=CONFIG, results={})
    with pytest.raises(ValueError, match="results must hold the 'float' entry"):
        widgets.FormatExplorer(config=CONFIG, results={"entries": {}})


def test_the_linear_weights_counted_from_the_architecture(results):
    """``lq.linear_weights`` against the count by hand; without ``config`` the
    explorer takes the table's count, the same number; with neither it says
    so."""
    assert lq.linear_weights(CONFIG) == LINEAR
    assert results["linear_weights"] == LINEAR
    assert widgets.FormatExplorer().n_weights == LINEAR
    t = {k: v for k, v in results.items() if k != "linear_weights"}
    with pytest.raises(ValueError, match="results must hold 'linear_weights'"):
        widgets.FormatExplorer(results=t)


# ------------------------------------------------------------ SmoothQuant


def planted(tokens: int = 48, channels: int = 24, outputs: int = 10):
    """Activations with one outlier, as SmolLM2's: channel 7 of the first
    token (an attention sink) is 500; a weight."""
    rng = np.random.default_rng(16)
    X = rng.standard_normal((tokens, channels)).astype(np.float32)
    X[0, 7] = 500
    W = (rng.standard_normal((outputs, channels)) / 4).astype(np.float32)
    return X, W


def int8_sqnr_median(X, W, s) -> float:
    """Median over tokens of the int8 output's SQNR: X / s per tensor and
    W s per row, symmetric, max / 127 steps, round to nearest (float64)."""
    x, w = X.astype(np.float64) / s, W.astype(np.float64) * s
    step = np.abs(x).max() / 127
    x_q = np.clip(np.round(x / step), -127, 127) * step
    rows = np.abs(w).max(axis=1, keepdims=True) / 127
    w_q = np.clip(np.round(w / rows), -127, 127) * rows
    y = X.astype(np.float64) @ W.T.astype(np.float64)
    noise = np.sum((x_q @ w_q.T - y) ** 2, axis=1)
    return float(np.median(10 * np.log10(np.sum(y**2, axis=1) / noise)))


def test_smoothing_moves_the_maxima_between_activations_and_weights():
    X, W = planted()
    ex = widgets.SmoothingExplorer(X, W, alpha=0.0)
    xm, wm = np.abs(X).max(axis=0), np.abs(W).max(axis=0)
    for alpha in (0.0, 0.25, 0.5, 0.85, 1.0):
        ex.controls["alpha"].value = alpha
        s = xm.astype(np.float64) ** alpha / wm.astype(np.float64) ** (1 - alpha)
        np.testing.assert_allclose(ex.x_line.get_ydata(), xm / s, rtol=2e-6)
        np.testing.assert_allclose(ex.w_line.get_ydata(), wm * s, rtol=2e-6)
        for key, m in (("x", xm / s), ("w", wm * s)):
            ratio = m.max() / np.median(m)
            assert ex.difficulty[key] == pytest.approx((ratio, 127 / ratio), 1e-5)
    ex.controls["alpha"].value = 0.5  # both maxima sqrt(max|X_j| max|W_j|)
    np.testing.assert_allclose(ex.x_smoothed, np.sqrt(xm * wm), rtol=2e-6)
    np.testing.assert_allclose(ex.w_smoothed, np.sqrt(xm * wm), rtol=2e-6)
    ex.controls["alpha"].value = 1.0  # every activation channel's maximum 1
    np.testing.assert_allclose(ex.x_smoothed, 1, rtol=2e-6)
    assert ex.difficulty["x"] == pytest.approx((1, 127))
    assert "median channel: 127 int8 steps" in ex.notes[0].get_text()


def test_the_output_sqnr_against_int8_written_out():
    X, W = planted()
    ex = widgets.SmoothingExplorer(X, W)
    xm, wm = np.abs(X).max(axis=0), np.abs(W).max(axis=0)
    for k, alpha in enumerate(np.arange(21) * 0.05):
        s = xm.astype(np.float64) ** alpha / wm.astype(np.float64) ** (1 - alpha)
        assert ex.sqnr["alpha"][k] == pytest.approx(int8_sqnr_median(X, W, s), abs=1e-3)
    ones = np.ones(X.shape[1])
    assert ex.sqnr["tensor"] == pytest.approx(int8_sqnr_median(X, W, ones), abs=1e-3)
    ex.controls["alpha"].value = 0.35
    assert ex.alpha == 0.35 and ex.output_sqnr == ex.sqnr["alpha"][7]
    assert list(ex.dot.get_data()[0]) == [0.35]
    assert ex.note_e.get_text() == f"alpha 0.35: {ex.sqnr['alpha'][7]:.1f} dB"
    # the outlier takes the per-tensor step: every other token rounds to 0
    # (0 dB); smoothing gives 17.4 dB back at alpha 0.55
    assert ex.sqnr["tensor"] == 0
    assert ex.sqnr["alpha"].max() > ex.sqnr["tensor"] + 10


def test_smoothing_explorer_from_a_model_reads_the_group():
    """The toy model's input of block 1's query, key and value, against
    qlib.llmquant.input_absmax (each window its own forward pass)."""
    toy = lq.toy_model()
    windows = lq.token_windows(np.random.default_rng(1).integers(0, 256, 100), 40)
    ex = widgets.SmoothingExplorer.from_model(
        toy, 1, "attn_v", token_ids=windows, tokens=50
    )
    assert ex.label == "layer 1, input of attn_q, attn_k, attn_v"
    np.testing.assert_array_equal(
        ex.x_absmax, lq.input_absmax(toy, windows)[1, "attn_q"]
    )
    assert ex.X.shape == (50, 64)
    w = toy.layers[1]
    np.testing.assert_array_equal(
        ex.W, np.concatenate([w["attn_q"], w["attn_k"], w["attn_v"]])
    )
    assert int(ex.x_absmax.argmax()) == 5  # the toy's outlier channel
    # the same explorer from inputs already captured (the model is not run)
    captured = lq.capture_inputs(toy, windows, layers=[1])
    again = widgets.SmoothingExplorer.from_model(
        toy, 1, "attn_v", tokens=50, captured=captured
    )
    for name in ("X", "W", "x_absmax"):
        np.testing.assert_array_equal(getattr(again, name), getattr(ex, name))
    assert again.view.value == ex.view.value
    with pytest.raises(ValueError, match="captured must hold the inputs of layer 0"):
        widgets.SmoothingExplorer.from_model(toy, 0, "attn_q", captured=captured)
    with pytest.raises(
        ValueError, match=r"captured\[1, 'attn_q'\] must be \(tokens, 64\)"
    ):
        widgets.SmoothingExplorer.from_model(
            toy, 1, "attn_q", captured={(1, "attn_q"): np.ones((3, 5))}
        )
    with pytest.raises(ValueError, match=r"layer must be in \[0, 1\]"):
        widgets.SmoothingExplorer.from_model(toy, 2, "attn_q", token_ids=[1, 2])
    with pytest.raises(ValueError, match="input_of must be one of attn_q"):
        widgets.SmoothingExplorer.from_model(toy, 0, "ffn", token_ids=[1, 2])
    with pytest.raises(TypeError, match="layer and input_of must be given together"):
        widgets.SmoothingExplorer.from_model(toy, 0)
    with pytest.raises(ValueError, match=r"tokens must be in \[1, "):
        widgets.SmoothingExplorer.from_model(toy, 0, "attn_q", token_ids=[1], tokens=0)


def test_the_default_layer_is_the_tables_strongest_outlier(results):
    rows = results["entries"]["outliers"]["layers"]
    ratios = {(r["layer"], r["input_of"]): r["max"] / r["median"] for r in rows}
    assert (
        wl.strongest_outlier(results) == max(ratios, key=ratios.get) == (11, "ffn_down")
    )
    t = copy.deepcopy(results)
    t["entries"]["outliers"]["layers"][5]["max"] = 1e9
    row = t["entries"]["outliers"]["layers"][5]
    assert wl.strongest_outlier(t) == (row["layer"], row["input_of"])


def test_smoothing_explorer_rejects_bad_arguments():
    X, W = planted()
    with pytest.raises(
        ValueError, match=r"W must have one column per channel of X \(24\)"
    ):
        widgets.SmoothingExplorer(X, W[:, :5])
    with pytest.raises(ValueError, match="X must be a 2-D array"):
        widgets.SmoothingExplorer(X[0], W)
    with pytest.raises(ValueError, match="W must be a 2-D array of finite numbers"):
        widgets.SmoothingExplorer(X, np.full_like(W, np.nan))
    with pytest.raises(TypeError, match="X and W must be given together"):
        widgets.SmoothingExplorer(X)
    with pytest.raises(ValueError, match=r"alpha must be in \[0, 1\]"):
        widgets.SmoothingExplorer(X, W, alpha=1.5)
    with pytest.raises(TypeError, match="alpha must be a real number"):
        widgets.SmoothingExplorer(X, W, alpha="0.5")
    with pytest.raises(ValueError, match="x_absmax must be 24 finite maxima >= 0"):
        widgets.SmoothingExplorer(X, W, x_absmax=-np.ones(24))


def test_both_explorers_carry_a_static_copy():
    import base64

    for ex in (widgets.SmoothingExplorer(), widgets.FormatExplorer(config=CONFIG)):
        bundle = ex._repr_mimebundle_()
        assert base64.b64decode(bundle["image/png"]) == ex.view.value
        assert "application/vnd.jupyter.widget-view+json" in bundle


def test_smoothing_explorer_on_the_real_model(llm_model, results):
    """SmolLM2-135M's layer 11 ffn_down, the notebook's explorer: its
    outlier channel is the table's; per-tensor int8 activations leave the
    median token nothing (0 dB: it rounds to zero), smoothing at alpha
    0.8 gives back 11.6 dB, per-token int8 32.7 dB."""
    ex = widgets.SmoothingExplorer.from_model(llm_model)
    rows = results["entries"]["outliers"]["layers"]
    row = next(r for r in rows if (r["layer"], r["input_of"]) == (11, "ffn_down"))
    assert ex.label == "layer 11, input of ffn_down"
    assert ex.X.shape == (256, 1536)
    np.testing.assert_array_equal(ex.W, llm_model.layers[11]["ffn_down"])
    assert int(ex.x_absmax.argmax()) == row["channel"]
    assert ex.sqnr["tensor"] < 0.1
    best = int(ex.sqnr["alpha"].argmax())
    assert 0.7 <= best * 0.05 <= 0.9 and ex.sqnr["alpha"][best] > 10
    assert ex.sqnr["token"] > ex.sqnr["alpha"][best] + 15

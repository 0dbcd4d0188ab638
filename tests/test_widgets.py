"""Explorers driven without a browser: set a control, check state and artists."""

from __future__ import annotations

import base64

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

from qlib import integers, widgets


def png_of(explorer) -> bytes:
    return explorer.view.value


def test_levels_demo_redraws_on_slider():
    demo = widgets.LevelsDemo(bits=3)
    before = png_of(demo)
    assert len(np.unique(demo.x_q)) <= 8
    demo.controls["bits"].value = 1
    assert sorted(np.unique(demo.x_q).tolist()) == [-1.0, 0.0]
    assert np.array_equal(demo.line.get_ydata(), demo.x_q)
    assert "1 bit: 2 levels" in demo.ax.get_title()
    assert png_of(demo) != before
    demo.controls["bits"].value = 8
    assert np.max(np.abs(demo.x_q - demo.x)) <= 2**-8  # half a step of 2**-7


def test_bit_flipper_every_scheme_at_once():
    flipper = widgets.BitFlipper(bits=8, code=0)
    assert flipper.values == dict.fromkeys(integers.SCHEMES, 0) | {
        "offset_binary": -128
    }
    flipper.controls["bit7"].value = True  # only the top bit
    assert flipper.code == 0x80
    assert flipper.values == {
        "unsigned": 128,
        "sign_magnitude": 0,
        "ones_complement": -127,
        "twos_complement": -128,
        "offset_binary": 0,
    }
    assert flipper.controls["bit7"].description == "1"
    assert "10000000" in flipper.view.value and "-128" in flipper.view.value


def test_bit_flipper_set_code_matches_decode():
    flipper = widgets.BitFlipper(bits=5)
    for code in range(32):
        flipper.set_code(code)
        assert flipper.code == code
        for scheme, value in flipper.values.items():
            assert value == integers.decode(code, 5, scheme)


def test_bit_flipper_rejects_bad_code():
    with pytest.raises(ValueError, match="codes must be in"):
        widgets.BitFlipper(bits=4, code=16)


def test_number_wheel_overflow_and_sliders():
    wheel = widgets.NumberWheel(bits=4, a=7, b=2)
    assert (wheel.true_sum, wheel.wrapped, wheel.saturated) == (9, -7, 7)
    assert "overflows" in wheel.ax.get_title()
    x_end, y_end = wheel.end.get_data()
    angle = np.arctan2(y_end[0], x_end[0])
    code = int(integers.encode(-7, 4, "twos_complement"))
    assert np.isclose(
        angle % (2 * np.pi), (np.pi / 2 - 2 * np.pi * code / 16) % (2 * np.pi)
    )
    wheel.controls["b"].value = -3
    assert (wheel.true_sum, wheel.wrapped) == (4, 4) and "fits" in wheel.ax.get_title()
    wheel.controls["bits"].value = 3  # a = 7 no longer fits: clamped to 3
    assert wheel.controls["a"].value == 3 and wheel.controls["a"].min == -4
    assert len(wheel.dots.get_xdata()) == 8
    assert wheel.controls["b"].max == 8


def test_static_copy_travels_with_the_widget():
    wheel = widgets.NumberWheel()
    bundle = wheel._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert base64.b64decode(bundle["image/png"]) == wheel.view.value
    flipper = widgets.BitFlipper(bits=4)
    assert flipper._repr_mimebundle_()["text/html"] == flipper.view.value


# ------------------------------------------------------------------ chapter 01


def test_sampling_explorer_follows_both_sliders():
    from qlib import signals

    ex = widgets.SamplingExplorer(bits=3, rate=40)
    assert len(ex.samples.get_xdata()) == 40
    before = png_of(ex)
    ex.controls["rate"].value = 100
    assert len(ex.samples.get_xdata()) == 100 and len(ex.e) == 100
    ex.controls["bits"].value = 6
    delta = signals.step(6)
    assert np.abs(ex.e).max() <= delta / 2
    assert np.array_equal(ex.err.get_ydata(), ex.e / delta)  # drawn in steps
    assert np.array_equal(ex.x_q, signals.quantize_uniform(ex.x, 6))
    stairs = ex.hist.get_data()
    assert np.isclose(np.sum(stairs.values * np.diff(stairs.edges)), 1.0)  # a density
    assert png_of(ex) != before


def test_image_bit_depth_slider():
    ex = widgets.ImageBitDepth(bits=8)
    ex.controls["bits"].value = 2
    assert len(np.unique(ex.shown)) <= 4
    assert np.array_equal(ex.im.get_array(), ex.shown)
    assert "2 bits: 4 levels/channel" in ex.ax_b.get_title()


def test_companding_explorer_level_and_bits():
    ex = widgets.CompandingExplorer(bits=8, level_db=-40)
    assert ex.sqnr_mu - ex.sqnr_linear >= 10
    ex.controls["level_db"].value = 0
    assert ex.sqnr_linear > ex.sqnr_mu  # near full scale linear wins
    _, y_lin = ex.curve_lin.get_data()
    ex.controls["bits"].value = 10
    assert not np.array_equal(ex.curve_lin.get_data()[1], y_lin)
    assert np.allclose(ex.mark.get_data()[0], 0)


# -------------------------------------------------------------- chapters 04-05


def test_float_explorer_typing_clicking_and_switching():
    from qlib.floats import FORMATS

    ex = widgets.FloatExplorer(fmt="bf16", value="0.1")
    assert ex.code == int(FORMATS["bf16"].encode(0.1)) and ex.value == 0.10009765625
    assert "".join(b.description for b in ex.buttons) == ex.pattern
    assert "rounding error" in ex.view.value and "0.1000976562" in ex.view.value
    ex.controls["value"].value = "-2.5"
    assert ex.code == 0xC020 and ex.pattern.startswith("1")
    ex.buttons[0].value = False  # the sign bit
    assert ex.value == 2.5 and ex.controls["value"].value == "2.5"
    ex.controls["format"].value = "fp8_e4m3fn"
    assert len(ex.buttons) == 8 and ex.value == 2.5
    ex.controls["value"].value = "1000"
    assert np.isnan(ex.value) and "nan" in ex.view.value
    ex.controls["format"].value = "fp64"
    assert len(ex.buttons) == 64 and ex.value == 1000.0
    ex.controls["value"].value = "not a number"
    assert "cannot read" in ex.view.value


def test_format_histogram_follows_format_and_data():
    ex = widgets.FormatHistogram(fmt="fp8_e4m3fn", distribution="normal")
    fp8 = ex.sqnr
    ex.controls["format"].value = "fp4_e2m1fn"
    assert ex.sqnr < fp8 - 10  # two mantissa bits fewer: about 12 dB
    ex.controls["format"].value = "bf16"
    assert ex.sqnr > fp8
    ex.controls["distribution"].value = "outliers"
    assert "outliers" in ex.ax.get_title()


# ------------------------------------------- frames: a kept picture, never stale

FIGURE_EXPLORERS = {
    "LevelsDemo": {"bits": [1, 5, 8, 2]},
    "NumberWheel": {"bits": [3, 5, 2, 4], "a": [-2, 1], "b": [7, -9, 0]},
    "SamplingExplorer": {"bits": [1, 12, 2, 7], "rate": [5, 200, 35]},
    "ImageBitDepth": {"bits": [1, 8, 4]},
    "CompandingExplorer": {"level_db": [-70, 0, -23], "bits": [4, 12, 7]},
    "FormatHistogram": {
        "format": ["fp4_e2m1fn", "bf16", "fp6_e3m2fn"],
        "distribution": ["outliers", "laplace", "normal"],
    },
}


def test_every_figure_explorer_is_exercised_here():
    import ipywidgets

    figures = {
        name
        for name in widgets.__all__
        if name != "Explorer"
        and issubclass(cls := getattr(widgets, name), widgets.Explorer)
        and isinstance(cls().view, ipywidgets.Image)
    }
    assert figures == set(FIGURE_EXPLORERS)


@pytest.mark.parametrize("kind", sorted(FIGURE_EXPLORERS))
def test_a_frame_equals_the_figure_drawn_afresh(kind):
    """Each frame pastes a kept picture under the moving artists; an artist
    that changes but is not listed as moving would leave a stale picture.
    After every move, the frame must equal the one drawn from scratch."""
    ex = getattr(widgets, kind)()
    moves = [(n, v) for n, values in FIGURE_EXPLORERS[kind].items() for v in values]
    assert {n for n, _ in moves} == set(ex.controls)
    fast = 0
    for name, value in moves:
        redraws = ex.layers.redraws
        ex.controls[name].value = value
        frame = png_of(ex)
        fast += ex.layers.redraws == redraws
        ex.layers.invalidate()
        assert ex.layers.png() == frame, f"{kind}: stale picture after {name}={value}"
    assert fast > 0, f"{kind}: every frame drew the whole figure"

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

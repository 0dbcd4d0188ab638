"""Explorers driven without a browser: set a control, check state and artists."""

from __future__ import annotations

import base64
import math
import re
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

from qlib import integers, widgets

sys.path.insert(0, str(Path(__file__).resolve().parent))

from explorer_cells import EXPLORERS, explorer_parts


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
    assert "10000000" in flipper.view.value and "−128" in flipper.view.value


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


def test_bit_flipper_steps_are_the_unsigned_counter():
    """+1 and -1 count modulo 2**bits, against Python integers; every scheme
    reads the new code as decode does."""
    flipper = widgets.BitFlipper(bits=8, code=250)
    code = 250
    for step in [+1] * 10 + [-1] * 20 + [+1] * 3:
        flipper.steps[f"{step:+d}"].click()
        wrapped = not 0 <= code + step < 256
        code = (code + step) % 256
        assert flipper.code == code
        assert flipper.values == {
            s: int(integers.decode(code, 8, s)) for s in integers.SCHEMES
        }
        assert ("wrapped around" in flipper.view.value) == wrapped
        assert f"<code>{code:08b}</code>" in flipper.view.value
    flipper.set_code(0xFF)
    flipper.steps["+1"].click()
    assert flipper.code == 0 and "0xFF → 0x00" in flipper.note
    flipper.controls["bit0"].value = True  # a bit toggled by hand: no note
    assert flipper.code == 1 and flipper.note == ""


@pytest.mark.parametrize("bits", [1, 2, 5, 8])
def test_bit_flipper_weights_add_up_to_every_value(bits):
    flipper = widgets.BitFlipper(bits=bits)
    top = 2 ** (bits - 1)
    powers = [2**i for i in range(bits - 1, -1, -1)]
    assert flipper.weights["unsigned"] == powers
    assert flipper.weights["twos_complement"] == [-top, *powers[1:]]
    assert flipper.weights["ones_complement"] == [-(top - 1), *powers[1:]]
    assert flipper.weights["offset_binary"] == powers
    assert flipper.weights["sign_magnitude"] == ["±", *powers[1:]]
    assert flipper.bias == dict.fromkeys(integers.SCHEMES, 0) | {"offset_binary": -top}
    for code in range(2**bits):
        flipper.set_code(code)
        on = [code >> i & 1 for i in range(bits - 1, -1, -1)]
        for scheme in (
            "unsigned",
            "twos_complement",
            "ones_complement",
            "offset_binary",
        ):
            total = sum(
                w for w, b in zip(flipper.weights[scheme], on, strict=True) if b
            )
            assert flipper.values[scheme] == flipper.bias[scheme] + total
        magnitude = sum(w for w, b in zip(powers[1:], on[1:], strict=True) if b)
        assert flipper.values["sign_magnitude"] == (-magnitude if on[0] else magnitude)


def test_bit_flipper_table_shows_weights_and_sums():
    flipper = widgets.BitFlipper(bits=8, code=0x81)
    html = flipper.view.value
    assert html.count("<table>") == 1
    for text in ("−128 + 1", "−127 + 1", "128 + 1 − 128", "−(1)", "<b>−127</b>"):
        assert text in html, text


def adder_by_hand(a: int, b: int, bits: int) -> dict:
    """An n-bit adder's carries and flags from Python's integers: the codes are
    a and b modulo 2**n; a column's carry in is its bit of sum XOR a XOR b."""
    ca, cb = a % 2**bits, b % 2**bits
    total = ca + cb
    carries = [(total ^ ca ^ cb) >> i & 1 for i in range(bits + 1)]
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    b_wrapped = (b - lo) % 2**bits + lo  # b's low bits read as two's complement
    return {
        "carries": carries,
        "carry_in": carries[bits - 1],
        "carry_out": int(total >= 2**bits),
        # V: the signed sum of the two words leaves the range
        "overflow_flag": int(not lo <= a + b_wrapped <= hi),
        "code_sum": total % 2**bits,
    }


def test_number_wheel_flags_match_python_integers_everywhere():
    wheel = widgets.NumberWheel()
    for bits in wheel.sizes:
        lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
        for a in range(lo, hi + 1):
            for b in range(-(2**bits), 2**bits + 1):
                wheel._add_codes(a, b, bits)
                want = adder_by_hand(a, b, bits)
                got = {k: getattr(wheel, k) for k in want if k != "carries"}
                assert got == {k: v for k, v in want.items() if k != "carries"}
                row = wheel.adder.get_text().splitlines()[0].split()[1]
                assert row == "".join(map(str, reversed(want["carries"])))
                if lo <= b <= hi:  # b is a word: V is exactly the true overflow
                    assert wheel.overflow_flag == (not lo <= a + b <= hi)


def test_number_wheel_flags_follow_the_sliders():
    wheel = widgets.NumberWheel(bits=4, a=5, b=4)
    for bits, a, b in [
        (4, 5, 4),
        (4, -1, 1),
        (4, 7, 1),
        (4, -8, -1),
        (3, 3, -8),
        (5, -16, -16),
        (2, 1, 3),
        (5, 15, 16),
    ]:
        wheel.controls["bits"].value = bits
        wheel.controls["a"].value = a
        wheel.controls["b"].value = b
        assert (wheel.controls["a"].value, wheel.controls["b"].value) == (a, b)
        want = adder_by_hand(a, b, bits)
        assert (wheel.carry_in, wheel.carry_out, wheel.overflow_flag) == (
            want["carry_in"],
            want["carry_out"],
            want["overflow_flag"],
        )
        text = wheel.adder.get_text()
        assert f"C = {want['carry_out']} (carry out)" in text
        assert f"= {want['overflow_flag']}" in text.splitlines()[7]
        assert ("wraps to" in text) == (not -(2 ** (bits - 1)) <= b < 2 ** (bits - 1))
    # -1 + 1 carries out and is right; on 4 bits 7 + 1 carries nothing and overflows
    wheel.controls["bits"].value = 4
    wheel.controls["a"].value, wheel.controls["b"].value = -1, 1
    assert (wheel.carry_out, wheel.overflow_flag) == (1, 0)
    wheel.controls["a"].value = 7
    assert (wheel.carry_out, wheel.overflow_flag) == (0, 1)


def test_number_wheel_keeps_a_picture_per_word_size():
    wheel = widgets.NumberWheel(bits=4)
    assert set(wheel.kept_pictures) == set(wheel.sizes)
    drawn = {n: layers.redraws for n, layers in wheel.kept_pictures.items()}
    assert all(count == 1 for count in drawn.values())  # each drawn once, at start
    for bits in (5, 2, 3, 4, 5):
        wheel.controls["bits"].value = bits
        assert wheel.layers is wheel.kept_pictures[bits]
        assert len(wheel.dots.get_xdata()) == 2**bits
    assert {n: layers.redraws for n, layers in wheel.kept_pictures.items()} == drawn


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
    _, y_lin = ex.curve["linear"].get_data()
    ex.controls["bits"].value = 10
    assert not np.array_equal(ex.curve["linear"].get_data()[1], y_lin)
    assert np.allclose(ex.mark.get_data()[0], 0)


def test_sampling_explorer_aliases_below_the_nyquist_rate():
    from qlib import signals

    ex = widgets.SamplingExplorer(bits=8, rate=40)
    for rate, freq in [
        (10, 7.0),
        (10, 13.0),
        (12, 20.0),
        (40, 2.0),
        (16, 8.0),
        (30, 19.5),
        (2, 0.5),
        (7, 3.5),
    ]:
        ex.controls["rate"].value, ex.controls["freq"].value = rate, freq
        # |f - k f_s| for the nearest multiple, folded into [0, f_s/2]
        k = np.arange(0, 20)
        assert ex.alias == pytest.approx(np.abs(freq - k * rate).min())
        assert 0 <= ex.alias <= rate / 2
        # the samples are those of a sine at the alias, up to the sign
        at_alias = signals.sine(ex.t, ex.alias, ex.amplitude)
        assert np.allclose(ex.x, at_alias, atol=1e-9) or np.allclose(
            ex.x, -at_alias, atol=1e-9
        )
        assert np.array_equal(ex.f_alias.get_xdata(), [ex.alias])
        assert ex.nyquist.get_xdata()[0] == rate / 2
        title = ex.headline.get_text()
        if freq > rate / 2:
            assert f"the samples show {ex.alias:g} Hz" in title
            # the dashed alias passes through every sample
            t_line, y_line = ex.alias_line.get_data()
            assert np.allclose(np.interp(ex.t, t_line, y_line), ex.x, atol=2e-3)
        else:
            assert len(ex.alias_line.get_xdata()) == 0
    # the images on the frequency axis: |±f + k f_s| up to its right end
    ex.controls["rate"].value, ex.controls["freq"].value = 10, 7.0
    images = ex.images.get_xdata()[::3]
    assert images.tolist() == [3.0, 13.0, 17.0, 23.0]


def test_sampling_explorer_amplitude_and_histogram_follow_the_signal():
    from qlib import signals

    ex = widgets.SamplingExplorer(bits=3, rate=40)
    for amplitude in (0.9, 0.3, 1.0):
        ex.controls["amplitude"].value = amplitude
        assert np.abs(ex.x).max() <= amplitude and np.isclose(
            np.abs(ex.busy).max(), amplitude, atol=1e-4
        )
        assert np.abs(ex.e).max() <= signals.step(3) / 2
        stairs = ex.hist.get_data()
        assert np.isclose(np.sum(stairs.values * np.diff(stairs.edges)), 1.0)
        busy_e = (signals.quantize_uniform(ex.busy, 3) - ex.busy) / signals.step(3)
        want, _ = np.histogram(busy_e, bins=20, range=(-0.5, 0.5), density=True)
        assert np.allclose(stairs.values, want)
        # the rug marks the error of every sample shown
        assert np.array_equal(ex.rug.get_xdata(), ex.e / signals.step(3))
    ex.controls["amplitude"].value = 0.05  # inside one cell at 1 bit: a tall spike
    ex.controls["bits"].value = 1
    assert "off the scale" in ex.off_scale.get_text()
    ex.controls["amplitude"].value = 0.9
    assert ex.off_scale.get_text() == ""


def test_companding_a_law_against_the_g711_formula():
    ex = widgets.CompandingExplorer(bits=8, level_db=-40)
    A = 87.6

    def a_law_by_hand(x: float, bits: int) -> float:
        # G.711's A-law: compress, mid-rise quantizer on [-1, 1], expand
        ax, norm = min(abs(x), 1.0), 1 + math.log(A)
        if ax < 1 / A:
            y = A * ax / norm
        else:
            y = (1 + math.log(A * ax)) / norm
        delta = 2 / 2**bits
        yq = (min(math.floor(y / delta), 2 ** (bits - 1) - 1) + 0.5) * delta
        if yq * norm < 1:
            xq = yq * norm / A
        else:
            xq = math.exp(yq * norm - 1) / A
        return math.copysign(xq, x)

    for signal in ("sine", "speech"):
        ex.controls["signal"].value = signal
        for level, bits in [(-40, 8), (-12, 8), (0, 5), (-65, 12)]:
            ex.controls["level_db"].value, ex.controls["bits"].value = level, bits
            x = 10 ** (level / 20) * ex.units[signal]
            xq = np.array([a_law_by_hand(v, bits) for v in x.tolist()])
            want = 10 * math.log10(np.sum(x**2) / np.sum((xq - x) ** 2))
            assert ex.sqnr_a == pytest.approx(want, abs=1e-9)
    # the sine on the logarithmic segment: 3 * 4**n / (1 + ln A)**2 (38.2 dB
    # at 8 bits), and on the linear segment the step of Delta (1 + ln A) / A
    ex.controls["signal"].value, ex.controls["bits"].value = "sine", 8
    _, curve = ex.curve["a"].get_data()
    plateau = 10 * math.log10(3 * 4**8 / (1 + math.log(A)) ** 2)
    inner = (ex.levels_db >= -30) & (ex.levels_db <= -4)
    assert np.abs(curve[inner] - plateau).max() < 1.0
    from qlib import signals

    x = 10 ** (-50 / 20) * ex.units["sine"]  # peaks below 1/A: linear segment
    small_step = 2 / 2**8 * (1 + math.log(A)) / A
    by_step = (np.floor(x / small_step) + 0.5) * small_step
    assert np.allclose(signals.quantize_companded(x, 8, law="a"), by_step, atol=1e-12)


def test_companding_explorer_speech_overloads_near_full_scale():
    ex = widgets.CompandingExplorer(bits=8, level_db=-20, signal="speech")
    quiet = dict(ex.sqnr)
    ex.controls["level_db"].value = 0
    # the Laplacian's peaks pass full scale at 0 dBFS: every law loses > 10 dB
    assert all(ex.sqnr[law] < quiet[law] - 10 for law in quiet)
    ex.controls["signal"].value = "sine"
    assert ex.sqnr["linear"] > 45  # a full-scale sine does not clip
    for law, line in ex.curve.items():  # curves are qlib's sweep
        from qlib import signals

        q = ex._quantizer(8, law)
        assert np.array_equal(
            line.get_data()[1], signals.sqnr_vs_level(ex.units["sine"], ex.levels_db, q)
        )
    with pytest.raises(ValueError, match="signal must be one of"):
        widgets.CompandingExplorer(signal="noise")


def _error_stats(ex, bits: int) -> tuple[float, float, float]:
    """(mean |error mean at each 8-bit value|, low-frequency share of the
    error power over the area it covers, rms error), in steps."""
    delta = 1 / (2**bits - 1)
    e = ex.shown - ex.image
    keys = np.round(ex.image * 255).astype(int).ravel()
    count = np.bincount(keys, minlength=256)
    mean = np.bincount(keys, e.ravel(), minlength=256)[count > 200] / count[count > 200]
    conditional = np.average(np.abs(mean), weights=count[count > 200]) / delta
    power = (np.abs(np.fft.fft2(e, axes=(0, 1))) ** 2).sum(axis=2)
    fy = np.abs(np.fft.fftfreq(e.shape[0]))[:, None]
    fx = np.abs(np.fft.fftfreq(e.shape[1]))[None, :]
    low = (fy < 1 / 16) & (fx < 1 / 16)  # the lowest eighth of each axis's band
    share = power[low].sum() / power.sum() / low.mean()
    return conditional, share, np.sqrt(np.mean(e**2)) / delta


@pytest.mark.parametrize("bits", [2, 3])
def test_image_bit_depth_dither_and_diffusion_do_what_theory_says(bits):
    ex = widgets.ImageBitDepth(bits=bits)
    rounding = _error_stats(ex, bits)
    ex.controls["method"].value = "dither"
    dither = _error_stats(ex, bits)
    ex.controls["method"].value = "diffusion"
    diffusion = _error_stats(ex, bits)
    # rounding: the error is a function of the pixel, and follows the image
    # (its power sits at low spatial frequencies)
    assert rounding[0] > 0.15 and rounding[1] > 5
    # RPDF dither: the error's mean is 0 whatever the pixel (first moment
    # independent of the signal); it is white, of power 2 Delta**2 / 12
    assert dither[0] < 0.03 and 0.8 < dither[1] < 1.25
    assert dither[2] == pytest.approx(np.sqrt(1 / 6), rel=0.05)
    # Floyd-Steinberg: the error is pushed to high frequencies (blue noise)
    assert diffusion[1] < 0.1
    assert abs((ex.shown - ex.image).mean()) < 0.005 / (2**bits - 1)


def test_image_bit_depth_methods_are_qlibs_and_the_zoom_follows():
    from qlib import signals

    ex = widgets.ImageBitDepth(bits=2, method="diffusion", zoom="background")
    assert np.array_equal(ex.shown, signals.error_diffusion(ex.image, 2))
    ex.controls["method"].value = "dither"
    noise = signals.dither(ex.image.shape, 1 / 3, "rpdf", seed=0)
    assert np.array_equal(ex.shown, signals.quantize_image(ex.image + noise, 2))
    assert len(np.unique(ex.shown)) <= 4
    for zoom in ("face", "uniform", "background"):
        ex.controls["zoom"].value = zoom
        x0, y0 = ex.boxes[0].get_xy()
        row, col = int(y0 + 0.5), int(x0 + 0.5)
        assert np.array_equal(ex.crop, ex.shown[row : row + 48, col : col + 48])
        assert np.array_equal(ex.im_zoom.get_array(), ex.crop)
        assert ex.boxes[1].get_xy() == (x0, y0) and zoom in ex.ax_zoom.get_title()
    assert "random dither" in ex.ax_b.get_title()
    with pytest.raises(ValueError, match="method must be one of"):
        widgets.ImageBitDepth(method="ordered")


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
    assert np.isnan(ex.value) and "NaN" in ex.view.value
    ex.controls["format"].value = "fp64"
    assert len(ex.buttons) == 64 and ex.value == 1000.0
    ex.controls["value"].value = "not a number"
    assert "cannot read" in ex.view.value


def test_float_explorer_rounds_a_typed_decimal_once():
    """A decimal a hair above a bf16 midpoint, 1 + 2**-8 + 10**-30: nearest
    is 1 + 2**-7; rounded first to float64 it would become the midpoint, whose
    tie goes to 1.0.  The explorer rounds the exact number, and its rounding
    error is the exact one."""
    typed = "1.00390625000000000000000000000" + "1"
    ex = widgets.FloatExplorer(fmt="bf16", value=typed)
    assert ex.value == 1 + 2**-7 and ex.code == 0x3F81
    assert "3.906250e\N{MINUS SIGN}03" in ex.view.value  # 2**-8 - 10**-30, printed
    bf16 = next(row for row in ex.comparison if row[0] == "bf16")
    assert bf16[1:3] == (0x3F81, 1 + 2**-7)  # the every-format table agrees
    assert f"{typed} in every format" in ex.view.value
    ex.controls["value"].value = "1.0039062499999999999999999999"  # a hair below
    assert ex.value == 1.0
    ex.controls["value"].value = "1.00390625"  # the midpoint itself: ties to even
    assert ex.value == 1.0


# the value formula the explorer writes, read back: its numbers give the value
FORMULA = re.compile(
    r"\(−1\)\^(?P<s>\d) × 2\^\((?P<e>\d+) − (?P<bias>\d+)\) × "
    r"\((?P<lead>[01]) \+ (?P<m>\d+)/(?P<den>\d+|2\^\d+)\) = .* = (?P<v>\S+)$"
)
E8M0_FORMULA = re.compile(r"2\^\((?P<e>\d+) − (?P<bias>\d+)\) = (?P<v>\S+)$")


def _ml_dtype(name: str):
    import ml_dtypes

    special = {
        "bf16": ml_dtypes.bfloat16,
        "fp16": np.float16,
        "e8m0fnu": ml_dtypes.float8_e8m0fnu,
    }
    return special.get(name) or getattr(ml_dtypes, "float" + name.removeprefix("fp"))


@pytest.mark.parametrize(
    "name", ["fp4_e2m1fn", "fp6_e3m2fn", "fp8_e4m3fn", "fp8_e5m2fnuz", "e8m0fnu"]
)
def test_float_explorer_formula_reproduces_every_code(name):
    """For every code, the filled-in formula, evaluated exactly, is the value
    ml_dtypes decodes; its fields are the code's bits."""
    from fractions import Fraction

    from qlib.floats import FORMATS
    from qlib.widgets._float_views import decode_rows

    fmt = FORMATS[name]
    with np.errstate(invalid="ignore"):
        oracle = (
            np.arange(2**fmt.bits, dtype=np.uint8)
            .view(_ml_dtype(name))
            .astype(np.float64)
        )
    for code in range(2**fmt.bits):
        formula = dict(decode_rows(fmt, code, markup=False))["value"]
        if np.isnan(oracle[code]):
            assert formula.startswith("NaN"), (code, formula)
            continue
        if name == "e8m0fnu":
            match = E8M0_FORMULA.fullmatch(formula)
            exact = Fraction(2) ** (int(match["e"]) - int(match["bias"]))
        else:
            match = FORMULA.fullmatch(formula)
            assert match, (code, formula)
            den = match["den"]
            den = 2 ** int(den[2:]) if den.startswith("2^") else int(den)
            assert den == 2**fmt.man_bits and int(match["bias"]) == fmt.bias
            shift = int(match["e"]) - int(match["bias"])
            exact = (-1) ** int(match["s"]) * Fraction(2) ** shift
            exact *= int(match["lead"]) + Fraction(int(match["m"]), den)
            # the fields are the code's bits; a subnormal (e = 0) is written
            # with 2**(1 - bias) and no hidden 1
            e_field = (code >> fmt.man_bits) % 2**fmt.exp_bits
            assert int(match["e"]) == max(e_field, 1)
            assert int(match["lead"]) == (e_field > 0)
            assert int(match["m"]) == code % 2**fmt.man_bits
            assert int(match["s"]) == code >> (fmt.bits - 1)
        assert exact == Fraction(float(oracle[code])), (code, formula)


def test_float_explorer_fields_and_subnormals():
    ex = widgets.FloatExplorer(fmt="bf16", value="0.1")
    assert ex.fields == (0, 123, 77)
    assert ex.formula == (
        "(−1)^0 × 2^(123 − 127) × (1 + 77/128) = 2^−4 × 1.6015625 = 0.10009765625"
    )
    assert "e − bias = 123 − 127 = −4" in ex.view.value
    ex.controls["format"].value = "fp8_e4m3fn"
    ex.controls["value"].value = "3/512"  # 3 x 2**-9: a subnormal
    assert ex.fields == (0, 0, 3) and ex.value == 3 / 512
    assert ex.formula.startswith("(−1)^0 × 2^(1 − 7) × (0 + 3/8)")
    assert "subnormal: only 2 significant bits are left" == ex.note
    ex.controls["value"].value = "1e-4"  # below 2**-10, half the least subnormal
    assert ex.value == 0 and ex.note.startswith("underflow")


def test_float_explorer_steps_walk_the_codes_and_the_values():
    from qlib.floats import FORMATS

    ex = widgets.FloatExplorer(fmt="fp8_e4m3fn", value="-448")
    seen = [ex.value]
    while True:
        before = ex.code
        ex.steps["next up"].click()
        if ex.code == before:
            break
        seen.append(ex.value)
    # every finite value once, in increasing order (-0 and +0 count as one)
    values = FORMATS["fp8_e4m3fn"].all_values()
    assert seen == sorted(set(values[np.isfinite(values)].tolist()))
    assert "none: 448 is the largest value" in ex.view.value
    assert "has no infinity" in ex.view.value
    for _ in range(3):
        ex.steps["next down"].click()
    assert ex.value == 352.0  # 448, 416, 384, 352
    ex.controls["hex"].value = "0"
    for code in range(1, 2**8 + 1):  # code +1 visits every code and wraps
        ex.steps["code +1"].click()
        assert ex.code == code % 2**8
        assert ex.controls["hex"].value == f"{ex.code:02X}"
    ex.steps["code -1"].click()
    assert ex.code == 0xFF and np.isnan(ex.value)


@pytest.mark.parametrize(
    ("fmt", "top", "up", "code_up"),
    [
        (
            "fp4_e2m1fn",
            "6",
            "no infinity and no NaN",
            "0x8 = −0 (the sign bit turns on)",
        ),
        ("fp8_e4m3fn", "448", "no infinity", "0x7F = NaN"),
        ("fp8_e4m3fnuz", "240", "no infinity", "0x80 = NaN (the sign bit turns on)"),
        ("bf16", "3.3895313892515355e+38", "+inf", "0x7F80 = +inf"),
    ],
)
def test_float_explorer_says_what_lies_past_the_largest_value(fmt, top, up, code_up):
    ex = widgets.FloatExplorer(fmt=fmt, value=top)
    assert ex.value == widgets.floats._floats.FORMATS[fmt].max
    text = ex.view.value
    assert up in text and code_up in text
    ex.steps["next up"].click()
    if fmt == "bf16":
        assert ex.value == np.inf  # IEEE-style: infinity is next
    else:
        assert ex.value == float(top)  # nothing above: the button stays


def test_float_explorer_hex_entry():
    ex = widgets.FloatExplorer(fmt="bf16", value="1")
    assert ex.controls["hex"].value == "3F80"
    ex.controls["hex"].value = "0x7f80"
    assert ex.value == np.inf and ex.controls["value"].value == "inf"
    ex.controls["hex"].value = "FFC1"
    assert np.isnan(ex.value) and ex.pattern == "1111111111000001"
    ex.controls["hex"].value = "1_0000"
    assert "codes of bf16 are 0x0 to 0xFFFF" in ex.view.value
    ex.controls["hex"].value = "xyz"
    assert "cannot read" in ex.view.value and "hexadecimal" in ex.view.value


@pytest.mark.parametrize(
    ("fmt", "typed", "plain", "saturated", "note"),
    [
        ("fp8_e4m3fn", "1000", np.nan, 448.0, "becomes NaN"),
        ("fp8_e4m3fn", "460", 448.0, 448.0, "within half a step"),
        ("fp8_e5m2", "1e6", np.inf, 57344.0, "rounds to infinity"),
        ("fp4_e2m1fn", "-100", -6.0, -6.0, "it saturates to ±6"),
    ],
)
def test_float_explorer_saturate_and_its_note(fmt, typed, plain, saturated, note):
    ex = widgets.FloatExplorer(fmt=fmt, value=typed)
    assert np.array_equal(ex.value, plain, equal_nan=True)
    assert note in ex.note and html_escape(ex.note) in ex.view.value
    ex.controls["saturate"].value = True
    assert ex.value == saturated
    assert ex.note.startswith("beyond the largest value")


def test_float_explorer_takes_the_largest_float64_into_every_format():
    # near 2**1024 the rounding of narrower formats overflows float64 on the
    # way; the explorer shows the result and raises no warning
    ex = widgets.FloatExplorer(fmt="fp64", value=repr(float(np.finfo(np.float64).max)))
    stored = {name: value for name, _, value, _ in ex.comparison}
    assert stored["fp64"] == np.finfo(np.float64).max
    assert stored["bf16"] == np.inf and np.isnan(stored["fp8_e4m3fn"])
    assert stored["fp4_e2m1fn"] == 6.0
    ex.controls["format"].value = "fp16"
    assert ex.value == np.inf and "rounds to infinity" in ex.note


def test_float_explorer_every_format_matches_ml_dtypes_and_numpy():
    from decimal import Decimal

    from qlib.floats import FORMATS

    x32 = np.float32(0.1)  # a float32: every cast below rounds once
    typed = str(Decimal(float(x32)))  # its exact decimal, 0.100000001490116...
    ex = widgets.FloatExplorer(fmt="fp8_e5m2", value=typed)
    rows = {name: (code, stored) for name, code, stored, _ in ex.comparison}
    assert list(rows) == list(FORMATS)
    for name in FORMATS:
        if name in ("fp64", "fp32", "tf32"):
            continue
        expected = x32.astype(_ml_dtype(name))
        assert rows[name][1] == float(expected), name
    assert rows["fp64"][1] == rows["fp32"][1] == float(x32)
    assert "<b>fp8_e5m2" in ex.view.value  # the format shown, in bold
    errors = {name: error for name, _, _, error in ex.comparison}
    assert errors["fp32"] == "exact" and errors["fp4_e2m1fn"] == "flushed to 0"


def test_float_explorer_reads_arithmetic_exactly():
    from fractions import Fraction

    ex = widgets.FloatExplorer(fmt="fp64", value="1/3")
    assert ex.typed == Fraction(1, 3) and ex.value == 1 / 3
    err = (Fraction(1 / 3) - Fraction(1, 3)) / Fraction(1, 3)
    shown = f"relative {float(abs(err)):.3e}".replace("-", "\N{MINUS SIGN}")
    assert shown in ex.view.value  # 5.551e-17
    ex.controls["value"].value = "-2**-1074"
    assert ex.value == -5e-324 and ex.code == 0x8000000000000001
    ex.controls["value"].value = "2^-1075"  # a tie between 0 and 2**-1074: to 0
    assert ex.value == 0.0 and ex.note.startswith("underflow")
    ex.controls["value"].value = "10**400"
    assert ex.value == np.inf
    for bad in ("1/0", "import os", "2**0.5", "1e"):
        ex.controls["value"].value = bad
        assert "cannot read" in ex.view.value or "powers" in ex.view.value, bad


def test_float_explorer_number_lines():
    ex = widgets.FloatExplorer(fmt="fp4_e2m1fn", value="1.3")
    svg = ex.view.value[ex.view.value.index("<svg") :]
    assert ex.value == 1.5 and "rounds to this code" in svg
    # the neighbours 1 and 2 and the value 1.5, labelled on the linear line
    for label in (">1<", ">1.5<", ">2<"):
        assert label in svg
    assert svg.count("<circle") == 2  # the typed 1.3, on both lines
    ex.controls["value"].value = "nan"  # FP4 has no NaN: ml_dtypes writes -0
    assert ex.code == 0x8 and "has no NaN" in ex.note
    ex.controls["format"].value = "fp8_e4m3fn"
    assert np.isnan(ex.value) and "NaN has no place on the line" in ex.view.value


def test_float_explorer_bad_arguments():
    with pytest.raises(ValueError, match="fmt must be one of"):
        widgets.FloatExplorer(fmt="fp7")


def html_escape(text: str) -> str:
    import html

    return html.escape(text)


def _nearest_on_grid(v: np.ndarray, name: str) -> np.ndarray:
    """v rounded to nearest (ties to the even code) among every finite value
    ml_dtypes decodes, after clamping to +-max: an oracle in float64."""
    fmt = widgets.floats._floats.FORMATS[name]
    with np.errstate(invalid="ignore"):
        values = (
            np.arange(2**fmt.bits, dtype=np.uint8)
            .view(_ml_dtype(name))
            .astype(np.float64)
        )
    codes = np.flatnonzero(np.isfinite(values))
    grid, order = np.unique(values[codes], return_index=True)  # +0 before -0
    even = (codes[order] % 2 == 0) | (grid == 0)
    v = np.clip(v, grid[0], grid[-1])
    hi = np.clip(np.searchsorted(grid, v), 1, grid.size - 1)
    lo = hi - 1
    d_lo, d_hi = v - grid[lo], grid[hi] - v
    pick_hi = (d_hi < d_lo) | ((d_hi == d_lo) & even[hi])
    return np.where(pick_hi, grid[hi], grid[lo])


@pytest.mark.parametrize("name", ["fp8_e4m3fn", "fp4_e2m1fn", "fp6_e3m2fn"])
def test_format_histogram_per_tensor_against_a_grid_oracle(name):
    from qlib import mx

    ex = widgets.FormatHistogram(fmt=name, distribution="laplace")
    x = ex.samples["laplace"]
    for k in (0, 2, -3):
        ex.controls["scale"].value = k
        amax = np.abs(x).max() * 2.0**-k  # the range mapped to the format's max
        assert ex.range == amax and ex.scale == mx.tensor_scale(x, name, amax)
        expected = _nearest_on_grid(x * ex.scale, name) / ex.scale
        np.testing.assert_array_equal(ex.x_q, expected)
        assert ex.saturated == np.mean(np.abs(x) > amax)
        assert ex.flushed == np.mean((x != 0) & (expected == 0))
        assert f"{ex.flushed:.1%} flushed to 0" in ex.ax.get_title()


def test_format_histogram_block_modes_are_qlib_mx():
    from qlib import mx

    ex = widgets.FormatHistogram(fmt="fp4_e2m1fn", distribution="outliers")
    x = ex.samples["outliers"]
    per_tensor = ex.sqnr
    ex.controls["scaling"].value = "mx"
    np.testing.assert_array_equal(ex.x_q, mx.mx_quantize(x, "mxfp4").dequantize())
    assert ex.sqnr > per_tensor + 5 and ex.controls["scale"].disabled
    assert "block scales 2^" in ex.ax.get_title()
    assert ex.grid_lines() == 0  # each block has its own grid: none drawn
    ex.controls["scaling"].value = "nvfp4"
    np.testing.assert_array_equal(ex.x_q, mx.nvfp4_quantize(x).dequantize())
    # NVFP4 has E2M1 elements; another element format goes back to MX
    ex.controls["format"].value = "fp8_e5m2"
    assert ex.controls["scaling"].value == "mx"
    np.testing.assert_array_equal(ex.x_q, mx.mx_quantize(x, "mxfp8_e5m2").dequantize())
    ex.controls["scaling"].value = "nvfp4"
    assert ex.controls["format"].value == "fp4_e2m1fn"
    ex.controls["format"].value = "bf16"  # no MX variant: per tensor
    assert ex.controls["scaling"].value == "per_tensor"
    assert not ex.controls["scale"].disabled
    ex.controls["scaling"].value = "mx"  # and MX picks an element
    assert ex.controls["format"].value == "fp8_e4m3fn"


@pytest.mark.parametrize("axis", ["value", "log2|x|"])
def test_format_histogram_axis_shows_every_value_and_errors_in_data_units(axis):
    ex = widgets.FormatHistogram(fmt="fp4_e2m1fn", axis=axis)
    for data in ex.DISTRIBUTIONS:
        ex.controls["distribution"].value = data
        x = ex.samples[data]
        lo, hi = ex.ax.get_xlim()
        u = x / np.abs(x).max() if axis == "value" else np.log2(np.abs(x))
        assert lo < u.min() and u.max() < hi, data  # the outliers are on the axis
        stairs = ex.panel.hist.get_data()
        counted = stairs.values[stairs.values >= 1].sum()
        assert counted == x.size
        xs, ys = ex.panel.dots.get_data()
        np.testing.assert_array_equal(xs, u[::4])
        np.testing.assert_array_equal(ys, np.maximum(np.abs(ex.x_q - x)[::4], 1.5e-8))


def test_format_histogram_errors_stay_under_half_the_gap():
    from qlib.floats import FORMATS

    ex = widgets.FormatHistogram(fmt="fp6_e3m2fn", distribution="normal")
    ex.controls["axis"].value = "log2|x|"
    for k in (0, 2):
        ex.controls["scale"].value = k
        x = ex.samples["normal"]
        bx, by = (np.asarray(a) for a in ex.panel.bound.get_data())
        inside = np.abs(x) <= ex.range
        i = np.searchsorted(bx, np.log2(np.abs(x[inside])), side="right") - 1
        e = np.abs(ex.x_q - x)[inside]
        assert np.all(e[i >= 0] <= by[i[i >= 0]] * (1 + 1e-12))
        # below the first grid value: rounded to 0 or to it
        assert np.all(e[i < 0] <= FORMATS["fp6_e3m2fn"].min_subnormal / ex.scale / 2)
        # the grid lines are the format's values, scaled into data units
        grid = np.log2(FORMATS["fp6_e3m2fn"].positive_values() / ex.scale)
        shown = grid[(grid >= -20) & (grid <= 8)]
        assert ex.grid_lines() == shown.size


def test_format_histogram_rejects_bad_arguments():
    with pytest.raises(ValueError, match="fmt must be one of"):
        widgets.FormatHistogram(fmt="fp8_e4m3fnuz")
    with pytest.raises(ValueError, match="scaling must be one of"):
        widgets.FormatHistogram(scaling="per row")
    with pytest.raises(ValueError, match="axis must be one of"):
        widgets.FormatHistogram(axis="log")
    with pytest.raises(ValueError, match=r"scale must be an integer in \[-6, 6\]"):
        widgets.FormatHistogram(scale=7)


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
    "SamplingExplorer": {
        "bits": [1, 12, 2, 7],
        "rate": [5, 200, 35, 9],
        "freq": [7.0, 20.0, 4.5],
        "amplitude": [0.05, 1.0, 0.6],
    },
    "ImageBitDepth": {
        "bits": [1, 8, 4],
        "method": ["diffusion", "dither", "round", "diffusion"],
        "zoom": ["background", "uniform", "face"],
    },
    "CompandingExplorer": {
        "level_db": [-70, 0, -23],
        "bits": [4, 12, 7],
        "signal": ["speech", "sine", "speech"],
    },
    "FormatHistogram": {
        "format": ["fp4_e2m1fn", "bf16", "fp6_e3m2fn"],
        "distribution": ["outliers", "laplace", "normal"],
        "scale": [3, -4],
        "axis": ["log2|x|", "value", "log2|x|"],
        "scaling": ["mx", "nvfp4", "per_tensor"],
    },
    "QFormatExplorer": {
        "int_bits": [0, 7, 2],
        "frac_bits": [0, 8, 5],
        "signed": [False, True],
        "rounding": ["stochastic", "floor", "nearest_away"],
        "overflow": ["wrap", "saturate"],
    },
    "KMeansExplorer": {"bits": [1, 8, 3], "layer": ["fc3", "fc2", "fc1"]},
    "ClippingExplorer": {"bits": [2, 8, 3], "clip": [0.2, 6.0, 3.5]},
    "BitAllocationExplorer": {"fc1": [2, 8, 3], "fc2": [8, 2], "fc3": [2, 5]},
    "FormatExplorer": {
        "method": ["awq", "mxfp4", "gptq", "float", "rtn"],
        "bits": [8, 2, 3],
        "group": ["channel", 32, "tensor"],
        "symmetric": [True, False],
    },
    "SmoothingExplorer": {"alpha": [0.0, 1.0, 0.35]},
    "LinearQuantExplorer": {
        "r_min": [-2.5, 0.0, -0.35],
        "r_max": [0.1, 2.5, 1.2],
        "bits": [2, 8, 5],
        "symmetric": [True, False],
    },
}


def test_every_figure_explorer_is_exercised_here():
    # each explorer built once per process, for this and the other suites
    figures = {name for name in EXPLORERS if explorer_parts(name)[0] == "figure"}
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


# ------------------------------------------------------------------ chapter 03


def _exact(value) -> str:
    """A Fraction as the exact decimal the explorer prints (minus sign U+2212)."""
    from decimal import Decimal

    text = str(Decimal(value.numerator) / Decimal(value.denominator))
    return text.replace("-", "\N{MINUS SIGN}")


def test_qformat_explorer_stores_the_signal_on_the_grid():
    from qlib import fixedpoint

    ex = widgets.QFormatExplorer(int_bits=1, frac_bits=5)
    before = png_of(ex)
    ex.controls["frac_bits"].value = 3
    assert ex.fmt == fixedpoint.QFormat(1, 3, True)
    assert np.array_equal(ex.x_q * 8, np.round(ex.x_q * 8))  # on the 1/8 grid
    assert np.array_equal(
        ex.x_q, fixedpoint.quantize(ex.x, ex.fmt, "nearest_even", "saturate")
    )
    assert np.array_equal(ex.stored.get_ydata(), ex.x_q)
    fits = ~ex.overflowed
    assert np.array_equal(ex.err.get_ydata(), ex.e[fits] * 8)  # in steps
    assert np.abs(ex.e[fits]).max() <= 1 / 16
    assert png_of(ex) != before


def test_qformat_explorer_wrap_and_saturate_differ_where_the_sine_overflows():
    ex = widgets.QFormatExplorer(int_bits=0, frac_bits=3)  # Q0.3: codes -8..7
    saturated = ex.x_q.copy()
    before = png_of(ex)
    ex.controls["overflow"].value = "wrap"
    wrapped = ex.x_q
    r = np.rint(ex.x * 8)  # nearest even, before overflow
    outside = (r > 7) | (r < -8)
    assert outside.any() and np.array_equal(ex.overflowed, outside)
    assert np.array_equal(saturated != wrapped, outside)
    assert np.array_equal(saturated, np.clip(r, -8, 7) / 8)
    assert np.array_equal(wrapped, ((r + 8) % 16 - 8) / 8)
    assert "overflow and wrap around" in ex.ax.get_title()
    assert png_of(ex) != before
    ex.controls["int_bits"].value = 2  # Q2.3 holds the sine of amplitude 2.5
    assert not ex.overflowed.any() and "no sample overflows" in ex.ax.get_title()


@pytest.mark.parametrize(
    ("m", "n", "signed"), [(1, 3, True), (0, 8, True), (7, 0, False), (3, 2, False)]
)
def test_qformat_explorer_text_gives_range_and_resolution(m, n, signed):
    from fractions import Fraction

    ex = widgets.QFormatExplorer(int_bits=1, frac_bits=3)
    ex.controls["signed"].value = signed
    ex.controls["int_bits"].value = m
    ex.controls["frac_bits"].value = n
    step = Fraction(1, 2**n)
    high = 2**m - step  # the definition: max = 2**m - 2**-n
    low = -(2**m) if signed else 0
    word = m + n + signed
    name = f"{'' if signed else 'U'}Q{m}.{n}"
    assert ex.summary == (
        f"{name}: {word}-bit word, range [{_exact(Fraction(low))}, "
        f"{_exact(high)}], resolution {_exact(step)}"
    )
    assert ex.summary in ex.ax_line.get_title()
    assert f"{2**word} codes" in ex.ax_line.get_title()
    # the number line: every code up to 64, else every k-th (64 of them);
    # the ends are labelled marks
    ticks = ex.ticks.get_xdata()
    assert len(ticks) == min(2**word, 64) and ticks[0] == 0
    assert np.allclose(np.diff(ticks), ticks[1])  # evenly spaced
    assert (ticks[-1] == 1) == (2**word <= 64)
    marks = ex.marks.get_xdata()
    assert marks[0] == 0 and marks[-1] == 1
    labels = [t.get_text() for t in ex.value_labels if t.get_visible()]
    assert labels[0] == _exact(Fraction(low)) and labels[-1] == _exact(high)


def test_qformat_explorer_rounding_modes():
    from qlib import fixedpoint

    ex = widgets.QFormatExplorer(int_bits=2, frac_bits=2)  # no overflow
    delta = 0.25
    pngs = {png_of(ex)}
    for rounding in fixedpoint.ROUNDINGS:
        ex.controls["rounding"].value = rounding
        pngs.add(png_of(ex))
        e = ex.e / delta
        assert not ex.overflowed.any()
        lo, hi = {
            "floor": (-1, 0),
            "ceil": (0, 1),
            "nearest_away": (-0.5, 0.5),
            "nearest_even": (-0.5, 0.5),
        }.get(rounding, (-1, 1))
        assert lo <= e.min() and e.max() <= hi, rounding
        y = ex.bounds.get_ydata()
        assert (y[0], y[3]) == (lo, hi)
        if rounding == "toward_zero":
            assert np.all(np.abs(ex.x_q) <= np.abs(ex.x))
        rng = ex.seed if rounding == "stochastic" else None
        assert np.array_equal(
            ex.x_q, fixedpoint.quantize(ex.x, ex.fmt, rounding, "saturate", rng)
        )
    assert len(pngs) == len(fixedpoint.ROUNDINGS)  # nearest_even: the default
    frame = png_of(ex)  # stochastic: seeded, so the frame comes back
    ex.controls["rounding"].value = "floor"
    ex.controls["rounding"].value = "stochastic"
    assert png_of(ex) == frame


def test_qformat_explorer_unsigned_needs_a_bit():
    ex = widgets.QFormatExplorer(int_bits=0, frac_bits=0)  # Q0.0: the sign bit
    assert ex.fmt.word_bits == 1 and ex.fmt.max == 0.0
    before = png_of(ex)
    ex.controls["signed"].value = False  # UQ0.0 has no bits: n goes to 1
    assert str(ex.fmt) == "UQ0.1" and ex.controls["frac_bits"].value == 1
    assert ex.controls["frac_bits"].min == 1
    assert ex.fmt.min == 0.0 and ex.x_q.min() == 0.0  # negatives saturate to 0
    assert png_of(ex) != before
    ex.controls["int_bits"].value = 1
    assert ex.controls["frac_bits"].min == 0 and str(ex.fmt) == "UQ1.1"


def test_qformat_explorer_rejects_bad_arguments():
    with pytest.raises(ValueError, match="overflow must be one of saturate, wrap"):
        widgets.QFormatExplorer(overflow="error")
    with pytest.raises(ValueError, match=r"int_bits must be in \[0, 7\]"):
        widgets.QFormatExplorer(int_bits=8)
    with pytest.raises(ValueError, match="rounding must be one of"):
        widgets.QFormatExplorer(rounding="up")
    with pytest.raises(ValueError, match="must have 1 to 63 bits"):
        widgets.QFormatExplorer(int_bits=0, frac_bits=0, signed=False)


# ------------------------------------------------------------------ chapter 07


def _qparams_by_hand(r_min: float, r_max: float, bits: int, symmetric: bool):
    """S and Z from their definitions (Jacob et al. 2018), in float64."""
    q_min, q_max = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    if symmetric:
        return max(-r_min, r_max) / q_max, 0
    s = (r_max - r_min) / (q_max - q_min)
    return s, round(q_min - r_min / s)


@pytest.mark.parametrize(
    "moves",
    [
        {"bits": 4},
        {"r_min": -0.5, "r_max": 1.5},
        {"symmetric": True, "r_min": -0.5, "bits": 8},
        {"r_min": 0.0, "bits": 2},  # a ReLU range: Z at the lowest code
        {"r_min": -2.5, "r_max": 0.1, "bits": 3},  # Z near the highest code
    ],
)
def test_linear_quant_explorer_state_is_qlib_linear(moves):
    from qlib.linear import dequantize_linear, linear_qparams, quantize_linear

    ex = widgets.LinearQuantExplorer()
    before = png_of(ex)
    for name, value in moves.items():
        ex.controls[name].value = value
    c = {name: control.value for name, control in ex.controls.items()}
    bits, symmetric = c["bits"], c["symmetric"]
    s, z = linear_qparams(
        np.array([c["r_min"], c["r_max"]], np.float32), bits, symmetric=symmetric
    )
    assert (ex.scale, ex.zero_point) == (s, z) and ex.scale.dtype == np.float32
    s_hand, z_hand = _qparams_by_hand(c["r_min"], c["r_max"], bits, symmetric)
    assert np.isclose(float(s), s_hand, rtol=1e-6) and int(z) == z_hand
    q = quantize_linear(ex.r, s, z, bits=bits)
    np.testing.assert_array_equal(ex.q, q)
    np.testing.assert_array_equal(ex.r_hat, dequantize_linear(q, s, z))
    q_min, q_max = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    heights = (q.astype(int) - q_min) / (q_max - q_min)
    np.testing.assert_array_equal(ex.stairs.get_ydata(), heights)
    # r = 0 is a code: it maps to Z and back to 0 exactly
    assert ex.r[2000] == 0 and ex.q[2000] == z == ex.q_of_zero
    assert ex.r_hat[2000] == 0 and ex.e[2000] == 0
    np.testing.assert_array_equal(
        ex.zero.get_ydata(), [(int(z) - q_min) / (q_max - q_min)]
    )
    assert f"S = {float(s):.4g}" in ex.ax.get_title()
    assert f"Z = {int(z)}".replace("-", "\N{MINUS SIGN}") in ex.ax.get_title()
    # inside the representable range the error is at most S/2; beyond it
    # (by more than S/2) every value clips to the lowest or highest code
    lo, hi = float(s) * (q_min - int(z)), float(s) * (q_max - int(z))
    assert np.isclose(ex.clip_lo, lo) and np.isclose(ex.clip_hi, hi)
    inside = (ex.r >= lo) & (ex.r <= hi)
    assert np.abs(ex.e[inside]).max() <= float(s) / 2 * (1 + 1e-6)
    assert np.all(q[ex.r < lo - float(s) / 2] == q_min)
    assert np.all(q[ex.r > hi + float(s) / 2] == q_max)
    scaled = np.clip(ex.e / float(s), -ex.err_edge, ex.err_edge)
    np.testing.assert_allclose(ex.err.get_ydata(), scaled)
    left, right = ex.clipped[:2]
    assert np.isclose(left.get_x() + left.get_width(), max(lo, -3.0))
    assert np.isclose(right.get_x(), hi)
    ends = quantize_linear([c["r_min"], c["r_max"]], s, z, bits=bits)
    assert ex.used == int(ends[1]) - int(ends[0]) + 1
    assert f"uses {ex.used} of {2**bits} codes" in ex.ax.get_title()
    assert png_of(ex) != before


def test_linear_quant_explorer_symmetric_wastes_codes_on_a_lopsided_range():
    ex = widgets.LinearQuantExplorer(r_min=-0.5, r_max=2.0, bits=4)
    assert ex.used == 16  # asymmetric: the range spans every code
    ex.controls["symmetric"].value = True
    # S = 2/7: -0.5 -> round(-1.75) = -2, 2.0 -> 7: codes -2..7 of -8..7
    assert int(ex.zero_point) == 0 and np.isclose(ex.scale, 2 / 7)
    assert ex.used == 10 and "uses 10 of 16 codes" in ex.ax.get_title()


def test_linear_quant_explorer_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"r_min must be in \[-2.5, 0\]"):
        widgets.LinearQuantExplorer(r_min=0.5)
    with pytest.raises(ValueError, match=r"r_max must be in \[0.1, 2.5\]"):
        widgets.LinearQuantExplorer(r_max=0.0)
    with pytest.raises(ValueError, match=r"bits must be in \[2, 8\]"):
        widgets.LinearQuantExplorer(bits=9)


# ------------------------------------------------------------------ chapter 06


def test_kmeans_explorer_shows_the_codebook_of_kmeans_quantize():
    from qlib import kmeans, nn

    model = nn.load_lenet()
    ex = widgets.KMeansExplorer(bits=4, layer="fc1")
    before = png_of(ex)
    ex.controls["bits"].value = 3
    ex.controls["layer"].value = "fc2"
    codebook, indices = kmeans.kmeans_quantize(model.dense[1].W, 3)
    assert np.array_equal(ex.codebook, codebook)
    xs, ys = ex.lines.get_data()  # one vertical line per centroid
    assert np.array_equal(np.asarray(xs)[::3], codebook)
    assert np.array_equal(np.asarray(ys)[:2], [0.0, 1.0])
    shares_x, shares_y = ex.shares.get_data()
    assert np.array_equal(shares_x, codebook)
    assert np.array_equal(shares_y, [np.sum(indices == j) for j in range(8)])
    assert png_of(ex) != before
    # the histogram is the layer's, every weight counted
    stairs = ex.hist.get_data()
    values, edges = stairs.values, stairs.edges
    assert np.array_equal(
        values, np.maximum(np.histogram(model.dense[1].W, edges)[0], 0.5)
    )
    assert np.isclose(values[values >= 1].sum(), 30000)


def test_kmeans_explorer_text_gives_the_sizes_worked_by_hand():
    ex = widgets.KMeansExplorer(bits=4)
    ex.controls["bits"].value = 2
    ex.controls["layer"].value = "fc3"
    title = ex.ax.get_title()
    # fc3: 1000 weights x 2 bits + 4 x 32-bit codebook = 2128 bits = 0.266 kB
    assert "1000 weights, 4 centroids" in title and "= 0.3 kB" in title
    assert "(float32 4.0 kB)" in title  # 1000 x 32 bits
    # the model: 235200, 30000, 1000 weights at 2 bits, three 4-entry
    # codebooks, 410 float32 biases
    total = (235200 + 30000 + 1000) * 2 + 3 * 4 * 32 + 410 * 32
    fp32 = (266200 + 410) * 32
    assert ex.storage.total_bits == total == 545904
    text = ex.ax_err.get_title()
    assert f"model {total / 8000:.1f} kB against {fp32 / 8000:.1f} kB" in text
    assert f"{fp32 / total:.2f}\N{MULTIPLICATION SIGN} smaller" in text
    assert "68.2 kB" in text and "15.63" in text


def test_kmeans_explorer_error_is_the_quantized_networks():
    from qlib import data, kmeansnet, nn

    ex = widgets.KMeansExplorer(bits=2)
    images, labels = data.load_mnist("test")
    quantized, _, _ = kmeansnet.quantize_model(nn.load_lenet(), 2)
    error = nn.error_rate(quantized, nn.preprocess(images), labels)
    assert ex.error == error
    assert np.array_equal(ex.mark.get_data()[1], [100 * error])
    assert f"test error {100 * error:.2f} %" in ex.ax_err.get_title()
    _, errors = ex.ax_err.lines[0].get_data()  # the curve over 1..8 bits
    assert errors[1] == 100 * error and errors[0] > 50  # 1 bit: useless


def test_kmeans_explorer_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"bits must be in \[1, 8\]"):
        widgets.KMeansExplorer(bits=9)
    with pytest.raises(ValueError, match=r"bits must be in \[1, 16\]"):
        widgets.KMeansExplorer(bits=0)
    with pytest.raises(ValueError, match="layer must be one of fc1, fc2, fc3"):
        widgets.KMeansExplorer(layer="fc4")


# ------------------------------------------------------------------ chapter 08


def _fc1_by_hand(t: float, bits: int):
    """fc1's test activations clipped at t, rounded on 2**bits levels of [0, t]
    written out in numpy (not through qlib.linear), the rest of the net float."""
    from qlib import data, nn

    model = nn.load_lenet()
    images, labels = data.load_mnist("test")
    a = np.maximum(model.dense[0].forward(nn.preprocess(images)), 0).astype(np.float64)
    step = t / (2**bits - 1)
    a = np.clip(np.rint(a / step), 0, 2**bits - 1) * step
    for layer in model.layers[2:]:
        a = layer.forward(a.astype(np.float32))
    return float(np.mean(a.argmax(axis=1) != labels))


def test_clipping_explorer_error_and_mse_are_the_quantizers():
    from qlib import calibrate

    ex = widgets.ClippingExplorer(bits=3)
    ex.controls["clip"].value = 3.5
    assert abs(ex.t - 3.5) <= ex.grid[0] / 2  # snapped to the grid
    # float32 scale in the explorer, float64 here: a test image whose top two
    # logits are within rounding could flip; none does at these settings
    assert ex.error == _fc1_by_hand(ex.t, 3)
    sample = ex.tables["sorted"]
    # the curve is measured on a 50,000-value sample of the non-zero values,
    # weighted by their share: within 3 % of the MSE over all of them
    mse = ex.tables["share"] * calibrate.clipping_mse(
        sample, 0.0, ex.t, 3, symmetric=False
    )
    assert ex.mse == pytest.approx(mse, rel=0.03)
    kept = np.mean(sample <= ex.t)
    assert ex.clipped_share == pytest.approx(1 - kept, abs=1e-12)
    assert f"test error {ex.error:.2%}" in ex.ax.get_title()


def test_clipping_explorer_finds_a_clip_below_the_maximum_at_low_bits():
    ex = widgets.ClippingExplorer(bits=2)
    # min-max (the last grid point) wastes levels on a tail of a few values:
    # at 2 bits the best threshold lies well inside the range, at 8 near its end
    assert ex.best_t < 0.6 * ex.grid[-1]
    assert ex.curve.min() < 0.5 * ex.curve[-1]
    ex.controls["bits"].value = 8
    assert ex.best_t > 0.8 * ex.grid[-1]


def test_clipping_explorer_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"bits must be an integer in \[2, 8\]"):
        widgets.ClippingExplorer(bits=1)
    with pytest.raises(ValueError, match="clip must be in"):
        widgets.ClippingExplorer(clip=100.0)


# ------------------------------------------------------------------ chapter 09


def test_bit_allocation_explorer_is_the_mixed_network():
    from qlib import data, mixed, nn, ptq

    ex = widgets.BitAllocationExplorer(bits=(3, 2, 8), marks={"greedy": (3, 2, 8)})
    model = nn.load_lenet()
    images, labels = data.load_mnist("test")
    quantized = mixed.quantize_mixed(model, (3, 2, 8))
    assert ex.error == nn.error_rate(quantized, nn.preprocess(images), labels)
    assert ex.marks["greedy"][1] == ex.error
    # sizes from ptq's exact bit counts: codes, fp16 scales and b-bit zero
    # points per row, float32 biases
    bits = sum(
        ptq.weight_bits(d.W.shape, b, "channel", symmetric=False) + 32 * d.b.size
        for d, b in zip(model.dense, (3, 2, 8), strict=True)
    )
    assert ex.kilobytes == pytest.approx(bits / 8000, rel=1e-12)
    assert [round(b.get_height(), 6) for b in ex.bars] == [
        round(ex.tables["lq"].layer_bytes(i, b) / 1e3, 6)
        for i, b in enumerate((3, 2, 8))
    ]
    ex.controls["fc1"].value = 8
    assert "fc1 8, fc2 2, fc3 8 bits" in ex.ax.get_title()
    assert f"test error {ex.error:.2%}" in ex.ax.get_title()


def test_bit_allocation_explorer_rejects_bad_arguments():
    with pytest.raises(ValueError, match="bits must be three widths from 2 to 8"):
        widgets.BitAllocationExplorer(bits=(1, 4, 4))
    with pytest.raises(ValueError, match=r"marks\['x'\] must be three widths"):
        widgets.BitAllocationExplorer(marks={"x": (4, 4)})

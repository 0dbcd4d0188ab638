"""MX and NVFP4 against blocks worked out by hand from the specifications."""

from __future__ import annotations

import numpy as np
import pytest

from qlib import mx
from qlib.floats import FORMATS


def scale_of(t: mx.BlockTensor) -> np.ndarray:
    return mx.E8M0.decode(t.scales)


def test_mxfp8_e4m3_scale_is_floor_log2_amax_minus_8():
    # amax 3: floor(log2 3) = 1, E4M3's largest normal 448 = 1.75 * 2^8: X = 2^-7
    t = mx.mx_quantize([0.5] * 31 + [3.0], "mxfp8_e4m3")
    assert scale_of(t).tolist() == [2.0**-7]
    # 0.5 / 2^-7 = 64 and 3 / 2^-7 = 384 = 1.5 * 2^8 are E4M3 values: exact
    assert FORMATS["fp8_e4m3fn"].decode(t.codes[0]).tolist() == [64.0] * 31 + [384.0]
    assert t.dequantize().tolist() == [0.5] * 31 + [3.0]


def test_all_zero_block():
    t = mx.mx_quantize(np.zeros(32), "mxfp8_e4m3")
    assert scale_of(t).tolist() == [2.0**-127]  # E8M0 code 0, the least scale
    assert t.codes.tolist() == [[0] * 32]
    assert t.dequantize().tolist() == [0.0] * 32


def test_one_huge_outlier_clips_itself_and_flushes_the_rest():
    # amax 1000: floor(log2 1000) = 9, X = 2^(9 - 8) = 2
    t = mx.mx_quantize([1e-3] * 31 + [1000.0], "mxfp8_e4m3")
    assert scale_of(t).tolist() == [2.0]
    out = t.dequantize()
    assert out[-1] == 896.0  # 1000 / 2 = 500 saturates to 448; 448 * 2
    # 1e-3 / 2 = 5e-4 is below half of E4M3's least subnormal 2^-9: flushed
    assert out[:31].tolist() == [0.0] * 31


def test_mxfp4_rounds_ties_to_even():
    # amax 5: floor(log2 5) = 2, E2M1's max 6 = 1.5 * 2^2: X = 1; 5 is halfway
    # between 4 (mantissa 0, even) and 6: round to 4
    t = mx.mx_quantize([5.0, 0.25, -0.75, 2.5], "mxfp4")
    assert scale_of(t).tolist() == [1.0]
    assert t.dequantize().tolist() == [
        4.0,
        0.0,
        -1.0,
        2.0,
    ]  # ties: 0.25->0, 0.75->1, 2.5->2


def test_mxint8_has_an_implicit_2_to_the_minus_6():
    # amax 3: X = 2^(1 - 0) = 2; 3 / 2 * 64 = 96 and 0.1 / 2 * 64 = 3.2 -> 3
    t = mx.mx_quantize([3.0, 0.1, -3.0], "mxint8")
    assert scale_of(t).tolist() == [2.0]
    assert t.dequantize().tolist() == [3.0, 3 / 32, -3.0]


@pytest.mark.parametrize("fmt", list(mx.MX_ELEMENTS))
def test_blocks_are_independent_and_shapes_survive(fmt):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 70)) * np.array([[1e-3], [1.0], [1e3]])
    t = mx.mx_quantize(x, fmt)
    assert t.codes.shape == (3, 3, 32) and t.scales.shape == (3, 3)
    out = t.dequantize()
    assert out.shape == x.shape
    # the relative error is set by the element format, whatever the row's size
    rel = np.abs(out - x).max(axis=1) / np.abs(x).max(axis=1)
    assert rel.max() < {"mxfp4": 0.26, "mxint8": 0.02}.get(fmt, 0.13)


def test_bits_per_element():
    assert mx.mx_quantize(np.ones(32), "mxfp8_e4m3").bits_per_element == 8.25
    assert mx.mx_quantize(np.ones(32), "mxfp6_e2m3").bits_per_element == 6.25
    assert mx.mx_quantize(np.ones(32), "mxfp4").bits_per_element == 4.25
    assert mx.nvfp4_quantize(np.ones(16)).bits_per_element == 4.5


def test_nvfp4_two_level_scaling():
    # tensor amax 6: s_tensor = 6 / (448 * 6) = 1/448; the block scale
    # 6 / 6 / s_tensor = 448 is E4M3's max: exact, and so are the elements
    t = mx.nvfp4_quantize([6.0] * 16 + [0.75] * 16)
    assert t.tensor_scale == np.float32(1 / 448)
    assert FORMATS["fp8_e4m3fn"].decode(t.scales).tolist() == [448.0, 56.0]
    assert t.dequantize().tolist() == pytest.approx([6.0] * 16 + [0.75] * 16, rel=1e-6)


def test_scale_exponent_is_the_exact_floor_of_log2():
    # np.log2 rounds 2**60 - 128 up to 60.0; the binade is 59: X = 2^(59 - 8)
    t = mx.mx_quantize([np.nextafter(2.0**60, 0)], "mxfp8_e4m3", block_size=1)
    assert scale_of(t).tolist() == [2.0**51]


def test_bad_input():
    with pytest.raises(ValueError, match="fmt must be one of"):
        mx.mx_quantize([1.0], "mxfp5")
    with pytest.raises(ValueError, match="x must be finite"):
        mx.mx_quantize([np.nan], "mxfp4")


# ------------------------------------------------------------ per tensor


def test_per_tensor_maps_amax_to_the_format_max():
    import ml_dtypes

    rng = np.random.default_rng(3)
    x = (rng.normal(size=4096) * np.exp(rng.normal(0, 2, 4096))).astype(np.float32)
    for name, dtype in (
        ("fp8_e4m3fn", ml_dtypes.float8_e4m3fn),
        ("fp8_e5m2", ml_dtypes.float8_e5m2),
        ("fp4_e2m1fn", ml_dtypes.float4_e2m1fn),
    ):
        top = FORMATS[name].max
        # a power-of-two scale keeps x * scale exact in float32, so that
        # ml_dtypes rounds once, as qlib does
        amax = top / 2.0**5
        assert mx.tensor_scale(x, name, amax) == 32.0
        scaled = np.clip(x * np.float32(32), -top, top)  # saturate, then round
        expected = scaled.astype(dtype).astype(np.float64) / 32
        assert np.array_equal(mx.per_tensor_quantize(x, name, amax), expected), name
        # the default amax is max|x|, stored exactly at +-max
        q = mx.per_tensor_quantize(x, name)
        i = np.argmax(np.abs(x))
        assert np.isclose(q[i], x[i], rtol=1e-12) and np.abs(q).max() <= np.abs(x[i])


def test_per_tensor_saturates_beyond_a_calibrated_amax():
    x = np.array([-10.0, -1.0, 0.5, 3.0, 10.0])
    # scale 448 / 3.5 = 128: -1, 0.5 and 3 land on E4M3 values (-128, 64, 384)
    q = mx.per_tensor_quantize(x, "fp8_e4m3fn", amax=3.5)
    assert q.tolist() == [-3.5, -1.0, 0.5, 3.0, 3.5]


def test_per_tensor_int8_is_symmetric_round_half_even():
    # amax 12.7: scale 10, codes rint(10 x) within [-127, 127]
    x = np.array([-12.7, -0.25, 0.05, 0.15, 1.0, 12.7])
    q = mx.per_tensor_quantize(x, "int8")
    assert mx.tensor_scale(x, "int8") == 127 / 12.7
    np.testing.assert_allclose(q * 10, [-127, -2, 0, 2, 10, 127], atol=1e-12)
    assert mx.per_tensor_quantize(np.zeros(3), "int8").tolist() == [0.0] * 3


def test_per_tensor_bad_arguments():
    with pytest.raises(ValueError, match="fmt must be 'int8' or one of"):
        mx.per_tensor_quantize([1.0], "fp7")
    with pytest.raises(ValueError, match="amax must be finite"):
        mx.tensor_scale([1.0], "fp8_e4m3fn", amax=-1.0)
    assert mx.tensor_scale(np.zeros(4), "fp8_e4m3fn") == 1.0

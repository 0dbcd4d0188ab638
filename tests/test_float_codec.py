"""The float32 fast paths of FloatFormat.encode, bit for bit, on every float32
class that can round differently: all 2^16 top halves of the bit pattern, each
with low halves on both sides of every rounding tie; against ml_dtypes and
NumPy (the oracles), and against the general float64 rounding for the formats
they do not have."""

from __future__ import annotations

import numpy as np
import pytest
from test_floats import ORACLES

from qlib import _float_codec
from qlib.floats import FORMATS, FloatFormat

PATHS = {
    "fp64": "widen",
    "fp32": "copy",
    "tf32": "prefix",
    "fp16": "bits",
    "bf16": "prefix",
    "fp8_e4m3fn": "table",
    "fp8_e5m2": "table",
    "fp8_e4m3fnuz": "table",
    "fp8_e5m2fnuz": "table",
    "fp6_e2m3fn": "table",
    "fp6_e3m2fn": "table",
    "fp4_e2m1fn": "table",
    "e8m0fnu": "e8m0",
}
# Low halves: zero (exact ties of the top half), one, either side of the ties
# of 16 (bf16) and 13 (fp16, tf32) dropped bits with both parities of the kept
# bit, and all ones.
LOWS = [0x0000, 0x0001, 0x0FFF, 0x1000, 0x1001, 0x2FFF, 0x3000, 0x3001]
LOWS += [0x7FFF, 0x8000, 0x8001, 0x9000, 0xE000, 0xFFFE, 0xFFFF]


def every_class() -> np.ndarray:
    """Every top half with every low half of LOWS: 983,040 float32 patterns,
    all exponents, both signs, subnormals, infinities and NaNs."""
    high = np.arange(2**16, dtype=np.uint32) << np.uint32(16)
    return (high[:, None] | np.array(LOWS, np.uint32)).reshape(-1).view(np.float32)


def oracle(x: np.ndarray, name: str) -> np.ndarray:
    dtype = ORACLES[name]
    with np.errstate(over="ignore", invalid="ignore"):
        typed = x.astype(dtype)
    width = np.dtype(dtype).itemsize
    return typed.view(np.uint16 if width == 2 else np.uint8).astype(np.uint64)


def general(fmt: FloatFormat, x: np.ndarray, saturate: bool = False) -> np.ndarray:
    """The general rounding, on the same values as float64."""
    with np.errstate(invalid="ignore"):
        wide = x.astype(np.float64)
    return fmt.encode(wide, saturate).astype(np.uint64)


def show(x, got, expected) -> list:
    bad = np.nonzero(got != expected)[0][:5]
    return [(hex(x.view(np.uint32)[i]), hex(expected[i]), hex(got[i])) for i in bad]


def test_every_format_has_its_float32_path():
    assert {n: _float32_codec_path(n) for n in FORMATS} == PATHS


def _float32_codec_path(name: str) -> str:
    return _float_codec._float32_path(FORMATS[name])


@pytest.mark.parametrize("name", ORACLES)
def test_every_float32_class_matches_the_oracle(name):
    fmt, x = FORMATS[name], every_class()
    expected, got = oracle(x, name), fmt.encode(x).astype(np.uint64)
    assert np.array_equal(got, expected), show(x, got, expected)


@pytest.mark.parametrize("name", ORACLES)
def test_saturate_is_the_oracle_of_the_clipped_value(name):
    fmt, x = FORMATS[name], every_class()
    top = np.float32(fmt.max)
    expected = oracle(np.clip(x, -top, top), name)  # NaN stays NaN
    got = fmt.encode(x, saturate=True).astype(np.uint64)
    assert np.array_equal(got, expected), show(x, got, expected)


def test_tf32_fp32_fp64_classes_against_the_float64_rounding_and_numpy():
    x = every_class()
    nan = np.isnan(x)
    tf32 = FORMATS["tf32"]
    for saturate in (False, True):
        got = tf32.encode(x, saturate).astype(np.uint64)
        assert np.array_equal(got[~nan], general(tf32, x, saturate)[~nan])
    assert_payloads_kept(tf32, x[nan])
    # tf32 is the top 19 bits of the float32, rounded: check the values too
    values = tf32.decode(tf32.encode(x[~nan]))
    u = x[~nan].view(np.uint32).astype(np.uint64)
    low, keep = u & 0x1FFF, u >> 13
    up = (low > 0x1000) | ((low == 0x1000) & (keep & 1 == 1))
    with np.errstate(over="ignore"):
        by_bits = ((keep + up) << 13).astype(np.uint32).view(np.float32)
    assert np.array_equal(values, by_bits.astype(np.float64))
    # fp32: the very bits; fp64: NumPy's widening cast, NaNs included
    assert np.array_equal(FORMATS["fp32"].encode(x), x.view(np.uint32))
    with np.errstate(invalid="ignore"):
        widened = x.astype(np.float64).view(np.uint64)
    assert np.array_equal(FORMATS["fp64"].encode(x), widened)
    for name in ("fp32", "fp64"):  # saturate: only the infinities change
        fmt = FORMATS[name]
        got = fmt.encode(x, saturate=True).astype(np.uint64)
        assert np.array_equal(got[~nan], general(fmt, x, saturate=True)[~nan])


@pytest.mark.parametrize("name", [n for n in FORMATS if FORMATS[n].bits <= 16])
def test_every_midpoint_and_its_float32_neighbours(name):
    fmt = FORMATS[name]
    values = np.unique(fmt.all_values()[np.isfinite(fmt.all_values())])
    mids = ((values[1:] + values[:-1]) / 2).astype(np.float32)  # exact: few bits
    steps = np.arange(-2, 3, dtype=np.int64)  # the tie and 1, 2 ulps either side
    u = (mids.view(np.uint32).astype(np.int64)[:, None] + steps).reshape(-1)
    x = u.astype(np.uint32).view(np.float32)
    x = np.concatenate([x, -x])
    got = fmt.encode(x).astype(np.uint64)
    expected = oracle(x, name) if name in ORACLES else general(fmt, x)
    assert np.array_equal(got, expected), show(x, got, expected)


CUSTOM = [
    (FloatFormat("e5m7", 5, 7), "bits"),
    (FloatFormat("e4m9fn", 4, 9, specials="fn"), "bits"),
    (FloatFormat("e5m8fnuz", 5, 8, specials="fnuz"), "bits"),
    (FloatFormat("e3m10", 3, 10, specials="none"), "bits"),
    (FloatFormat("e8m12b127", 8, 12, bias=127, specials="fn"), ""),  # past float32
    (FloatFormat("e7m9b127", 7, 9, bias=127), "bits"),  # float32's subnormal step
    (FloatFormat("e5m3payload", 5, 3, nan_payload=True), "bits"),
    (FloatFormat("e8m5", 8, 5), "table"),
    (FloatFormat("e3m4", 3, 4), "table"),
    (FloatFormat("e4m2b3", 4, 2, bias=3, specials="none"), "table"),
    (FloatFormat("e8m14", 8, 14), "prefix"),
    (FloatFormat("e8m0b100", 8, 0, bias=100, specials="e8m0"), ""),
]


@pytest.mark.parametrize(("fmt", "path"), CUSTOM, ids=[f.name for f, _ in CUSTOM])
def test_custom_formats_match_the_float64_rounding(fmt, path):
    assert _float_codec._float32_path(fmt) == path
    x = every_class()
    keep = ~np.isnan(x) if fmt.nan_payload else slice(None)  # see below
    for saturate in (False, True):
        got = fmt.encode(x, saturate).astype(np.uint64)
        expected = general(fmt, x, saturate)
        assert np.array_equal(got[keep], expected[keep]), show(x, got, expected)
    if fmt.nan_payload:
        assert_payloads_kept(fmt, x[np.isnan(x)])


def assert_payloads_kept(fmt: FloatFormat, nan: np.ndarray) -> None:
    """NumPy's rule from float32: the sign, and the top bits of the payload,
    at least 1 (so that a NaN stays a NaN)."""
    u = nan.view(np.uint32).astype(np.uint64)
    payload = np.maximum((u & 0x7FFFFF) >> np.uint64(23 - fmt.man_bits), 1)
    top = np.uint64(fmt.bits - 1)
    body = np.uint64(fmt._e_max_field << fmt.man_bits)
    expected = ((u >> np.uint64(31)) << top) | body | payload
    assert np.array_equal(fmt.encode(nan).astype(np.uint64), expected)


@pytest.mark.parametrize("name", ["fp16", "bf16", "fp8_e4m3fn", "e8m0fnu"])
def test_blocks_shapes_strides_and_empty_arrays(name):
    fmt = FORMATS[name]
    rng = np.random.default_rng(3)
    n = 2 * _float_codec._BLOCK + 12_345  # blocks and a ragged tail
    x = (rng.standard_normal(n) * 10.0 ** rng.integers(-8, 8, n)).astype(np.float32)
    x[rng.integers(0, n, 500)] = np.nan
    x[rng.integers(0, n, 500)] = 0.0
    expected = oracle(x, name)
    assert np.array_equal(fmt.encode(x).astype(np.uint64), expected)
    grid = x[: 600 * 500].reshape(600, 500)
    for view in (grid, grid.T, grid[::3, ::-2], x[::-7]):
        got = fmt.encode(view)
        assert got.shape == view.shape and got.dtype == fmt.code_dtype
        assert np.array_equal(got.astype(np.uint64), oracle(view, name))
    assert fmt.encode(np.float32(1.5)).shape == ()
    assert int(fmt.encode(np.float32(1.5))) == int(oracle(np.float32([1.5]), name)[0])
    assert fmt.encode(np.zeros(0, np.float32)).shape == (0,)
    assert fmt.encode(np.zeros((0, 3), np.float32), saturate=True).shape == (0, 3)


def test_e8m0_tells_zero_from_the_smallest_positive_values():
    e8m0 = FORMATS["e8m0fnu"]
    x = np.float32([0.0, -0.0, 1e-45, 2.0**-127, 1.5 * 2.0**-127, 2.0, 3.0])
    assert e8m0.encode(x).tolist() == [255, 255, 0, 0, 1, 128, 129]  # 3: a tie, up
    assert e8m0.encode(np.float32([2.0, 4.0])).tolist() == [128, 129]  # no zero


@pytest.mark.parametrize("name", ["fp16", "bf16", "fp8_e4m3fn", "fp4_e2m1fn"])
def test_the_largest_float64_overflows_without_a_warning(name):
    # float64 max rounds up past 2**1024 in every narrower format: the
    # overflow code, and no RuntimeWarning (the suite turns warnings into errors)
    big = np.array([np.finfo(np.float64).max, -np.finfo(np.float64).max])
    fmt = FORMATS[name]
    want = np.array([float(v) for v in big]).astype(np.float64)
    got = fmt.decode(fmt.encode(big))
    if fmt.has_inf:
        assert np.array_equal(got, np.sign(want) * np.inf)
    elif fmt.has_nan:
        assert np.isnan(got).all()
    else:  # no inf, no NaN: saturates to the largest value
        assert np.array_equal(got, np.sign(want) * fmt.max)

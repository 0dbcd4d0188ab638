"""qlib.floats, bit for bit against ml_dtypes and NumPy's own float types."""

from __future__ import annotations

import itertools

import ml_dtypes
import numpy as np
import pytest
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

from qlib.floats import FORMATS, FloatFormat

ORACLES = {
    "fp16": np.float16,
    "bf16": ml_dtypes.bfloat16,
    "fp8_e4m3fn": ml_dtypes.float8_e4m3fn,
    "fp8_e5m2": ml_dtypes.float8_e5m2,
    "fp8_e4m3fnuz": ml_dtypes.float8_e4m3fnuz,
    "fp8_e5m2fnuz": ml_dtypes.float8_e5m2fnuz,
    "fp6_e2m3fn": ml_dtypes.float6_e2m3fn,
    "fp6_e3m2fn": ml_dtypes.float6_e3m2fn,
    "fp4_e2m1fn": ml_dtypes.float4_e2m1fn,
    "e8m0fnu": ml_dtypes.float8_e8m0fnu,
}


def storage(dtype) -> np.dtype:
    return np.dtype(np.uint16 if np.dtype(dtype).itemsize == 2 else np.uint8)


def oracle_codes(x: np.ndarray, dtype) -> np.ndarray:
    with np.errstate(over="ignore", invalid="ignore"):
        return x.astype(dtype).view(storage(dtype)).astype(np.uint64)


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return np.array_equal(np.asarray(a, np.float64).view(np.uint64), b.view(np.uint64))


@pytest.mark.parametrize("name", ORACLES)
def test_every_code_decodes_like_the_oracle(name):
    fmt, dtype = FORMATS[name], ORACLES[name]
    codes = np.arange(2**fmt.bits, dtype=np.uint64)
    with np.errstate(invalid="ignore"):  # signalling NaN codes
        expected = codes.astype(storage(dtype)).view(dtype).astype(np.float64)
    got = fmt.decode(codes)
    nan = np.isnan(expected)
    assert np.array_equal(np.isnan(got), nan)
    assert same_bits(got[~nan], expected[~nan])  # signed zeros included


def rounding_inputs(fmt: FloatFormat, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    values = np.unique(fmt.all_values()[np.isfinite(fmt.all_values())])
    mids = (values[1:] + values[:-1]) / 2  # exact ties between neighbours
    near = np.concatenate([np.nextafter(mids, -np.inf), np.nextafter(mids, np.inf)])
    parts = [
        rng.integers(0, 2**32, 1_000_000, dtype=np.uint64)
        .astype(np.uint32)
        .view(np.float32),  # random bit patterns: every exponent, NaNs and infinities
        (rng.standard_normal(200_000) * fmt.max / 4),
        rng.uniform(-fmt.min_normal, fmt.min_normal, 100_000),  # subnormals
        rng.uniform(-2 * fmt.max, 2 * fmt.max, 50_000),  # overflow
        mids,
        -mids,
        near,
        -near,
        values,
        [0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan, fmt.max, -fmt.max],
    ]
    with np.errstate(invalid="ignore", over="ignore"):  # NaN bit patterns, overflow
        x = np.concatenate([np.asarray(p, np.float64) for p in parts])
        x32 = x.astype(np.float32)
    return x32[np.isnan(x32) | (x32.astype(np.float64) == x) | ~np.isfinite(x)]


@pytest.mark.parametrize("name", ORACLES)
def test_rounding_matches_astype_from_float32(name):
    fmt, dtype = FORMATS[name], ORACLES[name]
    x = rounding_inputs(fmt, seed=len(name))
    assert x.size >= 1_000_000
    expected = oracle_codes(x, dtype)
    got = fmt.encode(x).astype(np.uint64)
    bad = np.nonzero(got != expected)[0]
    assert bad.size == 0, [
        (float(x[i]), hex(expected[i]), hex(got[i])) for i in bad[:5]
    ]


@pytest.mark.parametrize("name", ORACLES)
def test_limits_match_finfo(name):
    fmt, info = FORMATS[name], ml_dtypes.finfo(ORACLES[name])
    assert fmt.max == float(info.max)
    assert fmt.min_normal == float(info.tiny)
    assert fmt.min_subnormal == float(info.smallest_subnormal)
    assert fmt.eps == float(info.eps)
    assert fmt.bits == info.bits
    if name != "e8m0fnu":
        assert 1 - fmt.bias == int(info.minexp)


def test_fp32_and_fp64_against_numpy_bit_patterns():
    rng = np.random.default_rng(1)
    raw32 = rng.integers(0, 2**32, 1_000_000, dtype=np.uint64).astype(np.uint32)
    dec = FORMATS["fp32"].decode(raw32)
    with np.errstate(invalid="ignore"):
        ref = raw32.view(np.float32).astype(np.float64)
    nan = np.isnan(ref)
    assert np.array_equal(np.isnan(dec), nan) and same_bits(dec[~nan], ref[~nan])
    # float32 inputs: encoding to fp32 gives back the very same bits, NaNs too
    assert np.array_equal(FORMATS["fp32"].encode(raw32.view(np.float32)), raw32)
    raw64 = rng.integers(0, 2**64 - 1, 1_000_000, dtype=np.uint64, endpoint=True)
    dec = FORMATS["fp64"].decode(raw64)
    nan = np.isnan(raw64.view(np.float64))
    assert np.array_equal(np.isnan(dec), nan)
    assert np.array_equal(dec[~nan].view(np.uint64), raw64[~nan])
    # float64 -> fp32 rounding against NumPy's cast (NaN payloads aside)
    x = raw64.view(np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        expected = x.astype(np.float32).view(np.uint32)
    got = FORMATS["fp32"].encode(x)
    keep = ~np.isnan(x)
    assert np.array_equal(got[keep], expected[keep])
    assert np.isnan(FORMATS["fp32"].decode(got[~keep])).all()


@pytest.mark.parametrize(
    ("name", "onnx_type"),
    [
        ("fp8_e4m3fn", TensorProto.FLOAT8E4M3FN),
        ("fp8_e5m2", TensorProto.FLOAT8E5M2),
        ("fp8_e4m3fnuz", TensorProto.FLOAT8E4M3FNUZ),
        ("fp8_e5m2fnuz", TensorProto.FLOAT8E5M2FNUZ),
    ],
)
def test_saturate_matches_onnx_cast(name, onnx_type):
    node = helper.make_node("Cast", ["x"], ["y"], to=onnx_type, saturate=1)
    graph = helper.make_graph(
        [node],
        "cast",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None])],
        [helper.make_tensor_value_info("y", onnx_type, [None])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    rng = np.random.default_rng(2)
    fmt = FORMATS[name]
    x = np.concatenate(
        [rng.uniform(-3, 3, 20_000) * fmt.max, [np.inf, -np.inf, np.nan, 0.0]]
    ).astype(np.float32)
    (y,) = ReferenceEvaluator(model).run(None, {"x": x})
    expected = np.asarray(y).view(np.uint8).astype(np.uint64)
    assert np.array_equal(fmt.encode(x, saturate=True).astype(np.uint64), expected)


def test_quantize_fields_and_values():
    fp8 = FORMATS["fp8_e4m3fn"]
    assert fp8.quantize(0.1) == 0.1015625  # 13/128: the nearest E4M3 value
    s, e, m = fp8.fields(np.array([0x7E, 0x80]))
    assert s.tolist() == [0, 1] and e.tolist() == [15, 0] and m.tolist() == [6, 0]
    assert FORMATS["fp4_e2m1fn"].all_values()[8:].tolist() == [
        -0.0,
        -0.5,
        -1.0,
        -1.5,
        -2.0,
        -3.0,
        -4.0,
        -6.0,
    ]
    assert FORMATS["tf32"].quantize(1 + 2**-11) == 1.0  # a tie: to even
    assert FORMATS["tf32"].quantize(1 + 3 * 2**-11) == 1 + 2**-9
    custom = FloatFormat("e3m4", 3, 4)
    assert custom.max == 15.5 and custom.bits == 8


def test_bad_formats_and_codes():
    with pytest.raises(ValueError, match="exp_bits must be in"):
        FloatFormat("x", 0, 3)
    with pytest.raises(ValueError, match="exp_bits must be in"):
        FloatFormat("x", 1, 3)  # IEEE specials need two exponent codes at least
    with pytest.raises(ValueError, match="man_bits must be in"):
        FloatFormat("x", 11, 53)
    with pytest.raises(ValueError, match=r"exp_bits must be in \[2, 11\]"):
        FloatFormat("x", 12, 3)  # more than fp64's range
    with pytest.raises(ValueError, match="specials must be one of"):
        FloatFormat("x", 4, 3, specials="nan")
    with pytest.raises(ValueError, match=r"codes must be in \[0, 2\*\*8 - 1\]"):
        FORMATS["fp8_e4m3fn"].decode(256)
    with pytest.raises(TypeError, match="codes must be integers"):
        FORMATS["fp8_e4m3fn"].decode(1.5)
    with pytest.raises(TypeError, match="x must be real numbers"):
        FORMATS["fp16"].encode(["a"])


@pytest.mark.parametrize("name", [n for n in ORACLES if n != "e8m0fnu"])
def test_next_up_and_down_match_nextafter(name):
    fmt, dtype = FORMATS[name], ORACLES[name]
    values = fmt.all_values()
    v = values[np.isfinite(values) & (np.abs(values) < fmt.max)]
    with np.errstate(invalid="ignore"):
        typed = v.astype(np.float32).astype(dtype)
        top = np.full(v.shape, fmt.max, np.float32).astype(dtype)
        up = np.nextafter(typed, top).astype(np.float64)
        down = np.nextafter(typed, (-top.astype(np.float32)).astype(dtype))
    assert same_bits(fmt.next_up(v), up)
    assert same_bits(fmt.next_down(v), down.astype(np.float64))
    # between two values: the neighbour on that side
    rng = np.random.default_rng(0)
    x = rng.uniform(-fmt.max, fmt.max, 10_000)
    finite = np.unique(values[np.isfinite(values)])
    above = finite[np.searchsorted(finite, x, side="right")]
    below = finite[np.searchsorted(finite, x, side="left") - 1]
    assert np.array_equal(fmt.next_up(x), above)
    assert np.array_equal(fmt.next_down(x), below)
    beyond = np.inf if fmt.specials == "ieee" else np.nan
    assert same_bits(fmt.next_up(fmt.max), np.float64(beyond))
    assert same_bits(fmt.next_down(-fmt.max), np.float64(-beyond))
    assert fmt.next_up(-2 * fmt.max) == -fmt.max


def test_ulp_matches_numpy_spacing_for_fp16():
    fp16 = FORMATS["fp16"]
    v = fp16.all_values()
    v = v[np.isfinite(v) & (v >= 0) & (v < fp16.max)]
    assert np.array_equal(
        fp16.ulp(v), np.spacing(v.astype(np.float16)).astype(np.float64)
    )
    assert FORMATS["e8m0fnu"].ulp(8.0) == 8.0


@pytest.mark.parametrize("name", [n for n in ORACLES if n != "e8m0fnu"])
def test_classify(name):
    fmt = FORMATS[name]
    codes = np.arange(2**fmt.bits, dtype=np.uint64)
    v = fmt.decode(codes)
    kinds = fmt.classify(codes)
    assert np.array_equal(kinds == "nan", np.isnan(v))
    assert np.array_equal(kinds == "inf", np.isinf(v))
    assert np.array_equal(kinds == "zero", v == 0)
    finite = np.isfinite(v) & (v != 0)
    assert np.array_equal(kinds == "subnormal", finite & (np.abs(v) < fmt.min_normal))
    assert np.array_equal(kinds == "normal", finite & (np.abs(v) >= fmt.min_normal))


def test_stochastic_rounding_is_unbiased_and_seeded():
    fp8 = FORMATS["fp8_e4m3fn"]
    x = np.full(200_000, 1.03)  # between 1.0 and 1.125
    q = fp8.quantize(x, rounding="stochastic", seed=0)
    assert set(np.unique(q).tolist()) == {1.0, 1.125}
    assert abs(q.mean() - 1.03) < 1e-3  # rounding to nearest would give 1.0
    again = fp8.quantize(x, rounding="stochastic", seed=0)
    assert np.array_equal(q, again)
    exact = fp8.all_values()[np.isfinite(fp8.all_values())]
    assert same_bits(fp8.quantize(exact, rounding="stochastic", seed=1), exact)
    with pytest.raises(ValueError, match="rounding must be"):
        fp8.encode(1.0, rounding="up")


@pytest.mark.parametrize("name", [n for n in FORMATS if FORMATS[n].bits <= 16])
def test_float32_fast_path_equals_the_general_rounding(name):
    fmt = FORMATS[name]
    x = rounding_inputs(fmt, seed=7)[:300_000]
    with np.errstate(invalid="ignore"):
        wide = x.astype(np.float64)
    for saturate in (False, True):
        fast = fmt.encode(x, saturate=saturate)
        general = fmt.encode(wide, saturate=saturate)
        if fmt.nan_payload:  # payload bits differ by design between the paths
            keep = ~np.isnan(x)
            fast, general = fast[keep], general[keep]
        assert np.array_equal(fast, general)


# ------------------------------------------------ chapter 05's definitions


@pytest.mark.parametrize("name", ORACLES)
def test_specials_binades_and_positive_values_match_the_oracle(name):
    # every code of the oracle type, decoded by the oracle
    fmt, dtype = FORMATS[name], ORACLES[name]
    codes = np.arange(2**fmt.bits, dtype=np.uint64)
    with np.errstate(invalid="ignore"):
        values = codes.astype(storage(dtype)).view(dtype).astype(np.float64)
    assert fmt.has_inf == bool(np.isinf(values).any())
    assert fmt.has_nan == bool(np.isnan(values).any())
    assert fmt.has_negative_zero == bool(np.signbit(values[values == 0]).any())
    finite = values[np.isfinite(values)]
    positive = np.unique(finite[finite > 0])
    assert np.array_equal(fmt.positive_values(), positive)
    assert fmt.binades == pytest.approx(np.log2(positive[-1] / positive[0]), rel=1e-15)


def test_wide_formats_have_every_special():
    # fp32/fp64 against NumPy's bit patterns; tf32 is fp32 with 13 bits dropped
    for name in ("fp32", "fp64", "tf32"):
        f = FORMATS[name]
        assert (f.has_inf, f.has_nan, f.has_negative_zero) == (True, True, True)
    assert np.isinf(np.array([0x7F800000], np.uint32).view(np.float32)).all()
    info = np.finfo(np.float32)
    assert FORMATS["fp32"].binades == pytest.approx(
        np.log2(float(info.max) / float(info.smallest_subnormal)), rel=1e-15
    )
    with pytest.raises(ValueError, match="at most 2\\*\\*16 codes"):
        FORMATS["fp32"].positive_values()


def test_flushed_counts_nonzero_values_stored_as_zero():
    from qlib.floats import flushed

    x = np.array([1.0, 1e-3, 2.0**-10, 0.0, -0.0, -1e-5])
    q = FORMATS["fp8_e4m3fn"].quantize(x)
    # 2**-10 is half the least subnormal 2**-9: a tie, to even (zero)
    assert q.tolist() == [1.0, 2.0**-9, 0.0, 0.0, -0.0, -0.0]
    assert flushed(x, q) == 2 / 6  # the zeros were zero already
    assert flushed([], []) == 0.0
    assert flushed(x.reshape(2, 3), q.reshape(2, 3)) == 2 / 6
    with pytest.raises(ValueError, match="one shape"):
        flushed(x, q[:3])


# ---------------------------------------------------------------- exact input


def _rational_cases(fmt: FloatFormat, pairs: int | None = None):
    """(q, saturate, expected code): numbers a hair (2**-60 of a step) on
    either side of every midpoint between adjacent finite values and of the
    overflow thresholds, and the values themselves.  The oracle is exact:
    the nearest of the format's values as Fractions, or, past the threshold
    (largest value + half its ulp), what encode gives for twice that."""
    from fractions import Fraction

    values = fmt.all_values()
    finite = np.unique(values[np.isfinite(values)])  # one zero (-0 == 0)
    steps = list(itertools.pairwise(finite))
    if pairs is not None and len(steps) > pairs:  # spread over the range
        picked = np.linspace(0, len(steps) - 1, pairs).round().astype(int)
        steps = [steps[i] for i in sorted(set(picked))]

    def code_of(v: float, negative: bool) -> int:
        """The code of the value v; a zero signed as ``negative`` says."""
        return int(fmt.encode(v if v != 0 else (-0.0 if negative else 0.0)))

    for a, b in steps:
        fa, fb = Fraction(float(a)), Fraction(float(b))
        m, eps = (fa + fb) / 2, (fb - fa) / 2**60
        negative = m < 0
        yield m + eps, False, code_of(float(b), negative and b == 0)
        yield m - eps, False, code_of(float(a), negative or a < 0)
        yield fa, False, code_of(float(a), a < 0)
    top = Fraction(fmt.max)
    threshold = top + Fraction(float(fmt.ulp(fmt.max))) / 2
    eps = threshold / 2**80
    for sign in (1, -1):
        over = int(fmt.encode(sign * float(2 * threshold)))
        yield sign * (threshold - eps), False, code_of(sign * fmt.max, False)
        yield sign * (threshold + eps), False, over
        yield sign * (threshold + eps), True, code_of(sign * fmt.max, False)


@pytest.mark.parametrize("name", [n for n in FORMATS if FORMATS[n].bits <= 16])
def test_encode_rational_rounds_once(name):
    """encode_rational against the exact oracle; and encode(float(q)), which
    rounds twice, misses some of these cases (so they test something)."""
    fmt = FORMATS[name]
    cases = list(_rational_cases(fmt, pairs=None if fmt.bits <= 8 else 1500))
    twice_wrong = 0
    for q, saturate, want in cases:
        got = fmt.encode_rational(q, saturate)
        assert got == want, (name, q, saturate, got, want)
        twice_wrong += int(fmt.encode(float(q), saturate)) != want
    if name != "e8m0fnu":  # its ties go away from zero, the side q lies on
        assert twice_wrong > 0, name


def test_encode_rational_in_the_wide_formats():
    from fractions import Fraction

    tiny = Fraction(1, 10**40)
    fp32, fp64 = FORMATS["fp32"], FORMATS["fp64"]
    half = 1 + Fraction(1, 2**24)  # midway between 1 and the next float32
    up, down = np.float32(1) + np.finfo(np.float32).eps, np.float32(1)
    assert fp32.encode_rational(half + tiny) == up.view(np.uint32)
    assert fp32.encode_rational(half - tiny) == down.view(np.uint32)
    assert fp32.encode(float(half + tiny)) == down.view(np.uint32)  # twice: wrong
    # float64 itself rounds once already
    q = Fraction(1, 10)
    assert fp64.encode_rational(q) == np.float64(0.1).view(np.uint64)
    assert fp32.encode_rational(10**400) == np.float32(np.inf).view(np.uint32)
    assert fp32.encode_rational(-(10**400), True) == np.float32(-3.4028235e38).view(
        np.uint32
    )
    for bad in (0.5, True, "1/3", None):
        with pytest.raises(TypeError, match="value must be a Fraction or an integer"):
            fp32.encode_rational(bad)

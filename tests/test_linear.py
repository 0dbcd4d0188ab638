"""Chapter 07: qlib.linear against the ONNX reference QuantizeLinear /
DequantizeLinear, qlib.intinfer against gemmlowp/TFLite's published
requantization formulas (written here again with Python ints) and the
integer-only layers against exact rational arithmetic."""

from __future__ import annotations

import math
from fractions import Fraction

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

from qlib import fixedpoint
from qlib.intinfer import (
    INT32_MAX,
    INT32_MIN,
    QuantizedConv2d,
    QuantizedLinear,
    im2col,
    multiply_by_quantized_multiplier,
    quantize_multiplier,
    rounding_divide_by_pot,
    saturating_rounding_doubling_high_mul,
)
from qlib.linear import dequantize_linear, linear_qparams, quantize_linear

OPSET = 21  # int4/uint4 and block_size

# ------------------------------------------------------------ ONNX oracle


def _onnx_type(dtype: np.dtype) -> int:
    return {
        "float16": TensorProto.FLOAT16,
        "float32": TensorProto.FLOAT,
        "float64": TensorProto.DOUBLE,
        "int8": TensorProto.INT8,
        "uint8": TensorProto.UINT8,
        "int16": TensorProto.INT16,
        "uint16": TensorProto.UINT16,
        "int4": TensorProto.INT4,
        "uint4": TensorProto.UINT4,
    }[np.dtype(dtype).name]


def _run(op, a, scale, zero_point, out_type, axis=None, block_size=None):
    attrs = {} if axis is None else {"axis": axis}
    if block_size is not None:
        attrs["block_size"] = block_size
    node = helper.make_node(op, ["a", "s", "z"], ["y"], **attrs)
    inputs = [
        helper.make_tensor_value_info(n, _onnx_type(v.dtype), None)
        for n, v in (("a", a), ("s", scale), ("z", zero_point))
    ]
    graph = helper.make_graph(
        [node], "g", inputs, [helper.make_tensor_value_info("y", out_type, None)]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    return ReferenceEvaluator(model).run(None, {"a": a, "s": scale, "z": zero_point})[0]


# ONNX's int4/uint4 are packed types; ml_dtypes holds their values
ZP_DTYPE = {
    (8, True): np.int8,
    (8, False): np.uint8,
    (4, True): ml_dtypes.int4,
    (4, False): ml_dtypes.uint4,
    (16, True): np.int16,
    (16, False): np.uint16,
}
KINDS = list(ZP_DTYPE)


def onnx_quantize(x, scale, zero_point, bits, signed, axis=None, block_size=None):
    z = np.asarray(zero_point).astype(ZP_DTYPE[bits, signed])
    y = _run("QuantizeLinear", x, scale, z, _onnx_type(z.dtype), axis, block_size)
    return y.astype(np.int32)


def onnx_dequantize(q, scale, zero_point, bits, signed, axis=None, block_size=None):
    dtype = ZP_DTYPE[bits, signed]
    q, z = np.asarray(q).astype(dtype), np.asarray(zero_point).astype(dtype)
    return _run(
        "DequantizeLinear", q, scale, z, _onnx_type(scale.dtype), axis, block_size
    )


def code_range(bits, signed):
    return (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)


def random_case(rng, shape, s_shape, bits, signed, dtype=np.float32):
    """Values t (x = t * scale, the caller's layout), a scale and a zero point:
    t + Z covers the codes and runs past both ends (saturation)."""
    lo, hi = code_range(bits, signed)
    scale = rng.uniform(0.01, 2.0, s_shape).astype(dtype)
    zero_point = rng.integers(lo, hi + 1, s_shape)
    span = 1.2 * (hi - lo + 1) / 2
    x = (rng.uniform(-span, span, shape) * 1.6).astype(dtype)
    return x, scale, zero_point


# float16 holds integers up to 2048 only: no 16-bit codes with float16 scales
KINDS_BY_DTYPE = [
    (bits, signed, dtype)
    for dtype in (np.float32, np.float16, np.float64)
    for bits, signed in KINDS
    if not (dtype == np.float16 and bits == 16)
]


@pytest.mark.parametrize("bits, signed, dtype", KINDS_BY_DTYPE)
def test_quantize_per_tensor_matches_onnx(bits, signed, dtype):
    rng = np.random.default_rng(bits * 2 + signed)
    for _ in range(5):
        x, s, z = random_case(rng, (64, 33), (), bits, signed, dtype)
        x = x * s  # x / s then spans the codes
        q = quantize_linear(x, s, z, bits=bits, signed=signed)
        assert q.dtype == np.dtype(ZP_DTYPE.get((max(bits, 8), signed)))
        np.testing.assert_array_equal(q, onnx_quantize(x, s, z, bits, signed))


@pytest.mark.parametrize("bits, signed", KINDS)
def test_exact_ties_round_half_even_like_onnx(bits, signed):
    lo, hi = code_range(bits, signed)
    k = np.arange(-(2**bits), 2**bits + 1)
    for s in (np.float32(0.25), np.float32(3.0), np.float32(0.1)):
        x = ((k + 0.5) * np.float64(s)).astype(np.float32)
        x = x[(x / s) % 1 == 0.5]  # the float32 quotient is exactly k + 1/2
        assert x.size > 2**bits
        for z in (lo, (lo + hi) // 2, hi):
            q = quantize_linear(x, s, z, bits=bits, signed=signed)
            np.testing.assert_array_equal(q, onnx_quantize(x, s, z, bits, signed))
            want = np.clip(np.rint(x / s) + z, lo, hi)  # rint: ties to even
            np.testing.assert_array_equal(q, want)
    q = quantize_linear([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5], 1.0, bits=bits)
    assert q.tolist() == [-2, -2, 0, 0, 2, 2]


@pytest.mark.parametrize("bits, signed", KINDS)
def test_saturation_at_both_ends(bits, signed):
    lo, hi = code_range(bits, signed)
    s = np.float32(0.5)
    x = np.array([-1e6, (lo - 1) * 0.5, lo * 0.5, hi * 0.5, (hi + 1) * 0.5, 1e6])
    x = x.astype(np.float32)
    q = quantize_linear(x, s, 0, bits=bits, signed=signed)
    assert q.tolist() == [lo, lo, lo, hi, hi, hi]
    np.testing.assert_array_equal(q, onnx_quantize(x, s, 0, bits, signed))
    # beyond int32 and infinite: the ONNX reference casts to int32 before it
    # clips (wrapping such values); the operator's definition saturates
    q = quantize_linear([-np.inf, -1e30, 1e30, np.inf], s, bits=bits, signed=signed)
    assert q.tolist() == [lo, lo, hi, hi]
    big = np.float32(3e38)  # x / scale overflows float32: still saturates
    assert quantize_linear(big, np.float32(1e-3), bits=bits, signed=signed) == hi


@pytest.mark.parametrize("bits, signed", KINDS)
@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_quantize_per_axis_matches_onnx(bits, signed, axis):
    rng = np.random.default_rng(7 + axis)
    shape = (3, 4, 5)
    x, s, z = random_case(rng, shape, (shape[axis],), bits, signed)
    x = x * np.expand_dims(s, [d for d in range(3) if d != axis % 3])
    q = quantize_linear(x, s, z, bits=bits, signed=signed, axis=axis)
    np.testing.assert_array_equal(q, onnx_quantize(x, s, z, bits, signed, axis))


@pytest.mark.parametrize("bits, signed", KINDS)
@pytest.mark.parametrize("axis, block_size", [(0, 2), (1, 4), (1, 8), (-1, 3)])
def test_quantize_blocked_matches_onnx(bits, signed, axis, block_size):
    rng = np.random.default_rng(block_size)
    shape = (4, 8, 6)
    s_shape = list(shape)
    s_shape[axis] //= block_size
    x, s, z = random_case(rng, shape, tuple(s_shape), bits, signed)
    x = x * np.repeat(s, block_size, axis=axis)
    q = quantize_linear(
        x, s, z, bits=bits, signed=signed, axis=axis, block_size=block_size
    )
    want = onnx_quantize(x, s, z, bits, signed, axis, block_size)
    np.testing.assert_array_equal(q, want)
    r = dequantize_linear(q, s, z, axis=axis, block_size=block_size)
    onnx_r = onnx_dequantize(q, s, z, bits, signed, axis, block_size)
    assert r.dtype == onnx_r.dtype == np.float32
    np.testing.assert_array_equal(r, onnx_r)


@pytest.mark.parametrize("bits, signed, dtype", KINDS_BY_DTYPE)
@pytest.mark.parametrize("axis", [None, 1])
def test_dequantize_matches_onnx_bit_for_bit(bits, signed, dtype, axis):
    rng = np.random.default_rng(bits + 100 * signed)
    lo, hi = code_range(bits, signed)
    s_shape = () if axis is None else (7,)
    _, s, z = random_case(rng, (5, 7), s_shape, bits, signed, dtype)
    q = rng.integers(lo, hi + 1, (5, 7))
    q = q.astype(ZP_DTYPE[max(bits, 8), signed])  # int8 holding int4 values
    r = dequantize_linear(q, s, z, axis=axis)
    onnx_r = onnx_dequantize(q, s, z, bits, signed, axis)
    assert r.dtype == onnx_r.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(r, onnx_r)
    if bits == 4:  # ml_dtypes' int4/uint4 arrays are read too
        packed = q.astype(ZP_DTYPE[bits, signed])
        np.testing.assert_array_equal(dequantize_linear(packed, s, z, axis=axis), r)


def test_python_scales_are_float32_numpy_scales_keep_their_dtype():
    assert dequantize_linear(np.int8(3), 0.1).dtype == np.float32
    assert dequantize_linear([3], np.float64(0.1)).dtype == np.float64
    assert dequantize_linear([3], np.array([0.1], np.float16)).dtype == np.float16
    assert quantize_linear(0.3, 0.1) == 3  # float32(0.3) / float32(0.1), rounded
    assert quantize_linear([1.0], 1.0, bits=12, signed=False).dtype == np.uint16
    assert quantize_linear([1.0], 1.0, bits=32).dtype == np.int32


# ------------------------------------------------------------ linear_qparams


def _check_qparams(x, bits, symmetric, signed, axis=None, block_size=None):
    lo, hi = code_range(bits, signed)
    s, z = linear_qparams(
        x, bits, symmetric=symmetric, signed=signed, axis=axis, block_size=block_size
    )
    kw = {"axis": axis, "block_size": block_size}
    assert np.all(np.isfinite(s) & (s > 0)) and s.dtype == np.result_type(
        x.dtype, np.float32
    )
    assert np.all((lo <= z) & (z <= hi))
    q = quantize_linear(x, s, z, bits=bits, signed=signed, **kw)
    # the real 0 is a code exactly
    q0 = quantize_linear(np.zeros_like(x), s, z, bits=bits, signed=signed, **kw)
    assert np.all(dequantize_linear(q0, s, z, **kw) == 0)
    # every element, min and max included, within half a step; the slack is
    # x / scale's own rounding in x's precision (|x / scale| <= 2**bits)
    step = np.broadcast_to(dequantize_linear(np.ones_like(q), s, 0, **kw), x.shape)
    err = np.abs(dequantize_linear(q, s.astype(np.float64), z, **kw) - x)
    slack = 2.0**bits * np.finfo(x.dtype).eps
    assert np.all(err <= step * (0.5 + slack)), (err / step).max()
    if symmetric:
        assert np.all(z == (0 if signed else 2 ** (bits - 1)))
        centred = dequantize_linear(q, np.ones(np.shape(s)), z, **kw)  # q - Z
        assert np.all(np.abs(centred) <= 2 ** (bits - 1) - 1)
    return s, z, q


@settings(max_examples=150, deadline=None)
@given(
    x=hnp.arrays(
        st.sampled_from([np.float32, np.float64]),
        hnp.array_shapes(min_dims=2, max_dims=2, min_side=2, max_side=8),
        elements=st.floats(-1e6, 1e6, width=32),
    ),
    bits=st.integers(2, 8),
    symmetric=st.booleans(),
    signed=st.booleans(),
    mode=st.sampled_from(["tensor", "axis", "block"]),
)
def test_linear_qparams_properties(x, bits, symmetric, signed, mode):
    axis = None if mode == "tensor" else 1
    block = 2 if mode == "block" and x.shape[1] % 2 == 0 else None
    _check_qparams(x, bits, symmetric, signed, axis, block)


@pytest.mark.parametrize("symmetric", [False, True])
def test_linear_qparams_edge_ranges(symmetric):
    for x in ([3.0, 5.0], [-5.0, -3.0], [0.0, 0.0], [1e-30, 2e-30], [7.0]):
        _check_qparams(np.array(x), 8, symmetric, True)
    s, z = linear_qparams(np.zeros((3, 4)), symmetric=symmetric, axis=0)
    assert np.all(s == 1)  # no range: scale 1, never 0 or NaN
    s, z = linear_qparams(np.array([-1.0, 2.0]), symmetric=True)
    assert s == 2.0 / 127 and z == 0
    assert quantize_linear(-2.0, s, z) == -127  # -128 is left unused
    s, z = linear_qparams(np.array([-1.0, 2.0]))
    assert quantize_linear([-1.0, 2.0], s, z).tolist() == [-128, 127]


def test_linear_qparams_per_axis_and_blocked_shapes():
    x = np.random.default_rng(0).normal(size=(4, 6, 8))
    s, z = linear_qparams(x, axis=1)
    assert s.shape == z.shape == (6,) and z.dtype == np.int8
    s, z = linear_qparams(x, 4, signed=False, axis=-1, block_size=4)
    assert s.shape == z.shape == (4, 6, 2) and z.dtype == np.uint8
    for i in range(2):
        block = x[:, :, 4 * i : 4 * i + 4]
        lo = np.minimum(block.min(axis=-1), 0)
        hi = np.maximum(block.max(axis=-1), 0)
        np.testing.assert_allclose(s[:, :, i], (hi - lo) / 15, rtol=1e-15)


# ----------------------------------------------------------- bad arguments

BAD = [
    (lambda: quantize_linear([1.0], 0.0), ValueError, "scale must be finite and > 0"),
    (lambda: quantize_linear([1.0], -1.0), ValueError, "scale"),
    (lambda: quantize_linear([1.0], np.float32(np.inf)), ValueError, "scale"),
    (lambda: quantize_linear([1.0], np.nan), ValueError, "scale"),
    (lambda: quantize_linear([1.0], np.array([1], np.int32)), TypeError, "scale"),
    (lambda: quantize_linear([1.0], "1"), TypeError, "scale"),
    (lambda: quantize_linear([1.0], 1.0, 128), ValueError, r"zero_point .*\[-128"),
    (lambda: quantize_linear([1.0], 1.0, -1, signed=False), ValueError, "zero_point"),
    (lambda: quantize_linear([1.0], 1.0, 8, bits=4), ValueError, r"\[-8, 7\]"),
    (lambda: quantize_linear([1.0], 1.0, 0.5), TypeError, "zero_point .*integers"),
    (lambda: quantize_linear([1.0], 1.0, bits=1), ValueError, r"bits .*\[2, 32\]"),
    (lambda: quantize_linear([1.0], 1.0, bits=8.0), TypeError, "bits"),
    (lambda: quantize_linear([1.0], 1.0, signed=1), TypeError, "signed"),
    (lambda: quantize_linear([np.nan], 1.0), ValueError, "NaN"),
    (lambda: quantize_linear(["a"], 1.0), TypeError, "x must hold real"),
    (lambda: quantize_linear(np.ones((2, 3)), [1.0, 1.0]), ValueError, "axis"),
    (
        lambda: quantize_linear(np.ones((2, 3)), [1.0, 1.0], axis=2),
        ValueError,
        r"axis must be in \[-2, 1\]",
    ),
    (
        lambda: quantize_linear(np.ones((2, 3)), [1.0, 1.0], axis=1),
        ValueError,
        r"scale must have shape \(3,\)",
    ),
    (
        lambda: quantize_linear(np.ones((2, 3)), [1.0, 1.0], [0, 0, 0], axis=0),
        ValueError,
        "zero_point must be a scalar or have the scale's shape",
    ),
    (
        lambda: quantize_linear(np.ones((2, 6)), np.ones((2, 2)), axis=1, block_size=4),
        ValueError,
        "block_size 4 must divide",
    ),
    (
        lambda: quantize_linear(np.ones((2, 6)), np.ones((2, 3)), axis=1, block_size=3),
        ValueError,
        r"scale must have shape \(2, 2\) for blocks",
    ),
    (
        lambda: quantize_linear(np.ones((2, 6)), np.ones((2, 3)), block_size=2),
        ValueError,
        "block_size needs an axis",
    ),
    (
        lambda: quantize_linear(np.ones(4), np.ones(2), axis=0, block_size=0),
        ValueError,
        "block_size",
    ),
    (lambda: dequantize_linear([1.5], 1.0), TypeError, "q must hold integer codes"),
    (lambda: dequantize_linear(np.int8([1]), 1.0, 200), ValueError, "zero_point"),
    (lambda: dequantize_linear([1], 0.0), ValueError, "scale"),
    (lambda: linear_qparams([]), ValueError, "non-empty"),
    (lambda: linear_qparams([1.0, np.inf]), ValueError, "finite"),
    (
        lambda: linear_qparams(np.ones((2, 3)), axis=1, block_size=2),
        ValueError,
        "divid",
    ),
    (lambda: linear_qparams([1.0], axis=1), ValueError, "axis"),
    (lambda: quantize_multiplier(0.0), ValueError, "real_multiplier must be > 0"),
    (lambda: quantize_multiplier(2.0**30), ValueError, "real_multiplier"),
    (lambda: multiply_by_quantized_multiplier([1.0], 2**30, 0), TypeError, "acc"),
    (lambda: multiply_by_quantized_multiplier([2**31], 2**30, 0), ValueError, "acc"),
    (lambda: multiply_by_quantized_multiplier([1], 2**30, -32), ValueError, "shift"),
    (lambda: multiply_by_quantized_multiplier([2**30], 2**30, 2), ValueError, "left"),
    (lambda: rounding_divide_by_pot([1], 32), ValueError, "exponent"),
    (lambda: saturating_rounding_doubling_high_mul([1], [2**31]), ValueError, "b"),
    (lambda: im2col(np.ones((1, 3, 3)), (2, 2)), ValueError, "NCHW"),
    (lambda: im2col(np.ones((1, 1, 3, 3)), (4, 4)), ValueError, "kernel_size"),
    (lambda: im2col(np.ones((1, 1, 3, 3)), (2, 2), stride=0), ValueError, "stride"),
]


@pytest.mark.parametrize("call, error, message", BAD)
def test_bad_arguments_are_named(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_bad_layer_arguments():
    layer = QuantizedLinear.from_float(np.eye(3), None, (0.1, 0), (0.1, 0))
    with pytest.raises(ValueError, match=r"q_x must hold codes in \[-128, 127\]"):
        layer.forward([[0, 0, 200]])
    with pytest.raises(TypeError, match="q_x"):
        layer.forward([[0.0, 0.0, 1.0]])
    k = 140_000  # 127 * 127 * k > 2**31
    big = QuantizedLinear(np.full((1, k), 127), 1.0, 0, [0], 1.0, 0, 2.0, 0)
    with pytest.raises(ValueError, match="overflows int32"):
        big.forward(np.full((1, k), 127))
    with pytest.raises(ValueError, match="x_zero_point"):
        QuantizedLinear(np.eye(2, dtype=np.int8), 1.0, 0, [0, 0], 1.0, 300, 1.0, 0)
    with pytest.raises(ValueError, match="weight_scale"):
        QuantizedLinear(np.eye(2, dtype=np.int8), [1.0] * 3, 0, [0, 0], 1.0, 0, 1.0, 0)
    with pytest.raises(ValueError, match="bias must have shape"):
        QuantizedLinear(np.eye(2, dtype=np.int8), 1.0, 0, [0], 1.0, 0, 1.0, 0)


# --------------------------------------- requantization: the published formulas


def ref_srdhm(a: int, b: int) -> int:
    """gemmlowp's SaturatingRoundingDoublingHighMul, line by line."""
    if a == b == INT32_MIN:
        return INT32_MAX
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    t = ab + nudge
    return abs(t) // 2**31 * (1 if t >= 0 else -1)  # C division truncates


def ref_rdbpot(x: int, exponent: int) -> int:
    """gemmlowp's RoundingDivideByPOT, line by line."""
    mask = (1 << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if remainder > threshold else 0)


def ref_quantize_multiplier(m: float) -> tuple[int, int]:
    """TFLite's QuantizeMultiplier (quantization_util.cc)."""
    q, shift = math.frexp(m)
    q_fixed = math.floor(Fraction(q) * 2**31 + Fraction(1, 2))  # std::round, q > 0
    if q_fixed == 2**31:
        q_fixed, shift = q_fixed // 2, shift + 1
    if shift < -31:
        q_fixed, shift = 0, 0
    return q_fixed, shift


def ref_mbqm(x: int, m0: int, shift: int) -> int:
    """TFLite's MultiplyByQuantizedMultiplier without TFLITE_SINGLE_ROUNDING."""
    left, right = max(shift, 0), max(-shift, 0)
    return ref_rdbpot(ref_srdhm(x * (1 << left), m0), right)


def round_half_up(v: Fraction) -> int:
    return math.floor(v + Fraction(1, 2))


def round_half_away(v: Fraction) -> int:
    return round_half_up(v) if v >= 0 else -round_half_up(-v)


EDGE = [INT32_MIN, INT32_MIN + 1, -(2**30), -3, -2, -1, 0, 1, 2, 3, 2**30, INT32_MAX]


def test_srdhm_matches_gemmlowp_on_edges_and_random():
    rng = np.random.default_rng(1)
    a = EDGE + rng.integers(INT32_MIN, INT32_MAX, 2000, endpoint=True).tolist()
    b = EDGE[::-1] + rng.integers(INT32_MIN, INT32_MAX, 2000, endpoint=True).tolist()
    pairs = [(x, y) for x in EDGE for y in EDGE] + list(zip(a, b, strict=True))
    x, y = np.array(pairs).T
    got = saturating_rounding_doubling_high_mul(x, y)
    assert got.dtype == np.int32
    assert got.tolist() == [ref_srdhm(int(p), int(q)) for p, q in pairs]
    # the same thing said as a rounding: to nearest, ties toward +inf
    for p, q in pairs:
        if not p == q == INT32_MIN:
            assert ref_srdhm(p, q) == round_half_up(Fraction(p * q, 2**31))
    ties = saturating_rounding_doubling_high_mul([3, -3, 1, -1], 2**30)
    assert ties.tolist() == [2, -1, 1, 0]  # 1.5, -1.5, 0.5, -0.5
    assert saturating_rounding_doubling_high_mul(INT32_MIN, INT32_MIN) == INT32_MAX
    assert saturating_rounding_doubling_high_mul(INT32_MIN, INT32_MAX) == -INT32_MAX


def test_rdbpot_matches_gemmlowp_for_every_exponent():
    rng = np.random.default_rng(2)
    for e in range(32):
        half = (1 << e) >> 1
        ties = [(2 * k + 1) * half for k in range(-4, 4)] if e else []
        xs = EDGE + ties + rng.integers(INT32_MIN, INT32_MAX, 300).tolist()
        xs = [v for v in xs if INT32_MIN <= v <= INT32_MAX]
        got = rounding_divide_by_pot(xs, e).tolist()
        assert got == [ref_rdbpot(v, e) for v in xs]
        assert got == [round_half_away(Fraction(v, 2**e)) for v in xs]
    assert rounding_divide_by_pot([-3, -1, 1, 3], 1).tolist() == [-2, -1, 1, 2]


def test_quantize_multiplier_is_tflites_and_fixedpoints():
    rng = np.random.default_rng(3)
    reals = [
        2.0**-40,
        2.0**-32,
        2.0**-31,
        1e-9,
        0.0072474,
        0.5,
        1 - 2**-40,
        1.0,
        1.5,
        1234.5,
        2.0**30 - 1,
    ]
    reals += (2.0 ** rng.uniform(-31, 29, 500)).tolist()
    for m in reals:
        m0, shift = quantize_multiplier(m)
        assert (m0, shift) == ref_quantize_multiplier(m), m
        if m0:  # one definition: fixedpoint's m0 * 2**-s with s = 31 - shift
            assert fixedpoint.quantize_multiplier(m) == (m0, 31 - shift)
            assert 2**30 <= m0 < 2**31
            assert abs(Fraction(m0) * Fraction(2) ** (shift - 31) / Fraction(m) - 1) < (
                2.0**-30
            )
    assert quantize_multiplier(1 - 2**-40) == (2**30, 1)  # rounds up to 1.0


def test_multiply_by_quantized_multiplier_matches_tflite():
    rng = np.random.default_rng(4)
    cases = []
    for shift in range(-31, 31):  # every right shift 0..31 and left shifts 1..30
        lim = INT32_MAX >> max(shift, 0)
        xs = [v for v in EDGE if -lim - 1 <= v <= lim] + [lim, -lim - 1]
        xs += rng.integers(-lim - 1, lim, 40, endpoint=True).tolist()
        for m0 in (2**30, 2**30 + 1, INT32_MAX, int(rng.integers(2**30, 2**31))):
            cases += [(x, m0, shift) for x in xs]
    # ties of the whole product for both signs (2**30 * x / 2**31 = x / 2)
    cases += [(x, 2**30, s) for s in (-4, -1, 0) for x in range(-40, 41)]
    x, m0, shift = (np.array(c) for c in zip(*cases, strict=True))
    got = multiply_by_quantized_multiplier(x, m0, shift)
    assert got.dtype == np.int32
    assert got.tolist() == [ref_mbqm(*c) for c in cases]
    # int32 and int64 inputs, per-channel broadcasting
    acc = np.array([[100, -100], [7, -7]], dtype=np.int32)
    per_channel = multiply_by_quantized_multiplier(acc, [2**30, 2**30], [-1, 2])
    assert per_channel.tolist() == [[25, -200], [2, -14]]


def differs_rate(acc, m, rounding):
    m0, shift = quantize_multiplier(m)
    double = multiply_by_quantized_multiplier(acc, m0, shift)
    single = fixedpoint.multiply_by_constant(acc, m0, 31 - shift, rounding)
    assert np.all(np.abs(double - single) <= 1)
    return np.mean(double != single)


def test_double_rounding_differs_from_one_rounding_about_2_to_minus_r_plus_1():
    """The number the notebook quotes: gemmlowp's double rounding differs by 1
    from one exact rounding of acc * m0 * 2**(shift - 31) on about
    2**-(r + 1) of random accumulators, r = -shift the right shift: the first
    rounding (to an integer of acc * m0 / 2**31) lands on a tie of the second
    for one integer in 2**r, and half of those went the other way."""
    rng = np.random.default_rng(5)
    acc = rng.integers(-(2**20), 2**20, 10**6)
    n = acc.size
    # multipliers far from simple fractions (0.3 * acc has ten fractional
    # parts only, and 2 of them fall in r = 1's window of 1/4: 20 %, not 25 %)
    for m in (
        1 / math.sqrt(2),
        1 / math.pi,
        0.0072474,
        2.0**-12 * 1.37,
        2.0**-20 * 1.9,
    ):
        r = -quantize_multiplier(m)[1]
        p = 2.0 ** -(r + 1) if r else 0.0
        sigma = math.sqrt(max(p, 1 / n) * (1 - p) / n)
        for rounding in ("nearest_away", "nearest_even"):
            rate = differs_rate(acc, m, rounding)
            assert abs(rate - p) < 6 * sigma, (m, r, rounding, rate, p)
    # the headline: M = 0.0072474, r = 7 -> 0.39 % of outputs one step away
    assert round(differs_rate(acc, 0.0072474, "nearest_even"), 4) == 0.0039


# --------------------------------------------------- layers: exact references


def exact_outputs(layer: QuantizedLinear, acc: np.ndarray):
    """Round-half-even of Z_y + (S_x S_w / S_y) acc in exact rationals, the
    distance of the unrounded value to the nearest half-integer, and the
    window within which the integer path may round the other way."""
    s_x, s_y = Fraction(float(layer.x_scale)), Fraction(float(layer.y_scale))
    s_w = np.broadcast_to(layer.weight_scale, layer.offset.shape)
    m_exact = [s_x * Fraction(float(v)) / s_y for v in s_w]
    m_fixed = [
        Fraction(int(a)) * Fraction(2) ** (int(b) - 31)
        for a, b in zip(layer.multiplier, layer.shift, strict=True)
    ]
    lo, hi = code_range(layer.bits, layer.signed)
    lo = layer.y_zero_point if layer.relu else lo
    rows = acc.reshape(-1, acc.shape[-1])
    want, dist, window = (np.zeros(rows.shape) for _ in range(3))
    for (i, j), a in np.ndenumerate(rows):
        v = m_exact[j] * int(a)
        r = round(v)  # Fraction rounds half to even
        want[i, j] = min(max(r + layer.y_zero_point, lo), hi)
        dist[i, j] = abs(abs(v - math.floor(v)) - Fraction(1, 2))
        right = max(-int(layer.shift[j]), 0)
        approx = abs(m_fixed[j] - m_exact[j]) * abs(int(a))
        # the double rounding's window (none without a right shift)
        double = Fraction(1, 2 ** (right + 1)) if right else 0
        window[i, j] = float(double + approx)
    return (x.reshape(acc.shape) for x in (want, dist, window))


def independent_acc(q_x, layer: QuantizedLinear):
    """sum_k (q_x - Z_x)(q_w - Z_w) + q_b, without the expansion."""
    dx = q_x.astype(np.int64) - layer.x_zero_point
    zw = np.broadcast_to(layer.weight_zero_point, layer.offset.shape)
    dw = layer.weight.astype(np.int64) - zw[:, None]
    return np.einsum("...k,nk->...n", dx, dw) + layer.bias


def check_layer(layer, acc_ref, acc, forward, simulate, channel_axis=-1):
    """The tolerance rule: forward == the exact result but within the window
    of a half-integer (where the roundings differ), and there by one step;
    simulate (float64) == the exact result but where float64 cannot tell.
    Returns the fraction of outputs where forward != simulate and its bound,
    2**-r averaged over the outputs (r the right shift): about 2**-(r+1) of
    random accumulators fall in the window (see the requantization test)."""
    np.testing.assert_array_equal(acc, acc_ref)
    acc_ref, forward, simulate = (
        np.moveaxis(np.asarray(v, dtype=np.int64), channel_axis, -1)
        for v in (acc_ref, forward, simulate)
    )
    want, dist, window = exact_outputs(layer, acc_ref)
    off = forward - want
    assert np.abs(off).max(initial=0) <= 1
    assert np.all(dist[off != 0] <= window[off != 0])
    assert np.all(dist[simulate != want] < 1e-9)
    assert np.abs(forward - simulate).max(initial=0) <= 1
    bound = np.broadcast_to(2.0 ** np.minimum(layer.shift, 0), forward.shape)
    return np.mean(forward != simulate), bound.mean()


LAYERS = [  # (per_channel, symmetric weights, signed activations, relu)
    (False, True, True, False),
    (True, True, True, True),
    (False, False, False, False),  # Jacob et al.: uint8, weights with Z_w != 0
    (True, True, False, True),
]


@pytest.mark.parametrize("per_channel, symmetric, signed, relu", LAYERS)
def test_quantized_linear_against_exact_and_float_simulation(
    per_channel, symmetric, signed, relu
):
    rng = np.random.default_rng(10 + 2 * per_channel + symmetric)
    k, n, batch = 64, 16, 256
    w = rng.normal(0, 1 / math.sqrt(k), (n, k)) * rng.uniform(0.2, 2, (n, 1))
    w = w if symmetric else w + 0.1  # a range off-centre: Z_w != 0
    b = rng.normal(0, 0.3, n)
    x = rng.normal(0.5, 1, (batch, k)).astype(np.float32)
    y = (x @ w.T + b).astype(np.float32)
    x_qp = linear_qparams(x, signed=signed)
    y_qp = linear_qparams(np.maximum(y, 0) if relu else y, signed=signed)
    layer = QuantizedLinear.from_float(
        w,
        b,
        x_qp,
        y_qp,
        per_channel=per_channel,
        symmetric=symmetric,
        signed=signed,
        relu=relu,
    )
    if not symmetric:
        assert layer.weight_zero_point != 0
    q_x = quantize_linear(x, *x_qp, signed=signed)
    forward, simulate = layer.forward(q_x), layer.simulate(q_x)
    assert forward.dtype == simulate.dtype == (np.int8 if signed else np.uint8)
    acc_ref = independent_acc(q_x, layer)
    rate, bound = check_layer(layer, acc_ref, layer.accumulate(q_x), forward, simulate)
    # expected about 2**-(r+1) (see the requantization test); bound at 2**-r
    assert rate <= bound, (rate, bound)
    # and the layer is still the float layer, to within its quantization
    err = dequantize_linear(forward, np.float64(y_qp[0]), y_qp[1]) - (
        np.maximum(y, 0) if relu else y
    )
    assert np.sqrt(np.mean(err**2)) < 2 * y_qp[0]


def test_fused_relu_is_the_clamp_at_the_zero_point():
    """Output qparams over a range with negatives (Z_y > q_min): ReLU is the
    clamp of the codes to [Z_y, q_max], and equals ReLU in float then
    quantize."""
    rng = np.random.default_rng(13)
    w, b = rng.normal(0, 0.2, (8, 24)), rng.normal(0, 0.3, 8)
    x = rng.normal(0, 1, (500, 24)).astype(np.float32)
    x_qp = linear_qparams(x)
    y_qp = linear_qparams((x @ w.T + b).astype(np.float32))
    assert y_qp[1] > -100
    plain = QuantizedLinear.from_float(w, b, x_qp, y_qp, per_channel=True)
    fused = QuantizedLinear.from_float(w, b, x_qp, y_qp, per_channel=True, relu=True)
    q_x = quantize_linear(x, *x_qp)
    forward = fused.forward(q_x)
    assert forward.min() == y_qp[1] and (plain.forward(q_x) < y_qp[1]).mean() > 0.3
    np.testing.assert_array_equal(forward, np.maximum(plain.forward(q_x), y_qp[1]))
    acc = fused.accumulate(q_x)
    check_layer(fused, independent_acc(q_x, fused), acc, forward, fused.simulate(q_x))


def test_layer_differs_from_its_float_simulation_at_the_double_rounding_rate():
    """The layer's number for the notebook: an int8 layer (per tensor, M =
    S_x S_w / S_y with a right shift r) is one step away from its float
    simulation on 2**-(r+1) of the outputs that are not clamped, as the
    requantization alone predicts: the other error sources (M's 31 bits,
    float64 in the simulation) are 2**-20 steps or less."""
    rng = np.random.default_rng(30)
    k, n, batch = 64, 16, 20000
    w = rng.normal(0, 1 / math.sqrt(k), (n, k))
    b = rng.normal(0, 0.3, n)
    x = rng.normal(0, 1, (batch, k)).astype(np.float32)
    y = (x @ w.T + b).astype(np.float32)
    x_qp, y_qp = linear_qparams(x), linear_qparams(y)
    layer = QuantizedLinear.from_float(w, b, x_qp, y_qp)
    q_x = quantize_linear(x, *x_qp)
    forward, simulate = layer.forward(q_x), layer.simulate(q_x)
    (r,) = set((-layer.shift).tolist())
    assert r == 7
    inside = np.mean((simulate > -128) & (simulate < 127))
    p = 2.0 ** -(r + 1) * inside
    rate = np.mean(forward != simulate)
    assert abs(rate - p) < 5 * math.sqrt(p * (1 - p) / forward.size), (rate, p)
    assert np.abs(forward.astype(int) - simulate).max() == 1
    assert round(rate, 4) == 0.0042  # predicted 0.0039: 1 output in 256


def test_power_of_two_scales_differ_exactly_where_the_rules_do():
    """S_x S_w / S_y = 2**-5 and every path is exact: forward differs from
    round-half-even only on ties (away vs even) and where the first rounding
    (of acc / 2, ties up) lands on a tie of the second."""
    rng = np.random.default_rng(11)
    q_w = rng.integers(-8, 9, (8, 32)).astype(np.int8)
    layer = QuantizedLinear(
        q_w,
        np.float32(2**-6),
        0,
        rng.integers(-500, 500, 8),
        np.float32(2**-4),
        3,
        np.float32(2**-5),
        -2,
    )
    assert layer.multiplier.tolist() == [2**30] * 8 and set(layer.shift) == {-4}
    q_x = rng.integers(-20, 21, (4000, 32))
    acc = layer.accumulate(q_x).astype(np.int64)
    t = acc / 32  # exact
    even = np.rint(t)
    away = np.sign(t) * np.floor(np.abs(t) + 0.5)
    # acc = 32 j + 15 > 0: acc / 2 rounds up onto 16 j + 8, a tie, then away
    predicted = np.where(acc % 32 == 16, away, even) + ((acc % 32 == 15) & (acc > 0))
    forward, simulate = layer.forward(q_x), layer.simulate(q_x)
    np.testing.assert_array_equal(simulate, np.clip(even - 2, -128, 127))
    np.testing.assert_array_equal(forward, np.clip(predicted - 2, -128, 127))
    assert 0.02 < np.mean(forward != simulate) < 0.04  # 1/64 + 1/64 of acc


def test_multiplier_above_one_uses_the_left_shift():
    rng = np.random.default_rng(12)
    q_w = rng.integers(-5, 6, (6, 5))
    layer = QuantizedLinear(
        q_w,
        np.float32(0.01),
        0,
        np.zeros(6, np.int32),
        np.float32(0.1),
        0,
        np.float32(0.0007),
        1,
    )
    assert layer.shift.tolist() == [1] * 6  # M = 1.43: a left shift of one
    q_x = rng.integers(-3, 4, (300, 5))
    forward, simulate = layer.forward(q_x), layer.simulate(q_x)
    check_layer(
        layer, independent_acc(q_x, layer), layer.accumulate(q_x), forward, simulate
    )
    np.testing.assert_array_equal(forward, simulate)  # no tie in sight


# ------------------------------------------------------------------ conv2d


def naive_conv_acc(q_x, conv: QuantizedConv2d):
    """Integer conv by shifted slices (no im2col): (q_x - Z_x) padded with 0."""
    lin = conv.linear
    c_out = lin.weight.shape[0]
    kh, kw = conv.kernel_size
    dw = lin.weight.astype(np.int64).reshape(c_out, -1, kh, kw)
    dw = dw - np.broadcast_to(lin.weight_zero_point, (c_out,))[:, None, None, None]
    p, s = conv.padding, conv.stride
    dx = np.pad(
        q_x.astype(np.int64) - lin.x_zero_point, ((0, 0), (0, 0), (p, p), (p, p))
    )
    h = (dx.shape[2] - kh) // s + 1
    w = (dx.shape[3] - kw) // s + 1
    acc = np.zeros((q_x.shape[0], c_out, h, w), dtype=np.int64)
    for u in range(kh):
        for v in range(kw):
            patch = dx[:, :, u : u + s * h : s, v : v + s * w : s]
            acc += np.einsum("nchw,oc->nohw", patch, dw[:, :, u, v])
    return acc + lin.bias[None, :, None, None]


@pytest.mark.parametrize(
    "stride, padding, per_channel", [(1, 1, True), (2, 1, False), (2, 0, True)]
)
def test_quantized_conv2d_against_exact_and_float_simulation(
    stride, padding, per_channel
):
    rng = np.random.default_rng(20 + stride + padding)
    x = rng.uniform(-0.2, 1.5, (2, 3, 11, 9)).astype(np.float32)
    w = rng.normal(0, 0.3, (4, 3, 3, 3))
    b = rng.normal(0, 0.1, 4)
    x_qp = linear_qparams(x, signed=False)
    q_x = quantize_linear(x, *x_qp, signed=False)
    cols = im2col(x, (3, 3), stride, padding)  # only to calibrate the output
    y = np.einsum("nhwk,ok->nohw", cols, w.reshape(4, -1)) + b[:, None, None]
    y_qp = linear_qparams(np.maximum(y, 0).astype(np.float32), signed=False)
    conv = QuantizedConv2d.from_float(
        w,
        b,
        x_qp,
        y_qp,
        stride=stride,
        padding=padding,
        per_channel=per_channel,
        signed=False,
        relu=True,
    )
    forward, simulate = conv.forward(q_x), conv.simulate(q_x)
    h = (11 + 2 * padding - 3) // stride + 1
    assert (
        forward.shape
        == simulate.shape
        == (2, 4, h, (9 + 2 * padding - 3) // stride + 1)
    )
    assert forward.dtype == np.uint8
    rate, bound = check_layer(
        conv.linear,
        naive_conv_acc(q_x, conv),
        conv.accumulate(q_x),
        forward,
        simulate,
        1,
    )
    assert rate <= bound


def test_im2col_matches_slices():
    x = np.arange(2 * 3 * 5 * 6).reshape(2, 3, 5, 6)
    cols = im2col(x, (2, 3), stride=2, padding=1, pad_value=-1)
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=-1)
    assert cols.shape == (2, 3, 3, 18)
    for i in range(3):
        for j in range(3):
            patch = xp[:, :, 2 * i : 2 * i + 2, 2 * j : 2 * j + 3]
            np.testing.assert_array_equal(cols[:, i, j], patch.reshape(2, -1))

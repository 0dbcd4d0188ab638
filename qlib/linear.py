"""Linear quantization ``r = S * (q - Z)``.

A real tensor ``r`` is stored as integer codes ``q`` with a scale ``S`` (a
float, the step) and a zero point ``Z`` (an integer code that stands for the
real 0 exactly).  The names mirror ONNX's QuantizeLinear/DequantizeLinear:
``scale``, ``zero_point``, ``axis``, ``block_size``.

* :func:`quantize_linear`, :func:`dequantize_linear` -- ONNX's operators
  (opset 21) for 2- to 32-bit integer codes, per tensor (a scalar scale), per
  axis (a 1-D scale along ``axis``) or blocked (``block_size`` consecutive
  elements along ``axis`` share a scale).
* :func:`linear_qparams` -- a scale and zero point from the min/max.

Integer-only inference on these codes (requantization, layers) is
:mod:`qlib.intinfer`.  Taught in ``notebooks/07_linear_quantization.ipynb``.
"""

from __future__ import annotations

import numbers

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .integers import code_dtype, value_range

__all__ = ["dequantize_linear", "linear_qparams", "quantize_linear"]

_SUB_BYTE = {"int2": (-2, 1), "uint2": (0, 3), "int4": (-8, 7), "uint4": (0, 15)}


def _integer(value: object, name: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer in [{lo}, {hi}]; got {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be in [{lo}, {hi}]; got {value}")
    return int(value)


def _codes_range(bits: object, signed: object) -> tuple[int, int, np.dtype]:
    """(q_min, q_max, the smallest NumPy dtype holding them)."""
    n = _integer(bits, "bits", 2, 32)
    if not isinstance(signed, bool | np.bool_):
        raise TypeError(f"signed must be True or False; got {signed!r}")
    lo, hi = value_range(n, "twos_complement" if signed else "unsigned")
    dtype = code_dtype(n)  # unsigned; the signed one has the same width
    return lo, hi, np.dtype(dtype.str.replace("u", "i")) if signed else dtype


def _real(x: ArrayLike, name: str = "x") -> np.ndarray:
    a = np.asarray(x)
    if a.dtype.kind not in "iuf":
        raise TypeError(f"{name} must hold real numbers; got dtype {a.dtype}")
    if np.isnan(a).any():
        raise ValueError(f"{name} holds NaN, which no integer code stands for")
    return a


def _scale(scale: ArrayLike, name: str = "scale") -> np.ndarray:
    """A NumPy float array keeps its dtype; Python numbers become float32."""
    s = np.asarray(scale)
    if isinstance(scale, np.ndarray | np.generic):
        if s.dtype.kind != "f":
            raise TypeError(f"{name} must be float16/32/64; got dtype {s.dtype}")
    elif s.dtype.kind in "iuf":
        s = s.astype(np.float32)  # ONNX's scale type
    else:
        raise TypeError(f"{name} must hold real numbers; got {scale!r}")
    if not (np.isfinite(s) & (s > 0)).all():
        raise ValueError(
            f"{name} must be finite and > 0 (in {s.dtype}); got {s.ravel()[:4]}"
        )
    return s


def _layout(s_shape, x_shape, axis, block_size, name: str = "scale") -> int | None:
    """Check that a scale of ``s_shape`` fits ``x_shape``; the axis, or None."""
    if axis is not None:
        axis = _integer(axis, "axis", -len(x_shape), len(x_shape) - 1) % len(x_shape)
    if block_size is not None:
        b = _integer(block_size, "block_size", 1, 2**62)
        if axis is None:
            raise ValueError("block_size needs an axis to block along")
        if x_shape[axis] % b:
            raise ValueError(
                f"block_size {b} must divide x's axis {axis} (length {x_shape[axis]})"
            )
        want = (*x_shape[:axis], x_shape[axis] // b, *x_shape[axis + 1 :])
        if tuple(s_shape) != want:
            raise ValueError(f"{name} must have shape {want} for blocks; got {s_shape}")
    elif tuple(s_shape) not in ((), (1,)):
        if axis is None:
            raise ValueError(f"{name} of shape {s_shape} needs an axis (per-axis)")
        if tuple(s_shape) != (x_shape[axis],):
            raise ValueError(
                f"{name} must have shape ({x_shape[axis]},) along axis {axis}; "
                f"got {s_shape}"
            )
    return axis


def _expand(p: np.ndarray, ndim: int, axis: int | None):
    """``p`` (a per-tensor or per-axis scale or zero point) made to broadcast
    against an ``ndim``-dimensional x (blocks: :func:`_broadcasting`)."""
    if p.size == 1:
        return p.reshape(())
    return p.reshape([-1 if d == axis else 1 for d in range(ndim)])


def _broadcasting(
    a: np.ndarray, params: list[np.ndarray], axis: int | None, block_size: int | None
) -> tuple[np.ndarray, list[np.ndarray]]:
    """``a`` and its per-tensor, per-axis or per-block ``params`` (each of the
    scale's shape) shaped to broadcast, without copying: blocks split ``a``'s
    axis into (blocks, block_size) and give each parameter a unit axis after
    its own, rather than being repeated to ``a``'s size (the same elementwise
    operations; for a large tensor several times faster)."""
    if block_size is None:
        return a, [_expand(p, a.ndim, axis) for p in params]
    assert axis is not None
    split = (*a.shape[:axis], a.shape[axis] // block_size, block_size)
    return a.reshape(*split, *a.shape[axis + 1 :]), [
        np.expand_dims(p, axis + 1) for p in params
    ]


def _zero_point(
    zero_point: ArrayLike, s_shape, lo: int, hi: int, name: str = "zero_point"
) -> np.ndarray:
    z = np.asarray(zero_point)
    if z.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integers; got dtype {z.dtype}")
    if z.size == 1:  # a scalar or one-element zero point serves every scale
        z = z.reshape(())
    if z.ndim and z.shape != tuple(s_shape):
        raise ValueError(
            f"{name} must be a scalar or have the scale's shape {tuple(s_shape)}; "
            f"got {z.shape}"
        )
    if z.size and (int(z.min()) < lo or int(z.max()) > hi):
        raise ValueError(f"{name} must be in [{lo}, {hi}]; got {z.ravel()[:4]}")
    return np.broadcast_to(z.astype(np.int64), s_shape)


def quantize_linear(
    x: ArrayLike,
    scale: ArrayLike,
    zero_point: ArrayLike = 0,
    *,
    bits: int = 8,
    signed: bool = True,
    axis: int | None = None,
    block_size: int | None = None,
) -> NDArray[np.integer]:
    """``q = saturate(round_half_even(x / scale) + zero_point)``, as ONNX's
    QuantizeLinear.

    Args:
        x: real values; NaN raises, +-inf saturates.
        scale: > 0; a scalar (per tensor), a 1-D array of ``x.shape[axis]``
            (per axis) or, with ``block_size``, ``x``'s shape with ``axis``
            divided by ``block_size`` (blocked, ONNX opset 21; the block size
            must divide the axis).  A NumPy float array keeps its dtype
            (``x / scale`` is computed in NumPy's promotion of the two, as the
            ONNX reference does); Python numbers become float32.
        zero_point: integers in the code range, a scalar or scale's shape.
        bits, signed: codes in ``[-2**(bits-1), 2**(bits-1) - 1]`` or
            ``[0, 2**bits - 1]``; ``bits`` from 2 to 32.
        axis: the axis of a per-axis or blocked scale (may be negative).
            Unlike ONNX (default 1) it must be given.

    Returns:
        codes in the smallest dtype that holds them: int8/uint8 up to 8 bits,
        so 4-bit codes are int8/uint8 values in range (ONNX's int4 is a packed
        type with the same values), int16/uint16 up to 16, int32/uint32.

    Example:
        >>> quantize_linear([-1.0, 0.25, 0.75, 100.0], 0.5, 3)
        array([  1,   3,   5, 127], dtype=int8)
        >>> quantize_linear([-1.0, 1.0], 0.25, bits=4)
        array([-4,  4], dtype=int8)
    """
    lo, hi, dtype = _codes_range(bits, signed)
    a = _real(x)
    s = _scale(scale)
    axis = _layout(s.shape, a.shape, axis, block_size)
    z = _zero_point(zero_point, s.shape, lo, hi)
    shaped, (s, z) = _broadcasting(a, [s, z], axis, block_size)
    with np.errstate(over="ignore"):  # overflow to inf saturates below
        r = np.asarray(np.rint(shaped / s))  # 0-d stays an array, for out=
    # saturate(r + Z) = clip(r, lo - Z, hi - Z) + Z on integers, exact in
    # float64, and in float32 up to 16 bits (every value then within 2**17)
    if not (r.dtype == np.float64 or (r.dtype == np.float32 and bits <= 16)):
        r = r.astype(np.float64)
    z = z.astype(r.dtype)
    np.clip(r, lo - z, hi - z, out=r)
    r += z
    return r.astype(dtype).reshape(a.shape)[()]  # [()]: a scalar stays one


def dequantize_linear(
    q: ArrayLike,
    scale: ArrayLike,
    zero_point: ArrayLike = 0,
    *,
    axis: int | None = None,
    block_size: int | None = None,
) -> NDArray[np.floating]:
    """``r = scale * (q - zero_point)``, as ONNX's DequantizeLinear.

    ``q`` must hold integers (any NumPy integer dtype, or ml_dtypes'
    int2/uint2/int4/uint4); ``scale``, ``zero_point``, ``axis`` and
    ``block_size`` as in :func:`quantize_linear`.  The result has scale's
    dtype (float32 for Python numbers) and is computed as the ONNX reference
    does: ``q - zero_point`` in float32 (float64 for a float64 scale), times
    the scale.

    Example:
        >>> dequantize_linear([1, 3, 5, 127], 0.5, 3)
        array([-1.,  0.,  1., 62.], dtype=float32)
    """
    c = np.asarray(q)
    if c.dtype.name in _SUB_BYTE:
        lo, hi = _SUB_BYTE[c.dtype.name]
        c = c.astype(np.int8)
    elif c.dtype.kind in "iu":
        lo, hi = int(np.iinfo(c.dtype).min), int(np.iinfo(c.dtype).max)
    else:
        raise TypeError(
            f"q must hold integer codes; got dtype {c.dtype} (quantize_linear first)"
        )
    s = _scale(scale)
    axis = _layout(s.shape, c.shape, axis, block_size)
    z = _zero_point(zero_point, s.shape, lo, hi)
    shaped, (s_b, z) = _broadcasting(c, [s, z], axis, block_size)
    work = np.result_type(np.float32, s.dtype)
    r = shaped.astype(work)
    r -= z.astype(work)
    r *= s_b
    return r.astype(s.dtype, copy=False).reshape(c.shape)[()]


def linear_qparams(
    x: ArrayLike,
    bits: int = 8,
    *,
    symmetric: bool = False,
    signed: bool = True,
    axis: int | None = None,
    block_size: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``(scale, zero_point)`` that map ``x``'s range onto the codes.

    The range ``[min(x, 0), max(x, 0)]`` always includes 0, so the real 0 is
    a code exactly (zero padding, ReLU; Jacob et al. 2018).
    Asymmetric: ``scale = (max - min) / (q_max - q_min)``, ``zero_point =
    round(q_min - min / scale)``: min and max land within half a step.
    Symmetric: ``scale = max|x| / (2**(bits-1) - 1)`` and ``zero_point = 0``
    (``2**(bits-1)`` if unsigned), so ``x`` uses the codes ``Z +-(2**(bits-1)
    - 1)`` only: the most negative code (-128 for int8) is left to values
    beyond the range (TFLite's int8 weights are the same).
    A range of zero width (all zeros) gets scale 1.

    ``axis`` alone gives one pair per index of that axis (per channel);
    with ``block_size``, one per block along it (shapes as in
    :func:`quantize_linear`).  The scale's dtype is NumPy's promotion of
    ``x``'s and float32 (float32 for float32 data, float64 for float64); the
    zero point has the codes' dtype.

    Example:
        >>> s, z = linear_qparams([-1.0, 0.5, 2.0], bits=8)
        >>> float(s), int(z)
        (0.011764705882352941, -43)
        >>> s, z = linear_qparams([-1.0, 0.5, 2.0], symmetric=True)
        >>> float(s) * 127, int(z)
        (2.0, 0)
    """
    lo, hi, dtype = _codes_range(bits, signed)
    a = _real(x)
    if a.size == 0 or not np.isfinite(a).all():
        raise ValueError("x must be a non-empty array of finite values")
    n = a.ndim
    if axis is not None:
        axis = _integer(axis, "axis", -n, n - 1) % n
    if block_size is not None:
        b = _integer(block_size, "block_size", 1, 2**62)
        if axis is None or a.shape[axis] % b:
            raise ValueError(f"block_size {b} needs an axis whose length it divides")
        a = a.reshape(*a.shape[:axis], -1, b, *a.shape[axis + 1 :])
        over: tuple[int, ...] | None = (axis + 1,)
    else:
        over = None if axis is None else tuple(d for d in range(n) if d != axis)
    x_min = np.minimum(a.min(axis=over), 0).astype(np.float64)
    x_max = np.maximum(a.max(axis=over), 0).astype(np.float64)
    if symmetric:
        s = np.maximum(-x_min, x_max) / (2 ** (int(bits) - 1) - 1)
    else:
        s = (x_max - x_min) / (hi - lo)
    out = np.result_type(a.dtype, np.float32)
    tiny = np.finfo(out).smallest_normal
    s = np.where(s > 0, np.maximum(s, tiny), 1.0).astype(out)
    if symmetric:
        z = np.full(s.shape, 0 if signed else 2 ** (bits - 1))
    else:  # from the stored scale, so that 0 maps exactly to Z
        z = np.clip(np.rint(lo - x_min / s.astype(np.float64)), lo, hi)
    return s[()], z.astype(dtype)[()]

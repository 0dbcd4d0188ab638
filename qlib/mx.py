"""Block-scaled formats: OCP Microscaling (MX) v1.0 and NVFP4.

A block of ``k`` consecutive values shares one scale ``X`` and stores each
value as a narrow element ``P_i``, standing for ``X * P_i``.

* **MX** (OCP Microscaling Formats Specification v1.0): ``k = 32``, ``X`` an
  E8M0 power of two, ``X = 2^(floor(log2(amax)) - emax_elem)`` where ``amax``
  is the block's largest magnitude and ``emax_elem`` the exponent of the
  element format's largest normal value.  Elements are rounded to nearest
  (ties to even) and clamped to the element format's range.  MXFP8 (E4M3,
  E5M2), MXFP6 (E3M2, E2M3), MXFP4 (E2M1) and MXINT8 (8-bit two's complement
  with an implicit ``2^-6``, so ``emax_elem = 0``).
* **NVFP4**: ``k = 16``, FP4 E2M1 elements, an FP8 E4M3 block scale and one
  FP32 scale per tensor: ``s_tensor = amax_tensor / (448 * 6)``; each block's
  scale ``amax_block / 6 / s_tensor`` is rounded to E4M3, and the elements are
  ``x / (s_block * s_tensor)`` rounded to E2M1.

* **Per tensor**, the baseline the block formats improve on: one scale for
  the whole tensor, ``scale = fmt.max / amax`` (Transformer Engine's
  convention), the element ``fmt.quantize(x * scale)`` and the value
  ``element / scale``; :func:`per_tensor_quantize`.

Blocks run along the last axis, which is padded with zeros to a whole number
of blocks.  Taught in ``notebooks/05_low_precision_floats.ipynb``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .floats import FORMATS
from .integers import decode as int_decode
from .integers import encode as int_encode

__all__ = [
    "MX_ELEMENTS",
    "BlockTensor",
    "dequantize",
    "mx_quantize",
    "nvfp4_quantize",
    "per_tensor_quantize",
    "tensor_scale",
]

MX_ELEMENTS = {
    "mxfp8_e4m3": "fp8_e4m3fn",
    "mxfp8_e5m2": "fp8_e5m2",
    "mxfp6_e3m2": "fp6_e3m2fn",
    "mxfp6_e2m3": "fp6_e2m3fn",
    "mxfp4": "fp4_e2m1fn",
    "mxint8": "int8",
}
E8M0 = FORMATS["e8m0fnu"]
E4M3 = FORMATS["fp8_e4m3fn"]
E2M1 = FORMATS["fp4_e2m1fn"]


@dataclass(frozen=True)
class BlockTensor:
    """A block-scaled tensor: element codes, one scale code per block."""

    format: str
    shape: tuple[int, ...]
    block_size: int
    codes: NDArray[np.unsignedinteger]  # (..., blocks, block_size)
    scales: NDArray[np.unsignedinteger]  # (..., blocks): E8M0 or E4M3 codes
    tensor_scale: float = 1.0  # NVFP4's FP32 scale; 1 for MX

    @property
    def bits_per_element(self) -> float:
        """Element bits plus the block scale's share (the tensor scale aside)."""
        element = (
            4 if self.format in ("mxfp4", "nvfp4") else 6 if "fp6" in self.format else 8
        )
        return element + 8 / self.block_size

    def dequantize(self) -> NDArray[np.float64]:
        return dequantize(self)


def _blocks(x: ArrayLike, block_size: int) -> tuple[np.ndarray, tuple[int, ...]]:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 0:
        x = x[None]
    if not np.isfinite(x).all():
        raise ValueError("x must be finite")
    pad = -x.shape[-1] % block_size
    padded = np.concatenate([x, np.zeros((*x.shape[:-1], pad))], axis=-1)
    return padded.reshape(*x.shape[:-1], -1, block_size), x.shape


def _emax(element: str) -> int:
    if element == "int8":
        return 0
    return int(np.floor(np.log2(FORMATS[element].max)))


def mx_quantize(
    x: ArrayLike, fmt: str = "mxfp8_e4m3", block_size: int = 32
) -> BlockTensor:
    """Quantize ``x`` to an MX format, blocks along the last axis.

    Example:
        >>> t = mx_quantize([0.5] * 31 + [3.0], "mxfp8_e4m3")
        >>> float(E8M0.decode(t.scales[0])), t.dequantize()[-1]
        (0.0078125, np.float64(3.0))
    """
    if fmt not in MX_ELEMENTS:
        raise ValueError(f"fmt must be one of {tuple(MX_ELEMENTS)}; got {fmt!r}")
    if block_size < 1:
        raise ValueError(f"block_size must be positive; got {block_size}")
    blocks, shape = _blocks(x, block_size)
    element = MX_ELEMENTS[fmt]
    amax = np.abs(blocks).max(axis=-1)
    _, e2 = np.frexp(amax)  # amax = f * 2**e2, f in [0.5, 1): floor(log2) is exact
    exponent = (e2.astype(np.int64) - 1) - _emax(element)
    exponent = np.where(amax > 0, exponent, -127)  # an all-zero block: the least scale
    exponent = np.clip(exponent, -127, 127)
    scales = E8M0.encode(np.ldexp(1.0, exponent.astype(np.int64)))
    scaled = blocks / np.ldexp(1.0, exponent.astype(np.int64))[..., None]
    if element == "int8":  # two's complement with an implicit 2^-6
        codes = int_encode(
            np.rint(scaled * 64), 8, "twos_complement", overflow="saturate"
        )
    else:
        codes = FORMATS[element].encode(scaled, saturate=True)
    return BlockTensor(fmt, shape, block_size, codes, scales)


def nvfp4_quantize(x: ArrayLike) -> BlockTensor:
    """Quantize ``x`` to NVFP4: E2M1 elements, E4M3 scales per 16, one FP32 scale.

    Example:
        >>> t = nvfp4_quantize([6.0] * 16)
        >>> bool(t.tensor_scale == np.float32(1 / 448)), round(t.dequantize()[0], 5)
        (True, np.float64(6.0))
    """
    blocks, shape = _blocks(x, 16)
    amax = float(np.abs(blocks).max()) if blocks.size else 0.0
    tensor_scale = float(np.float32(amax / (E4M3.max * E2M1.max))) if amax > 0 else 1.0
    block_amax = np.abs(blocks).max(axis=-1)
    scales = E4M3.encode(block_amax / E2M1.max / tensor_scale, saturate=True)
    block_scale = E4M3.decode(scales) * tensor_scale
    safe = np.where(block_scale > 0, block_scale, 1.0)
    codes = E2M1.encode(blocks / safe[..., None], saturate=True)
    return BlockTensor("nvfp4", shape, 16, codes, scales, tensor_scale)


def _element_max(fmt: str) -> float:
    if fmt == "int8":
        return 127.0  # symmetric codes -127..127: -q never overflows
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be 'int8' or one of {tuple(FORMATS)}; got {fmt!r}")
    return FORMATS[fmt].max


def tensor_scale(x: ArrayLike, fmt: str, amax: float | None = None) -> float:
    """The per-tensor scale ``fmt.max / amax`` (``amax`` defaults to ``max|x|``).

    A calibrated ``amax`` below the tensor's largest magnitude clips (saturates)
    the values beyond it; one above it leaves headroom.  An all-zero tensor
    gets the scale 1.

    Example:
        >>> tensor_scale([0.5, -2.0], "fp8_e4m3fn"), tensor_scale([3.0], "int8")
        (224.0, 42.333333333333336)
    """
    top = _element_max(fmt)
    if amax is None:
        x = np.asarray(x, dtype=np.float64)
        amax = float(np.abs(x).max()) if x.size else 0.0
    if not (np.isfinite(amax) and amax >= 0):
        raise ValueError(f"amax must be finite and >= 0; got {amax}")
    return top / amax if amax > 0 else 1.0


def per_tensor_quantize(
    x: ArrayLike, fmt: str = "fp8_e4m3fn", amax: float | None = None
) -> NDArray[np.float64]:
    """``x`` stored with one scale per tensor in ``fmt``, back in ``x``'s units.

    ``amax`` (default ``max|x|``) maps to the format's largest value; values
    beyond it saturate.  ``fmt`` is a name of :data:`qlib.floats.FORMATS` or
    ``"int8"`` (symmetric, ``amax`` to 127, round half to even).

    Example:
        >>> per_tensor_quantize([0.1, 1.0, 4.0], "fp4_e2m1fn").tolist()
        [0.0, 1.0, 4.0]
        >>> per_tensor_quantize([0.1, 1.0, 4.0], "fp4_e2m1fn", amax=3.0).tolist()
        [0.0, 1.0, 3.0]
    """
    x = np.asarray(x, dtype=np.float64)
    scale = tensor_scale(x, fmt, amax)
    if fmt == "int8":
        return np.clip(np.rint(x * scale), -127, 127) / scale
    return FORMATS[fmt].quantize(x * scale, saturate=True) / scale


def dequantize(t: BlockTensor) -> NDArray[np.float64]:
    """The values a :class:`BlockTensor` stands for, in its original shape.

    Example:
        >>> dequantize(mx_quantize([1.0, -2.0, 0.25], "mxfp4", 32)).tolist()
        [1.0, -2.0, 0.25]
    """
    if t.format == "nvfp4":
        scale = E4M3.decode(t.scales) * t.tensor_scale
        values = E2M1.decode(t.codes) * scale[..., None]
    else:
        element = MX_ELEMENTS[t.format]
        scale = E8M0.decode(t.scales)
        if element == "int8":
            elements = int_decode(t.codes, 8, "twos_complement") / 64
        else:
            elements = FORMATS[element].decode(t.codes)
        values = elements * scale[..., None]
    flat = values.reshape(*values.shape[:-2], -1)
    return flat[..., : t.shape[-1]].reshape(t.shape)

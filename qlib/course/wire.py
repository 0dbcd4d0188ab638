"""Plain-data encoding of answers between a grading kernel and the grader.

The grader never unpickles or evaluates anything a submission produced.  A
graded function's return value is turned into JSON made of numbers, strings,
lists and base64 array buffers; the grader rebuilds NumPy arrays from that
data with its own NumPy.  An object that is not plain data (an "always equal"
object, a custom class) cannot be encoded and so cannot pass.

Used by the grader (:mod:`qlib.course.kernel`) and the kernel side,
:mod:`qlib.course.worker`.
"""

from __future__ import annotations

import base64
import json
import math
from typing import Any

import numpy as np

__all__ = ["MAX_ELEMENTS", "WireError", "decode", "dumps", "encode", "loads"]

MAX_ELEMENTS = 10_000_000
MAX_DIMS = 32
MAX_INT_BITS = 4096
_KINDS = "biufcUS"  # bool, ints, floats, complex, strings: nothing else


class WireError(ValueError):
    """A value that is not plain data, or a message that is malformed."""


def encode(value: Any, _depth: int = 0) -> Any:
    """Turn ``value`` into JSON-ready plain data, or raise :class:`WireError`.

    Example:
        >>> encode((1, np.int8(-2)))["t"]
        'tuple'
    """
    if _depth > 20:
        raise WireError("nested too deeply")
    if type(value) is int and value.bit_length() > MAX_INT_BITS:
        raise WireError(f"an integer of more than {MAX_INT_BITS} bits")
    if value is None or type(value) in (bool, int, str):
        return value
    if type(value) is float:
        return value if math.isfinite(value) else {"t": "float", "v": repr(value)}
    if type(value) in (tuple, list):
        items = [encode(v, _depth + 1) for v in value]
        return {"t": type(value).__name__, "v": items}
    if type(value) is dict:
        if not all(type(k) is str for k in value):
            raise WireError("dict keys must be str")
        return {"t": "dict", "v": {k: encode(v, _depth + 1) for k, v in value.items()}}
    if isinstance(value, np.ndarray | np.generic):
        array = np.asarray(value)
        if type(array) is not np.ndarray:
            array = np.array(array, subok=False)
        if array.dtype.kind not in _KINDS or array.dtype.fields is not None:
            raise WireError(f"arrays of dtype {array.dtype} are not plain data")
        if array.size > MAX_ELEMENTS:
            raise WireError(f"more than {MAX_ELEMENTS} elements")
        data = np.ascontiguousarray(array).tobytes()
        return {
            "t": "nd",
            "scalar": isinstance(value, np.generic),
            "dtype": array.dtype.str,
            "shape": list(array.shape),
            "b64": base64.b64encode(data).decode("ascii"),
        }
    raise WireError(
        f"a {type(value).__name__} is not a number, string, tuple, list, dict "
        "or NumPy array"
    )


def decode(data: Any, _depth: int = 0) -> Any:
    """Rebuild a value from :func:`encode`'s output, strictly.

    Example:
        >>> decode(encode(np.arange(3, dtype=np.uint8)))
        array([0, 1, 2], dtype=uint8)
    """
    if _depth > 20:
        raise WireError("nested too deeply")
    if data is None or type(data) in (bool, int, str, float):
        return data
    if type(data) is not dict or type(data.get("t")) is not str:
        raise WireError("malformed value")
    kind = data["t"]
    if kind == "float":
        if data.get("v") not in ("nan", "inf", "-inf"):
            raise WireError("malformed float")
        return float(data["v"])
    if kind in ("tuple", "list"):
        if type(data.get("v")) is not list:
            raise WireError("malformed sequence")
        items = [decode(v, _depth + 1) for v in data["v"]]
        return tuple(items) if kind == "tuple" else items
    if kind == "dict":
        if type(data.get("v")) is not dict:
            raise WireError("malformed dict")
        return {str(k): decode(v, _depth + 1) for k, v in data["v"].items()}
    if kind == "nd":
        shape = data.get("shape")
        if (
            type(shape) is not list
            or len(shape) > MAX_DIMS
            or not all(type(n) is int and 0 <= n <= MAX_ELEMENTS for n in shape)
            or math.prod(shape) > MAX_ELEMENTS
        ):
            raise WireError("malformed array shape")
        try:
            dtype = np.dtype(str(data["dtype"]))
            raw = base64.b64decode(str(data["b64"]), validate=True)
        except (KeyError, TypeError, ValueError) as err:
            raise WireError(f"malformed array: {err}") from None
        if dtype.kind not in _KINDS or dtype.fields is not None or dtype.itemsize == 0:
            raise WireError(f"arrays of dtype {dtype} are not plain data")
        if len(raw) != math.prod(shape) * dtype.itemsize:
            raise WireError("array data does not match its shape")
        try:
            array = np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
        except ValueError as err:
            raise WireError(f"malformed array: {err}") from None
        return array[()] if data.get("scalar") is True and array.ndim == 0 else array
    raise WireError(f"unknown value type {kind!r}")


def dumps(message: dict) -> str:
    """One JSON line (no newlines inside)."""
    return json.dumps(message, separators=(",", ":"), allow_nan=False)


def loads(line: str) -> dict:
    """Parse one message line; anything but a JSON object raises WireError."""
    try:
        message = json.loads(line)
    except (ValueError, RecursionError) as err:
        raise WireError(f"not JSON: {err}") from None
    if type(message) is not dict:
        raise WireError("not a JSON object")
    return message

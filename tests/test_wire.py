"""qlib.course.wire: plain-data round trips, and strict rejection of everything else."""

from __future__ import annotations

import base64
import collections
import json
import math

import numpy as np
import pytest

from qlib.course import wire


def through_the_pipe(value):
    """What the grader gets back: encode, one JSON line, parse, decode."""
    line = wire.dumps({"call": 0, "phase": "end", "value": wire.encode(value)})
    assert "\n" not in line
    return wire.decode(wire.loads(line)["value"])


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return (
        type(a) is type(b)
        and a.dtype == b.dtype
        and a.shape == b.shape
        and a.tobytes() == b.tobytes()
    )


# ---------------------------------------------------------------- Python values

PYTHON_VALUES = [
    None,
    True,
    False,
    0,
    -1,
    2**63 - 1,
    -(2**63),
    2**64,
    -(2**100) - 7,
    10**100,
    0.5,
    1e308,
    5e-324,
    "",
    "int8 · −128…127 ✓",
    (),
    [],
    {},
    (1, (2, [3, {"k": (4,)}])),
    [(-8, 7), (-128, 127)],
    {"a": [1, 2.5, "x"], "b": None},
]


@pytest.mark.parametrize("value", PYTHON_VALUES, ids=repr)
def test_python_round_trip(value):
    got = through_the_pipe(value)
    assert got == value
    assert type(got) is type(value)


def _types(x):
    if isinstance(x, tuple | list):
        return (type(x), [_types(v) for v in x])
    if isinstance(x, dict):
        return (dict, {k: _types(v) for k, v in x.items()})
    return type(x)


def test_nested_types_preserved():
    value = (1, [2, (3.0, "4")], {"x": (None, True)})
    assert _types(through_the_pipe(value)) == _types(value)


@pytest.mark.parametrize("x", [0.0, -0.0, math.inf, -math.inf, math.nan])
def test_special_floats(x):
    got = through_the_pipe(x)
    assert type(got) is float
    assert math.copysign(1, got) == math.copysign(1, x) or math.isnan(x)
    assert got == x or (math.isnan(got) and math.isnan(x))
    assert np.float64(got).tobytes() == np.float64(x).tobytes() or math.isnan(x)


# --------------------------------------------------------------------- arrays

DTYPES = [
    np.bool_,
    np.int8,
    np.int16,
    np.int32,
    np.int64,
    np.uint8,
    np.uint16,
    np.uint32,
    np.uint64,
    np.float16,
    np.float32,
    np.float64,
    np.complex64,
    np.complex128,
]


def sample(dtype) -> np.ndarray:
    """Extreme and special values of ``dtype``, 2-D."""
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        values = [True, False, True, True, False, False]
    elif dtype.kind in "iu":
        info = np.iinfo(dtype)
        values = [info.min, info.max, 0, 1, info.max - 1, info.min + 1]
    else:
        real = np.dtype(dtype.char.lower()) if dtype.kind == "c" else dtype
        info = np.finfo(real)
        values = [np.nan, -0.0, 0.0, np.inf, -np.inf, info.max]
        values = np.array(values, dtype=real)
        if dtype.kind == "c":
            parts = values
            values = np.empty(parts.size, dtype=dtype)
            values.real, values.imag = parts, parts[::-1]
    return np.asarray(values, dtype=dtype).reshape(2, 3)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_array_round_trip_bit_exact(dtype):
    a = sample(dtype)
    got = through_the_pipe(a)
    assert same_bits(got, a)
    assert got.flags.writeable and got.flags.c_contiguous


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_scalar_round_trip(dtype):
    x = sample(dtype).ravel()[1]
    got = through_the_pipe(x)
    assert type(got) is type(x)
    assert np.asarray(got).tobytes() == np.asarray(x).tobytes()


def test_nan_payload_and_signed_zero_survive():
    bits = np.array([0x7FF8_0000_0000_0001, 0x8000_0000_0000_0000], dtype=np.uint64)
    a = bits.view(np.float64)  # a NaN with a payload, and -0.0
    assert through_the_pipe(a).view(np.uint64).tolist() == bits.tolist()


@pytest.mark.parametrize(
    "a",
    [
        np.array(5, dtype=np.int8),  # 0-d array, not a scalar
        np.array([], dtype=np.int64),
        np.zeros((0, 4), dtype=np.uint16),
        np.zeros((3, 0, 2), dtype=np.float32),
        np.arange(24, dtype=np.int32).reshape(2, 3, 4),
        np.arange(12, dtype=np.int64).reshape(3, 4).T,  # Fortran order
        np.arange(20, dtype=np.uint8)[::3],  # strided view
        np.arange(6, dtype=">i4"),  # big-endian
        np.array(["", "a", "αβγ", "x" * 40]),
        np.array([b"", b"\x00\xff", b"bytes"]),
        np.array([[1 + 2j, -0.0 - 1j]], dtype=np.complex128),
    ],
    ids=lambda a: f"{a.dtype.str}{list(a.shape)}",
)
def test_array_shapes_and_layouts(a):
    got = through_the_pipe(a)
    assert type(got) is np.ndarray
    assert got.dtype == a.dtype and got.shape == a.shape
    assert got.tobytes() == np.ascontiguousarray(a).tobytes()


def test_zero_d_array_stays_an_array_and_scalar_stays_a_scalar():
    assert type(through_the_pipe(np.array(3, dtype=np.int16))) is np.ndarray
    assert type(through_the_pipe(np.int16(3))) is np.int16
    assert type(through_the_pipe(np.str_("s"))) is np.str_


def test_arrays_inside_containers():
    value = (np.arange(3, dtype=np.uint8), [np.float32(1.5)], {"k": np.bool_(True)})
    got = through_the_pipe(value)
    assert same_bits(got[0], value[0])
    assert type(got[1][0]) is np.float32 and type(got[2]["k"]) is np.bool_


def test_the_largest_array_allowed():
    a = np.zeros(wire.MAX_ELEMENTS, dtype=np.bool_)
    assert through_the_pipe(a).shape == (wire.MAX_ELEMENTS,)


# ------------------------------------------------------------ not plain data


class AlwaysEqual:
    def __eq__(self, other):
        return True

    __hash__ = object.__hash__


class MyInt(int):
    def __eq__(self, other):
        return True

    __hash__ = int.__hash__


class MyFloat(float):
    pass


class MyStr(str):
    pass


class MyTuple(tuple):
    pass


Point = collections.namedtuple("Point", "x y")


@pytest.mark.parametrize(
    "value",
    [
        AlwaysEqual(),
        object(),
        MyInt(3),
        MyFloat(1.0),
        MyStr("s"),
        MyTuple((1, 2)),
        Point(1, 2),
        {1: "int key"},
        {("t",): 1},
        {1, 2},
        frozenset(),
        b"bytes",
        bytearray(b"x"),
        1 + 2j,  # a Python complex (NumPy complex arrays are fine)
        np.array([1, "a"], dtype=object),
        np.array([None]),
        np.array(["2024-01-01"], dtype="datetime64[D]"),
        np.array([1], dtype="timedelta64[s]"),
        np.zeros(2, dtype=[("a", "i1"), ("b", "f4")]),
        np.zeros(2, dtype="V4"),
        np.datetime64("2024-01-01"),
        [AlwaysEqual()],
        (1, {"k": object()}),
        lambda: 1,
        range(3),
        np.broadcast_to(np.int8(0), (wire.MAX_ELEMENTS + 1,)),
    ],
    ids=lambda v: type(v).__name__,
)
def test_rejected(value):
    with pytest.raises(wire.WireError):
        wire.encode(value)


def test_too_deep_rejected():
    value: list = []
    for _ in range(25):
        value = [value]
    with pytest.raises(wire.WireError, match="deep"):
        wire.encode(value)
    data = wire.encode([])
    for _ in range(25):
        data = {"t": "list", "v": [data]}
    with pytest.raises(wire.WireError, match="deep"):
        wire.decode(data)


def test_a_huge_python_int_is_rejected_by_encode():
    """An int JSON cannot write (over Python's 4300-digit limit) must be a
    WireError at encode time, not a ValueError in the kernel's emit (which
    kills the kernel instead of failing one call)."""
    with pytest.raises(wire.WireError):
        wire.dumps({"value": wire.encode(10**5000)})


class Liar(np.ndarray):
    def __eq__(self, other):
        return np.ones(self.shape, dtype=bool)

    def __array_ufunc__(self, *args, **kwargs):
        return True


class Forger(np.ndarray):
    """An array that lies about its own bytes and converts to other data."""

    def tobytes(self, order="C"):
        return b"\xff" * self.nbytes

    def __array__(self, dtype=None, copy=None):
        return np.full(self.shape, 7, dtype=self.dtype)


@pytest.mark.parametrize(
    "a",
    [
        np.arange(4, dtype=np.int64).view(Liar),
        np.ma.masked_array([1, 2, 3], mask=[True, False, True]),
        np.arange(4, dtype=np.int32).reshape(2, 2).view(Forger),
        np.arange(3, dtype=np.uint8).view(Liar)[::-1],
    ],
    ids=["liar", "masked", "forger", "reversed-liar"],
)
def test_ndarray_subclasses_decode_to_plain_arrays_of_their_data(a):
    got = through_the_pipe(a)
    assert type(got) is np.ndarray
    assert got.dtype == a.dtype and got.shape == np.asarray(a).shape
    assert got.tobytes() == np.asarray(a).view(np.ndarray).tobytes()


# ------------------------------------------------------------ bad messages


def nd(dtype="<i4", shape=(2,), raw=b"\0" * 8, **extra):
    message = {
        "t": "nd",
        "dtype": dtype,
        "shape": list(shape) if isinstance(shape, tuple) else shape,
        "b64": base64.b64encode(raw).decode() if isinstance(raw, bytes) else raw,
    }
    message.update(extra)
    return message


MALFORMED = {
    "too few bytes": nd(raw=b"\0" * 7),
    "too many bytes": nd(raw=b"\0" * 9),
    "bytes for an empty shape": nd(shape=(0,), raw=b"\0"),
    "bad base64": nd(raw="!!!!"),
    "base64 with spaces": nd(raw="AA AA"),
    "base64 not a string": nd(raw=12345),
    "negative shape": nd(shape=(-1,), raw=b""),
    "negative shape, product positive": nd(shape=(-2, -1), raw=b"\0" * 8),
    "too many elements": nd(dtype="|b1", shape=(wire.MAX_ELEMENTS + 1,), raw=b""),
    "too many elements in 2-D": nd(dtype="|b1", shape=(4000, 4000), raw=b""),
    "object dtype": nd(dtype="|O", shape=(1,)),
    "datetime dtype": nd(dtype="<M8[s]", shape=(1,)),
    "structured dtype": nd(dtype="i4,i4", shape=(1,)),
    "void dtype": nd(dtype="|V8", shape=(1,)),
    "subarray dtype": nd(dtype="(2,)i4", shape=(1,)),
    "unknown dtype": nd(dtype="int9"),
    "dtype not a string": nd(dtype=["<i4"]),
    "missing shape": {"t": "nd", "dtype": "<i4", "b64": ""},
    "missing dtype": {"t": "nd", "shape": [0], "b64": ""},
    "missing data": {"t": "nd", "dtype": "<i4", "shape": [0]},
    "shape not a list": nd(shape=2),
    "unknown tag": {"t": "pickle", "v": "gASVAAAAAAAAAAA="},
    "tag not a string": {"t": 1, "v": []},
    "no tag": {"v": [1, 2]},
    "bare list": [1, 2],
    "float not special": {"t": "float", "v": "1.5"},
    "float missing": {"t": "float"},
    "tuple not a list": {"t": "tuple", "v": {"0": 1}},
    "list missing": {"t": "list"},
    "dict not a dict": {"t": "dict", "v": [["k", 1]]},
    "bad item inside": {"t": "list", "v": [1, {"t": "nope"}]},
}


@pytest.mark.parametrize("data", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_rejected(data):
    with pytest.raises(wire.WireError):
        wire.decode(data)


STRICT = {
    # accepted today; a malformed message should be a WireError, not an array
    "shape a string": nd(shape="12", raw=b"\0" * 8),
    "shape of floats": nd(shape=[2.7], raw=b"\0" * 8),
    "shape of bools": nd(shape=[True, True], raw=b"\0" * 4),
    # ValueError from NumPy today, not a WireError
    "more than 64 dimensions": nd(dtype="|i1", shape=(1,) * 65, raw=b"\1"),
    "huge zero-size shape": nd(dtype="|i1", shape=(2**62, 2**62, 0), raw=b""),
    "dimension over 64 bits": nd(dtype="|i1", shape=(2**64, 0), raw=b""),
}


@pytest.mark.parametrize("data", STRICT.values(), ids=STRICT.keys())
def test_malformed_shapes_are_wire_errors(data):
    with pytest.raises(wire.WireError):
        wire.decode(data)


@pytest.mark.parametrize(
    "line",
    [
        "",
        "not json",
        "[1, 2]",
        '"a string"',
        "42",
        "null",
        '{"a": 1',
        "[" * 100_000,
        '{"value": ' + "9" * 5000 + "}",
    ],
    ids=["empty", "text", "list", "string", "number", "null", "cut", "deep", "bigint"],
)
def test_loads_rejects_everything_but_one_object(line):
    with pytest.raises(wire.WireError):
        wire.loads(line)


def test_loads_and_dumps():
    message = {"call": 3, "phase": "end", "value": wire.encode((np.int8(-1), 2.5))}
    line = wire.dumps(message)
    assert wire.loads(line) == json.loads(line) == message
    with pytest.raises(ValueError):
        wire.dumps({"x": math.nan})  # non-finite floats go through encode


def test_decode_makes_independent_writable_arrays():
    data = wire.encode(np.arange(4, dtype=np.int16))
    a, b = wire.decode(data), wire.decode(data)
    a[0] = 99
    assert b[0] == 0

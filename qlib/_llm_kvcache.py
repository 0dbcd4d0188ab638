"""A quantized KV cache: keys and values stored in a few bits.

At generation time every layer keeps the keys and values of all the tokens
so far (:class:`qlib.llm.KVCache`); over a long context they outgrow the
weights.  :class:`QuantizedKVCache` rounds them as they arrive (keys per
channel, values per token), :func:`kv_bytes_per_token` counts what it
stores, and :func:`cache_perplexity` measures what the rounding costs.

Re-exported by :mod:`qlib.llmquant`.  Taught in
``notebooks/10_llm_quantization.ipynb``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from . import llm
from .linear import _integer
from .ptq import quantize_weight, weight_bits

__all__ = ["QuantizedKVCache", "cache_perplexity", "kv_bytes_per_token"]


class QuantizedKVCache(llm.KVCache):
    """A KV cache that stores keys and values as ``bits``-bit codes
    (asymmetric, fp16 scales and zero points; simulated: kept dequantized).

    Keys are quantized per channel (one scale per head and channel) over
    groups of ``key_group`` tokens: the channels of keys differ in range far
    more than the tokens do.  The last ``len % key_group`` tokens wait in
    float until their group is full (KIVI, Liu et al. 2024, keeps that
    residual too).  Values are quantized per token (one scale per token and
    head, over ``head_dim``), as soon as they arrive.  Every range holds 0,
    as :func:`qlib.linear.linear_qparams` makes it (KIVI uses the bare
    min and max).

    Example:
        >>> cache = QuantizedKVCache(bits=4, key_group=2)
        >>> k = np.arange(12, dtype=np.float32).reshape(3, 1, 4)
        >>> keys, values = cache.update(0, k, k)
        >>> keys[:, 0].round(2)  # tokens 0-1 rounded per channel; token 2 waits
        array([[ 0. ,  1. ,  2. ,  2.8],
               [ 4. ,  5. ,  6. ,  7. ],
               [ 8. ,  9. , 10. , 11. ]], dtype=float32)
        >>> values[:, 0].round(2)  # per token: [0, 7] in 15 steps of 7/15
        array([[ 0.  ,  1.  ,  2.  ,  3.  ],
               [ 4.2 ,  5.13,  6.07,  7.  ],
               [ 8.07,  8.8 , 10.27, 11.  ]], dtype=float32)
    """

    def __init__(self, bits: int = 8, key_group: int = 32) -> None:
        super().__init__()
        self.bits = _integer(bits, "bits", 2, 16)
        self.key_group = _integer(key_group, "key_group", 1, 2**31)
        self.quantized: dict[int, int] = {}  # per layer, keys already rounded

    def update(
        self, layer: int, k: np.ndarray, v: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Round the new values; round the keys of every full group."""
        t, h, d = v.shape
        v = quantize_weight(v.reshape(t * h, d), self.bits, "channel", symmetric=False)
        keys, values = super().update(layer, k, v.reshape(t, h, d))
        done = self.quantized.get(layer, 0)
        full = (len(keys) - done) // self.key_group * self.key_group
        if full:
            block = (
                keys[done : done + full].reshape(full, h * d).T
            )  # (channels, tokens)
            block = quantize_weight(block, self.bits, self.key_group, symmetric=False)
            keys = keys.copy()
            keys[done : done + full] = block.T.reshape(full, h, d)
            self.keys[layer] = keys
            self.quantized[layer] = done + full
        return keys, values


def kv_bytes_per_token(
    config: llm.Config, bits: int | None = None, key_group: int = 32
) -> float:
    """Bytes of KV cache per token of context, over all layers: fp16
    (``bits=None``: 2 bytes per element), or :class:`QuantizedKVCache`'s
    codes plus an fp16 scale and a ``bits``-bit zero point per key group of
    ``key_group`` tokens per channel and per value group of ``head_dim``
    (:func:`qlib.ptq.weight_bits`); the float residual of at most
    ``key_group - 1`` tokens left aside.

    Example:
        >>> from qlib.llmquant import toy_model
        >>> c = toy_model().config  # 2 layers, 2 heads of 16: 64 keys and values
        >>> kv_bytes_per_token(c)  # 2 x 64 x 2 layers, 2 bytes each
        256.0
        >>> kv_bytes_per_token(c, 8, 32)  # keys 1 + 3/32 bytes each, values 1 + 3/16
        146.0
    """
    per = config.n_kv_heads * config.head_dim
    if bits is None:
        return float(2 * 2 * per * config.n_layers)
    g = _integer(key_group, "key_group", 1, 2**31)
    keys = weight_bits((per, g), bits, g, symmetric=False) / g
    values = weight_bits(
        (config.n_kv_heads, config.head_dim), bits, "channel", symmetric=False
    )
    return (keys + values) * config.n_layers / 8


def cache_perplexity(
    model: llm.Model,
    token_ids: ArrayLike,
    cache: llm.KVCache,
    *,
    linear: llm.Linear | None = None,
) -> float:
    """:func:`qlib.llm.perplexity` with the keys and values going through
    ``cache`` (an empty one, e.g. a :class:`QuantizedKVCache`): every
    prediction attends to the keys and values as the cache returns them.

    Example:
        >>> from qlib.llmquant import toy_model
        >>> model = toy_model()
        >>> same = cache_perplexity(model, [1, 2, 3, 4], llm.KVCache())
        >>> bool(np.isclose(same, llm.perplexity(model, [1, 2, 3, 4])))
        True
    """
    if cache.length:
        raise ValueError("cache must be empty: the perplexity starts from token 0")
    ids = np.asarray(token_ids)
    if ids.ndim != 1 or ids.size < 2:
        raise ValueError("token_ids must hold at least two tokens")
    log_p = llm._picked_log_probs(
        llm.forward(model, ids[:-1], cache, linear=linear), ids[1:]
    )
    return float(np.exp(-log_p.mean()))

"""qlib.mixed: per-layer widths, their size, the divergence criterion and the
greedy allocation.  Oracles: qlib.ptq's uniform quantizer and sizes, the KL
divergence written from its definition, exhaustive search over allocations."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from qlib import mixed, ptq
from qlib.nn import MLP, Dense, ReLU

RNG = np.random.default_rng(9)


def _net(*sizes: int, seed: int = 0) -> MLP:
    rng = np.random.default_rng(seed)
    layers: list = []
    for n_in, n_out in itertools.pairwise(sizes):
        layers += [Dense(n_in, n_out, rng=rng), ReLU()]
    return MLP(layers[:-1])


def test_uniform_allocation_is_ptqs_quantized_model():
    model = _net(40, 24, 12, 5)
    lq = mixed.LayerQuantizer(model)
    for bits in (2, 3, 8):
        want = ptq.quantize_model(model, bits, "channel", symmetric=False)
        got = lq.model((bits,) * 3)
        for a, b in zip(want.dense, got.dense, strict=True):
            assert np.array_equal(a.W, b.W) and np.array_equal(a.b, b.b)
        assert lq.nbytes((bits,) * 3) == ptq.model_bytes(
            model, bits, "channel", symmetric=False
        )
    # a float layer costs 32 bits per weight; the others their own width
    mixed_size = lq.nbytes((None, 2, 8))
    want = (
        (40 * 24 * 32 + 24 * 32)
        + (24 * 12 * 2 + 12 * (16 + 2) + 12 * 32)
        + (12 * 5 * 8 + 5 * (16 + 8) + 5 * 32)
    ) / 8
    assert mixed_size == want
    assert np.array_equal(lq.model((None, 2, 8)).dense[0].W, model.dense[0].W)


def test_shared_work_gives_divergence_bit_for_bit():
    """greedy_allocation and sensitivity score allocations with
    mixed._Divergences, which reuses the float softmax and the activations of
    equal leading layers: each score is exactly divergence() of the network
    quantizer.model builds, whatever order the allocations come in."""
    model = _net(60, 30, 20, 10, seed=3)
    lq = mixed.LayerQuantizer(model)
    x = RNG.uniform(0, 1, (200, 60)).astype(np.float32)
    shared = mixed._Divergences(lq, x)
    allocations = [
        (8, 8, 8), (2, 8, 8), (2, 3, 8), (None, 3, 8), (2, 3, None),
        (None, None, None), (8, 8, 8), (4, 2, 3), (2, 3, 8),
    ]  # fmt: skip
    for a in allocations:
        assert shared(a) == mixed.divergence(model, lq.model(a), x), a
    assert shared((None, None, None)) == 0.0


def test_divergence_is_kl_of_the_softmax_outputs():
    a, b = _net(6, 5, 4, seed=1), _net(6, 5, 4, seed=2)
    x = RNG.uniform(0, 1, (30, 6)).astype(np.float32)

    def softmax(z):
        e = np.exp(z.astype(np.float64) - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    p, q = softmax(a.forward(x)), softmax(b.forward(x))
    want = np.mean(np.sum(p * np.log(p / q), axis=1))
    assert mixed.divergence(a, b, x) == pytest.approx(want, rel=1e-6)
    assert mixed.divergence(a, a, x) == 0.0
    assert mixed.divergence(b, a, x) != pytest.approx(want)  # not symmetric


def test_sensitivity_quantizes_one_layer_at_a_time():
    model = _net(30, 20, 6)
    lq = mixed.LayerQuantizer(model)
    x = RNG.uniform(0, 1, (40, 30)).astype(np.float32)
    s = mixed.sensitivity(lq, x, (2, 4))
    assert s.shape == (2, 2)
    for i, j in itertools.product(range(2), range(2)):
        alloc = [None, None]
        alloc[i] = (2, 4)[j]
        assert s[i, j] == mixed.divergence(model, lq.model(alloc), x)
    labels = RNG.integers(0, 6, 40)
    e = mixed.sensitivity(lq, x, (2,), labels=labels)
    assert e[1, 0] == np.mean(lq.model([None, 2]).predict(x) != labels)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_greedy_allocation_fits_and_cannot_grow(seed):
    model = _net(48, 32, 16, 4, seed=seed)
    lq = mixed.LayerQuantizer(model)
    x = np.random.default_rng(seed).uniform(0, 1, (64, 48)).astype(np.float32)
    widths = (2, 3, 4, 8)
    for budget in (
        lq.nbytes((2, 2, 2)),
        lq.nbytes((3, 3, 3)) + 5,
        lq.nbytes((8, 8, 8)),
    ):
        a = mixed.greedy_allocation(lq, x, budget, widths)
        assert set(a) <= set(widths) and lq.nbytes(a) <= budget
        for i in range(3):  # maximal: no single layer can take the next width
            k = widths.index(a[i])
            if k + 1 < len(widths):
                wider = (*a[:i], widths[k + 1], *a[i + 1 :])
                assert lq.nbytes(wider) > budget
    assert mixed.greedy_allocation(lq, x, lq.nbytes((8, 8, 8)), widths) == (8, 8, 8)
    # against every allocation that fits: greedy is one of them, and on these
    # small nets within 2x of the best divergence (measured: equal for all
    # three seeds at the middle budget)
    budget = lq.nbytes((3, 3, 3)) + 5
    fits = [a for a in itertools.product(widths, repeat=3) if lq.nbytes(a) <= budget]
    best = min(mixed.divergence(model, lq.model(a), x) for a in fits)
    got = mixed.divergence(
        model, lq.model(mixed.greedy_allocation(lq, x, budget, widths)), x
    )
    assert best <= got <= 2 * best


def test_bad_input_is_named():
    model = _net(8, 4, 2)
    lq = mixed.LayerQuantizer(model)
    x = np.zeros((2, 8), np.float32)
    with pytest.raises(ValueError, match=r"budget .* is below the smallest model"):
        mixed.greedy_allocation(lq, x, 10.0)
    with pytest.raises(ValueError, match=r"bits must give one width per layer \(2\)"):
        lq.model((4,))
    with pytest.raises(ValueError, match=r"bits must be in \[2, 16\]"):
        lq.model((1, 4))
    with pytest.raises(TypeError, match=r"model must be a qlib\.nn\.MLP"):
        mixed.LayerQuantizer([Dense(2, 2, rng=RNG)])
    with pytest.raises(ValueError, match="granularity"):
        mixed.LayerQuantizer(model, granularity="row")

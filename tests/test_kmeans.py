"""qlib.kmeans as weight sharing (chapter 06): k-means on a line, codebooks,
centroid fine-tuning and storage, each against an independent answer --
brute-force nearest centroids, the general (n, k)-table path of Lloyd's
algorithm, per-cluster sums in Python loops, sizes worked by hand.

The chapter 01 side (palettes, the 2-D fixed point) is in tests/test_signals.py.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qlib import kmeans as km
from qlib import kmeansnet as kmn
from qlib import nn


def _lenet_fc2() -> np.ndarray:
    return nn.load_lenet().dense[1].W  # 30000 real trained weights


def _tiny_mlp(seed: int = 0) -> nn.MLP:
    rng = np.random.default_rng(seed)
    return nn.MLP([nn.Dense(5, 4, rng=rng), nn.ReLU(), nn.Dense(4, 3, rng=rng)])


# ---------------------------------------------------- assign on a line


@settings(deadline=None, max_examples=200)
@given(
    st.lists(st.integers(-8, 8), min_size=1, max_size=30),
    st.lists(st.integers(-8, 8), min_size=1, max_size=6),
)
def test_assign_on_a_line_is_the_brute_force_nearest(points, centroids):
    """Integer points and centroids halved: exact midpoints, ties and equal
    centroids are common; the lowest index wins every tie, as np.argmin."""
    p = np.array(points) / 2
    c = np.array(centroids) / 2
    brute = np.argmin(np.abs(p[:, None] - c[None, :]), axis=1)
    assert np.array_equal(km.assign(p, c), brute)
    assert np.array_equal(km.assign(p[:, None], c[:, None]), brute)
    if len(p) >= len(c):  # Lloyd's runs on the sorted points, the same ties
        assert np.array_equal(km.kmeans(p, len(c), iters=0, init=c)[1], brute)
        c3, labels = km.kmeans(p, len(c), iters=3, init=c)
        assert np.array_equal(labels, km.assign(p, c3))


# --------------------------------------------------- Lloyd's algorithm


def _linear(x: np.ndarray, k: int) -> np.ndarray:
    return np.linspace(x.min(), x.max(), k)


def test_one_dimensional_path_matches_the_general_path():
    """The 1-D fast path (sorted runs) against the (n, k) table path, reached
    by giving the same points a second, constant coordinate."""
    x = _lenet_fc2().ravel()[:5000].astype(float)
    for k in (2, 5, 16):
        for iters in (0, 1, 7, 200):
            c1, l1 = km.kmeans(x, k, iters=iters, init=_linear(x, k))
            init2 = np.stack([_linear(x, k), np.zeros(k)], 1)
            c2, l2 = km.kmeans(
                np.stack([x, np.zeros_like(x)], 1), k, iters=iters, init=init2
            )
            assert np.array_equal(l1, l2), (k, iters)
            assert np.allclose(c1, c2[:, 0], rtol=0, atol=1e-12)


def test_inertia_never_increases_across_iterations():
    """kmeans is deterministic, so ``iters=t`` is the state after t Lloyd
    iterations; the inertia of that state never goes up with t."""
    x = _lenet_fc2().ravel().astype(float)
    for k in (4, 16, 64):
        curve = [
            km.inertia(x, *km.kmeans(x, k, iters=t, init=_linear(x, k)))
            for t in range(0, 60, 3)
        ]
        assert all(b <= a for a, b in itertools.pairwise(curve)), k
        assert curve[-1] < curve[0]


def test_inertia_against_a_loop():
    rng = np.random.default_rng(1)
    x, c = rng.normal(size=50), rng.normal(size=4)
    labels = km.assign(x, c)
    assert np.isclose(
        km.inertia(x, c, labels),
        sum((x[i] - c[labels[i]]) ** 2 for i in range(50)),
    )


def test_an_empty_cluster_is_reseeded_and_stays_monotone():
    """Centroids started where no point is nearest (100 lies beyond 5)."""
    x = np.array([0.0, 0.1, 0.2, 1.0, 1.1, 5.0, 5.2])
    init = [0.0, 1.0, 100.0, 101.0]
    curve = [km.inertia(x, *km.kmeans(x, 4, iters=t, init=init)) for t in range(6)]
    assert all(b <= a for a, b in itertools.pairwise(curve))
    c, labels = km.kmeans(x, 4, iters=50, init=init)
    assert len(np.unique(labels)) == 4  # every cluster holds a point
    assert np.array_equal(labels, km.assign(x, c))


def test_converged_codebook_is_a_fixed_point_of_lloyd():
    """At convergence every centroid is its cluster's mean and every weight
    sits with its nearest centroid."""
    w = _lenet_fc2()
    codebook, indices = km.kmeans_quantize(w, 3)
    flat = w.ravel().astype(float)
    for j in range(8):
        assert np.isclose(codebook[j], flat[indices.ravel() == j].mean(), rtol=1e-6)


def test_kmeans_rejects_bad_init():
    with pytest.raises(ValueError, match="init must be 'kmeans"):
        km.kmeans([0.0, 1.0], 2, init="linear")
    with pytest.raises(ValueError, match="init must be 2 finite centroids"):
        km.kmeans([0.0, 1.0], 2, init=[0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="iters must be"):
        km.kmeans([0.0, 1.0], 2, iters=-1)


# -------------------------------------------------------- kmeans_quantize


@pytest.mark.parametrize("bits", [1, 2, 3, 5, 8])
def test_codebook_size_is_min_of_codes_and_distinct_values(bits):
    rng = np.random.default_rng(bits)
    many = _lenet_fc2()
    few = rng.integers(-3, 4, size=(20, 30)).astype(np.float32)  # 7 values
    for w, distinct in ((many, len(np.unique(many))), (few, 7)):
        codebook, indices = km.kmeans_quantize(w, bits)
        assert len(codebook) == min(2**bits, distinct)
        assert codebook.dtype == np.float32 and np.all(np.diff(codebook) >= 0)
        assert indices.shape == w.shape and indices.dtype == np.uint8
        if distinct <= 2**bits:  # every value its own centroid: exact
            assert np.array_equal(km.kmeans_dequantize(codebook, indices), w)


def test_wide_indices_are_uint16():
    w = np.random.default_rng(0).normal(size=3000).astype(np.float32)
    codebook, indices = km.kmeans_quantize(w, 9)
    assert indices.dtype == np.uint16 and len(codebook) == 512
    assert km.kmeans_quantize(w[:5], 16)[1].dtype == np.uint16


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_linear_init_spans_min_to_max(bits):
    """With no iteration the codebook is the start: evenly spaced from the
    smallest to the largest weight (Han et al.'s linear initialization)."""
    w = _lenet_fc2()
    codebook, _ = km.kmeans_quantize(w, bits, iters=0)
    assert codebook[0] == w.min() and codebook[-1] == w.max()
    expected = np.linspace(float(w.min()), float(w.max()), 2**bits)
    assert np.array_equal(codebook, expected.astype(np.float32))


@pytest.mark.parametrize("init", km.INITS)
@pytest.mark.parametrize("bits", [1, 2, 4, 6])
def test_every_weight_takes_its_nearest_centroid(init, bits):
    """The error of dequantize(quantize(w)) is each weight's distance to the
    nearest centroid (brute force over the codebook), so a weight between
    two centroids errs by at most half their gap -- at most half the largest
    gap.  A weight beyond the outermost centroid takes that centroid: a
    cluster's mean lies inside the cluster, so the end errors are bounded by
    the distance to the data's ends, not by a gap."""
    w = _lenet_fc2()
    codebook, indices = km.kmeans_quantize(w, bits, init=init)
    w_hat = km.kmeans_dequantize(codebook, indices)
    error = np.abs(w_hat - w)
    nearest = np.abs(w.ravel()[:, None] - codebook[None, :]).min(axis=1)
    assert np.array_equal(error.ravel(), nearest)
    inside = (w >= codebook[0]) & (w <= codebook[-1])
    if len(codebook) > 1:
        gaps = np.diff(codebook)
        assert error[inside].max() <= gaps.max() / 2
        # the tighter form: half the gap of the two centroids around each weight
        right = np.clip(np.searchsorted(codebook, w[inside]), 1, len(codebook) - 1)
        assert np.all(error[inside] <= gaps[right - 1] / 2)
    assert np.all(w_hat[w < codebook[0]] == codebook[0])
    assert np.all(w_hat[w > codebook[-1]] == codebook[-1])


def test_quantize_is_deterministic_and_random_init_is_seeded():
    w = _lenet_fc2()
    a = km.kmeans_quantize(w, 3, init="random", iters=2, seed=5)
    b = km.kmeans_quantize(w, 3, init="random", iters=2, seed=5)
    c = km.kmeans_quantize(w, 3, init="random", iters=2, seed=6)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_dequantize_is_a_table_lookup():
    codebook = np.array([-1.0, 0.5, 2.0], np.float32)
    indices = np.array([[2, 0], [1, 1]], np.uint8)
    out = km.kmeans_dequantize(codebook, indices)
    assert out.dtype == np.float32
    assert out.tolist() == [[2.0, -1.0], [0.5, 0.5]]


# ------------------------------------------------------------ the model


def test_quantize_model_shares_weights_per_layer_and_keeps_biases():
    model = nn.load_lenet()
    before = [layer.W.copy() for layer in model.dense]
    q, codebooks, indices = kmn.quantize_model(model, [3, 2, 1])
    assert [len(c) for c in codebooks] == [8, 4, 2]
    for layer, orig, c, i, W0 in zip(
        q.dense, model.dense, codebooks, indices, before, strict=True
    ):
        assert np.array_equal(layer.W, c[i]) and layer.W.dtype == np.float32
        assert np.array_equal(layer.b, orig.b) and layer.b is not orig.b
        assert np.array_equal(orig.W, W0)  # the float model is untouched
        assert np.array_equal(c, km.kmeans_quantize(W0, len(c).bit_length() - 1)[0])


def test_codebook_gradient_equals_a_per_cluster_loop():
    """On a tiny weight-shared network: forward and backward through
    qlib.nn, then the centroids' gradients summed cluster by cluster in
    Python, weight by weight."""
    model = _tiny_mlp()
    q, codebooks, indices = kmn.quantize_model(model, 2)
    rng = np.random.default_rng(3)
    x, y = rng.random((6, 5), np.float32), rng.integers(0, 3, 6)
    _, grad = nn.softmax_cross_entropy(q.forward(x), y)
    q.backward(grad)
    for layer, c, idx in zip(q.dense, codebooks, indices, strict=True):
        loop = [0.0] * len(c)
        for r in range(idx.shape[0]):
            for s in range(idx.shape[1]):
                loop[int(idx[r, s])] += float(layer.dW[r, s])
        got = kmn.codebook_gradient(layer.dW, idx, len(c))
        assert got.dtype == np.float32 and got.shape == (len(c),)
        assert np.allclose(got, loop, rtol=1e-6, atol=1e-9)


def _one_step(optimizer: str, biases: bool):
    """One fine-tuning step (the whole batch at once) and the loop oracle's
    codebook gradient, bias gradient and starting state."""
    model = _tiny_mlp(1)
    q, codebooks, indices = kmn.quantize_model(model, 2)
    start = [c.copy() for c in codebooks]
    b0 = [layer.b.copy() for layer in q.dense]
    rng = np.random.default_rng(4)
    x, y = rng.random((8, 5), np.float32), rng.integers(0, 3, 8)
    _, grad = nn.softmax_cross_entropy(q.forward(x), y)
    q.backward(grad)
    sums, db = [], []
    for layer, c, idx in zip(q.dense, codebooks, indices, strict=True):
        total = np.zeros(len(c))
        for (r, s), g in np.ndenumerate(layer.dW):
            total[idx[r, s]] += g
        sums.append(total)
        db.append(layer.db.copy())
    kw = dict(epochs=1, lr=0.05, batch_size=8, biases=biases, optimizer=optimizer)
    kmn.finetune_codebooks(q, codebooks, indices, x, y, **kw)
    return q, codebooks, indices, start, sums, b0, db


def test_one_sgd_step_moves_each_centroid_by_its_cluster_sum():
    q, codebooks, indices, start, sums, b0, _ = _one_step("sgd", biases=False)
    for layer, c, c0, total, idx, b in zip(
        q.dense, codebooks, start, sums, indices, b0, strict=True
    ):
        assert np.allclose(c, c0 - 0.05 * total, rtol=1e-6, atol=1e-7)
        assert np.array_equal(layer.W, c[idx])  # W rebuilt, indices fixed
        assert np.array_equal(layer.b, b)  # biases=False leaves them alone


def test_one_adam_step_moves_each_centroid_by_lr():
    """Adam's first step is ``-lr * g / (|g| + eps)``: ``lr`` against the
    sign of the summed gradient, and the biases move likewise."""
    q, codebooks, _, start, sums, b0, db = _one_step("adam", biases=True)
    for layer, c, c0, total, b, g in zip(
        q.dense, codebooks, start, sums, b0, db, strict=True
    ):
        step = 0.05 * total / (np.abs(total) + 1e-8)
        assert np.allclose(c, c0 - step, rtol=0, atol=1e-6)
        assert np.allclose(layer.b, b - 0.05 * g / (np.abs(g) + 1e-8), atol=1e-6)


def test_finetune_lowers_the_loss_and_keeps_the_sharing():
    rng = np.random.default_rng(0)
    x = rng.random((200, 5), np.float32)
    y = (x[:, 0] > x[:, 1]).astype(int) + (x[:, 2] > 0.5)
    q, codebooks, indices = kmn.quantize_model(_tiny_mlp(2), 2)
    frozen = [i.copy() for i in indices]
    losses = kmn.finetune_codebooks(
        q, codebooks, indices, x, y, epochs=5, lr=1e-2, batch_size=20, seed=0
    )
    assert losses[-1] < losses[0]
    for layer, c, i, i0 in zip(q.dense, codebooks, indices, frozen, strict=True):
        assert np.array_equal(i, i0)
        assert np.array_equal(layer.W, c[i]) and len(np.unique(layer.W)) <= 4


def test_recipe_is_a_valid_set_of_keywords():
    assert kmn.FINETUNE_RECIPE["optimizer"] in kmn.OPTIMIZERS
    q, codebooks, indices = kmn.quantize_model(_tiny_mlp(), 1)
    x = np.zeros((3, 5), np.float32)
    recipe = dict(kmn.FINETUNE_RECIPE) | {"batch_size": 3}
    kmn.finetune_codebooks(q, codebooks, indices, x, np.zeros(3, int), **recipe)
    with pytest.raises(TypeError):
        kmn.FINETUNE_RECIPE["lr"] = 1.0  # read-only: the notebook uses it as is


# ---------------------------------------------------------------- storage


def test_storage_bits_by_hand():
    assert km.kmeans_storage_bits(235200, 4) == 235200 * 4 + 16 * 32 == 941312
    assert km.kmeans_storage_bits(1000, 8) == 8000 + 8192  # codebook > indices
    assert km.kmeans_storage_bits(10, 1) == 10 + 64
    assert km.kmeans_storage_bits(100, 2, codebook_bits=16) == 200 + 64
    assert km.kmeans_storage_bits(0, 3) == 256


def test_model_storage_by_hand():
    """LeNet-300-100: 235200 + 30000 + 1000 weights, 300 + 100 + 10 biases."""
    s = kmn.kmeans_storage(nn.load_lenet(), 4)
    assert s.n_weights == (235200, 30000, 1000) and s.n_biases == 410
    assert s.layer_bits == (941312, 120512, 4512)
    assert s.bias_bits == 13120  # biases stay float32
    assert s.total_bits == 941312 + 120512 + 4512 + 13120 == 1079456
    assert s.fp32_bits == 32 * 266610 == 8531520
    assert s.ratio == 8531520 / 1079456  # 7.90: biases counted on both sides
    assert s.weight_ratio == 32 * 266200 / 1066336  # 7.99: weights alone
    assert s.kilobytes == 1079456 / 8 / 1000
    mixed = kmn.kmeans_storage(nn.load_lenet(), [6, 5, 8])
    assert mixed.layer_bits == (235200 * 6 + 64 * 32, 30000 * 5 + 32 * 32, 8000 + 8192)


# ------------------------------------------------------------- bad input


@pytest.mark.parametrize("bits", [0, -1, 17, 64])
def test_bits_out_of_range(bits):
    with pytest.raises(ValueError, match=r"bits must be in \[1, 16\]"):
        km.kmeans_quantize([0.1, 0.2], bits)
    with pytest.raises(ValueError, match=r"bits must be in \[1, 16\]"):
        km.kmeans_storage_bits(10, bits)
    with pytest.raises(ValueError, match=r"bits must be in \[1, 16\]"):
        kmn.quantize_model(_tiny_mlp(), bits)


@pytest.mark.parametrize("bits", [2.0, True, "4", None])
def test_bits_wrong_type(bits):
    with pytest.raises(TypeError, match="bits must be an integer"):
        km.kmeans_quantize([0.1, 0.2], bits)


@pytest.mark.parametrize("w", [[], np.zeros((0, 3), np.float32)])
def test_empty_weights(w):
    with pytest.raises(ValueError, match="w must not be empty"):
        km.kmeans_quantize(w, 2)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_weights(bad):
    with pytest.raises(ValueError, match="w must be finite"):
        km.kmeans_quantize(np.array([0.1, bad, 0.3], np.float32), 2)


def test_other_bad_arguments():
    with pytest.raises(TypeError, match="w must be an array of real numbers"):
        km.kmeans_quantize(["a", "b"], 2)
    with pytest.raises(ValueError, match="init must be one of linear, density"):
        km.kmeans_quantize([0.1, 0.2, 0.3], 1, init="kmeans++")
    with pytest.raises(ValueError, match=r"one per Dense layer \(2\)"):
        kmn.quantize_model(_tiny_mlp(), [2, 2, 2])
    with pytest.raises(ValueError, match=r"indices must lie in 0\.\.2"):
        km.kmeans_dequantize([0.0, 1.0, 2.0], np.array([3]))
    with pytest.raises(TypeError, match="indices must be integers"):
        km.kmeans_dequantize([0.0, 1.0], np.array([0.0]))
    with pytest.raises(ValueError, match="same shape"):
        kmn.codebook_gradient(np.zeros((2, 2)), np.zeros((2, 3), int), 4)
    with pytest.raises(ValueError, match=r"indices must lie in 0\.\.1"):
        kmn.codebook_gradient(np.zeros(3), np.array([0, 1, 2]), 2)
    with pytest.raises(ValueError, match="n_weights must be >= 0"):
        km.kmeans_storage_bits(-1, 2)
    with pytest.raises(ValueError, match="codebook_bits must be >= 1"):
        km.kmeans_storage_bits(10, 2, codebook_bits=0)
    q, codebooks, indices = kmn.quantize_model(_tiny_mlp(), 1)
    x, y = np.zeros((2, 5), np.float32), np.zeros(2, int)
    kw = dict(epochs=1, lr=0.1)
    with pytest.raises(ValueError, match="optimizer must be one of adam, sgd"):
        kmn.finetune_codebooks(q, codebooks, indices, x, y, optimizer="rmsprop", **kw)
    with pytest.raises(ValueError, match="momentum is for optimizer='sgd'"):
        kmn.finetune_codebooks(q, codebooks, indices, x, y, momentum=0.9, **kw)
    with pytest.raises(ValueError, match="one entry per Dense layer"):
        kmn.finetune_codebooks(q, codebooks[:1], indices, x, y, **kw)
    with pytest.raises(TypeError, match=r"codebooks\[0\] must be a 1-D float32"):
        kmn.finetune_codebooks(
            q, [c.astype(float) for c in codebooks], indices, x, y, **kw
        )
    with pytest.raises(ValueError, match=r"indices\[1\] must have layer 1's shape"):
        kmn.finetune_codebooks(q, codebooks, [indices[0], indices[0]], x, y, **kw)

"""qlib.binary (chapter 09): BWN and TWN against exhaustive searches and the
TWN paper's closed forms, and the XNOR-popcount dot product exactly against
the integer matmul.

TWN's rule of thumb, with its margin (measured on 10**6 samples, seed 0):
the exact optimal threshold is 0.666 mean|W| for uniform weights (closed
form a/3 = 2/3 mean|W|) and 0.767 mean|W| for Gaussian ones (closed form
0.612 sigma; the paper rounds it to 0.6 sigma = 0.75 mean|W|).  0.7 is
within 0.07 of both, and its squared error ||W - alpha T||**2 is within 1 %
of the optimum's (measured +0.38 % and +0.77 %).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from qlib import binary as bq
from qlib import nn


def _error(w, alpha, codes):
    return float(np.sum((w - alpha * codes) ** 2))


# ------------------------------------------------------------------- BWN
def test_bwn_alpha_is_the_least_squares_scale():
    """For B = sign(W), alpha = mean|W| = W.B / n, checked against a fine grid."""
    w = nn.load_lenet().dense[1].W
    alpha, B = bq.binarize(w, axis=0)
    np.testing.assert_allclose(alpha, np.abs(w).mean(axis=1), rtol=1e-6)
    np.testing.assert_allclose(alpha, (w * B).sum(axis=1) / w.shape[1], rtol=1e-5)
    row = w[7].astype(np.float64)
    grid = np.linspace(0.5, 1.5, 2001) * alpha[7]
    errors = ((row[None, :] - grid[:, None] * B[7]) ** 2).sum(axis=1)
    best = grid[np.argmin(errors)]
    assert abs(best - alpha[7]) <= grid[1] - grid[0]
    assert _error(row, float(alpha[7]), B[7]) <= errors.min() + 1e-12


def test_bwn_sign_is_the_best_binary_code():
    """Over all 2**10 sign patterns, each with its best alpha, sign(W) wins."""
    w = np.random.default_rng(0).normal(0, 1, 10)
    alpha, B = bq.binarize(w, axis=None)
    best = math.inf
    for pattern in itertools.product((-1, 1), repeat=10):
        b = np.array(pattern)
        a = max(float(w @ b) / 10, 0.0)
        best = min(best, _error(w, a, b))
    assert _error(w, float(alpha), B) == pytest.approx(best, rel=1e-12)


def test_binarize_codes_and_per_tensor():
    alpha, B = bq.binarize(np.array([[0.0, -0.5], [2.0, -2.0]], np.float32))
    assert B.dtype == np.int8 and set(np.unique(B)) <= {-1, 1}
    np.testing.assert_array_equal(B, [[1, -1], [1, -1]])  # sign(0) = +1
    np.testing.assert_allclose(alpha, [0.25, 2.0])
    assert bq.binarize(np.array([[1.0, -3.0]]), axis=None)[0] == 2.0


# ------------------------------------------------------------------- TWN
def test_ternarize_by_hand():
    w = np.array([[0.1, -2.0, 1.0, 0.3], [0.5, -0.5, 0.5, 0.0]])
    alpha, T = bq.ternarize(w)
    np.testing.assert_allclose(bq.twn_threshold(w), [0.595, 0.2625])
    np.testing.assert_array_equal(T, [[0, -1, 1, 0], [1, -1, 1, 0]])
    np.testing.assert_allclose(alpha, [1.5, 0.5])
    alpha, T = bq.ternarize(w, delta=[0.05, 10.0])
    np.testing.assert_array_equal(T[1], [0, 0, 0, 0])
    assert alpha[1] == 0.0  # nothing kept


def test_optimal_threshold_is_the_exhaustive_optimum():
    """Over all 3**8 ternary codes, each with its best alpha, the code that
    |W| > optimal_threshold(W) keeps (with TWN's alpha) is the best."""
    rng = np.random.default_rng(1)
    for trial in range(4):
        w = rng.normal(0, 1, 8) if trial else rng.integers(-3, 4, 8).astype(float)
        best = math.inf
        for pattern in itertools.product((-1, 0, 1), repeat=8):
            t = np.array(pattern)
            k = np.count_nonzero(t)
            a = max(float(w @ t) / k, 0.0) if k else 0.0
            best = min(best, _error(w, a, t))
        delta = bq.optimal_threshold(w)
        alpha, T = bq.ternarize(w, delta, axis=None)
        assert _error(w, float(alpha), T) == pytest.approx(best, rel=1e-12, abs=1e-12)


def _gaussian_optimum() -> float:
    """The optimal Delta / sigma for N(0, sigma**2): the t maximizing
    (E[|W|; |W| > t])**2 / P(|W| > t) = 2 phi(t)**2 / (1 - Phi(t))."""
    t = np.linspace(0.3, 1.0, 70001)
    phi = np.exp(-(t**2) / 2) / math.sqrt(2 * math.pi)
    Phi = 0.5 * (1 + np.array([math.erf(v / math.sqrt(2)) for v in t]))
    return float(t[np.argmax(phi**2 / (1 - Phi))])


def test_twn_rule_approximates_the_optimal_threshold():
    rng = np.random.default_rng(0)
    t_star = _gaussian_optimum()
    assert t_star == pytest.approx(0.612, abs=1e-3)
    closed = {"uniform": 2 / 3, "gaussian": t_star / math.sqrt(2 / math.pi)}
    samples = {
        "uniform": rng.uniform(-1, 1, 10**6),
        "gaussian": rng.standard_normal(10**6),
    }
    for name, w in samples.items():
        mean = np.abs(w).mean()
        ratio = bq.optimal_threshold(w) / mean
        assert ratio == pytest.approx(closed[name], abs=0.005), name
        assert abs(bq.TWN_DELTA - ratio) < 0.07, name
        optimum = _error(w, *bq.ternarize(w, ratio * mean, axis=None))
        rule = _error(w, *bq.ternarize(w, None, axis=None))
        assert optimum <= rule < 1.01 * optimum, name


def test_optimal_threshold_ties():
    assert bq.optimal_threshold([1.0, 1.0, 1.0]) == 0.0  # keep all
    # |W| = 2, 1, 1: keeping 2 and one 1 is no threshold; keeping all three
    # (S**2 / k = 16 / 3) beats keeping 2 alone (4)
    assert bq.optimal_threshold([2.0, 1.0, -1.0]) == 0.0
    assert bq.optimal_threshold([3.0, 0.1, 0.1, 0.1]) == 0.1


# ---------------------------------------------------------- XNOR-popcount
@pytest.mark.parametrize("n", [1, 7, 63, 64, 65, 100, 127, 128, 129, 300, 784])
def test_xnor_popcount_is_the_integer_matmul(n):
    rng = np.random.default_rng(n)
    a = rng.choice([-1, 1], (9, n)).astype(np.int64)
    b = rng.choice([-1, 1], (7, n)).astype(np.int64)
    a[0], b[0] = 1, -1  # all agree / all disagree rows
    got = bq.xnor_matmul(bq.pack_signs(a), bq.pack_signs(b), n, block=4)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, a @ b.T)
    assert got[0, 0] == -n and (a[0] @ a[0]) == n


def test_the_padding_must_be_masked():
    """Without the mask XNOR counts the 64 - n % 64 zero padding bits of the
    last word as agreements: the dot product comes out 2 * padding too big."""
    n = 70
    a = np.ones((1, n))
    b = -np.ones((1, n))
    wa, wb = bq.pack_signs(a), bq.pack_signs(b)
    naive = 2 * int(bq.popcount(~(wa ^ wb)).sum()) - n
    assert naive - int(bq.xnor_matmul(wa, wb, n)[0, 0]) == 2 * (128 - n)


def test_pack_signs_layout_against_python_integers():
    rng = np.random.default_rng(2)
    x = rng.normal(0, 1, (3, 130))
    x[0, 5] = 0.0  # sign(0) packs as +1
    words = bq.pack_signs(x)
    assert words.shape == (3, 3) and words.dtype == np.uint64
    for row, w in zip(x, words, strict=True):
        value = sum(1 << j for j, v in enumerate(row) if v >= 0)
        assert [int(v) for v in w] == [
            (value >> (64 * k)) & (2**64 - 1) for k in range(3)
        ]


def test_popcount_table_matches_bitwise_count():
    rng = np.random.default_rng(3)
    w = rng.integers(0, 2**64 - 1, 1000, dtype=np.uint64, endpoint=True)
    w[:3] = [0, 2**64 - 1, 1 << 63]
    want = np.array([bin(int(v)).count("1") for v in w])
    np.testing.assert_array_equal(bq._popcount_table(w), want)
    np.testing.assert_array_equal(bq.popcount(w), want)


def test_bad_input_is_named():
    with pytest.raises(TypeError, match="w must be floating point"):
        bq.binarize(np.array([1, -1]))
    with pytest.raises(ValueError, match="w must be a non-empty"):
        bq.ternarize(np.array([np.inf, 1.0]))
    with pytest.raises(ValueError, match="axis"):
        bq.binarize(np.ones((2, 3)), axis=2)
    with pytest.raises(ValueError, match="delta"):
        bq.ternarize(np.ones((2, 3)), delta=[0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="delta"):
        bq.ternarize(np.ones((2, 3)), delta=-1.0)
    words = bq.pack_signs(np.ones((2, 70)))
    with pytest.raises(ValueError, match="n must be in"):
        bq.xnor_matmul(words, words, 64)
    with pytest.raises(TypeError, match="a_words must be uint64"):
        bq.xnor_matmul(words.astype(np.int64), words, 70)
    with pytest.raises(ValueError, match="as many words"):
        bq.xnor_matmul(words, bq.pack_signs(np.ones((2, 10))), 70)
    with pytest.raises(TypeError, match="words must be uint64"):
        bq.popcount(np.array([3]))
    with pytest.raises(ValueError, match="non-empty last axis"):
        bq.pack_signs(np.ones((2, 0)))

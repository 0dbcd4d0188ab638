"""qlib.ptq: weights at every granularity, their storage, fake-quantized
activations.  Oracles: the quantizer written out in numpy, exact counts of
scales and zero points, the lecture's worked example."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from qlib import calibrate, ptq
from qlib.nn import MLP, Dense, ReLU

RNG = np.random.default_rng(8)


def _mlp(*sizes: int) -> MLP:
    """Dense layers of these widths, a ReLU after each but the last."""
    layers: list = []
    for n_in, n_out in itertools.pairwise(sizes):
        layers += [Dense(n_in, n_out, rng=RNG), ReLU()]
    return MLP(layers[:-1])


def _sym_by_hand(w: np.ndarray, bits: int) -> np.ndarray:
    """Symmetric round-to-nearest-even of one group, written out."""
    s = np.float32(np.abs(w).max() / (2 ** (bits - 1) - 1))
    q = np.clip(np.rint(w / s), -(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    return q * s


def _asym_by_hand(w: np.ndarray, bits: int) -> np.ndarray:
    lo, hi = min(w.min(), 0.0), max(w.max(), 0.0)
    s = np.float32((hi - lo) / (2**bits - 1))
    z = np.clip(
        np.rint(-(2 ** (bits - 1)) - lo / np.float64(s)),
        -(2 ** (bits - 1)),
        2 ** (bits - 1) - 1,
    )
    q = np.clip(np.rint(w / s) + z, -(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    return (q - z) * s


@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("bits", [2, 3, 4, 8])
@pytest.mark.parametrize("granularity", ["tensor", "channel", 4, 5, 7])
def test_quantize_weight_is_each_group_on_its_own(granularity, bits, symmetric):
    w = RNG.normal(0, 0.1, (6, 14)).astype(np.float32)
    got = ptq.quantize_weight(w, bits, granularity, symmetric=symmetric)
    by_hand = _sym_by_hand if symmetric else _asym_by_hand
    want = np.empty_like(w, dtype=np.float64)
    if granularity == "tensor":
        want = by_hand(w.astype(np.float64), bits)
    elif granularity == "channel":
        for i in range(6):
            want[i] = by_hand(w[i].astype(np.float64), bits)
    else:  # groups of g inputs of each row; the last one shorter (14 % g)
        for i in range(6):
            for j in range(0, 14, granularity):
                want[i, j : j + granularity] = by_hand(
                    w[i, j : j + granularity].astype(np.float64), bits
                )
    assert got.dtype == np.float32 and got.shape == w.shape
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


def test_the_lectures_two_bit_example():
    # MIT 6.5940 Lecture 06, per-tensor vs per-channel: ||W - S q||_F = 2.28
    # with one scale (2.12), 2.08 with one per row (2.09, 2.12, 1.92, 1.87)
    W = np.array(
        [
            [2.09, -0.98, 1.48, 0.09],
            [0.05, -0.14, -1.08, 2.12],
            [-0.91, 1.92, 0.0, -1.03],
            [1.87, 0.0, 1.53, 1.49],
        ]
    )
    per_tensor = np.linalg.norm(W - ptq.quantize_weight(W, 2, "tensor"))
    per_channel = np.linalg.norm(W - ptq.quantize_weight(W, 2, "channel"))
    assert round(per_tensor, 2) == 2.28 and round(per_channel, 2) == 2.08


def test_bits_per_weight_counts_every_scale_and_zero_point():
    assert ptq.bits_per_weight((300, 784), 8, "tensor") == 8 + 16 / 235200
    assert ptq.bits_per_weight((300, 784), 4, "channel") == 4 + 16 / 784
    # 784 = 24 * 32 + 16: 25 groups per row, the last of 16 weights
    assert ptq.bits_per_weight((300, 784), 4, 32) == 4 + 25 * 16 / 784
    assert ptq.bits_per_weight((300, 784), 3, 32, symmetric=False) == 3 + 25 * 19 / 784
    assert ptq.bits_per_weight((10, 100), 2, 128, scale_bits=32) == 2 + 32 / 100


def test_model_bytes_of_lenet():
    model = _mlp(784, 300, 100, 10)
    biases = (300 + 100 + 10) * 4
    assert ptq.model_bytes(model) == 266200 * 4 + biases
    per_channel = (266200 * 4 + (300 + 100 + 10) * 16) / 8
    assert ptq.model_bytes(model, 4, "channel") == per_channel + biases
    groups = 300 * 25 + 100 * 10 + 10 * 4  # ceil(784/32), ceil(300/32), ceil(100/32)
    assert ptq.model_bytes(model, 4, 32) == (266200 * 4 + groups * 16) / 8 + biases


def test_quantize_model_changes_weights_only():
    model = MLP([Dense(20, 8, rng=RNG), ReLU(), Dense(8, 3, rng=RNG)])
    q = ptq.quantize_model(model, 3, 4, symmetric=False)
    for a, b in zip(model.dense, q.dense, strict=True):
        assert np.array_equal(b.W, ptq.quantize_weight(a.W, 3, 4, symmetric=False))
        assert np.array_equal(a.b, b.b) and a.b is not b.b
    assert [type(x) for x in q.layers] == [Dense, ReLU, Dense]


def test_simulate_quantizes_the_hidden_activations_on_their_ranges():
    model = _mlp(6, 5, 4, 3)
    x = RNG.uniform(0, 1, (50, 6)).astype(np.float32)
    assert np.array_equal(ptq.simulate(model, x), model.forward(x))
    ranges = ptq.activation_ranges(model, x)
    h1 = np.maximum(model.dense[0].forward(x), 0)
    assert ranges[0] == (0.0, float(h1.max()))
    # by hand: [0, t] on 2**3 levels, step t / 7
    s1 = np.float32(ranges[0][1] / 7)
    a = np.clip(np.rint(h1 / s1), 0, 7) * s1
    a = np.maximum(model.dense[1].forward(a.astype(np.float32)), 0)
    s2 = np.float32(ranges[1][1] / 7)
    a = np.clip(np.rint(a / s2), 0, 7) * s2
    want = model.dense[2].forward(a.astype(np.float32))
    np.testing.assert_allclose(
        ptq.simulate(model, x, 3, ranges), want, rtol=1e-5, atol=1e-6
    )


def test_calibrators_plug_into_activation_ranges():
    model = MLP([Dense(6, 40, rng=RNG), ReLU(), Dense(40, 3, rng=RNG)])
    x = RNG.uniform(0, 1, (500, 6)).astype(np.float32)
    h = np.maximum(model.dense[0].forward(x), 0)
    found = {
        name: ptq.activation_ranges(model, x, c)[0]
        for name, c in ptq.calibrators(4).items()
    }
    assert found["min-max"] == (0.0, float(h.max()))
    assert found["99.9 %"][1] == pytest.approx(np.percentile(h, 99.9))
    assert found["MSE"][1] == calibrate.mse_threshold(h, 4, symmetric=False)
    assert found["KL"][1] == calibrate.entropy_threshold(h[h > 0], 5)
    assert found["EMA"] == calibrate.ema_minmax(h, 0.9, batch_size=100)


def test_bad_input_is_named():
    model = MLP([Dense(4, 3, rng=RNG), ReLU(), Dense(3, 2, rng=RNG)])
    with pytest.raises(
        ValueError, match="granularity must be 'tensor', 'channel' or a group"
    ):
        ptq.quantize_weight(np.ones((2, 2)), 4, "row")
    with pytest.raises(ValueError, match="granularity"):
        ptq.quantize_weight(np.ones((2, 2)), 4, 0)
    with pytest.raises(ValueError, match="W must be a non-empty 2-D float array"):
        ptq.quantize_weight(np.ones(4), 4)
    with pytest.raises(ValueError, match=r"bits must be in \[2, 32\]|bits"):
        ptq.quantize_weight(np.ones((2, 2)), 1)
    with pytest.raises(TypeError, match=r"model must be a qlib\.nn\.MLP"):
        ptq.quantize_model([Dense(2, 2, rng=RNG)], 4)
    with pytest.raises(ValueError, match="ranges must hold one"):
        ptq.simulate(model, np.zeros((1, 4), np.float32), 4, [])
    with pytest.raises(ValueError, match="calibrator must return finite"):
        ptq.activation_ranges(
            model, np.zeros((1, 4), np.float32), lambda a: (0.0, np.inf)
        )
    with pytest.raises(ValueError, match=r"bits must be in \[2, 15\]"):
        ptq.calibrators(1)
    with pytest.raises(ValueError, match="ReLU"):
        ptq.simulate(
            MLP([Dense(4, 3, rng=RNG), ReLU(), ReLU()]), np.zeros((1, 4), np.float32)
        )

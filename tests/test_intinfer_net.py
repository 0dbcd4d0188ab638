"""qlib.quantnet: LeNet-300-100 in integers only, against its float simulation
layer by layer, exact rationals, independent min-max calibration and modular
arithmetic (the int16 accumulator).

The tolerance rule is test_linear's for one QuantizedLinear: given the same
input codes, a layer's integer output equals the exact rounding of
``Z_y + M acc`` but within the double rounding's window of a half-integer
(``2**-(r+1)`` plus M's 31-bit error times ``|acc|``, r the right shift),
where it is one step away; the float64 simulation equals the exact rounding.
About ``2**-(r+1)`` of random accumulators fall in the window, so the share
of outputs that differ is bounded at ``2**-r`` (outputs clamped by ReLU or
saturation never differ).  The error-rate claims are tests/test_claims_07.py.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from qlib import nn
from qlib.data import load_mnist
from qlib.intinfer import QuantizedLinear, accumulate_narrow
from qlib.linear import dequantize_linear, linear_qparams, quantize_linear
from qlib.quantnet import LayerComparison, QuantizedMLP, calibration_images, minmax


@pytest.fixture(scope="module")
def model() -> nn.MLP:
    return nn.load_lenet()


@pytest.fixture(scope="module")
def calibration(mnist_folder) -> np.ndarray:
    return calibration_images()


@pytest.fixture(scope="module")
def test_set(mnist_folder) -> tuple[np.ndarray, np.ndarray]:
    return load_mnist("test")


@pytest.fixture(scope="module", params=[False, True], ids=["per_tensor", "per_channel"])
def qnet(request, model, calibration) -> QuantizedMLP:
    return QuantizedMLP.from_float(model, calibration, per_channel=request.param)


# ------------------------------------------------------------ construction


def test_calibration_images_are_a_seeded_slice_of_the_training_set(mnist_folder):
    train, _ = load_mnist("train")
    images = calibration_images()
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8
    np.testing.assert_array_equal(images, calibration_images(5000, seed=0))
    picks = np.sort(np.random.default_rng(0).choice(60000, 5000, replace=False))
    np.testing.assert_array_equal(images, train[picks])
    assert not np.array_equal(calibration_images(100, seed=1), images[:100])
    with pytest.raises(ValueError, match="n must be at most 60000"):
        calibration_images(60001)


def test_input_codes_are_the_pixels_exactly(qnet, test_set):
    """preprocess divides by 255: with S = 1/255, Z = 0 every pixel is a code,
    so the input is not rounded at all (quantize_linear gives it back)."""
    images = test_set[0][:500]
    first = qnet.layers[0]
    assert first.x_scale == np.float32(1 / 255) and first.x_zero_point == 0
    q = qnet.quantize_input(images)
    assert q.dtype == np.uint8 and q.shape == (500, 784)
    np.testing.assert_array_equal(q, images.reshape(500, -1))
    x = nn.preprocess(images)
    np.testing.assert_array_equal(quantize_linear(x, first.x_scale, 0, signed=False), q)
    # and the codes stand for the same reals, up to float32's rounding
    r = dequantize_linear(q, first.x_scale, 0)
    assert np.abs(r - x).max() <= 2**-24


def test_activation_ranges_are_min_max_of_the_float_model(qnet, model, calibration):
    """Each layer's (S_y, Z_y) is linear_qparams of [min, max] of the float
    model's activation on the calibration images, computed here in plain
    NumPy; ReLU outputs get Z_y = 0 and S_y = max / 255."""
    x = calibration.reshape(len(calibration), -1).astype(np.float32) / np.float32(255)
    for i, (layer, dense) in enumerate(zip(qnet.layers, model.dense, strict=True)):
        y = x @ dense.W.T + dense.b
        relu = i < 2
        y = np.maximum(y, 0) if relu else y
        s, z = linear_qparams(np.array([y.min(), y.max()], np.float32), signed=False)
        assert (layer.y_scale, layer.y_zero_point, layer.relu) == (s, z, relu)
        if relu:
            assert z == 0 and np.isclose(s, y.max() / 255, rtol=1e-6)
        else:
            assert 0 < z < 255  # the logits take both signs
        x = y


def test_weights_are_symmetric_int8_per_tensor_or_per_channel(qnet, model):
    per_channel = np.ndim(qnet.layers[0].weight_scale) == 1
    for layer, dense in zip(qnet.layers, model.dense, strict=True):
        w = dense.W.astype(np.float64)
        peak = np.abs(w).max(axis=1) if per_channel else np.abs(w).max()
        np.testing.assert_allclose(layer.weight_scale, peak / 127, rtol=1e-6)
        assert np.all(layer.weight_zero_point == 0)
        assert layer.weight.dtype == np.int8 and np.abs(layer.weight).max() == 127
        s_b = float(layer.x_scale) * np.asarray(layer.weight_scale, np.float64)
        np.testing.assert_array_equal(layer.bias, np.rint(dense.b / s_b))


def test_signed_activations_are_the_same_network_shifted_by_128(
    model, calibration, test_set
):
    images = test_set[0][:2000]
    plain = QuantizedMLP.from_float(model, calibration, per_channel=True)
    signed = QuantizedMLP.from_float(model, calibration, per_channel=True, signed=True)
    assert signed.layers[0].x_zero_point == -128 and signed.signed
    for a, b in zip(plain.activations(images), signed.activations(images), strict=True):
        assert a.dtype == np.uint8 and b.dtype == np.int8
        np.testing.assert_array_equal(a.astype(int) - 128, b)
    np.testing.assert_array_equal(plain.predict(images), signed.predict(images))


# ----------------------------------------- integer path vs float simulation


def _exact(layer: QuantizedLinear, acc: np.ndarray, cols: np.ndarray):
    """For accumulators ``acc`` of output channels ``cols``: the exact
    round-half-even of Z_y + (S_x S_w / S_y) acc (clamped), the distance of the
    unrounded value to a half-integer, and the window of the double rounding."""
    s_x, s_y = Fraction(float(layer.x_scale)), Fraction(float(layer.y_scale))
    s_w = np.broadcast_to(layer.weight_scale, layer.offset.shape)
    lo = layer.y_zero_point if layer.relu else 0
    want, dist, window = [], [], []
    for a, j in zip(acc.tolist(), cols.tolist(), strict=True):
        m = s_x * Fraction(float(s_w[j])) / s_y
        m_fixed = Fraction(int(layer.multiplier[j])) * Fraction(2) ** (
            int(layer.shift[j]) - 31
        )
        v = m * a
        want.append(min(max(round(v) + layer.y_zero_point, lo), 255))
        dist.append(abs(abs(v - math.floor(v)) - Fraction(1, 2)))
        r = max(-int(layer.shift[j]), 0)
        window.append(Fraction(1, 2 ** (r + 1)) + abs(m_fixed - m) * abs(a))
    return np.array(want), dist, window


def test_each_layer_is_its_float_simulation_but_in_the_rounding_window(qnet, test_set):
    """On all 10,000 test images, each layer fed the integer path's codes:
    forward and simulate differ by at most one step, only where the exact
    value lies within the double rounding's window of a half-integer (checked
    in exact rationals at every differing output), and on at most 2**-r of
    the outputs.  On 100 images, every output of simulate is the exact
    rounding and every output of forward is too but within the window."""
    q = qnet.quantize_input(test_set[0])
    for layer in qnet.layers:
        forward, simulate = layer.forward(q), layer.simulate(q)
        diff = forward.astype(np.int64) - simulate
        assert np.abs(diff).max() <= 1
        rows, cols = np.nonzero(diff)
        acc = layer.accumulate(q[rows]).astype(np.int64)[np.arange(rows.size), cols]
        want, dist, window = _exact(layer, acc, cols)
        np.testing.assert_array_equal(simulate[rows, cols], want)
        assert all(d <= w for d, w in zip(dist, window, strict=True))
        bound = np.mean(2.0 ** np.minimum(layer.shift, 0))
        assert np.mean(diff != 0) <= bound, (np.mean(diff != 0), bound)

        few = q[:100]
        acc = layer.accumulate(few).astype(np.int64)
        cols = np.broadcast_to(np.arange(acc.shape[1]), acc.shape).ravel()
        want, dist, window = _exact(layer, acc.ravel(), cols)
        np.testing.assert_array_equal(simulate[:100].ravel(), want)
        off = forward[:100].ravel().astype(np.int64) != want
        assert all(dist[i] <= window[i] for i in np.flatnonzero(off))
        q = forward


def test_compare_layers_reports_lsb_and_shares(qnet, test_set):
    images = test_set[0][:3000]
    rows = qnet.compare_layers(images)
    assert [r.layer for r in rows] == [0, 1, 2]
    assert [r.outputs for r in rows] == [3000 * 300, 3000 * 100, 3000 * 10]
    q = qnet.quantize_input(images)
    for row, layer in zip(rows, qnet.layers, strict=True):
        forward, simulate = layer.forward(q), layer.simulate(q)
        assert isinstance(row, LayerComparison)
        assert row.max_lsb == np.abs(forward.astype(int) - simulate).max() <= 1
        assert row.differ == np.mean(forward != simulate)
        r = -np.asarray(layer.shift)
        assert r.min() > 0 and row.window == np.mean(2.0 ** -(r + 1.0))
        q = forward
    chained = qnet.compare_layers(images, chained=True)
    assert chained[0] == rows[0]  # the same input codes: the same comparison
    # fed its own codes, the simulation drifts: measured at most 1 LSB per
    # layer on the test set, with more differing outputs than layer by layer
    assert all(c.max_lsb <= 1 for c in chained)
    assert chained[2].differ > rows[2].differ


def test_integer_and_simulated_predictions_agree(qnet, test_set):
    """The integer network and its float simulation run end to end: the
    logit codes differ by at most one step (measured on all 10,000 test
    images), and the predicted classes agree on >= 99.9 % of them (measured:
    all 10,000, per tensor and per channel)."""
    images = test_set[0]
    logits, simulated = qnet.forward(images), qnet.simulate(images)
    assert np.abs(logits.astype(int) - simulated).max() <= 1
    agree = np.mean(logits.argmax(axis=1) == simulated.argmax(axis=1))
    assert agree >= 0.999, agree
    few = images[:2000]
    np.testing.assert_array_equal(qnet.predict(few, 700), logits[:2000].argmax(1))
    np.testing.assert_array_equal(
        qnet.predict(few, 700, simulate=True), simulated[:2000].argmax(1)
    )


# ------------------------------------------------------------------ shapes


def test_shapes_and_dtypes(qnet, test_set, model):
    images = test_set[0][:7]
    acts = qnet.activations(images)
    assert [a.shape for a in acts] == [(7, 300), (7, 100), (7, 10)]
    assert all(a.dtype == np.uint8 for a in acts)
    np.testing.assert_array_equal(qnet.forward(images), acts[-1])
    np.testing.assert_array_equal(qnet.forward(images.reshape(7, 784)), acts[-1])
    assert qnet.predict(images).shape == (7,)
    assert qnet.predict(images[:0]).shape == (0,)
    assert qnet.in_features == 784 and not qnet.signed
    labels = test_set[1][:7]
    assert qnet.error_rate(images, labels) == np.mean(qnet.predict(images) != labels)
    # the float model's ReLU layers were fused: one QuantizedLinear per Dense
    assert len(qnet.layers) == len(model.dense) == 3


def test_bad_arguments_are_named(qnet, model, calibration, test_set):
    images = test_set[0][:4]
    with pytest.raises(ValueError, match=r"images must be uint8.*float32.*preprocess"):
        qnet.forward(nn.preprocess(images))
    with pytest.raises(
        ValueError, match=r"images must be uint8 pixels 0\.\.255; got dtype int16$"
    ):
        qnet.predict(images.astype(np.int16))
    with pytest.raises(ValueError, match=r"images must have shape \(N, 784\)"):
        qnet.forward(images[:, :, :27])
    with pytest.raises(ValueError, match="images must have shape"):
        qnet.forward(images[0])
    with pytest.raises(ValueError, match="labels must be 4 integer"):
        qnet.error_rate(images, test_set[1][:3])
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        qnet.predict(images, 0)
    with pytest.raises(ValueError, match="calibration must be uint8"):
        QuantizedMLP.from_float(model, nn.preprocess(calibration[:10]))
    with pytest.raises(ValueError, match="calibrator must return finite"):
        QuantizedMLP.from_float(model, calibration[:10], calibrator=lambda x: (1, 0))
    with pytest.raises(TypeError, match=r"model.layers\[0\] is a ReLU"):
        QuantizedMLP.from_float(nn.MLP([nn.ReLU(), *model.layers]), calibration[:10])
    with pytest.raises(TypeError, match=r"model must be a qlib\.nn\.MLP"):
        QuantizedMLP.from_float(model.dense[0], calibration[:10])
    with pytest.raises(ValueError, match=r"layers\[1\] must take layers\[0\]'s"):
        QuantizedMLP((qnet.layers[0], qnet.layers[2]))


def test_calibrator_is_replaceable(model, calibration):
    """Any function of the activations -> (r_min, r_max): a clipping one gives
    smaller scales (chapter 08 builds on this)."""
    seen = []

    def clip_half(x):
        seen.append(x.shape)
        lo, hi = minmax(x)
        return lo / 2, hi / 2

    plain = QuantizedMLP.from_float(model, calibration[:500])
    clipped = QuantizedMLP.from_float(model, calibration[:500], calibrator=clip_half)
    assert seen == [(500, 300), (500, 100), (500, 10)]
    for a, b in zip(plain.layers, clipped.layers, strict=True):
        assert np.isclose(b.y_scale, a.y_scale / 2, rtol=1e-6)


# ---------------------------------------------- the int16 accumulator (demo)


def test_int16_accumulators_wrap_modulo_2_to_16(qnet, test_set):
    """The first layer's sums in 16 bits: 32 bits give layer.accumulate back;
    wrapped, each is the int32 sum modulo 2**16 (modular arithmetic, computed
    here without qlib); saturated, it is the exact sum wherever no partial
    sum leaves int16 (the partial sums from a plain cumulative sum)."""
    layer = qnet.layers[0]
    q = qnet.quantize_input(test_set[0][:8])
    acc = layer.accumulate(q).astype(np.int64)
    np.testing.assert_array_equal(accumulate_narrow(layer, q, bits=32), acc)
    wrapped = accumulate_narrow(layer, q)
    np.testing.assert_array_equal(wrapped, (acc + 2**15) % 2**16 - 2**15)
    outside = (acc < -(2**15)) | (acc >= 2**15)
    assert outside.mean() > 0.05  # many of them: 784 products up to 255 * 127
    assert np.array_equal(wrapped != acc, outside)
    terms = np.concatenate(
        [np.broadcast_to(layer.bias[:, None], (8, 300, 1)),
         q.astype(np.int64)[:, None, :] * layer.weight.astype(np.int64)],
        axis=-1,
    )  # fmt: skip
    partial = np.cumsum(terms, axis=-1)
    safe = np.all((partial >= -(2**15)) & (partial < 2**15), axis=-1)
    saturated = accumulate_narrow(layer, q, overflow="saturate")
    np.testing.assert_array_equal(saturated[safe], acc[safe])
    assert np.all(np.abs(saturated) <= 2**15) and not safe.all()
    with pytest.raises(ValueError, match="overflow must be 'wrap' or 'saturate'"):
        accumulate_narrow(layer, q, overflow="error")
    with pytest.raises(ValueError, match=r"q_x must have shape \(\.\.\., 784\)"):
        accumulate_narrow(layer, q[:, :10])

"""The claims of notebooks/07_linear_quantization.ipynb about the whole
network, computed through qlib.quantnet on the 10,000 MNIST test images.

The target (the chapter's issue): int8 post-training quantization of weights
and activations of the course's LeNet-300-100 within 0.2 points of its fp32
test error (1.51 %), per tensor and per channel.  Calibration: min-max over
calibration_images() (5000 training images, seed 0), so every number here is
deterministic and pinned as measured; each test says why the measured
number holds, or what bounds it.
"""

from __future__ import annotations

import numpy as np
import pytest

from qlib import nn
from qlib.data import load_mnist
from qlib.intinfer import accumulate_narrow
from qlib.linear import dequantize_linear
from qlib.quantnet import QuantizedMLP, calibration_images

FP32_ERROR = 0.0151  # the committed model's recipe, re-measured below
TARGET = 0.002  # 0.2 percentage points


@pytest.fixture(scope="module")
def model() -> nn.MLP:
    return nn.load_lenet()


@pytest.fixture(scope="module")
def test_set(mnist_folder) -> tuple[np.ndarray, np.ndarray]:
    return load_mnist("test")


@pytest.fixture(scope="module")
def fp32_predictions(model, test_set) -> np.ndarray:
    return model.predict(nn.preprocess(test_set[0]))


@pytest.fixture(scope="module")
def nets(model, mnist_folder) -> dict[str, QuantizedMLP]:
    calibration = calibration_images()
    return {
        g: QuantizedMLP.from_float(model, calibration, per_channel=g == "per_channel")
        for g in ("per_tensor", "per_channel")
    }


@pytest.fixture(scope="module")
def runs(nets, test_set) -> dict[str, dict]:
    """Each network's logit codes, integer and simulated, and its layer by
    layer comparisons, computed once."""
    images = test_set[0]
    out = {}
    for g, qnet in nets.items():
        out[g] = {
            "logits": qnet.forward(images),
            "simulated": qnet.simulate(images),
            "layers": qnet.compare_layers(images),
            "chained": qnet.compare_layers(images, chained=True),
        }
    return out


GRANULARITIES = ["per_tensor", "per_channel"]


def test_fp32_test_error_is_1_51_percent(model, test_set, fp32_predictions):
    assert model.recipe["test_error"] == FP32_ERROR
    assert np.mean(fp32_predictions != test_set[1]) == FP32_ERROR


# measured: 154 wrong of 10,000 both ways (fp32: 151)
@pytest.mark.parametrize(
    ("granularity", "wrong"), [("per_tensor", 154), ("per_channel", 154)]
)
def test_int8_ptq_is_within_0_2_points_of_fp32(
    granularity, wrong, nets, runs, test_set
):
    """The chapter's target: 8-bit weights and activations, integers only
    from the uint8 pixels to the logit codes, within 0.2 points of fp32."""
    labels = test_set[1]
    error = np.mean(runs[granularity]["logits"].argmax(axis=1) != labels)
    assert abs(error - FP32_ERROR) <= TARGET, (granularity, error)
    assert round(error * 10000) == wrong
    # error_rate is the same count, batch by batch
    assert nets[granularity].error_rate(test_set[0], labels) == error


@pytest.mark.parametrize(
    ("granularity", "same"), [("per_tensor", 9995), ("per_channel", 9991)]
)
def test_int8_predicts_the_fp32_class_on_all_but_a_few_images(
    granularity, same, runs, fp32_predictions
):
    predictions = runs[granularity]["logits"].argmax(axis=1)
    assert np.sum(predictions == fp32_predictions) == same


@pytest.mark.parametrize("granularity", GRANULARITIES)
def test_integer_network_predicts_as_its_float_simulation(granularity, runs):
    """End to end, the logit codes differ by at most one step and the class
    never changes on the test set: a one-step difference only moves an
    argmax where the top two codes are within a step."""
    logits, simulated = runs[granularity]["logits"], runs[granularity]["simulated"]
    assert np.abs(logits.astype(int) - simulated).max() == 1
    assert np.array_equal(logits.argmax(axis=1), simulated.argmax(axis=1))


@pytest.mark.parametrize("granularity", GRANULARITIES)
def test_fourteen_images_tie_on_their_top_two_logit_codes(granularity, nets, runs):
    """8-bit logits (S_y = 0.196 for the calibrated logit range [-16.3, 33.7])
    tie on the top two codes of 14 test images; argmax takes the first."""
    last = nets[granularity].layers[-1]
    assert round(float(last.y_scale), 3) == 0.196 and last.y_zero_point == 83
    top = np.sort(runs[granularity]["logits"].astype(int), axis=1)[:, -2:]
    assert np.sum(top[:, 0] == top[:, 1]) == 14


# the count of outputs where forward != simulate, fed the same codes
# (3,000,000, 1,000,000 and 100,000 outputs), and fed their own (chained)
ONE_LSB = {
    "per_tensor": ([410, 786, 103], [410, 1511, 680]),
    "per_channel": ([139, 464, 84], [139, 729, 408]),
}


@pytest.mark.parametrize("granularity", GRANULARITIES)
def test_integer_and_simulation_differ_by_one_lsb_on_a_few_outputs(
    granularity, nets, runs
):
    """Layer by layer, the integer path and its float simulation differ by
    exactly one step on a few outputs and never more: the double rounding
    goes the other way within 2**-(r+1) of a half-integer, about 2**-(r+1)
    of random accumulators, so at most 2**-r of the outputs (r = 8 to 13
    here; ReLU outputs clamped at Z never differ).
    Chained, the simulation's own one-step differences feed the next layer
    and the share grows, still one step at most."""
    same, chained = ONE_LSB[granularity]
    for rows, counts in ((runs[granularity]["layers"], same),
                         (runs[granularity]["chained"], chained)):  # fmt: skip
        assert [r.max_lsb for r in rows] == [1, 1, 1]
        assert [round(r.differ * r.outputs) for r in rows] == counts
    shifts = [-layer.shift for layer in nets[granularity].layers]
    assert min(map(min, shifts)) == 8 and max(map(max, shifts)) <= 13
    for row in runs[granularity]["layers"]:
        assert 0 < row.differ <= 2 * row.window  # 2 * 2**-(r+1) = 2**-r


def test_per_channel_weights_are_closer_to_fp32_in_every_layer(nets, model):
    """One scale per output row is at most the per-tensor scale, so each
    row's step (and its rounding error) is no larger: the weights' mean
    squared error is lower in every layer (measured: 0.14, 0.38 and 0.72 of
    per tensor)."""
    ratios = []
    for g_t, g_c, dense in zip(
        nets["per_tensor"].layers, nets["per_channel"].layers, model.dense, strict=True
    ):
        w_t = dequantize_linear(g_t.weight, g_t.weight_scale)
        w_c = dequantize_linear(g_c.weight, g_c.weight_scale, axis=0)
        assert np.all(g_c.weight_scale <= g_t.weight_scale)
        ratios.append(np.mean((w_c - dense.W) ** 2) / np.mean((w_t - dense.W) ** 2))
    assert [round(r, 2) for r in ratios] == [0.14, 0.38, 0.72]


def test_int32_holds_every_accumulator_int16_does_not(nets, test_set):
    """A product of a uint8 activation and an int8 weight code is at most
    255 * 127 = 32385: int16 holds one, and 784 of them reach 25.4 million,
    beyond int16 but within int32 (which holds 66,311 worst-case products).
    Measured on the first 100 test images, per tensor: 57.5 % of the first
    layer's sums end wrong in a 16-bit register."""
    qnet = nets["per_tensor"]
    assert 255 * 127 <= 2**15 - 1 < 2 * 255 * 127
    assert (2**31 - 1) // (255 * 127) == 66311
    for layer in qnet.layers:
        k = layer.weight.shape[1]
        assert k * 255 * 127 + np.abs(layer.bias.astype(np.int64)).max() < 2**31
    q = qnet.quantize_input(test_set[0][:100])
    first = qnet.layers[0]
    acc = first.accumulate(q).astype(np.int64)
    wrapped = accumulate_narrow(first, q, bits=16)
    assert round(np.mean(wrapped != acc), 3) == 0.575

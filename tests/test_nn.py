"""qlib.nn: gradients against central finite differences, the loss against an
independent log-sum-exp, the optimizers against their published update rules,
determinism, and the committed LeNet-300-100's test error (a claim of the
course, chapter 06) through qlib and through plain numpy matmuls."""

from __future__ import annotations

import math
from importlib import resources

import numpy as np
import pytest

from qlib import nn, optim
from qlib.data import load_mnist

# ----------------------------------------------------------------- helpers


def numeric_grad(f, a: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """Central differences (f(a + h e_i) - f(a - h e_i)) / 2h for every entry of
    ``a`` (float64), perturbing ``a`` in place and restoring it."""
    grad = np.zeros_like(a)
    for i in np.ndindex(a.shape):
        old = a[i]
        a[i] = old + h
        up = f()
        a[i] = old - h
        down = f()
        a[i] = old
        grad[i] = (up - down) / (2 * h)
    return grad


def as_float64(layer: nn.Dense) -> nn.Dense:
    layer.W = layer.W.astype(np.float64)
    layer.b = np.random.default_rng(5).standard_normal(layer.b.shape)
    return layer


def tiny_mlp() -> nn.MLP:
    rng = np.random.default_rng(1)
    layers = [
        as_float64(nn.Dense(5, 4, rng=rng)),
        nn.ReLU(),
        as_float64(nn.Dense(4, 3, rng=rng)),
        nn.ReLU(),
        as_float64(nn.Dense(3, 3, rng=rng, init="glorot")),
    ]
    return nn.MLP(layers)


# --------------------------------------------------------------- gradients


def test_dense_backward_matches_finite_differences():
    rng = np.random.default_rng(0)
    layer = as_float64(nn.Dense(4, 3, rng=rng))
    x = rng.standard_normal((6, 4))
    r = rng.standard_normal((6, 3))  # L = sum(r * y), so dL/dy = r

    def loss():
        return float(np.sum(r * layer.forward(x)))

    layer.forward(x)
    dx = layer.backward(r)
    np.testing.assert_allclose(layer.dW, numeric_grad(loss, layer.W), rtol=1e-7)
    np.testing.assert_allclose(layer.db, numeric_grad(loss, layer.b), rtol=1e-7)
    np.testing.assert_allclose(dx, numeric_grad(loss, x), rtol=1e-7)
    assert layer.backward(r, input_grad=False) is None


def test_relu_backward_matches_finite_differences():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 7))
    x[np.abs(x) < 1e-3] = 0.5  # keep away from the kink at 0
    r = rng.standard_normal((5, 7))
    relu = nn.ReLU()

    def loss():
        return float(np.sum(r * relu.forward(x)))

    relu.forward(x)
    np.testing.assert_allclose(relu.backward(r), numeric_grad(loss, x), atol=1e-9)
    np.testing.assert_array_equal(nn.relu(x), np.where(x > 0, x, 0))


def test_softmax_cross_entropy_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    z = 3 * rng.standard_normal((6, 4))
    y = rng.integers(0, 4, 6)
    _, grad = nn.softmax_cross_entropy(z, y)
    numeric = numeric_grad(lambda: nn.softmax_cross_entropy(z, y)[0], z)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-10)


def test_mlp_backward_matches_finite_differences():
    model = tiny_mlp()
    rng = np.random.default_rng(2)
    x = rng.standard_normal((8, 5))
    y = rng.integers(0, 3, 8)

    def loss():
        return nn.softmax_cross_entropy(model.forward(x), y)[0]

    _, grad = nn.softmax_cross_entropy(model.forward(x), y)
    dx = model.backward(grad, input_grad=True)
    analytic = [*model.gradients(), dx]
    numeric = [numeric_grad(loss, p) for p in [*model.parameters(), x]]
    for a, n in zip(analytic, numeric, strict=True):
        np.testing.assert_allclose(a, n, rtol=1e-5, atol=1e-9)
    assert model.backward(grad) is None  # training skips dL/dx


# -------------------------------------------------------------------- loss


def reference_cross_entropy(z: np.ndarray, y: np.ndarray) -> float:
    """mean(logsumexp(z) - z[y]) with numpy's own pairwise log-add-exp."""
    lse = np.logaddexp.reduce(z.astype(np.float64), axis=1)
    return float(np.mean(lse - z[np.arange(len(z)), y]))


def test_softmax_cross_entropy_matches_log_sum_exp():
    rng = np.random.default_rng(0)
    for scale in (0.1, 1.0, 30.0):
        z = scale * rng.standard_normal((50, 10))
        y = rng.integers(0, 10, 50)
        loss, grad = nn.softmax_cross_entropy(z, y)
        assert loss == pytest.approx(reference_cross_entropy(z, y), rel=1e-12)
        # the naive formula where it does not overflow
        p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
        assert loss == pytest.approx(-np.mean(np.log(p[np.arange(50), y])), rel=1e-9)
        np.testing.assert_allclose(grad.sum(axis=1), 0, atol=1e-15)


def test_softmax_cross_entropy_large_logits():
    z = np.array([[1000.0, 0.0], [1000.0, 0.0], [-1e4, 1e4]])
    loss, grad = nn.softmax_cross_entropy(z, [0, 1, 1])
    # rows: log(1 + e^-1000) = 0, 1000 + log(1 + e^-1000) = 1000, 0
    assert loss == pytest.approx(1000 / 3, rel=1e-15)
    np.testing.assert_allclose(grad, [[0, 0], [1 / 3, -1 / 3], [0, 0]], atol=1e-300)
    z32 = np.array([[80.0, -80.0, 0.0]], np.float32) * 10
    loss32, grad32 = nn.softmax_cross_entropy(z32, [1])
    assert loss32 == pytest.approx(1600, rel=1e-6)
    assert np.isfinite(grad32).all() and grad32.dtype == np.float32
    # shifting every logit by a constant changes nothing
    z = np.random.default_rng(0).standard_normal((4, 5))
    a, b = (
        nn.softmax_cross_entropy(z, [0, 1, 2, 3]),
        nn.softmax_cross_entropy(z + 500, [0, 1, 2, 3]),
    )
    assert a[0] == pytest.approx(b[0], rel=1e-12)
    np.testing.assert_allclose(np.exp(nn.log_softmax(z + 500)).sum(1), 1, rtol=1e-14)


# -------------------------------------------------------------- optimizers

A = np.array([[3.0, 0.5], [0.5, 1.0]])
C = np.array([1.0, -2.0])


def quadratic_grad(p: np.ndarray) -> np.ndarray:
    """Gradient of f(p) = (p - C)^T A (p - C) / 2."""
    return A @ (p - C)


def test_sgd_momentum_is_the_heavy_ball_of_sutskever_et_al():
    lr, mu = 0.1, 0.9
    p = np.zeros(2)
    opt = optim.SGD(lr, momentum=mu)
    q, v = np.zeros(2), np.zeros(2)  # Sutskever et al. 2013: v = mu v - lr g; p += v
    for _ in range(400):
        opt.step([p], [quadratic_grad(p)])
        v = mu * v - lr * quadratic_grad(q)
        q = q + v
        np.testing.assert_allclose(p, q, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(p, C, atol=1e-6)  # the minimum


def test_sgd_weight_decay_and_schedule_follow_pytorch_formula():
    lrs, mu, wd = [0.1, 0.05, 0.02], 0.8, 0.01
    p = np.array([2.0, 3.0])
    opt = optim.SGD(lrs[0], momentum=mu, weight_decay=wd)
    q, buf = p.copy(), np.zeros(2)
    for lr in lrs * 3:
        opt.lr = lr
        opt.step([p], [quadratic_grad(p)])
        d = quadratic_grad(q) + wd * q  # torch.optim.SGD, dampening 0, not Nesterov
        buf = mu * buf + d
        q = q - lr * buf
        np.testing.assert_allclose(p, q, rtol=1e-12)
    plain = np.array([1.0])
    optim.SGD(0.5).step([plain], [np.array([0.2])])
    assert plain[0] == pytest.approx(0.9)


def test_adam_follows_kingma_and_ba():
    lr, b1, b2, eps = 0.05, 0.9, 0.999, 1e-8
    p = np.zeros(2)
    opt = optim.Adam(lr, betas=(b1, b2), eps=eps)
    q, m, v = np.zeros(2), np.zeros(2), np.zeros(2)
    for t in range(1, 101):
        opt.step([p], [quadratic_grad(p)])
        g = quadratic_grad(q)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        q = q - lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
        np.testing.assert_allclose(p, q, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adam_is_the_formula_bit_for_bit(dtype):
    """Adam's in-place step is the formula written out, to the bit (float32
    rounds at every operation, so a reordering would show), with weight
    decay, over gradients spanning 8 decades."""
    rng = np.random.default_rng(3)
    lr, b1, b2, eps, wd = 0.03, 0.9, 0.999, 1e-8, 1e-3
    p = rng.standard_normal(500).astype(dtype)
    opt = optim.Adam(lr, betas=(b1, b2), eps=eps, weight_decay=wd)
    q, m, v = p.copy(), np.zeros_like(p), np.zeros_like(p)
    for t in range(1, 201):
        g = (rng.standard_normal(p.shape) * 10 ** rng.uniform(-6, 2)).astype(dtype)
        opt.step([p], [g])
        g = g + wd * q
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        q = q - lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
        np.testing.assert_array_equal(p, q)
    assert p.dtype == dtype


def test_optimizer_updates_in_place_and_keeps_float32():
    model = nn.lenet_300_100()
    W = model.dense[0].W
    x = np.random.default_rng(0).random((10, 784), np.float32)
    _, grad = nn.softmax_cross_entropy(model.forward(x), np.arange(10))
    model.backward(grad)
    for opt in (optim.SGD(0.1, momentum=0.9, weight_decay=1e-4), optim.Adam()):
        opt.step(model.parameters(), model.gradients())
    assert model.dense[0].W is W
    assert all(p.dtype == np.float32 for p in model.parameters())
    assert all(g.dtype == np.float32 for g in model.gradients())


# ---------------------------------------------------- training, determinism


@pytest.fixture(scope="module")
def mnist(mnist_folder):
    x_train, y_train = load_mnist("train")
    x_test, y_test = load_mnist("test")
    return nn.preprocess(x_train), y_train, nn.preprocess(x_test), y_test


def short_training(x, y, seed: int) -> nn.MLP:
    model = nn.lenet_300_100(seed=seed)
    opt = optim.SGD(0.1, momentum=0.9, weight_decay=1e-4)
    optim.train(model, x, y, optimizer=opt, epochs=2, batch_size=100, seed=seed)
    return model


def test_same_seed_same_weights(mnist, tmp_path):
    x, y = mnist[0][:2000], mnist[1][:2000]
    a, b, c = short_training(x, y, 0), short_training(x, y, 0), short_training(x, y, 1)
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        np.testing.assert_array_equal(p, q)
    assert not np.array_equal(a.dense[0].W, c.dense[0].W)
    # and the same model saves to the same bytes
    nn.save(a, tmp_path / "a.npz", {"seed": 0})
    nn.save(b, tmp_path / "b.npz", {"seed": 0})
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    loaded = nn.load(tmp_path / "a.npz")
    assert loaded.recipe == {"seed": 0}
    for p, q in zip(a.parameters(), loaded.parameters(), strict=True):
        np.testing.assert_array_equal(p, q)


def test_training_reduces_the_loss(mnist):
    x, y = mnist[0][:2000], mnist[1][:2000]
    model = nn.lenet_300_100()
    opt = optim.SGD(0.1, momentum=0.9)
    losses = optim.train(model, x, y, optimizer=opt, epochs=3, batch_size=50)
    assert losses[0] > losses[-1]
    assert nn.error_rate(model, x, y) < 0.05


# ------------------------------------------------------ the committed model


def test_load_lenet_shapes_and_dtypes():
    model = nn.load_lenet()
    shapes = [(layer.W.shape, layer.b.shape) for layer in model.dense]
    assert shapes == [((300, 784), (300,)), ((100, 300), (100,)), ((10, 100), (10,))]
    assert [type(layer).__name__ for layer in model.layers] == [
        "Dense",
        "ReLU",
        "Dense",
        "ReLU",
        "Dense",
    ]
    assert all(p.dtype == np.float32 for p in model.parameters())
    assert sum(p.size for p in model.parameters()) == 266_610
    logits = model.forward(np.zeros((3, 784), np.float32))
    assert logits.shape == (3, 10) and logits.dtype == np.float32
    for key in ("seed", "epochs", "lr", "train_error", "test_error"):
        assert key in model.recipe


def test_lenet_test_error_claim(mnist):
    """The course says: the fp32 LeNet-300-100 misclassifies at most 2.0 % of
    the 10,000 MNIST test images (Deep Compression reports 1.64 %)."""
    x_test, y_test = mnist[2], mnist[3]
    model = nn.load_lenet()
    error = nn.error_rate(model, x_test, y_test, batch_size=1000)
    print(f"LeNet-300-100 fp32 test error: {100 * error:.2f} %")
    assert error <= 0.020
    # the file's recipe records what the training script measured
    assert error == pytest.approx(model.recipe["test_error"], abs=3e-4)
    assert (model.predict(x_test, batch_size=333) != y_test).mean() == error


def test_lenet_test_error_with_plain_numpy(mnist):
    """The same error rate from the npz arrays alone, in float64, no qlib.nn."""
    images, labels = load_mnist("test")
    ref = resources.files("qlib") / "models" / "lenet_300_100.npz"
    with resources.as_file(ref) as path, np.load(path) as f:
        h = images.reshape(10000, 784).astype(np.float64) / 255
        h = np.maximum(h @ f["W1"].T.astype(np.float64) + f["b1"], 0)
        h = np.maximum(h @ f["W2"].T.astype(np.float64) + f["b2"], 0)
        logits = h @ f["W3"].T.astype(np.float64) + f["b3"]
    independent = float(np.mean(logits.argmax(axis=1) != labels))
    error = nn.error_rate(nn.load_lenet(), nn.preprocess(images), labels)
    print(
        f"plain numpy float64: {100 * independent:.2f} %; qlib.nn: {100 * error:.2f} %"
    )
    assert independent <= 0.020
    assert abs(independent - error) <= 2e-4  # at most 2 near-ties may flip


def test_forward_uses_replaced_weights():
    model = nn.load_lenet()
    x = np.random.default_rng(0).random((7, 784), np.float32)
    first = model.dense[0]
    # a chapter replaces W by a quantized copy (here: 16 levels, float64)
    step = np.abs(first.W).max() / 7
    first.W = np.round(first.W / step) * step
    h = np.maximum(x @ first.W.T + first.b, 0)
    h = np.maximum(h @ model.dense[1].W.T + model.dense[1].b, 0)
    expected = h @ model.dense[2].W.T + model.dense[2].b
    np.testing.assert_allclose(model.forward(x), expected, rtol=1e-10, atol=1e-10)
    assert len(np.unique(model.parameters()[0])) <= 15


# -------------------------------------------------------------- bad inputs


def test_bad_images_raise_value_error_naming_the_argument():
    model = nn.lenet_300_100()
    labels = np.zeros(4, np.uint8)
    raw = np.zeros((4, 28, 28), np.uint8)
    with pytest.raises(ValueError, match=r"x must be floating point.*preprocess"):
        model.forward(raw.reshape(4, 784))
    with pytest.raises(ValueError, match=r"images must have shape \(N, 784\)"):
        nn.error_rate(model, raw.astype(np.float32), labels)
    with pytest.raises(ValueError, match=r"images must be floating point.*uint8"):
        model.predict(raw)
    with pytest.raises(ValueError, match=r"x must have shape \(N, 784\)"):
        model.forward(np.zeros(784, np.float32))
    with pytest.raises(ValueError, match="images must be uint8"):
        nn.preprocess(raw.astype(np.float32))
    with pytest.raises(ValueError, match="images must be uint8"):
        nn.preprocess(np.zeros(784, np.uint8))


def test_bad_labels_and_arguments():
    model = nn.lenet_300_100()
    x = np.zeros((4, 784), np.float32)
    with pytest.raises(ValueError, match="labels must be 4 integer class labels"):
        nn.error_rate(model, x, np.zeros(3, np.int64))
    with pytest.raises(ValueError, match="labels must be 4 integer"):
        nn.error_rate(model, x, np.zeros(4))
    with pytest.raises(ValueError, match=r"labels must lie in 0\.\.9"):
        nn.error_rate(model, x, [0, 1, 2, 10])
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        nn.error_rate(model, x, [0, 1, 2, 3], batch_size=0)
    with pytest.raises(ValueError, match="logits must be floating point"):
        nn.softmax_cross_entropy(np.zeros(3), [0])
    with pytest.raises(ValueError, match="init must be 'he' or 'glorot'"):
        nn.Dense(3, 2, rng=np.random.default_rng(0), init="lecun")
    with pytest.raises(ValueError, match="out_features must be a positive integer"):
        nn.Dense(3, 0, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="epochs must be a positive integer"):
        optim.train(
            model, x, [0, 1, 2, 3], optimizer=optim.SGD(0.1), epochs=0, batch_size=2
        )
    layer = model.dense[1]
    layer.W = np.zeros((100, 299), np.float32)  # a replaced W of the wrong shape
    with pytest.raises(ValueError, match=r"x must have shape \(N, 299\)"):
        model.forward(x)
    with pytest.raises(RuntimeError, match="before forward"):
        nn.Dense(2, 2, rng=np.random.default_rng(0)).backward(np.zeros((1, 2)))


def test_error_rate_empty_and_exact():
    model = nn.load_lenet()
    assert nn.error_rate(model, np.zeros((0, 784), np.float32), np.zeros(0, int)) == 0.0
    x = np.zeros((3, 784), np.float32)
    predicted = int(model.predict(x)[0])
    wrong = (predicted + 1) % 10
    assert nn.error_rate(model, x, [predicted, wrong, predicted]) == pytest.approx(
        1 / 3
    )
    assert math.isclose(nn.error_rate(model, x, [wrong] * 3, batch_size=2), 1.0)


def test_progress_is_a_plain_line_and_quiet_by_default(capsys):
    x = np.random.default_rng(0).random((20, 784), np.float32)
    y = np.arange(20) % 10
    model = nn.lenet_300_100()
    optim.train(model, x, y, optimizer=optim.SGD(0.01), epochs=2, batch_size=10)
    nn.error_rate(model, x, y)
    assert capsys.readouterr() == ("", "")
    opt = optim.SGD(0.01)
    optim.train(model, x, y, optimizer=opt, epochs=2, batch_size=10, progress=True)
    nn.error_rate(model, x, y, batch_size=5, progress=True)
    out, err = capsys.readouterr()
    assert out.count("loss") == 2 and "epoch 2/2  lr 0.01" in out
    assert "\repoch 1/2:  50%" in err and "\repoch 2/2: 100%" in err
    assert "\rpredict:  25%" in err and err.endswith("\r")

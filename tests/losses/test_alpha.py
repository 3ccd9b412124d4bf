"""L1 alpha losses against NumPy: known-pixel masked mean and its scaling, whole image, unknown."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmatte.registry import LOSSES


def case(seed, b, h, w):
    rng = np.random.default_rng(seed)
    trimap = rng.choice(np.array([0.0, 0.5, 1.0], np.float32), size=(b, h, w, 1))
    alpha = rng.uniform(0, 1, (b, h, w, 1)).astype(np.float32)
    gt = rng.uniform(0, 1, (b, h, w, 1)).astype(np.float32)
    return alpha, {"trimap": trimap, "alpha": gt, "image": np.zeros((b, h, w, 3), np.float32)}


def np_known(alpha, trimap):
    k = trimap != 0.5
    return np.abs(alpha - trimap)[k].sum() / k.sum()


@pytest.mark.parametrize("shape", [(3, 5, 7), (2, 16, 24), (1, 33, 9)])
def test_known_is_pooled_masked_mean_at_any_size(shape):
    alpha, batch = case(0, *shape)
    loss, metrics = LOSSES.get("known_l1")({"alpha": alpha}, batch)
    np.testing.assert_allclose(loss, np_known(alpha, batch["trimap"]), rtol=1e-6)
    np.testing.assert_allclose(metrics["known_fraction"], np.mean(batch["trimap"] != 0.5))


def test_known_pools_over_batch_not_per_image():
    alpha = np.array([0.2, 0.2, 0.2, 0.9], np.float32).reshape(2, 1, 2, 1)
    trimap = np.array([0.0, 0.0, 0.5, 1.0], np.float32).reshape(2, 1, 2, 1)
    loss, _ = LOSSES.get("known_l1")({"alpha": alpha}, {"trimap": trimap})
    np.testing.assert_allclose(loss, (0.2 + 0.2 + 0.1) / 3, rtol=1e-6)  # per-image mean: 0.15


def test_known_is_zero_without_known_pixels_and_has_zero_gradient():
    alpha, batch = case(1, 2, 6, 5)
    batch["trimap"] = np.full_like(batch["trimap"], 0.5)
    fn = LOSSES.get("known_l1")
    for scale in ("paper", "code_512"):
        loss, grad = jax.value_and_grad(lambda a: fn({"alpha": a}, batch, scale=scale)[0])(alpha)
        assert float(loss) == 0.0
        np.testing.assert_array_equal(np.asarray(grad), 0.0)


def test_known_gradient_is_sign_over_known_count():
    alpha, batch = case(2, 2, 4, 6)
    grad = jax.grad(lambda a: LOSSES.get("known_l1")({"alpha": a}, batch)[0])(jnp.asarray(alpha))
    t = batch["trimap"]
    k = t != 0.5
    np.testing.assert_allclose(grad, np.where(k, np.sign(alpha - t), 0.0) / k.sum(), rtol=1e-6)


def code_formula(alpha, trimap, crop=512):
    """The released code: mean over B·H·W of |α·K − T·K|, times B·crop²/ΣK."""
    k = (trimap != 0.5).astype(np.float64)
    b = alpha.shape[0]
    return np.mean(np.abs(alpha * k - trimap * k)) * b * crop**2 / k.sum()


def test_known_scale_code_512_equals_paper_at_512():
    alpha, batch = case(3, 1, 512, 512)
    fn = LOSSES.get("known_l1")
    paper, _ = fn({"alpha": alpha}, batch)
    code, _ = fn({"alpha": alpha}, batch, scale="code_512")
    np.testing.assert_allclose(code, paper, rtol=1e-6)
    np.testing.assert_allclose(code, code_formula(alpha, batch["trimap"]), rtol=1e-5)


def test_known_scale_code_512_differs_at_other_sizes():
    alpha, batch = case(4, 2, 32, 48)
    fn = LOSSES.get("known_l1")
    paper, _ = fn({"alpha": alpha}, batch)
    code, _ = fn({"alpha": alpha}, batch, scale="code_512")
    np.testing.assert_allclose(code, code_formula(alpha, batch["trimap"]), rtol=1e-5)
    np.testing.assert_allclose(code, paper * 512**2 / (32 * 48), rtol=1e-6)
    np.testing.assert_allclose(paper, np_known(alpha, batch["trimap"]), rtol=1e-6)
    with pytest.raises(ValueError, match="scale"):
        fn({"alpha": alpha}, batch, scale="n_over_nk")


def test_known_accepts_bf16_prediction_and_returns_float32():
    alpha, batch = case(5, 2, 5, 5)
    a16 = jnp.asarray(alpha, jnp.bfloat16)
    loss, _ = LOSSES.get("known_l1")({"alpha": a16}, batch)
    assert loss.dtype == jnp.float32
    ref = np_known(np.asarray(a16.astype(jnp.float32)), batch["trimap"])
    np.testing.assert_allclose(loss, ref, rtol=1e-6)


def test_whole_image_l1():
    alpha, batch = case(6, 2, 7, 3)
    loss, _ = LOSSES.get("l1")({"alpha": alpha}, batch)
    np.testing.assert_allclose(loss, np.mean(np.abs(alpha - batch["alpha"])), rtol=1e-6)
    del batch["alpha"]
    with pytest.raises(KeyError, match="alpha"):
        LOSSES.get("l1")({"alpha": alpha}, batch)


def test_unknown_l1_gca_style():
    alpha, batch = case(7, 2, 6, 6)
    u = (batch["trimap"] == 0.5).astype(np.float64)
    ref = np.sum(np.abs(alpha - batch["alpha"]) * u) / (u.sum() + 1e-8)
    loss, _ = LOSSES.get("unknown_l1")({"alpha": alpha}, batch)
    np.testing.assert_allclose(loss, ref, rtol=1e-6)
    batch["trimap"] = np.zeros_like(batch["trimap"])
    loss, _ = LOSSES.get("unknown_l1")({"alpha": alpha}, batch)
    assert float(loss) == 0.0


def test_known_gradient_is_zero_at_exact_ties():
    """Torch's L1 backward has slope 0 where p == T; a plain jnp.abs would give +1 there."""
    alpha, batch = case(3, 2, 4, 6)
    t = np.asarray(batch["trimap"])
    tied = (t != 0.5) & (np.arange(t.size).reshape(t.shape) % 2 == 0)
    alpha = np.where(tied, t, alpha).astype(np.float32)
    grad = jax.grad(lambda a: LOSSES.get("known_l1")({"alpha": a}, batch)[0])(jnp.asarray(alpha))
    k = t != 0.5
    assert tied.any() and np.all(np.asarray(grad)[tied] == 0.0)
    np.testing.assert_allclose(grad, np.where(k, np.sign(alpha - t), 0.0) / k.sum(), rtol=1e-6)

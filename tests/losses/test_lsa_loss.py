"""LSA multi-scale Charbonnier loss against a naive NumPy loop version, gradients included."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmatte.losses import lsa as lsa_loss
from jaxmatte.registry import LOSSES

EPS2 = 1e-6


def _pool_naive(x):
    """2x2 average pooling, stride 2, floor, with explicit loops (float64)."""
    b, h, w = x.shape
    out = np.zeros((b, h // 2, w // 2))
    for n in range(b):
        for i in range(h // 2):
            for j in range(w // 2):
                out[n, i, j] = x[n, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2].sum() / 4.0
    return out


def _loss_naive(pred, target, unknown, levels=5):
    """spec lsa.md §4 literally: Σ_l 2^-l Σ √(d_l² + ε²) m_l / (Σ m_l + 1)."""
    d, m, total = pred - target, unknown, 0.0
    for level in range(levels):
        if level:
            d, m = _pool_naive(d), _pool_naive(m)
        total += 2.0**-level * (np.sqrt(d**2 + EPS2) * m).sum() / (m.sum() + 1.0)
    return total


def _case(seed=0, shape=(2, 37, 45)):
    rng = np.random.default_rng(seed)
    gt = rng.choice([0.0, 1.0, 0.3, 0.7], size=shape) * (rng.random(shape) < 0.9)
    pred = gt + rng.normal(scale=0.3, size=shape)  # overshoots below 0 and above 1
    trimap = rng.choice([0.0, 0.5, 1.0], size=shape + (1,), p=[0.3, 0.4, 0.3])
    return pred, gt, trimap


def _jax_loss(pred, gt, trimap, **kw):
    outputs = {"alpha_raw": jnp.asarray(pred, jnp.float32)[..., None]}
    batch = {"alpha": jnp.asarray(gt, jnp.float32)[..., None], "trimap": jnp.asarray(trimap)}
    return LOSSES.get("lsa_multiscale")(outputs, batch, **kw)[0]


def _grad_jax(pred, gt, trimap, **kw):
    return np.asarray(jax.grad(lambda p: _jax_loss(p, gt, trimap, **kw))(jnp.asarray(pred)))


def _fd_grad(pred, target, unknown, coords, h=1e-6):
    """Central differences of the naive float64 loss with the target held fixed."""
    out = []
    for c in coords:
        plus, minus = pred.copy(), pred.copy()
        plus[c] += h
        minus[c] -= h
        out.append(
            (_loss_naive(plus, target, unknown) - _loss_naive(minus, target, unknown)) / (2 * h)
        )
    return np.array(out)


def test_value_and_gradient_match_naive_numpy():
    pred, gt, trimap = _case()
    unknown = (trimap[..., 0] == 0.5).astype(np.float64)
    np.testing.assert_allclose(
        float(_jax_loss(pred, gt, trimap)), _loss_naive(pred, gt, unknown), rtol=1e-5
    )
    grad = _grad_jax(pred, gt, trimap)
    rng = np.random.default_rng(1)
    coords = [tuple(int(rng.integers(s)) for s in pred.shape) for _ in range(12)]
    coords += [(0, 36, 44), (1, 0, 0)]  # a floor-dropped tail pixel and a corner
    fd = _fd_grad(pred, gt, unknown, coords)
    np.testing.assert_allclose([grad[c] for c in coords], fd, rtol=2e-3, atol=1e-7)
    assert grad[0, 36, 44] == 0.0 or unknown[0, 36, 44] == 1.0  # the tail only counts at l = 0


def test_overshoot_forgiveness_stops_target_but_keeps_pooled_gradient():
    pred, gt, trimap = _case(seed=2)
    unknown = (trimap[..., 0] == 0.5).astype(np.float64)
    forgive = ((gt > 0.999) & (pred > 1.0)) | ((gt < 0.001) & (pred < 0.0))
    assert forgive[unknown > 0].any()
    target = np.where(forgive, pred, gt)  # stop_grad(p) there: held fixed in the differences
    loss = _jax_loss(pred, gt, trimap, overshoot_forgiveness=True)
    np.testing.assert_allclose(float(loss), _loss_naive(pred, target, unknown), rtol=1e-5)
    grad = _grad_jax(pred, gt, trimap, overshoot_forgiveness=True)
    coords = [tuple(int(i) for i in c) for c in np.argwhere(forgive & (unknown > 0))[:8]]
    fd = _fd_grad(pred, target, unknown, coords)
    np.testing.assert_allclose([grad[c] for c in coords], fd, rtol=2e-3, atol=1e-7)
    # Forgiven pixels still get gradient, through the pooled (l >= 1) terms only.
    assert np.abs([grad[c] for c in coords]).max() > 0


def test_level_zero_is_the_paper_formula_and_reads_alpha_raw():
    pred, gt, trimap = _case(seed=3)
    u = trimap[..., 0] == 0.5
    paper = np.sqrt((pred - gt)[u] ** 2 + EPS2).sum() / (u.sum() + 1.0)
    np.testing.assert_allclose(float(_jax_loss(pred, gt, trimap, levels=1)), paper, rtol=1e-5)
    # The loss trains the raw output: a clipped "alpha" next to it is ignored.
    outputs = {
        "alpha": jnp.clip(jnp.asarray(pred, jnp.float32), 0, 1)[..., None],
        "alpha_raw": jnp.asarray(pred, jnp.float32)[..., None],
    }
    batch = {"alpha": jnp.asarray(gt, jnp.float32)[..., None], "trimap": jnp.asarray(trimap)}
    loss, metrics = LOSSES.get("lsa_multiscale")(outputs, batch)
    np.testing.assert_allclose(float(loss), float(_jax_loss(pred, gt, trimap)), rtol=1e-6)
    assert sorted(metrics) == [f"lsa_l{i}" for i in range(5)]


def test_pooling_commutes_with_the_difference():
    pred, gt, _ = _case(seed=4, shape=(1, 16, 16))
    p, g = jnp.asarray(pred, jnp.float32), jnp.asarray(gt, jnp.float32)
    np.testing.assert_allclose(
        lsa_loss.avg_pool_2x2(p - g),
        lsa_loss.avg_pool_2x2(p) - lsa_loss.avg_pool_2x2(g),
        atol=1e-6,
    )


def test_missing_alpha_is_an_error():
    with pytest.raises(KeyError, match="alpha"):
        LOSSES.get("lsa_multiscale")(
            {"alpha_raw": jnp.zeros((1, 4, 4, 1))}, {"trimap": jnp.zeros((1, 4, 4, 1))}
        )

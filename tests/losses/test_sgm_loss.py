"""SGM losses: hard mining picks exactly the top p% of unknown-region errors; CE and totals."""

import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxmatte.losses.alpha import masked_l1
from jaxmatte.losses.sgm import hard_mining_l1, sgm_matting, sgm_trimap_ce
from jaxmatte.registry import LOSSES


def test_hard_mining_selects_exactly_the_top_half_of_the_region():
    # Image 0: 5 unknown pixels with errors 0.1..0.5 -> ceil(2.5) = 3 selected: 0.5, 0.4, 0.3.
    # Known pixels carry larger errors (0.9) and must never be picked.
    err0 = np.array([[0.1, 0.9, 0.3], [0.5, 0.9, 0.2], [0.4, 0.9, 0.9]], np.float32)
    m0 = np.array([[1, 0, 1], [1, 0, 1], [1, 0, 0]], np.float32)
    # Image 1: 4 unknown pixels -> 2 selected: 0.8, 0.7.
    err1 = np.array([[0.7, 0.0, 0.0], [0.05, 0.8, 0.0], [0.0, 0.0, 0.01]], np.float32)
    m1 = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 1]], np.float32)
    target = jnp.zeros((2, 3, 3))
    pred = jnp.asarray(np.stack([err0, err1]))
    loss, sel = hard_mining_l1(pred, target, jnp.asarray(np.stack([m0, m1])), 0.5)
    expect0 = np.array([[0, 0, 1], [1, 0, 0], [1, 0, 0]], np.float32)
    expect1 = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 0]], np.float32)
    np.testing.assert_array_equal(np.asarray(sel), np.stack([expect0, expect1]))
    np.testing.assert_allclose(float(loss), (0.5 + 0.4 + 0.3 + 0.8 + 0.7) / 5, rtol=1e-6)


def test_hard_mining_fractions_and_empty_region():
    rng = np.random.default_rng(0)
    pred = jnp.asarray(rng.uniform(size=(2, 8, 8)), jnp.float32)
    target = jnp.zeros((2, 8, 8))
    mask = jnp.asarray(rng.uniform(size=(2, 8, 8)) < 0.4, jnp.float32)
    full, _ = hard_mining_l1(pred, target, mask, 1.0)
    np.testing.assert_allclose(float(full), float(masked_l1(pred, target, mask)), rtol=1e-6)
    for p in (0.1, 0.5, 0.8):
        _, sel = hard_mining_l1(pred, target, mask, p)
        counts = np.asarray(mask).reshape(2, -1).sum(1)
        np.testing.assert_array_equal(np.asarray(sel).reshape(2, -1).sum(1), np.ceil(counts * p))
        assert np.all(np.asarray(sel) <= np.asarray(mask))
        for b in range(2):  # every selected error >= every unselected one in the region
            e, s, m = (np.asarray(x[b]) for x in (pred, sel, mask))
            assert e[(s == 1)].min() >= e[(s == 0) & (m == 1)].max(initial=-1)
    empty, _ = hard_mining_l1(pred, target, jnp.zeros_like(mask), 0.5)
    assert float(empty) == 0.0


def test_sgm_matting_is_coarse_plus_refined():
    rng = np.random.default_rng(1)
    shape = (2, 8, 8, 1)
    batch = {
        "alpha": jnp.asarray(rng.uniform(size=shape), jnp.float32),
        "trimap": jnp.asarray(rng.choice([0.0, 0.5, 1.0], size=shape), jnp.float32),
    }
    coarse = jnp.asarray(rng.uniform(size=shape), jnp.float32)
    refined = jnp.asarray(rng.uniform(-0.2, 1.2, size=shape), jnp.float32)
    assert LOSSES.get("sgm_matting") is sgm_matting
    total, m = sgm_matting({"coarse_alpha": coarse, "refined_alpha": refined}, batch)
    u = (batch["trimap"][..., 0] == 0.5).astype(jnp.float32)
    parts = []
    for pred in (coarse, refined):
        parts.append(
            masked_l1(pred[..., 0], batch["alpha"][..., 0], u)
            + hard_mining_l1(pred[..., 0], batch["alpha"][..., 0], u, 0.5)[0]
        )
    np.testing.assert_allclose(float(total), float(parts[0] + parts[1]), rtol=1e-6)
    np.testing.assert_allclose(float(m["l_coarse"]), float(parts[0]), rtol=1e-6)
    # Without L_hard the loss is the two unknown-region L1s; the NLM ablation has no refined term.
    nh, _ = sgm_matting({"coarse_alpha": coarse, "refined_alpha": refined}, batch, hard_weight=0)
    assert float(nh) < float(total)
    only, _ = sgm_matting({"coarse_alpha": coarse}, batch)
    np.testing.assert_allclose(float(only), float(parts[0]), rtol=1e-6)


def test_trimap_cross_entropy():
    trimap = jnp.asarray([0.0, 0.5, 1.0, 0.5]).reshape(1, 2, 2, 1)
    logits = jnp.asarray([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 3.0], [1.0, 0.0, 0.0]])
    loss, m = sgm_trimap_ce({"trimap_logits": logits.reshape(1, 2, 2, 3)}, {"trimap": trimap})
    logp = jax.nn.log_softmax(logits)
    expect = -(logp[0, 0] + logp[1, 1] + logp[2, 2] + logp[3, 1]) / 4
    np.testing.assert_allclose(float(loss), float(expect), rtol=1e-6)
    np.testing.assert_allclose(float(m["pixel_accuracy"]), 0.75)
    assert math.isfinite(float(loss))

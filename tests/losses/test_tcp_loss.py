"""TCP losses: Charbonnier alpha loss over U and background enhancement loss over R_bg."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmatte.losses import tcp as tcp_loss
from jaxmatte.registry import LOSSES

EPS = 1e-6


def _case():
    """Hand-made 1 x 2 x 4 batch: labels, GT alpha, prediction; U = trimap 0.5 pixels."""
    trimap = np.array([[[0.5, 0.5, 0.5, 0.0], [0.5, 1.0, 0.5, 0.5]]], np.float32)
    alpha = np.array([[[0.05, 0.09, 0.1, 0.0], [0.6, 1.0, 0.0, 0.95]]], np.float32)
    pred = np.array([[[0.25, -0.1, 0.4, 0.7], [0.5, 0.2, 0.3, 0.9]]], np.float32)
    batch = {"trimap": trimap[..., None], "alpha": alpha[..., None]}
    return batch, {"alpha_raw": jnp.asarray(pred[..., None])}, trimap, alpha, pred


def _charb(a, b):
    return np.sqrt((a - b) ** 2 + EPS**2)


def test_bg_loss_equals_its_formula_on_a_hand_made_case():
    batch, outputs, trimap, alpha, pred = _case()
    # R_bg = {alpha < 0.1} ∩ U: (0,0) 0.05 and (0,1) 0.09 and (1,2) 0.0; not (0,2) (alpha = 0.1,
    # not < θ), not (0,3) (alpha 0 but known), not (1,1).
    r_bg = [(0, 0), (0, 1), (1, 2)]
    expected = np.mean([_charb(alpha[0][p], pred[0][p]) for p in r_bg])
    loss, metrics = LOSSES.get("tcp_bg")(outputs, batch, theta=0.1, eps=EPS)
    np.testing.assert_allclose(loss, expected, rtol=1e-6)
    np.testing.assert_allclose(metrics["bg_fraction"], 3 / 8)
    # R_bg ⊆ U: moving a known BG pixel's prediction does not change the loss.
    outputs2 = {"alpha_raw": outputs["alpha_raw"].at[0, 0, 3, 0].set(-5.0)}
    np.testing.assert_allclose(LOSSES.get("tcp_bg")(outputs2, batch)[0], loss, rtol=1e-6)
    # A larger θ takes in the 0.1 pixel.
    r_bg2 = r_bg + [(0, 2)]
    expected2 = np.mean([_charb(alpha[0][p], pred[0][p]) for p in r_bg2])
    np.testing.assert_allclose(LOSSES.get("tcp_bg")(outputs, batch, theta=0.5)[0], expected2, 1e-6)


def test_alpha_loss_equals_its_formula_over_the_unknown_region():
    batch, outputs, trimap, alpha, pred = _case()
    u = trimap == 0.5
    expected = _charb(alpha[u], pred[u]).mean()
    loss, metrics = LOSSES.get("tcp_alpha")(outputs, batch, eps=EPS)
    np.testing.assert_allclose(loss, expected, rtol=1e-6)
    np.testing.assert_allclose(metrics["unknown_fraction"], u.mean())
    # Without "alpha_raw" the loss reads "alpha".
    np.testing.assert_allclose(
        LOSSES.get("tcp_alpha")({"alpha": outputs["alpha_raw"]}, batch)[0], loss
    )


def test_union_region_adds_the_tcp_trimap_unknown_pixels():
    batch, outputs, trimap, alpha, pred = _case()
    tcp_tri = trimap.copy()
    tcp_tri[0, 0, 3] = 0.5  # a BG pixel of the SP trimap is unknown in the TCP trimap
    batch = dict(batch, trimap_tcp=tcp_tri[..., None])
    u = (trimap == 0.5) | (tcp_tri == 0.5)
    expected = _charb(alpha[u], pred[u]).mean()
    np.testing.assert_allclose(
        tcp_loss.tcp_alpha(outputs, batch, region="union")[0], expected, 1e-6
    )
    sem = tcp_loss.tcp_alpha(outputs, batch, region="sem")[0]
    np.testing.assert_allclose(sem, _charb(alpha[trimap == 0.5], pred[trimap == 0.5]).mean(), 1e-6)
    with pytest.raises(ValueError, match="region"):
        tcp_loss.tcp_alpha(outputs, batch, region="tcp")


def test_perfect_prediction_gives_eps_and_empty_regions_are_finite():
    batch, _, _, alpha, _ = _case()
    perfect = {"alpha_raw": jnp.asarray(alpha[..., None])}
    for name in ("tcp_alpha", "tcp_bg"):
        np.testing.assert_allclose(LOSSES.get(name)(perfect, batch, eps=EPS)[0], EPS, rtol=1e-4)
    # Every pixel known: both terms are exactly 0 and their gradients finite.
    known = dict(batch, trimap=jnp.ones_like(batch["trimap"]))
    for name in ("tcp_alpha", "tcp_bg"):
        f = lambda p: LOSSES.get(name)({"alpha_raw": p}, known)[0]  # noqa: E731
        assert float(f(perfect["alpha_raw"])) == 0.0
        assert np.isfinite(np.asarray(jax.grad(f)(perfect["alpha_raw"]))).all()


def test_losses_compute_in_float32_from_bfloat16_outputs():
    batch, outputs, *_ = _case()
    bf = {"alpha_raw": outputs["alpha_raw"].astype(jnp.bfloat16)}
    for name in ("tcp_alpha", "tcp_bg"):
        loss, _ = LOSSES.get(name)(bf, batch)
        assert loss.dtype == jnp.float32

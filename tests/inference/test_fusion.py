"""SGM joint inference: soft/hard fusion formulas, test-time soft segmentation, the procedure."""

import cv2
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmatte.inference.fusion import (
    INFERENCE,
    erode,
    gaussian_blur,
    hard_fusion,
    make_sgm_joint,
    soft_fusion,
    soft_segmentation,
    softseg_trimap,
)
from jaxmatte.models.sgm_matting import SGMMatting
from jaxmatte.models.sgm_trimap import SGMTrimap
from tests.models.test_sgm import TINY_NET_M, TINY_NET_T, quick_init

# Hand-made (B_p, U_p, F_p) for 4 pixels and Net-M alphas.
P = np.array(
    [[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.2, 0.5, 0.3], [1.0, 0.0, 0.0]], np.float32
).reshape(1, 2, 2, 3)
A = np.array([0.4, 0.9, 0.25, 0.8], np.float32).reshape(1, 2, 2, 1)


def test_soft_fusion_formula():
    out = np.asarray(soft_fusion(jnp.asarray(P), jnp.asarray(A)))
    # α = F + U·α_p: 0.1 + 0.2·0.4, 0.6 + 0.3·0.9, 0.3 + 0.5·0.25, 0 + 0.
    np.testing.assert_allclose(out.ravel(), [0.18, 0.87, 0.425, 0.0], rtol=1e-6)
    # The SHM form (1 − U)·F/(F + B) + U·α equals it when P sums to 1.
    b, u, f = P[..., :1], P[..., 1:2], P[..., 2:]
    np.testing.assert_allclose(out, (1 - u) * f / (f + b) + u * A, rtol=1e-6)
    # U ≡ 1 returns α_p; one-hot P makes soft fusion equal hard fusion.
    ones_u = np.zeros_like(P)
    ones_u[..., 1] = 1
    np.testing.assert_allclose(np.asarray(soft_fusion(jnp.asarray(ones_u), jnp.asarray(A))), A)
    onehot = np.eye(3, dtype=np.float32)[P.argmax(-1)]
    np.testing.assert_allclose(
        np.asarray(soft_fusion(jnp.asarray(onehot), jnp.asarray(A))),
        np.asarray(hard_fusion(jnp.asarray(onehot), jnp.asarray(A))),
    )


def test_hard_fusion_formula():
    out = np.asarray(hard_fusion(jnp.asarray(P), jnp.asarray(A)))
    # argmax: BG -> 0, FG -> 1, U -> α_p, BG -> 0.
    np.testing.assert_allclose(out.ravel(), [0.0, 1.0, 0.25, 0.0])


def test_soft_segmentation_matches_opencv():
    rng = np.random.default_rng(0)
    mask = (rng.uniform(size=(1, 40, 48)) < 0.5).astype(np.uint8)
    mask = cv2.dilate(mask[0], np.ones((9, 9), np.uint8))[None]
    for k in (5, 20):
        ref = cv2.erode(mask[0], cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
        np.testing.assert_array_equal(np.asarray(erode(jnp.asarray(mask), k))[0], ref)
    x = rng.uniform(size=(1, 40, 48)).astype(np.float32)
    ref = cv2.GaussianBlur(x[0], (21, 21), 0)
    np.testing.assert_allclose(np.asarray(gaussian_blur(jnp.asarray(x), 21))[0], ref, atol=1e-5)
    seg = np.asarray(soft_segmentation(jnp.asarray(mask[..., None], jnp.float32), 20, 31))
    fg = cv2.GaussianBlur(
        cv2.erode(mask[0], cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (20, 20))).astype(
            np.float32
        ),
        (31, 31),
        0,
    )
    np.testing.assert_allclose(seg[0, ..., 1], fg, atol=1e-5)
    np.testing.assert_allclose(seg.sum(-1), 1.0, atol=1e-6)


def test_sgm_joint_procedure_pads_fuses_and_crops():
    assert INFERENCE.get("sgm_joint") is make_sgm_joint
    net_m, net_t = SGMMatting(**TINY_NET_M), SGMTrimap(**TINY_NET_T)
    h, w = 40, 36  # not multiples of 32: both nets run on the reflect-padded 64 x 64
    rng = np.random.default_rng(0)
    batch = {
        "image": jnp.asarray(rng.normal(size=(1, h, w, 3)), jnp.float32),
        "mask": jnp.asarray(rng.uniform(size=(1, h, w, 1)) < 0.5, jnp.float32),
    }
    pad = {"image": jnp.zeros((1, 64, 64, 3))}
    variables = {
        "main": quick_init(net_m, {**pad, "trimap": jnp.zeros((1, 64, 64, 1))}),
        "trimap_net": quick_init(net_t, {**pad, "softseg": jnp.zeros((1, 64, 64, 2))}),
    }
    models = {"main": net_m, "trimap_net": net_t}
    fn = jax.jit(make_sgm_joint(models, fusion="soft"))
    out = fn(variables, batch)
    assert out["alpha"].shape == (1, h, w, 1) and out["trimap_probs"].shape == (1, h, w, 3)
    assert float(out["alpha"].min()) >= 0.0 and float(out["alpha"].max()) <= 1.0
    probs, a_p = out["trimap_probs"], out["net_m_alpha"]
    np.testing.assert_allclose(np.asarray(probs.sum(-1)), 1.0, atol=1e-5)
    np.testing.assert_allclose(
        np.asarray(out["alpha"]), np.clip(soft_fusion(probs, a_p), 0, 1), atol=1e-6
    )
    with pytest.raises(ValueError, match="fusion"):
        make_sgm_joint(models, fusion="average")


def test_softseg_trimap_thresholds_and_the_no_net_t_baseline():
    """trimap_source="softseg": Net-T is never called; Net-M gets the trimap read off the soft
    segmentation (fg where P_fg >= 1 - band, bg where P_fg <= band) and fusion forces it."""
    p_fg = np.array([0.0, 0.05, 0.06, 0.5, 0.94, 0.95, 1.0], np.float32).reshape(1, 1, 7)
    seg = jnp.asarray(np.stack([1 - p_fg, p_fg], -1))
    got = np.asarray(softseg_trimap(seg, 0.05))
    np.testing.assert_array_equal(got.argmax(-1)[0, 0], [0, 0, 1, 1, 1, 2, 2])
    np.testing.assert_array_equal(got.sum(-1), 1.0)

    net_m = SGMMatting(**TINY_NET_M)
    rng = np.random.default_rng(1)
    h, w = 40, 36
    soft = rng.uniform(size=(1, h, w, 1)).astype(np.float32)
    batch = {
        "image": jnp.asarray(rng.normal(size=(1, h, w, 3)), jnp.float32),
        "softseg": jnp.asarray(np.concatenate([1 - soft, soft], -1)),
    }
    pad = {"image": jnp.zeros((1, 64, 64, 3)), "trimap": jnp.zeros((1, 64, 64, 1))}
    variables = {"main": quick_init(net_m, pad)}  # no Net-T variables: it must not be needed
    models = {"main": net_m, "trimap_net": None}
    out = jax.jit(make_sgm_joint(models, trimap_source="softseg"))(variables, batch)
    cls = np.asarray(out["trimap_probs"]).argmax(-1)[..., None]
    want_cls = np.where(soft >= 0.95, 2, np.where(soft > 0.05, 1, 0))
    np.testing.assert_array_equal(cls, want_cls)
    alpha, a_p = np.asarray(out["alpha"]), np.asarray(out["net_m_alpha"])
    np.testing.assert_array_equal(alpha[cls == 2], 1.0)
    np.testing.assert_array_equal(alpha[cls == 0], 0.0)
    np.testing.assert_allclose(alpha[cls == 1], np.clip(a_p[cls == 1], 0, 1), atol=1e-6)
    with pytest.raises(ValueError, match="trimap_source"):
        make_sgm_joint(models, trimap_source="gt")

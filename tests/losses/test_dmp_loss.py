"""DMP loss (alpha + composition over the unknown region) against a hand computation."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmatte import conventions as cv
from jaxmatte.losses import dmp
from jaxmatte.registry import LOSSES

STD = cv.IMAGENET_STD
MEAN = cv.IMAGENET_MEAN


def _norm(rgb):
    return [(v - m) / s for v, m, s in zip(rgb, MEAN, STD)]


# One 1 x 2 x 2 image: pixels 0, 1 unknown, 2 background, 3 foreground.
PRED = [0.25, 0.9, 0.3, 0.6]
GT = [0.5, 0.7, 0.0, 1.0]
TRI = [0.5, 0.5, 0.0, 1.0]
FG = [[0.9, 0.1, 0.2], [0.4, 0.8, 0.3], [0.5, 0.5, 0.5], [0.7, 0.2, 0.9]]
BG = [[0.1, 0.6, 0.3], [0.2, 0.2, 0.7], [0.3, 0.1, 0.0], [0.6, 0.6, 0.1]]


def _batch():
    image = [[a * f + (1 - a) * b for f, b in zip(fp, bp)] for a, fp, bp in zip(GT, FG, BG)]
    arr = lambda v, c: jnp.asarray(np.asarray(v, np.float32).reshape(1, 2, 2, c))
    batch = {
        "alpha": arr(GT, 1),
        "trimap": arr(TRI, 1),
        "fg": arr([_norm(p) for p in FG], 3),
        "bg": arr([_norm(p) for p in BG], 3),
        "image": arr([_norm(p) for p in image], 3),
    }
    return {"alpha": arr(PRED, 1)}, batch


def _hand(comp_norm="rgb_norm", eps=1e-12):
    la, lc = [], []
    for i in (0, 1):  # the unknown pixels
        a = PRED[i]
        la.append(math.sqrt((a - GT[i]) ** 2 + eps))
        d = [
            a * f + (1 - a) * b - (g * f + (1 - g) * b)
            for f, b, g in zip(FG[i], BG[i], [GT[i]] * 3)
        ]
        if comp_norm == "rgb_norm":
            lc.append(math.sqrt(sum(x * x for x in d) + eps))
        else:
            lc.append(sum(math.sqrt(x * x + eps) for x in d) / 3)
    return sum(la) / 2, sum(lc) / 2


@pytest.mark.parametrize("comp_norm", ["rgb_norm", "per_channel"])
def test_loss_equals_hand_computation(comp_norm):
    outputs, batch = _batch()
    la, lc = _hand(comp_norm)
    total, metrics = dmp.dmp(outputs, batch, comp_norm=comp_norm)
    np.testing.assert_allclose(metrics["alpha"], la, rtol=1e-6)
    np.testing.assert_allclose(metrics["composition"], lc, rtol=1e-5)
    np.testing.assert_allclose(total, 0.5 * (la + lc), rtol=1e-5)
    np.testing.assert_allclose(metrics["unknown_fraction"], 0.5)
    assert total.dtype == jnp.float32
    np.testing.assert_allclose(dmp.dmp_alpha(outputs, batch)[0], la, rtol=1e-6)
    np.testing.assert_allclose(
        dmp.dmp_composition(outputs, batch, comp_norm=comp_norm)[0], lc, rtol=1e-5
    )


def test_region_all_averages_every_pixel():
    outputs, batch = _batch()
    want = sum(math.sqrt((p - g) ** 2 + 1e-12) for p, g in zip(PRED, GT)) / 4
    np.testing.assert_allclose(dmp.dmp_alpha(outputs, batch, region="all")[0], want, rtol=1e-6)


def test_empty_unknown_region_is_zero_with_finite_gradient():
    outputs, batch = _batch()
    batch["trimap"] = jnp.asarray(np.asarray([0, 1, 0, 1], np.float32).reshape(1, 2, 2, 1))
    value, grad = jax.value_and_grad(lambda a: dmp.dmp({"alpha": a}, batch)[0])(outputs["alpha"])
    assert float(value) == 0.0 and np.all(np.isfinite(grad))


def test_registered_and_missing_keys():
    for name in ("dmp", "dmp_alpha", "dmp_composition"):
        assert LOSSES.get(name) is getattr(dmp, name)
    outputs, batch = _batch()
    del batch["fg"]
    with pytest.raises(KeyError, match="keep_fg_bg"):
        dmp.dmp(outputs, batch)
    with pytest.raises(ValueError, match="comp_norm"):
        dmp.dmp(*_batch(), comp_norm="l1")

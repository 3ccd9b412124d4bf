"""The jitted batched SAD / MSE / Grad agree with the host implementation (float32, 1e-5)."""

import numpy as np
import pytest

from jaxmatte.metrics import dim, dim_jax


def _batch():
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[:32, :36]
    out = []
    for b in range(3):
        gt = np.clip((10 - np.hypot(yy - 16, xx - 18 + b)) * 60 + 128, 0, 255).astype(np.uint8)
        pred = np.clip(gt + rng.normal(0, 10 * (b + 1), gt.shape), 0, 255).astype(np.uint8)
        tri = np.where(gt == 255, 255, np.where(gt == 0, 0, 128)).astype(np.uint8)
        tri[: 4 + b] = 128  # unknown pixels on the border: replicate padding matters
        out.append((pred, gt, tri))
    return [np.stack(x) for x in zip(*out)]


@pytest.mark.parametrize("name", ["sad", "mse", "grad"])
def test_batched_matches_host(name):
    pred, gt, tri = _batch()
    got = np.asarray(getattr(dim_jax, name)(pred, gt, tri))
    want = [getattr(dim, name)(p, g, t) for p, g, t in zip(pred, gt, tri)]
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_constant_image_has_no_gradient():
    gt = np.full((1, 16, 16), 200, np.uint8)
    tri = np.full(gt.shape, 128, np.uint8)
    assert float(dim_jax.grad(gt, gt, tri)[0]) == 0.0

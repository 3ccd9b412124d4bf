"""PyTorch-exact resize (jaxmatte.models.resize) against torch.nn.functional.interpolate."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmatte.models.resize import resize_2d, resize_axis
from tests.conftest import torch_or_skip


def _torch_resize(x, size, mode):
    torch = torch_or_skip()
    t = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    out = torch.nn.functional.interpolate(t, size=size, mode=mode, align_corners=False)
    return out.numpy().transpose(0, 2, 3, 1)


@pytest.mark.parametrize("size", [(6, 4), (32, 20), (14, 14), (3, 29), (28, 7)])
def test_bicubic_matches_torch(size):
    x = np.random.default_rng(1).normal(size=(2, 14, 14, 5))
    want = _torch_resize(x, size, "bicubic")  # float64 in torch
    with jax.enable_x64(True):  # same formula exactly, up to float64 rounding
        got64 = np.asarray(resize_2d(jnp.asarray(x), size, "cubic"))
    np.testing.assert_allclose(got64, want, atol=1e-12, rtol=0)
    got = jax.jit(lambda a: resize_2d(a, size, "cubic"))(jnp.asarray(x, jnp.float32))
    np.testing.assert_allclose(np.asarray(got), want, atol=1e-5, rtol=0)


@pytest.mark.parametrize("size", [(16, 12), (5, 3), (9, 31)])
def test_bilinear_matches_torch(size):
    x = np.random.default_rng(2).normal(size=(1, 8, 6, 3))
    want = _torch_resize(x, size, "bilinear")
    with jax.enable_x64(True):
        got64 = np.asarray(resize_2d(jnp.asarray(x), size, "linear"))
    np.testing.assert_allclose(got64, want, atol=1e-12, rtol=0)
    got = resize_2d(jnp.asarray(x, jnp.float32), size, "linear")
    np.testing.assert_allclose(np.asarray(got), want, atol=1e-5, rtol=0)


def test_linear_1d_matches_torch_and_keeps_axis_order():
    torch = torch_or_skip()
    table = np.random.default_rng(3).normal(size=(27, 4)).astype(np.float32)
    for out_len in (11, 7, 63, 27):
        t = torch.from_numpy(table.T[None].copy())
        want = torch.nn.functional.interpolate(t, size=out_len, mode="linear")[0].numpy().T
        got = resize_axis(jnp.asarray(table), out_len, axis=0, method="linear")
        np.testing.assert_allclose(np.asarray(got), want, atol=1e-5, rtol=0)


def test_resize_without_torch_properties():
    # A constant stays constant (weights sum to one) and a same-size resize is the identity.
    x = jnp.full((1, 5, 7, 2), 3.0)
    for method in ("linear", "cubic"):
        np.testing.assert_allclose(np.asarray(resize_2d(x, (13, 4), method)), 3.0, rtol=1e-6)
    y = jnp.asarray(np.random.default_rng(4).normal(size=(1, 5, 7, 2)), jnp.float32)
    np.testing.assert_array_equal(np.asarray(resize_2d(y, (5, 7), "cubic")), np.asarray(y))
    with pytest.raises(ValueError, match="resize method"):
        resize_2d(y, (3, 3), "nearest")

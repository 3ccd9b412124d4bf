"""VGG16-BN encoder and SegNet max-pool indices / max-unpool, against numpy loop references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmatte.models import vgg
from jaxmatte.registry import BACKBONES


def _numpy_pool(x, k=2):
    """Loop reference: floor-mode k x k max-pool; first maximum (row-major) on ties."""
    b, h, w, c = x.shape
    pooled = np.zeros((b, h // k, w // k, c), x.dtype)
    index = np.zeros(pooled.shape, np.int64)
    for n, i, j, ch in np.ndindex(*pooled.shape):
        window = [x[n, i * k + di, j * k + dj, ch] for di in range(k) for dj in range(k)]
        best = 0
        for t, v in enumerate(window):
            if v > window[best]:
                best = t
        pooled[n, i, j, ch], index[n, i, j, ch] = window[best], best
    return pooled, index


def _numpy_unpool(x, index, out_hw, k=2):
    b, h, w, c = x.shape
    out = np.zeros((b,) + tuple(out_hw) + (c,), x.dtype)
    for n, i, j, ch in np.ndindex(*x.shape):
        di, dj = divmod(int(index[n, i, j, ch]), k)
        out[n, i * k + di, j * k + dj, ch] = x[n, i, j, ch]
    return out


@pytest.mark.parametrize("ties", [False, True])
def test_max_pool_with_indices_and_unpool(ties):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 7, 9, 3)).astype(np.float32)  # odd: remainder dropped
    if ties:
        x = rng.integers(0, 2, x.shape).astype(np.float32)
    pooled, index = vgg.max_pool_with_indices(jnp.asarray(x))
    want_pooled, want_index = _numpy_pool(x)
    np.testing.assert_array_equal(pooled, want_pooled)
    np.testing.assert_array_equal(index, want_index)
    values = rng.standard_normal(want_pooled.shape).astype(np.float32)
    got = vgg.max_unpool(jnp.asarray(values), index, output_hw=(7, 9))
    np.testing.assert_array_equal(got, _numpy_unpool(values, want_index, (7, 9)))


def test_max_pool_gradient_goes_to_the_argmax_only():
    x = jax.random.normal(jax.random.key(0), (1, 4, 6, 2))
    weights = jax.random.normal(jax.random.key(1), (1, 2, 3, 2))
    grad = jax.grad(lambda v: jnp.sum(vgg.max_pool_with_indices(v)[0] * weights))(x)
    _, index = vgg.max_pool_with_indices(x)
    np.testing.assert_allclose(grad, vgg.max_unpool(weights, index), atol=0)


def test_unpool_rejects_a_wrong_output_size():
    with pytest.raises(ValueError):
        vgg.max_unpool(
            jnp.zeros((1, 2, 2, 1)), jnp.zeros((1, 2, 2, 1), jnp.int32), output_hw=(7, 4)
        )


def test_vgg16_bn_outputs():
    model = BACKBONES.get("vgg16_bn")(in_channels=4)
    x = jnp.zeros((1, 64, 96, 4))
    out = jax.eval_shape(lambda: model.init_with_output(jax.random.key(0), x)[0])
    for i, width in enumerate(vgg.VGG16_WIDTHS, start=1):
        s = 2 ** (i - 1)
        assert out[f"block{i}"].shape == (1, 64 // s, 96 // s, width)
        assert out[f"pool{i}"].shape == (1, 32 // s, 48 // s, width)
        assert out[f"indices{i}"].shape == out[f"pool{i}"].shape
        assert out[f"indices{i}"].dtype == jnp.int32
    with pytest.raises(ValueError, match="4 input channels"):
        model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))

"""canonical_conv: lax's values and gradients; the input gradient stays HWIO inside a loop."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from jaxmatte.models import canonical_conv as cc

DN = ("NHWC", "HWIO", "NHWC")


def _vjp(conv, x, k, strides, padding):
    f = lambda x, k: conv(x, k, strides, padding, dimension_numbers=DN)
    y, vjp = jax.vjp(f, x, k)
    g = jnp.asarray(np.random.default_rng(1).normal(size=y.shape), y.dtype)
    return y, *vjp(g)


@pytest.mark.parametrize(
    "kernel, strides, padding",
    [
        ((3, 3), (1, 1), ((1, 1), (1, 1))),
        ((1, 1), (1, 1), "SAME"),
        ((3, 3), (1, 1), "VALID"),
        ((3, 2), (1, 1), ((2, 0), (0, 1))),  # asymmetric
        ((5, 3), (1, 1), ((1, 3), (-1, 2))),  # a negative pad crops
        ((3, 3), (2, 2), ((1, 1), (1, 1))),  # strided: handed to lax unchanged
    ],
)
def test_values_and_gradients_match_lax(kernel, strides, padding):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(2, 7, 6, 3)), jnp.float32)
    k = jnp.asarray(rng.normal(size=kernel + (3, 4)), jnp.float32)
    ours = _vjp(cc.conv_general_dilated, x, k, strides, padding)
    ref = _vjp(lax.conv_general_dilated, x, k, strides, padding)
    for name, a, b in zip(("value", "d/dx", "d/dkernel"), ours, ref):
        assert a.shape == b.shape, name
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5, err_msg=name)
    jaxpr = jax.make_jaxpr(
        lambda x, k: cc.conv_general_dilated(x, k, strides, padding, None, None, DN)
    )
    assert ("custom_vjp" in str(jaxpr(x, k))) == (strides == (1, 1))


def _loop_hlo(conv) -> str:
    """Compiled HLO of 2 gradient steps on x through `conv` inside `lax.fori_loop`."""
    x, k = jnp.ones((1, 8, 8, 3)), jnp.ones((3, 3, 3, 5))

    def refine(x, k):
        cost = lambda x: jnp.sum(conv(x, k, (1, 1), ((1, 1), (1, 1)), dimension_numbers=DN) ** 2)
        return lax.fori_loop(0, 2, lambda _, x: x - 0.1 * jax.grad(cost)(x), x)

    return jax.jit(refine).lower(x, k).compile().as_text()


def test_input_gradient_inside_a_loop_is_an_hwio_convolution():
    # XLA:CPU leaves autodiff's HWOI ("01oi") kernel in loop bodies: the reason for the module.
    assert "_01oi->" in _loop_hlo(lax.conv_general_dilated)
    assert "_01oi->" not in _loop_hlo(cc.conv_general_dilated)

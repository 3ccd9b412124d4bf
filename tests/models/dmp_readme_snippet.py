import jax
import jax.numpy as jnp

from jaxmatte.losses.dmp import dmp as dmp_loss
from jaxmatte.models.dmp import DMP

# A tiny DMP (SegNet + low-level features -> affinities -> (L + C)^-1 C alpha*), 32 x 32 input.
model = DMP(ts=4, tl=4, low_widths=(4, 4), blocks=(1, 1, 1, 1, 1), widths=(4, 4, 8, 8, 8))
key = jax.random.PRNGKey(0)
trimap = jnp.full((1, 32, 32, 1), 0.5).at[:, :, :8].set(0.0).at[:, :, -8:].set(1.0)
alpha = jnp.broadcast_to(jnp.linspace(0.0, 1.0, 32)[:, None], (1, 32, 32, 1)).swapaxes(1, 2)
fg, bg = jnp.ones((1, 32, 32, 3)), -jnp.ones((1, 32, 32, 3))  # ImageNet-normalised colours
batch = {
    "image": alpha * fg + (1 - alpha) * bg,
    "trimap": trimap,
    "alpha": alpha,
    "fg": fg,
    "bg": bg,
}
variables = model.init(key, batch)


def loss(affinity_params):
    """The paper's loss as a function of the affinity module's 1x1 conv (kernel and bias)."""
    params = {**variables["params"], "affinity": affinity_params}
    out = model.apply({**variables, "params": params}, batch, train=False)
    return dmp_loss(out, batch)[0]


value, grads = jax.jit(jax.value_and_grad(loss))(variables["params"]["affinity"])
print(float(value), grads["kernel"].shape)  # d loss / d theta: [1, 1, 2 (T_s + T_l), 1]

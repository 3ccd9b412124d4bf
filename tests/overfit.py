"""Shared loop of the models' overfit tests: a jitted optimiser step on one batch, looped."""

from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax


def fit(
    loss_fn: Callable[[Any, Any], tuple[jax.Array, Any]],
    params: Any,
    stats: Any,
    tx: optax.GradientTransformation,
    steps: int,
) -> tuple[Any, Any, jax.Array]:
    """``steps`` updates of ``params`` (and BN ``stats``) by ``tx`` on ``loss_fn(params, stats)
    -> (loss, new_stats)``.

    One jitted step, looped on the host: inside a ``lax.fori_loop`` body XLA:CPU runs the
    convolution gradients as generic loop nests (see ``jaxmatte/models/canonical_conv.py``), which
    made a 300-step loop of chunked ``fori_loop``s several times slower than this.

    Returns:
      (params, stats, the last step's loss).
    """

    @jax.jit
    def step(params, stats, opt):
        (loss, stats), g = jax.value_and_grad(loss_fn, has_aux=True)(params, stats)
        updates, opt = tx.update(g, opt, params)
        return optax.apply_updates(params, updates), stats, opt, loss

    opt, loss = tx.init(params), jnp.float32(0)
    for _ in range(steps):
        params, stats, opt, loss = step(params, stats, opt)
    return params, stats, loss

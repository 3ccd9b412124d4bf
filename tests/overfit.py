"""Shared loop of the models' overfit tests: jitted chunks of optimiser steps on one batch."""

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
    chunk: int = 50,
) -> tuple[Any, Any, jax.Array]:
    """``steps`` updates of ``params`` (and BN ``stats``) by ``tx`` on ``loss_fn(params, stats)
    -> (loss, new_stats)``, ``chunk`` steps per jitted ``fori_loop``.

    Returns:
      (params, stats, the last step's loss).
    """

    @jax.jit
    def run(params, stats, opt):
        def body(_, carry):
            params, stats, opt, _ = carry
            (loss, stats), g = jax.value_and_grad(loss_fn, has_aux=True)(params, stats)
            updates, opt = tx.update(g, opt, params)
            return optax.apply_updates(params, updates), stats, opt, loss

        return jax.lax.fori_loop(0, chunk, body, (params, stats, opt, jnp.float32(0)))

    if steps % chunk:
        raise ValueError(f"steps {steps} is not a multiple of chunk {chunk}")
    opt, loss = tx.init(params), jnp.float32(0)
    for _ in range(steps // chunk):
        params, stats, opt, loss = run(params, stats, opt)
    return params, stats, loss

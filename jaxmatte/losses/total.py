"""Weighted sum of registered losses chosen by name in the config."""

from __future__ import annotations

from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp

from jaxmatte.registry import LOSSES

LossFn = Callable[
    [Mapping[str, jax.Array], Mapping[str, jax.Array]],
    tuple[jax.Array, dict[str, jax.Array]],
]


def _as_dict(x: Any) -> dict[str, Any]:
    """A plain dict from a dict, Mapping or ml_collections ConfigDict (None -> {})."""
    if x is None:
        return {}
    if hasattr(x, "to_dict"):
        return x.to_dict()
    return dict(x)


def make_loss_fn(
    losses: Mapping[str, float], loss_kwargs: Mapping[str, Mapping[str, Any]] | None = None
) -> LossFn:
    """Builds `fn(outputs, batch) -> (total, metrics)` with total = Σ weight · LOSSES[name].

    Every loss is `LOSSES[name](outputs, batch, **kwargs) -> (scalar, metrics)`; outputs are cast
    to float32 first, so losses are float32 under a bf16 model.

    Args:
      losses: name -> weight, e.g. {"known_l1": 1.0, "ddc": 10.0}.
      loss_kwargs: name -> keyword arguments of that loss, e.g. {"ddc": {"window": 11}}.

    Returns:
      A function whose metrics hold "loss/<name>" (unweighted term), "<name>/<metric>" for each
      metric a loss reports, and "loss/total".
    """
    weights = {name: float(w) for name, w in _as_dict(losses).items()}
    kwargs = {name: _as_dict(kw) for name, kw in _as_dict(loss_kwargs).items()}
    if not weights:
        raise ValueError("config.losses is empty: name at least one loss")
    stray = sorted(set(kwargs) - set(weights))
    if stray:
        raise ValueError(f"config.loss_kwargs names losses that are not in config.losses: {stray}")
    fns = {name: LOSSES.get(name) for name in weights}

    def loss_fn(
        outputs: Mapping[str, jax.Array], batch: Mapping[str, jax.Array]
    ) -> tuple[jax.Array, dict[str, jax.Array]]:
        outputs = {k: jnp.asarray(v, jnp.float32) for k, v in outputs.items()}
        total = jnp.zeros((), jnp.float32)
        metrics: dict[str, jax.Array] = {}
        for name, weight in weights.items():
            value, extra = fns[name](outputs, batch, **kwargs.get(name, {}))
            value = jnp.asarray(value, jnp.float32)
            metrics[f"loss/{name}"] = value
            metrics.update({f"{name}/{k}": v for k, v in extra.items()})
            total = total + weight * value
        metrics["loss/total"] = total
        return total, metrics

    return loss_fn

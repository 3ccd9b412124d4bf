"""A toy paper registered by the contract tests: 6-channel one-hot input, two trimap keys, two
output heads, dropout, and its own cross-entropy loss, all through the public registries."""

from __future__ import annotations

from typing import Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from jaxmatte.losses.alpha import _flat
from jaxmatte.models import encode
from jaxmatte.registry import LOSSES, MODELS


@MODELS.register("toy_two_heads")
class ToyTwoHeads(nn.Module):
    """RGB + one-hot "trimap" (6 channels) and the scalar "trimap_tcp" -> trimap logits + alpha.

    Like TCP, "trimap_tcp" is read when the batch has it (training) and the user trimap stands in
    for it otherwise (inference).
    """

    width: int = 8
    dropout: float = 0.0
    dtype: str = "float32"
    inputs = ("image", "trimap")
    optional_inputs = ("trimap_tcp",)

    @nn.compact
    def __call__(self, batch: Mapping[str, jax.Array], train: bool = False) -> dict:
        dt = jnp.dtype(self.dtype)
        x = jnp.concatenate([batch["image"], encode.trimap_onehot(batch["trimap"])], -1)
        assert x.shape[-1] == 6
        x = jnp.concatenate([x, batch.get("trimap_tcp", batch["trimap"])], -1).astype(dt)
        x = nn.relu(nn.Conv(self.width, (3, 3), dtype=dt, name="conv1")(x))
        x = nn.Dropout(self.dropout, deterministic=not train)(x)
        x = nn.relu(nn.Conv(self.width, (3, 3), dtype=dt, name="conv2")(x))
        logits = nn.Conv(3, (1, 1), dtype=dt, name="trimap_head")(x).astype(jnp.float32)
        alpha = nn.sigmoid(nn.Conv(1, (1, 1), dtype=dt, name="alpha_head")(x)).astype(jnp.float32)
        return {"trimap_logits": logits, "alpha": alpha}


@LOSSES.register("toy_trimap_ce")
def toy_trimap_ce(outputs, batch):
    """Cross-entropy of the trimap head against the batch trimap's classes."""
    labels = jnp.argmax(encode.trimap_onehot(batch["trimap"]), -1)
    ce = optax.softmax_cross_entropy_with_integer_labels(outputs["trimap_logits"], labels)
    return jnp.mean(ce), {}


@LOSSES.register("toy_alpha_l1")
def toy_alpha_l1(outputs, batch):
    return jnp.mean(jnp.abs(_flat(outputs["alpha"]) - _flat(batch["alpha"]))), {}

"""Spectral norm as GCA-Matting uses it: one power iteration in training, none at evaluation."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

EPS = 1e-12  # GCA `l2normalize`: v / (‖v‖ + eps)


def _l2_normalize(x: jax.Array) -> jax.Array:
    return x / (jnp.linalg.norm(x) + EPS)


class SpectralNorm(nn.Module):
    """Wraps a layer so that each of its weight matrices W is used as W / σ.

    Same variables as `flax.linen.SpectralNorm` ("batch_stats": `<layer>/kernel/u` [1, n] and
    `<layer>/kernel/sigma` []), W seen as the matrix [-1, n] (n = the kernel's last axis). The
    difference is evaluation: flax runs a power iteration there too, GCA's `SpectralNorm`
    (`networks/ops.py`, `_noupdate_u_v`) and tcp.md §12 run none. Here:

    - `update_stats=True` (training): v = ‖W u‖⁻¹ W u, u = ‖Wᵀv‖⁻¹ Wᵀv, σ = vᵀ W u, stored;
    - `update_stats=False` (evaluation): σ is the stored value, nothing is computed;
    - initialisation runs the training step, so a fresh model is normalised at evaluation too.

    GCA's u is this u (its matrix is Wᵀ here); its eval σ = uᵀ W_gca v, which a converter
    stores as `sigma`.
    """

    layer_instance: nn.Module

    @nn.compact
    def __call__(self, *args, update_stats: bool, **kwargs):
        def normalize(path, w):
            if w.ndim < 2:
                return w
            name = "/".join([self.layer_instance.name] + [k.key for k in path[1:]])
            mat = jnp.reshape(w, (-1, w.shape[-1]))
            init = self.is_initializing()
            u_var = self.variable(
                "batch_stats",
                f"{name}/u",
                lambda: _l2_normalize(jax.random.normal(self.make_rng("params"), (1, w.shape[-1]))),
            )
            sigma_var = self.variable("batch_stats", f"{name}/sigma", jnp.ones, (), jnp.float32)
            if update_stats or init:
                u = jax.lax.stop_gradient(u_var.value)
                m = jax.lax.stop_gradient(mat)
                v = _l2_normalize(u @ m.T)
                u = _l2_normalize(v @ m)
                sigma = (v @ mat @ u.T)[0, 0]
                u_var.value = u
                sigma_var.value = jax.lax.stop_gradient(sigma)
            else:
                sigma = sigma_var.value
            return (w / jnp.where(sigma != 0, sigma, 1)).astype(w.dtype)

        return nn.map_variables(
            lambda layer: layer(*args, **kwargs),
            trans_in_fn=lambda vs: jax.tree_util.tree_map_with_path(normalize, vs),
            init=self.is_initializing(),
            mutable=True,
        )(self.layer_instance)

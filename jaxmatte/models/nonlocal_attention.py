"""SGM's light-weight non-local attention (LNA): strided keys, region-scaled softmax, NHWC."""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxmatte import conventions

# Eq. (5): the region scale is clipped to [0.1, 10].
SCALE_MIN = 0.1
SCALE_MAX = 10.0
REGION_SCALE_ON = ("query", "key")
# The parameter count of one LNA block at 128 channels (paper Table 6).
PAPER_PARAMS = 25_984

xavier = nn.initializers.xavier_uniform()


def region_scale(unknown: jax.Array, eps: float = 1.0) -> jax.Array:
    """w(U, K, x, y) of Eq. (4)-(5) at every position of a grid.

    Args:
      unknown: [B, h, w] float mask of the unknown region U (1) vs the known region K (0).
      eps: added to |U| and |K| so that empty regions stay finite (sgm.md §3.4).

    Returns:
      float32 [B, h, w]: clip(sqrt(|U|/|K|)) on U and clip(sqrt(|K|/|U|)) on K, per image,
      clip(x) = min(max(x, 0.1), 10).

    References: Zhou et al., SGM (arXiv 2103.17020), Eq. (4)-(5); sgm.md §3.4.
    """
    u = unknown.astype(jnp.float32)
    n_u = jnp.sum(u, axis=(1, 2), keepdims=True)
    n_k = u.shape[1] * u.shape[2] - n_u
    ratio = (n_u + eps) / (n_k + eps)
    w = jnp.where(u > 0.5, jnp.sqrt(ratio), jnp.sqrt(1.0 / ratio))
    return jnp.clip(w, SCALE_MIN, SCALE_MAX)


def attention_weights(
    q: jax.Array,
    k: jax.Array,
    temperature: float,
    query_scale: jax.Array | None = None,
    key_scale: jax.Array | None = None,
) -> jax.Array:
    """softmax_j(w · q_iᵀ k_j / temperature) over the keys of each query (Eq. 3), in float32.

    Args:
      q: [B, N, C] queries. k: [B, M, C] keys.
      temperature: sqrt(d / 2) with d the channels of the attended feature (8 at d = 128).
      query_scale: optional [B, N] region scale per query (the paper's Eq. 4 indexing).
      key_scale: optional [B, M] region scale per key (GCA's code).

    Returns:
      float32 [B, N, M], every row summing to 1.
    """
    logits = jnp.einsum("bnc,bmc->bnm", q, k).astype(jnp.float32) / temperature
    if query_scale is not None:
        logits = logits * query_scale[:, :, None]
    if key_scale is not None:
        logits = logits * key_scale[:, None, :]
    return jax.nn.softmax(logits, axis=-1)


def nearest_downsample(x: jax.Array, factor: int) -> jax.Array:
    """PyTorch `interpolate(scale_factor=1/factor, mode="nearest")`: every factor-th pixel."""
    return x[:, ::factor, ::factor]


class LightweightNonLocal(nn.Module):
    """Light-weight non-local block: A' = A + W(softmax(w · θ(I) φ'(θ(I))ᵀ / √(d/2)) g'(A)).

    Children: "theta" (1x1 conv, bias), "phi" (depthwise r x r conv, stride r, bias, on θ(I)),
    "w_conv" (1x1, no bias) and "w_bn" (BatchNorm, γ initialised to `w_bn_init`); g' is an r x r
    average pool of A (parameter-free). With 128 channels it holds 25,984 parameters (Table 6).
    Sows "attention" [B, hw, hw/r²] and "region_scale" [B, h, w] into "intermediates".

    Attributes:
      key_dim: channels of θ / φ' (64 = d/2; our reconstruction, sgm.md §3.4).
      ratio: key/value downscale r (4, paper).
      region_scale_on: "query" (paper Eq. 4, default) or "key" (GCA's code).
      dropout_rate: dropout on the attention weights (0.1, our choice; p not given).
      w_bn_init: initial γ of W's BatchNorm (1e-3, GCA).
      phi_depthwise: φ' as a depthwise strided conv (True, our reconstruction) or a dense one.
      region_eps: added to |U| and |K| (1, sgm.md §3.4).
      bn_mode: see `layers.batch_norm`.
      dtype: compute dtype; the softmax runs in float32.

    References: Zhou et al., SGM, Eq. (2)-(5), Table 6; sgm.md §3.4.
    """

    key_dim: int = 64
    ratio: int = 4
    region_scale_on: str = "query"
    dropout_rate: float = 0.1
    w_bn_init: float = 1e-3
    phi_depthwise: bool = True
    region_eps: float = 1.0
    dtype: str = "float32"

    @nn.compact
    def __call__(
        self, alpha_feat: jax.Array, image_feat: jax.Array, unknown: jax.Array, train: bool = False
    ) -> jax.Array:
        """Args:
            alpha_feat: A [B, h, w, C] (C = 128 in the paper); h, w multiples of `ratio`.
            image_feat: I [B, h, w, C_i].
            unknown: [B, h, w] unknown-region mask at this resolution (1 = U).
            train: dropout and batch statistics.

        Returns:
            A' [B, h, w, C] in the compute dtype.
        """
        if self.region_scale_on not in REGION_SCALE_ON:
            raise ValueError(f"region_scale_on {self.region_scale_on!r} not in {REGION_SCALE_ON}")
        b, h, w, c = alpha_feat.shape
        r = self.ratio
        if h % r or w % r:
            raise ValueError(f"LNA needs h, w divisible by ratio {r}, got {(h, w)}")
        dt = jnp.dtype(self.dtype)
        q = nn.Conv(self.key_dim, (1, 1), kernel_init=xavier, dtype=dt, name="theta")(image_feat)
        k = nn.Conv(
            self.key_dim,
            (r, r),
            strides=(r, r),
            padding="VALID",
            feature_group_count=self.key_dim if self.phi_depthwise else 1,
            kernel_init=xavier,
            dtype=dt,
            name="phi",
        )(q)
        v = nn.avg_pool(alpha_feat, (r, r), strides=(r, r))
        scale = region_scale(unknown, self.region_eps)
        self.sow("intermediates", "region_scale", scale)
        n, m = h * w, (h // r) * (w // r)
        temperature = math.sqrt(c / 2)
        if self.region_scale_on == "query":
            att = attention_weights(
                q.reshape(b, n, -1),
                k.reshape(b, m, -1),
                temperature,
                query_scale=scale.reshape(b, n),
            )
        else:
            key_scale = nearest_downsample(scale, r).reshape(b, m)
            att = attention_weights(
                q.reshape(b, n, -1), k.reshape(b, m, -1), temperature, key_scale=key_scale
            )
        self.sow("intermediates", "attention", att)
        att = nn.Dropout(self.dropout_rate, deterministic=not train, name="dropout")(att)
        y = jnp.einsum("bnm,bmc->bnc", att.astype(dt), v.reshape(b, m, c).astype(dt))
        y = nn.Conv(c, (1, 1), use_bias=False, kernel_init=xavier, dtype=dt, name="w_conv")(
            y.reshape(b, h, w, c)
        )
        y = nn.BatchNorm(
            use_running_average=not train,
            momentum=conventions.BN_MOMENTUM,
            epsilon=conventions.BN_EPSILON,
            scale_init=nn.initializers.constant(self.w_bn_init),
            dtype=dt,
            name="w_bn",
        )(y)
        return alpha_feat.astype(dt) + y

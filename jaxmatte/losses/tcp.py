"""TCP losses (Liu et al., WACV 2021): Charbonnier alpha loss and background enhancement loss."""

from __future__ import annotations

from typing import Mapping

import jax
import jax.numpy as jnp

from jaxmatte.losses.alpha import _flat, known_mask
from jaxmatte.registry import LOSSES

REGIONS = ("sem", "union")
DEN_EPS = 1e-8  # GCA's guard: an empty region gives a zero term


def unknown_region(batch: Mapping[str, jax.Array], region: str = "sem") -> jax.Array:
    """float32 [B, H, W] mask of the loss region U (tcp.md §2 `loss.region`).

    Args:
      batch: "trimap" [B, H, W, 1] labels {0, 0.5, 1}; "trimap_tcp" for region "union".
      region: "sem" = U of the semantic-path trimap (default); "union" = U of "trimap" ∪ U of
        "trimap_tcp" (= "sem" when the batch has no "trimap_tcp", e.g. the +TCP ablation).
    """
    if region not in REGIONS:
        raise ValueError(f"tcp loss region must be one of {REGIONS}, got {region!r}")
    u = 1.0 - known_mask(batch["trimap"])
    if region == "union" and "trimap_tcp" in batch:
        u = jnp.maximum(u, 1.0 - known_mask(batch["trimap_tcp"]))
    return u


def charbonnier_mean(pred: jax.Array, gt: jax.Array, mask: jax.Array, eps: float) -> jax.Array:
    """Σ mask·√((α − α̂)² + ε²) / (Σ mask + 1e-8), pooled over the batch (tcp.md §7).

    Args:
      pred, gt, mask: float32 [B, H, W]. eps: ε of the Charbonnier penalty.

    Returns:
      float32 scalar; 0 when the mask is empty.
    """
    err = jnp.sqrt(jnp.square(gt - pred) + eps * eps)
    return jnp.sum(mask * err) / (jnp.sum(mask) + DEN_EPS)


def _pred_and_gt(outputs, batch, key: str) -> tuple[jax.Array, jax.Array]:
    # The losses use α̂ = act(s + t) unclipped (tcp.md §6); "alpha" is the clipped matte.
    pred = outputs[key] if key in outputs else outputs["alpha"]
    if "alpha" not in batch:
        raise KeyError(f"tcp losses need batch['alpha'] (ground truth); got {sorted(batch)}")
    return _flat(pred), _flat(batch["alpha"])


@LOSSES.register("tcp_alpha")
def tcp_alpha(
    outputs: Mapping[str, jax.Array],
    batch: Mapping[str, jax.Array],
    *,
    eps: float = 1e-6,
    region: str = "sem",
    key: str = "alpha_raw",
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """L_α = (1/N_U) Σ_{p∈U} √((α_p − α̂_p)² + ε²) (paper Eq. (3); weight w₁ = 0.9 in the config).

    Args:
      outputs: `key` [B, H, W, 1] predicted α̂ (falls back to "alpha").
      batch: "alpha" [B, H, W, 1] ground truth, "trimap" (and "trimap_tcp" for "union").
      eps: Charbonnier ε (tcp.md §2 `loss.eps`, DIM's 1e-6).
      region: see `unknown_region` (tcp.md §2 `loss.region`).
      key: the output holding α̂.

    Returns:
      (float32 scalar, {"unknown_fraction"}).

    References: Liu et al., WACV 2021, Eq. (3); tcp.md §7.
    """
    pred, gt = _pred_and_gt(outputs, batch, key)
    u = unknown_region(batch, region)
    return charbonnier_mean(pred, gt, u, eps), {"unknown_fraction": jnp.mean(u)}


@LOSSES.register("tcp_bg")
def tcp_bg(
    outputs: Mapping[str, jax.Array],
    batch: Mapping[str, jax.Array],
    *,
    theta: float = 0.1,
    eps: float = 1e-6,
    region: str = "sem",
    key: str = "alpha_raw",
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Background enhancement loss L_bg over R_bg = {p ∈ U : α_p < θ} (paper Eq. (4); w₂ = 0.1).

    Args:
      outputs, batch, eps, region, key: as in `tcp_alpha`.
      theta: background threshold θ (0.1 in the paper).

    Returns:
      (float32 scalar, {"bg_fraction": |R_bg| / (B·H·W)}); the loss is 0 when R_bg is empty.

    References: Liu et al., WACV 2021, Eq. (4); tcp.md §7.
    """
    pred, gt = _pred_and_gt(outputs, batch, key)
    r_bg = unknown_region(batch, region) * (gt < theta).astype(jnp.float32)
    return charbonnier_mean(pred, gt, r_bg, eps), {"bg_fraction": jnp.mean(r_bg)}

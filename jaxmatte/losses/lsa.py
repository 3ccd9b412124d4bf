"""LSA's multi-scale Charbonnier alpha loss over the trimap's unknown region."""

from __future__ import annotations

from typing import Mapping

import jax
import jax.numpy as jnp

from jaxmatte.losses.alpha import _flat, known_mask
from jaxmatte.registry import LOSSES

# Overshoot-forgiveness thresholds on the ground truth (spec lsa.md §2, code).
_GT_ONE = 0.999
_GT_ZERO = 0.001


def avg_pool_2x2(x: jax.Array) -> jax.Array:
    """Average pooling, kernel 2, stride 2, floor mode, on [B, H, W] (odd tails dropped)."""
    b, h, w = x.shape
    x = x[:, : h // 2 * 2, : w // 2 * 2]
    return x.reshape(b, h // 2, 2, w // 2, 2).mean(axis=(2, 4))


def multiscale_charbonnier(
    pred: jax.Array,
    gt: jax.Array,
    unknown: jax.Array,
    *,
    levels: int = 5,
    eps2: float = 1e-6,
    denominator_offset: float = 1.0,
    overshoot_forgiveness: bool = False,
) -> tuple[jax.Array, list[jax.Array]]:
    """Σ_{l<levels} 2^−l · Σ √(d_l² + eps2)·m_l / (Σ m_l + offset), pooled over the batch.

    d_0 = p − α (or p − stop_grad(p) at forgiven overshoots), m_0 = 1[T = 0.5];
    d_{l+1} = avgpool₂(d_l), m_{l+1} = avgpool₂(m_l) (soft mask). As pooling is linear, d_l is
    the paper's P_l(α̂) − P_l(α).

    Args:
      pred: [B, H, W] float32 raw prediction (no clipping).
      gt: [B, H, W] ground-truth alpha in [0, 1].
      unknown: [B, H, W] float32 unknown mask of the training trimap.
      levels: number of scales (paper: l = 0..4).
      eps2: ε² inside the square root (code: 1e-6; the paper leaves ε unspecified).
      denominator_offset: added to Σ m_l (code: +1).
      overshoot_forgiveness: (code) the target becomes stop_grad(p) where α > 0.999 ∧ p > 1 or
        α < 0.001 ∧ p < 0; those pixels still get gradient through the pooled terms.

    Returns:
      (scalar loss, [L_0, ..., L_{levels−1}] unweighted per-level terms).

    References: paper Sec. 3 (loss); spec lsa.md §4 and §2.
    """
    target = gt
    if overshoot_forgiveness:
        forgive = ((gt > _GT_ONE) & (pred > 1.0)) | ((gt < _GT_ZERO) & (pred < 0.0))
        target = jax.lax.stop_gradient(jnp.where(forgive, pred, gt))
    d, m = pred - target, unknown
    total, terms = jnp.zeros((), jnp.float32), []
    for level in range(levels):
        if level:
            d, m = avg_pool_2x2(d), avg_pool_2x2(m)
        term = jnp.sum(jnp.sqrt(d * d + eps2) * m) / (jnp.sum(m) + denominator_offset)
        terms.append(term)
        total = total + 2.0**-level * term
    return total, terms


@LOSSES.register("lsa_multiscale")
def lsa_multiscale(
    outputs: Mapping[str, jax.Array],
    batch: Mapping[str, jax.Array],
    *,
    levels: int = 5,
    eps2: float = 1e-6,
    denominator_offset: float = 1.0,
    overshoot_forgiveness: bool = False,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """The LSA training loss on `outputs["alpha_raw"]` (else "alpha"); see multiscale_charbonnier.

    Args:
      outputs: "alpha_raw" [B, H, W, 1] (the unactivated prediction; LSA trains on it).
      batch: "alpha" [B, H, W, 1] ground truth in [0, 1], "trimap" labels {0, 0.5, 1}.
      levels, eps2, denominator_offset, overshoot_forgiveness: see multiscale_charbonnier.

    Returns:
      (float32 scalar, {"lsa_l0": ..., "lsa_l{levels-1}": unweighted per-scale terms}).

    References: spec lsa.md §4.
    """
    pred = _flat(outputs["alpha_raw"] if "alpha_raw" in outputs else outputs["alpha"])
    if "alpha" not in batch:
        raise KeyError(f"lsa_multiscale needs batch['alpha'] (ground truth); got {sorted(batch)}")
    gt = _flat(batch["alpha"])
    unknown = 1.0 - known_mask(batch["trimap"])
    loss, terms = multiscale_charbonnier(
        pred,
        gt,
        unknown,
        levels=levels,
        eps2=eps2,
        denominator_offset=denominator_offset,
        overshoot_forgiveness=overshoot_forgiveness,
    )
    return loss, {f"lsa_l{i}": t for i, t in enumerate(terms)}

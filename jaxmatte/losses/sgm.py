"""SGM losses: Net-T's 3-class cross-entropy; Net-M's L_coarse + L_refined with hard mining."""

from __future__ import annotations

import math
from typing import Mapping

import jax
import jax.numpy as jnp

from jaxmatte.losses.alpha import _flat, known_mask, masked_l1
from jaxmatte.models.encode import trimap_onehot
from jaxmatte.registry import LOSSES

REGIONS = ("unknown", "image")


def trimap_classes(trimap: jax.Array) -> jax.Array:
    """Label trimap [B, H, W, 1] in {0, 0.5, 1} -> int32 classes [B, H, W] (0 bg, 1 unk, 2 fg)."""
    return jnp.argmax(trimap_onehot(trimap.astype(jnp.float32)), axis=-1).astype(jnp.int32)


@LOSSES.register("sgm_trimap_ce")
def sgm_trimap_ce(
    outputs: Mapping[str, jax.Array], batch: Mapping[str, jax.Array]
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Net-T: per-pixel 3-class cross-entropy, mean over all pixels.

    Args:
      outputs: "trimap_logits" [B, H, W, 3] (bg, unknown, fg).
      batch: "trimap" [B, H, W, 1] labels {0, 0.5, 1}: the 15-px erosion target that the sgm_t
        recipe writes under this key.

    Returns:
      (float32 scalar, {"pixel_accuracy"}).

    References: Zhou et al., SGM (arXiv 2103.17020), Sec. 3.1; sgm.md §2.4.
    """
    logits = outputs["trimap_logits"].astype(jnp.float32)
    labels = trimap_classes(batch["trimap"])
    logp = jax.nn.log_softmax(logits, axis=-1)
    nll = -jnp.take_along_axis(logp, labels[..., None], axis=-1)[..., 0]
    acc = jnp.mean((jnp.argmax(logits, -1) == labels).astype(jnp.float32))
    return jnp.mean(nll), {"pixel_accuracy": acc}


def hard_mining_l1(
    pred: jax.Array, target: jax.Array, mask: jax.Array, p: float = 0.5
) -> tuple[jax.Array, jax.Array]:
    """L_hard: L1 over the top p of the masked pixels of each image, ranked by |pred - target|.

    Per image b, HM_b holds the ceil(p |M_b|) largest errors among the pixels with mask 1 (ties
    broken arbitrarily; their errors are equal, so the loss is not affected). The loss pools over
    the batch: Σ_b Σ_{HM_b} |e| / Σ_b |HM_b| (0 when every M_b is empty), like `masked_l1`.

    Args:
      pred, target, mask: float32 [B, H, W]; mask in {0, 1}.
      p: the fraction in (0, 1] (0.5 in the paper).

    Returns:
      (float32 scalar loss, float32 [B, H, W] 0/1 mask of the selected pixels HM).

    References: Zhou et al., SGM, Sec. 3.2.1 (L_hard); sgm.md §3.6.
    """
    if not 0.0 < p <= 1.0:
        raise ValueError(f"hard-mining fraction p must be in (0, 1], got {p}")
    b, h, w = pred.shape
    n = h * w
    err = jnp.abs(pred - target).reshape(b, n)
    m = mask.reshape(b, n) > 0.5
    k_max = max(1, math.ceil(p * n))
    # Non-M pixels rank below every M pixel (errors are >= 0).
    ranked = jnp.where(m, err, -1.0)
    _, idx = jax.lax.top_k(ranked, k_max)
    # ceil(p |M_b|), computed in integers: p |M| can sit a rounding step above an integer.
    count = jnp.sum(m, axis=1)
    k_b = jnp.ceil(count * p - 1e-6).astype(jnp.int32)
    keep = jnp.arange(k_max)[None, :] < k_b[:, None]
    sel = (
        jnp.zeros((b, n), jnp.float32).at[jnp.arange(b)[:, None], idx].set(keep.astype(jnp.float32))
    )
    total = jnp.sum(k_b).astype(jnp.float32)
    loss = jnp.sum(sel * err) / jnp.maximum(total, 1.0)
    return jnp.where(total > 0, loss, 0.0), sel.reshape(b, h, w)


@LOSSES.register("sgm_matting")
def sgm_matting(
    outputs: Mapping[str, jax.Array],
    batch: Mapping[str, jax.Array],
    *,
    p: float = 0.5,
    hard_weight: float = 1.0,
    refined_weight: float = 1.0,
    region: str = "unknown",
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Net-M: L = L_coarse + L_refined, each L_alpha + L_hard over the region M.

    L_alpha = Σ_M |α̂ − α| / |M| (pooled over the batch); L_hard = `hard_mining_l1` over the top
    p of M. "refined_alpha" is used unclipped; without it (NLM ablation) only L_coarse counts.

    Args:
      outputs: "coarse_alpha" and optionally "refined_alpha", [B, H, W, 1].
      batch: "alpha" (ground truth) and "trimap" labels, [B, H, W, 1].
      p: hard-mining fraction (0.5, paper).
      hard_weight: weight of L_hard (1, our choice: the paper gives none; 0 = Net-M-nh).
      refined_weight: weight of L_refined (1).
      region: "unknown" (M = the trimap's unknown region, paper) or "image" (every pixel, as the
        JI-Real joint training).

    Returns:
      (float32 scalar, {"l_coarse", "l_refined", "l_hard_coarse", ...}).

    References: Zhou et al., SGM, Sec. 3.2.1; sgm.md §3.6.
    """
    if region not in REGIONS:
        raise ValueError(f"region {region!r} not in {REGIONS}")
    gt = _flat(batch["alpha"])
    if region == "unknown":
        mask = 1.0 - known_mask(batch["trimap"])
    else:
        mask = jnp.ones_like(gt)
    total, metrics = jnp.float32(0.0), {}
    for key, name, weight in (
        ("coarse_alpha", "coarse", 1.0),
        ("refined_alpha", "refined", refined_weight),
    ):
        if key not in outputs:
            continue
        pred = _flat(outputs[key])
        l_alpha = masked_l1(pred, gt, mask)
        l_hard, _ = hard_mining_l1(pred, gt, mask, p)
        part = l_alpha + hard_weight * l_hard
        metrics[f"l_alpha_{name}"] = l_alpha
        metrics[f"l_hard_{name}"] = l_hard
        metrics[f"l_{name}"] = part
        total = total + weight * part
    return total, metrics

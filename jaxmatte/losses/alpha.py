"""L1 alpha losses: trimap-known pixels (DDC's L_known), the whole image, the unknown region."""

from __future__ import annotations

from typing import Mapping

import jax
import jax.numpy as jnp

from jaxmatte import conventions
from jaxmatte.registry import LOSSES

KNOWN_SCALES = ("paper", "code_512")
# Half the gap between trimap labels: |T − 0.5| above this marks a known (0 or 1) pixel.
_LABEL_HALF_GAP = 0.25 * (conventions.LABEL_FG - conventions.LABEL_BG)


def _flat(x: jax.Array) -> jax.Array:
    """[B, H, W, 1] or [B, H, W] -> float32 [B, H, W]."""
    if x.ndim == 4:
        x = x[..., 0]
    return x.astype(jnp.float32)


def _require_alpha(batch: Mapping[str, jax.Array], loss: str) -> jax.Array:
    if "alpha" not in batch:
        raise KeyError(
            f"loss {loss!r} needs batch['alpha'] (ground-truth alpha); got {sorted(batch)}"
        )
    return _flat(batch["alpha"])


@jax.custom_jvp
def abs_torch(x: jax.Array) -> jax.Array:
    """|x| whose derivative is sign(x), 0 at x == 0, as torch's L1 backward (jnp.abs gives 1)."""
    return jnp.abs(x)


@abs_torch.defjvp
def _abs_torch_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    return jnp.abs(x), jnp.sign(x) * t


def known_mask(trimap: jax.Array) -> jax.Array:
    """float32 [B, H, W] mask K = 1 − [T = 0.5] of a label trimap T in {0, 0.5, 1}."""
    t = _flat(trimap)
    return (jnp.abs(t - conventions.LABEL_UNKNOWN) > _LABEL_HALF_GAP).astype(jnp.float32)


def masked_l1(pred: jax.Array, target: jax.Array, mask: jax.Array, eps: float = 0.0) -> jax.Array:
    """Σ mask·|pred − target| / (Σ mask + eps), pooled over the batch; 0 when Σ mask = 0.

    Args:
      pred, target, mask: float32 [B, H, W].
      eps: added to the denominator (GCA style); with eps = 0 an empty mask gives exactly 0.

    Returns:
      float32 scalar.
    """
    num = jnp.sum(mask * abs_torch(pred - target))
    den = jnp.sum(mask) + eps
    safe = jnp.where(den > 0, den, 1.0)
    return jnp.where(den > 0, num / safe, 0.0)


@LOSSES.register("known_l1")
def known_l1(
    outputs: Mapping[str, jax.Array],
    batch: Mapping[str, jax.Array],
    *,
    scale: str = "paper",
    code_crop: int = 512,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """L_known: L1 to the trimap labels over known pixels, pooled over the batch.

    scale="paper": Σ K|α − T| / Σ K (= mean L1 × N/N_K). scale="code_512": the released code's
    B·512²/ΣK factor on the mean over B·H·W, i.e. the paper value × code_crop²/(H·W); both agree
    at 512² crops. Both are 0 when no pixel is known.

    Args:
      outputs: "alpha" [B, H, W, 1] predicted alpha in [0, 1].
      batch: needs "trimap" [B, H, W, 1] with labels {0, 0.5, 1}.
      scale: "paper" or "code_512".
      code_crop: the crop side hard-coded in the released code (512).

    Returns:
      (float32 scalar, {"known_fraction": fraction of known pixels}).

    References:
      Liu et al., Training Matting Models without Alpha Labels, AAAI 2025, L_known;
      spec ddc_vitmatte.md §3.2 and §2.
    """
    alpha = outputs["alpha"]
    if scale not in KNOWN_SCALES:
        raise ValueError(f"known_l1 scale must be one of {KNOWN_SCALES}, got {scale!r}")
    pred = _flat(alpha)
    target = _flat(batch["trimap"])
    mask = known_mask(target)
    loss = masked_l1(pred, target, mask)
    if scale == "code_512":
        _, h, w = pred.shape
        loss = loss * (float(code_crop) ** 2 / float(h * w))
    return loss, {"known_fraction": jnp.mean(mask)}


@LOSSES.register("l1")
def l1(
    outputs: Mapping[str, jax.Array], batch: Mapping[str, jax.Array]
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Whole-image mean |α̂ − α| to the ground-truth alpha (DDC Table 1 "Matte" baseline).

    Args:
      outputs: "alpha" [B, H, W, 1] predicted; batch["alpha"]: [B, H, W, 1] ground truth in [0, 1].

    Returns:
      (float32 scalar, {}).
    """
    gt = _require_alpha(batch, "l1")
    return jnp.mean(abs_torch(_flat(outputs["alpha"]) - gt)), {}


@LOSSES.register("unknown_l1")
def unknown_l1(
    outputs: Mapping[str, jax.Array],
    batch: Mapping[str, jax.Array],
    *,
    eps: float = 1e-8,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """GCA-style L1 over the trimap's unknown region: Σ u|α̂ − α| / (Σ u + eps).

    Args:
      outputs: "alpha" [B, H, W, 1] predicted; batch: "alpha" (ground truth) and "trimap" labels.
      eps: denominator guard.

    Returns:
      (float32 scalar, {}).

    References:
      Li & Lu, Natural Image Matting via Guided Contextual Attention, AAAI 2020 (alpha loss).
    """
    gt = _require_alpha(batch, "unknown_l1")
    unknown = 1.0 - known_mask(batch["trimap"])
    return masked_l1(_flat(outputs["alpha"]), gt, unknown, eps=eps), {}

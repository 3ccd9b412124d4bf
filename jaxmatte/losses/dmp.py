"""DMP loss: DIM's alpha-prediction and composition losses, averaged over the unknown region."""

from __future__ import annotations

from typing import Mapping

import jax
import jax.numpy as jnp

from jaxmatte import conventions as cv
from jaxmatte.losses.alpha import _flat, known_mask
from jaxmatte.registry import LOSSES

REGIONS = ("unknown", "all")
COMP_NORMS = ("rgb_norm", "per_channel")
EPS = 1e-12  # inside the square roots (paper Eq. 5)


def _region_mask(batch: Mapping[str, jax.Array], region: str) -> jax.Array:
    """float32 [B, H, W]: the trimap's unknown pixels ("unknown") or every pixel ("all")."""
    if region not in REGIONS:
        raise ValueError(f"region must be one of {REGIONS}, got {region!r}")
    mask = 1.0 - known_mask(batch["trimap"])
    return mask if region == "unknown" else jnp.ones_like(mask)


def _masked_mean(per_pixel: jax.Array, mask: jax.Array) -> jax.Array:
    """sum(mask * v) / sum(mask) pooled over the batch; 0 when the mask is empty (dmp.md §4.3)."""
    den = jnp.sum(mask)
    return jnp.where(den > 0, jnp.sum(mask * per_pixel) / jnp.where(den > 0, den, 1.0), 0.0)


def _need(batch: Mapping[str, jax.Array], keys: tuple[str, ...], loss: str) -> None:
    missing = [k for k in keys if k not in batch]
    if missing:
        raise KeyError(
            f"loss {loss!r} needs batch keys {missing} (the dmp recipe returns fg / bg with "
            f"recipe_kwargs keep_fg_bg=True); got {sorted(batch)}"
        )


def alpha_term(alpha: jax.Array, gt: jax.Array, eps: float = EPS) -> jax.Array:
    """Per-pixel sqrt((alpha_hat - alpha)^2 + eps); [B, H, W] float32 -> [B, H, W]."""
    return jnp.sqrt((alpha - gt) ** 2 + eps)


def composition_term(
    alpha: jax.Array,
    fg: jax.Array,
    bg: jax.Array,
    image: jax.Array,
    eps: float = EPS,
    comp_norm: str = "rgb_norm",
) -> jax.Array:
    """Per-pixel composition error of alpha_hat F + (1 - alpha_hat) B against the image.

    Colours are compared in [0, 1] RGB: the batch holds ImageNet-normalised fg, bg and image,
    and normalisation is affine per channel, so the [0, 1] difference is std * (normalised
    difference); the mean cancels.

    Args:
      alpha: [B, H, W] predicted alpha.
      fg, bg, image: [B, H, W, 3] ImageNet-normalised.
      eps: inside the square root.
      comp_norm: "rgb_norm" sqrt(||c_hat - c||^2 + eps) (our choice) or "per_channel" the mean
        over channels of sqrt((c_hat - c)^2 + eps) (DIM's code).

    Returns:
      [B, H, W] float32.
    """
    if comp_norm not in COMP_NORMS:
        raise ValueError(f"comp_norm must be one of {COMP_NORMS}, got {comp_norm!r}")
    a = alpha[..., None]
    fg, bg, image = (x.astype(jnp.float32) for x in (fg, bg, image))
    diff = (a * fg + (1.0 - a) * bg - image) * jnp.asarray(cv.IMAGENET_STD, jnp.float32)
    if comp_norm == "rgb_norm":
        return jnp.sqrt(jnp.sum(diff**2, axis=-1) + eps)
    return jnp.mean(jnp.sqrt(diff**2 + eps), axis=-1)


@LOSSES.register("dmp_alpha")
def dmp_alpha(
    outputs: Mapping[str, jax.Array],
    batch: Mapping[str, jax.Array],
    *,
    eps: float = EPS,
    region: str = "unknown",
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Alpha-prediction loss: mean over `region` of sqrt((alpha_hat - alpha)^2 + eps).

    Args:
      outputs: "alpha" [B, H, W, 1].
      batch: "alpha" [B, H, W, 1] ground truth, "trimap" [B, H, W, 1] labels.
      eps: inside the square root (paper 1e-12).
      region: "unknown" (paper: the unknown pixels only) or "all".

    Returns:
      (float32 scalar, {"unknown_fraction"}); 0 when the region is empty.

    References: Wang et al. 2018, Eq. (5); Xu et al., DIM, CVPR 2017, Sec. 4.1; dmp.md §6.
    """
    _need(batch, ("alpha", "trimap"), "dmp_alpha")
    mask = _region_mask(batch, region)
    per_pixel = alpha_term(_flat(outputs["alpha"]), _flat(batch["alpha"]), eps)
    return _masked_mean(per_pixel, mask), {
        "unknown_fraction": 1.0 - jnp.mean(known_mask(batch["trimap"]))
    }


@LOSSES.register("dmp_composition")
def dmp_composition(
    outputs: Mapping[str, jax.Array],
    batch: Mapping[str, jax.Array],
    *,
    eps: float = EPS,
    region: str = "unknown",
    comp_norm: str = "rgb_norm",
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Composition loss: mean over `region` of the `composition_term` (colours in [0, 1]).

    Args:
      outputs: "alpha" [B, H, W, 1].
      batch: "fg", "bg", "image" [B, H, W, 3] ImageNet-normalised, "trimap" labels.
      eps, region: as in `dmp_alpha`.
      comp_norm: "rgb_norm" (our choice) or "per_channel" (DIM), see `composition_term`.

    Returns:
      (float32 scalar, {}); 0 when the region is empty.

    References: Wang et al. 2018, Eq. (5); dmp.md §6.
    """
    _need(batch, ("fg", "bg", "image", "trimap"), "dmp_composition")
    mask = _region_mask(batch, region)
    per_pixel = composition_term(
        _flat(outputs["alpha"]), batch["fg"], batch["bg"], batch["image"], eps, comp_norm
    )
    return _masked_mean(per_pixel, mask), {}


@LOSSES.register("dmp")
def dmp(
    outputs: Mapping[str, jax.Array],
    batch: Mapping[str, jax.Array],
    *,
    eps: float = EPS,
    region: str = "unknown",
    comp_norm: str = "rgb_norm",
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """The paper's loss: the average of `dmp_alpha` and `dmp_composition` (both over `region`).

    Returns:
      (float32 scalar, {"alpha", "composition", "unknown_fraction"}).

    References: Wang et al. 2018, Sec. 3.4, Eq. (5); dmp.md §6.
    """
    la, metrics = dmp_alpha(outputs, batch, eps=eps, region=region)
    lc, _ = dmp_composition(outputs, batch, eps=eps, region=region, comp_norm=comp_norm)
    return 0.5 * (la + lc), {"alpha": la, "composition": lc, **metrics}

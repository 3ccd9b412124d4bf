"""SGM joint inference: test-time soft segmentation, Net-T -> Net-M, soft or hard fusion."""

from __future__ import annotations

from typing import Any, Callable, Mapping

import cv2
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxmatte.inference import procedures
from jaxmatte.registry import INFERENCE

FUSIONS = ("soft", "hard")
FUSION_ALPHAS = ("refined", "coarse")
JI_TRIMAPS = ("hard", "soft")
TRIMAP_SOURCES = ("net_t", "softseg")
# Net-M's total stride; Net-T (OS 16 with x4 steps) is padded to the same multiple (sgm.md §4.4).
SGM_PAD_MULTIPLE = 32


def soft_fusion(probs: jax.Array, alpha: jax.Array) -> jax.Array:
    """JIS: α_r = (1 − U_p)·F_p/(F_p + B_p) + U_p·α_p = F_p + U_p·α_p (probabilities sum to 1).

    Args:
      probs: [B, H, W, 3] Net-T softmax (B_p, U_p, F_p).
      alpha: [B, H, W, 1] Net-M alpha α_p.

    Returns:
      float32 [B, H, W, 1].

    References: Zhou et al., SGM (arXiv 2103.17020), Sec. 4.1; sgm.md §4.2.
    """
    probs = probs.astype(jnp.float32)
    return probs[..., 2:3] + probs[..., 1:2] * alpha.astype(jnp.float32)


def hard_fusion(probs: jax.Array, alpha: jax.Array) -> jax.Array:
    """JIH: α_r = α_p, reset to 1 where argmax P = FG and to 0 where argmax P = BG.

    Args / Returns: as `soft_fusion`.

    References: Zhou et al., SGM, Sec. 4.1; sgm.md §4.2.
    """
    cls = jnp.argmax(probs, axis=-1)[..., None]
    alpha = alpha.astype(jnp.float32)
    return jnp.where(cls == 2, 1.0, jnp.where(cls == 0, 0.0, alpha))


def erode(mask: jax.Array, k: int) -> jax.Array:
    """cv2.erode with the k x k elliptical element (default border: nothing erodes from outside).

    Args:
      mask: [B, H, W] in {0, 1}.
      k: element size (1 = identity); the anchor is cv2's centre (k // 2).

    Returns:
      float32 [B, H, W] in {0, 1}.
    """
    if k <= 1:
        return mask.astype(jnp.float32)
    elem = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)).astype(np.float32)
    lo, hi = k // 2, k - 1 - k // 2
    holes = (1.0 - mask.astype(jnp.float32))[..., None]  # zero padding = the 1-valued border
    count = jax.lax.conv_general_dilated(
        holes,
        jnp.asarray(elem)[:, :, None, None],
        (1, 1),
        ((lo, hi), (lo, hi)),
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
    )[..., 0]
    return (count < 0.5).astype(jnp.float32)


def gaussian_blur(x: jax.Array, k: int) -> jax.Array:
    """cv2.GaussianBlur(x, (k, k), 0): σ = 0.3((k − 1)/2 − 1) + 0.8, BORDER_REFLECT_101.

    Args:
      x: [B, H, W] float. k: odd kernel size.

    Returns:
      float32 [B, H, W].
    """
    sigma = 0.3 * ((k - 1) / 2 - 1) + 0.8
    t = np.arange(k) - (k - 1) / 2
    g = np.exp(-(t**2) / (2 * sigma**2))
    g = jnp.asarray(g / g.sum(), jnp.float32)
    r = k // 2
    x = jnp.pad(x.astype(jnp.float32), ((0, 0), (r, r), (r, r)), mode="reflect")
    h, w = x.shape[1] - 2 * r, x.shape[2] - 2 * r
    x = sum(g[i] * x[:, i : i + h, :] for i in range(k))
    return sum(g[i] * x[:, :, i : i + w] for i in range(k))


def soft_segmentation(
    mask: jax.Array, erosion: int = 20, blur: int = 31, threshold: float = 0.5
) -> jax.Array:
    """Test-time soft segmentation from a coarse mask: binarise, erode, Gaussian blur.

    Args:
      mask: [B, H, W, 1] coarse mask in [0, 1] (on synthetic sets: U ∪ FG of the 15-px trimap).
      erosion: elliptical erosion size in pixels (20, paper; Table 5 ablates 20/30/40/50).
      blur: Gaussian kernel size (31, our choice: the middle of Background-Matting's {21, 31, 41}).
      threshold: mask >= threshold is the initial segmentation.

    Returns:
      float32 [B, H, W, 2] = (P_bg, P_fg), the channel order of the sgm_t recipe's "softseg".

    References: Zhou et al., SGM, Sec. 4.1; sgm.md §4.3, §2.3 step 3.
    """
    seg = (mask[..., 0] >= threshold).astype(jnp.float32)
    p = gaussian_blur(erode(seg, erosion), blur)
    return jnp.stack([1.0 - p, p], axis=-1)


def softseg_trimap(seg: jax.Array, band: float) -> jax.Array:
    """The trimap read off the raw soft segmentation, without Net-T (the ablation baseline).

    Args:
      seg: [B, H, W, 2] (P_bg, P_fg).
      band: pixels with band < P_fg < 1 − band are unknown; P_fg >= 1 − band is fg, the rest bg.

    Returns:
      float32 [B, H, W, 3] one-hot (bg, unknown, fg), Net-T's class order.
    """
    p = seg[..., 1].astype(jnp.float32)
    cls = jnp.where(p >= 1.0 - band, 2, jnp.where(p > band, 1, 0))
    return jax.nn.one_hot(cls, 3, dtype=jnp.float32)


def reflect_pad(x: jax.Array, multiple: int) -> jax.Array:
    """Reflect-pads [B, H, W, C] at the bottom/right to multiples of `multiple` (sgm.md §4.4)."""
    h, w = x.shape[1:3]
    ph, pw = -h % multiple, -w % multiple
    if ph == 0 and pw == 0:
        return x
    # numpy-style reflect needs pad < side; repeat for tiny inputs.
    while ph or pw:
        sh, sw = min(ph, x.shape[1] - 1), min(pw, x.shape[2] - 1)
        x = jnp.pad(x, ((0, 0), (0, sh), (0, sw), (0, 0)), mode="reflect")
        ph, pw = ph - sh, pw - sw
    return x


@INFERENCE.register("sgm_joint")
def make_sgm_joint(
    models: Mapping[str, nn.Module],
    *,
    fusion: str = "soft",
    fusion_alpha: str = "refined",
    ji_trimap: str = "hard",
    seg_erosion: int = 20,
    seg_blur: int = 31,
    mask_threshold: float = 0.5,
    multiple: int = SGM_PAD_MULTIPLE,
    trimap_source: str = "net_t",
    softseg_band: float = 0.05,
) -> Callable[[Mapping[str, Any], Mapping[str, jax.Array]], dict[str, jax.Array]]:
    """SGM joint inference over {"main": Net-M, "trimap_net": Net-T}.

    fn(variables, batch): batch holds "image" [B, H, W, 3] and "mask" [B, H, W, 1] (a coarse mask,
    turned into the soft segmentation by `soft_segmentation`) or a ready "softseg" [B, H, W, 2].
    Both nets run on reflect-padded inputs; Net-T's softmax P gives Net-M's trimap (one-hot
    argmax, or P itself with ji_trimap="soft"); Net-M's alpha is fused with P.

    Args:
      models: "main" (Net-M, `sgm_matting`) and "trimap_net" (Net-T, `sgm_trimap`).
      fusion: "soft" (JIS) or "hard" (JIH).
      fusion_alpha: "refined" (Net-M's "alpha") or "coarse" ("-c" variants).
      ji_trimap: "hard" (one-hot argmax, our choice) or "soft" (the probabilities).
      seg_erosion, seg_blur, mask_threshold: see `soft_segmentation`.
      multiple: pad multiple (32).
      trimap_source: "net_t" (the paper) or "softseg": Net-T is skipped and Net-M gets the
        trimap read off the raw soft segmentation (`softseg_trimap`; our ablation baseline, the
        comparison that shows what Net-T adds). Fusion then forces that trimap's known regions.
      softseg_band: the unknown band of `softseg_trimap` (our choice, 0.05).

    Returns:
      fn returning {"alpha": fused [B, H, W, 1] in [0, 1], "trimap_probs": [B, H, W, 3],
      "net_m_alpha": Net-M's unfused alpha [B, H, W, 1]}, float32, cropped to H x W.

    References: Zhou et al., SGM, Sec. 3 and 4.1; sgm.md §4.
    """
    for name, value, allowed in (
        ("fusion", fusion, FUSIONS),
        ("fusion_alpha", fusion_alpha, FUSION_ALPHAS),
        ("ji_trimap", ji_trimap, JI_TRIMAPS),
        ("trimap_source", trimap_source, TRIMAP_SOURCES),
    ):
        if value not in allowed:
            raise ValueError(f"sgm_joint {name} {value!r} not in {allowed}")
    net_m, net_t = models["main"], models["trimap_net"]
    fuse = soft_fusion if fusion == "soft" else hard_fusion

    def fn(variables, batch):
        image = batch["image"].astype(jnp.float32)
        h, w = image.shape[1:3]
        if "softseg" in batch:
            seg = batch["softseg"].astype(jnp.float32)
        else:
            seg = soft_segmentation(batch["mask"], seg_erosion, seg_blur, mask_threshold)
        image_p = reflect_pad(image, multiple)
        if trimap_source == "softseg":
            probs = softseg_trimap(reflect_pad(seg, multiple), softseg_band)
        else:
            logits = net_t.apply(
                variables["trimap_net"],
                {"image": image_p, "softseg": reflect_pad(seg, multiple)},
                train=False,
            )["trimap_logits"]
            probs = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
        if ji_trimap == "hard":
            trimap = jax.nn.one_hot(jnp.argmax(probs, axis=-1), 3, dtype=jnp.float32)
        else:
            trimap = probs
        out = net_m.apply(variables["main"], {"image": image_p, "trimap": trimap}, train=False)
        alpha_p = out["alpha"] if fusion_alpha == "refined" else out["coarse_alpha"]
        alpha_p, probs = alpha_p[:, :h, :w], probs[:, :h, :w]
        fused = jnp.clip(fuse(probs, alpha_p), 0.0, 1.0)
        return {"alpha": fused, "trimap_probs": probs, "net_m_alpha": alpha_p.astype(jnp.float32)}

    fn.inputs = ("image", "mask")  # what predict reads per image (a coarse mask, no trimap)
    return fn


@INFERENCE.register("sgm_trimap_from_mask")
def make_sgm_trimap_from_mask(
    models: Mapping[str, nn.Module],
    *,
    seg_erosion: int = 20,
    seg_blur: int = 31,
    mask_threshold: float = 0.5,
    multiple: int = SGM_PAD_MULTIPLE,
    mode: str = "minimal",
) -> Callable[[Mapping[str, Any], Mapping[str, jax.Array]], dict[str, jax.Array]]:
    """Net-T alone: its soft segmentation from a coarse "mask" (unless the batch has "softseg"),
    then pad, apply, crop. Predict reads an image and a mask; evaluation brings "softseg" from
    ``config.data.pp_eval`` (the training ops).

    References: sgm.md §4 (test-time soft segmentation).
    """
    model = models["main"]

    def fn(variables, batch):
        batch = dict(batch)
        if "softseg" not in batch:
            batch["softseg"] = soft_segmentation(
                batch["mask"], seg_erosion, seg_blur, mask_threshold
            )
        return procedures.padded_apply(model, variables["main"], batch, multiple, mode)

    fn.inputs = ("image", "mask")
    return fn

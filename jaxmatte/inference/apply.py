"""Model inference on whole images: encode uint8 inputs, pad to the model's multiple, crop back."""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from ml_collections import ConfigDict

from jaxmatte import conventions as cv
from jaxmatte.inference import pad as pad_lib


def encode_image(image: np.ndarray) -> np.ndarray:
    """uint8 RGB [..., H, W, 3] -> ImageNet-normalised float32."""
    x = image.astype(np.float32) / cv.UINT8_MAX
    return (x - np.asarray(cv.IMAGENET_MEAN, np.float32)) / np.asarray(cv.IMAGENET_STD, np.float32)


def encode_trimap(trimap: np.ndarray) -> np.ndarray:
    """uint8 trimap codes [..., H, W] -> labels {0, 0.5, 1} as float32 [..., H, W, 1]."""
    t = np.full(trimap.shape, cv.LABEL_UNKNOWN, np.float32)
    t[trimap < cv.TRIMAP_BG_BELOW] = cv.LABEL_BG
    t[trimap >= cv.TRIMAP_FG_FROM] = cv.LABEL_FG
    return t[..., None]


def make_predict_fn(model: Any, model_cfg: ConfigDict) -> Callable[..., jax.Array]:
    """A jitted ``fn(variables, image [B,H,W,3], trimap [B,H,W,1] | None) -> (alpha, aux)``.

    The image (normalised) and trimap are padded at the bottom/right to the model's multiple with
    zeros, the model runs in eval mode, and alpha [B, H, W, 1] is cropped back to H x W.
    """
    multiple, mode = model_cfg.pad_multiple, model_cfg.get("pad_mode", "minimal")

    @jax.jit
    def fn(variables, image, trimap):
        hw = image.shape[1:3]
        image_p, _ = pad_lib.pad_to_multiple(image, multiple, mode)
        trimap_p = None if trimap is None else pad_lib.pad_to_multiple(trimap, multiple, mode)[0]
        alpha, aux = model.apply(variables, image_p, trimap_p, train=False)
        crop = lambda x: (
            pad_lib.crop_to(x, hw) if x.ndim == 4 and x.shape[1:3] == image_p.shape[1:3] else x
        )
        return crop(alpha.astype(jnp.float32)), jax.tree.map(crop, aux)

    return fn

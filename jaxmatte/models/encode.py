"""Input encodings a model applies to the batch it reads (one-hot or scalar trimaps, stacks).

The batch itself always holds the same encodings (``conventions.BATCH_CHANNELS``): ImageNet-
normalised RGB, scalar trimap labels {0, 0.5, 1}; each model turns them into what its paper feeds.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import jax
import jax.numpy as jnp

from jaxmatte import conventions as cv

# Half the gap between labels: |T - 0.5| above this marks a known pixel.
_HALF_GAP = 0.25 * (cv.LABEL_FG - cv.LABEL_BG)


def trimap_onehot(trimap: jax.Array) -> jax.Array:
    """Scalar labels [B, H, W, 1] in {0, 0.5, 1} -> one-hot [B, H, W, 3] (bg, unknown, fg).

    The GCA family's encoding (tcp.md, sgm.md): channel 0 = background, 1 = unknown,
    2 = foreground. Values between labels go to the nearest label.
    """
    t = trimap[..., 0]
    bg = t < cv.LABEL_UNKNOWN - _HALF_GAP
    fg = t > cv.LABEL_UNKNOWN + _HALF_GAP
    unk = ~(bg | fg)
    return jnp.stack([bg, unk, fg], axis=-1).astype(trimap.dtype)


def trimap_code_scaled(trimap: jax.Array) -> jax.Array:
    """Scalar labels -> the 8-bit code / 255 (0, 128/255, 1), as LSA feeds its trimap channel."""
    onehot = trimap_onehot(trimap)
    codes = jnp.asarray(cv.TRIMAP_CODES, trimap.dtype) / cv.UINT8_MAX
    return jnp.sum(onehot * codes, axis=-1, keepdims=True)


def stack(batch: Mapping[str, jax.Array], keys: Sequence[str]) -> jax.Array:
    """Concatenates ``batch[k]`` for ``k`` in ``keys`` on the channel axis."""
    return jnp.concatenate([batch[k] for k in keys], axis=-1)

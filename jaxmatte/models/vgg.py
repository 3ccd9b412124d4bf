"""VGG16-BN encoder keeping max-pool argmax indices (SegNet), and the matching max-unpool."""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxmatte.models import layers
from jaxmatte.registry import BACKBONES

VGG16_BLOCKS = (2, 2, 3, 3, 3)
VGG16_WIDTHS = (64, 128, 256, 512, 512)
POOL_WINDOW = 2


def max_pool_with_indices(x: jax.Array, window: int = POOL_WINDOW) -> tuple[jax.Array, jax.Array]:
    """Non-overlapping max-pool (kernel = stride = `window`, floor mode) that keeps the argmax.

    Args:
        x: [B, H, W, C]; a trailing remainder of H or W (not a multiple of `window`) is dropped,
            as in PyTorch's floor mode.

    Returns:
        pooled [B, H // window, W // window, C] and indices of the same shape (int32), the
        row-major position of the maximum inside its window (0 .. window**2 - 1; the first
        maximum on ties, as PyTorch). The gradient flows to that position only.

    References: Badrinarayanan et al., SegNet, TPAMI 2017, Sec. 3.
    """
    b, h, w, c = x.shape
    ho, wo = h // window, w // window
    x = x[:, : ho * window, : wo * window]
    x = x.reshape(b, ho, window, wo, window, c).transpose(0, 1, 3, 5, 2, 4)
    x = x.reshape(b, ho, wo, c, window * window)
    indices = jnp.argmax(x, axis=-1)
    pooled = jnp.take_along_axis(x, indices[..., None], axis=-1)[..., 0]
    return pooled, indices.astype(jnp.int32)


def max_unpool(
    x: jax.Array,
    indices: jax.Array,
    window: int = POOL_WINDOW,
    output_hw: tuple[int, int] | None = None,
) -> jax.Array:
    """Places each value at its stored argmax position in a zero map (SegNet upsampling).

    Args:
        x: [B, h, w, C] values to unpool.
        indices: [B, h, w, C] int, from `max_pool_with_indices` with the same `window`.
        window: pooling window.
        output_hw: (H, W) of the pooled input, to restore a dropped remainder with zeros;
            default (h * window, w * window).

    Returns:
        [B, H, W, C].
    """
    b, h, w, c = x.shape
    onehot = jax.nn.one_hot(indices, window * window, dtype=x.dtype)
    y = (x[..., None] * onehot).reshape(b, h, w, c, window, window)
    y = y.transpose(0, 1, 4, 2, 5, 3).reshape(b, h * window, w * window, c)
    if output_hw is not None:
        pad_h, pad_w = output_hw[0] - h * window, output_hw[1] - w * window
        if pad_h < 0 or pad_w < 0 or pad_h >= window or pad_w >= window:
            raise ValueError(f"output_hw {output_hw} does not fit unpooled {y.shape[1:3]}")
        y = jnp.pad(y, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)))
    return y


@BACKBONES.register("vgg16_bn")
class VGG16BN(nn.Module):
    """VGG16-BN convolutional encoder (the 13 convs of torchvision's `vgg16_bn().features`).

    Children "conv{i}_{j}" (block i, conv j, 1-based), each conv 3x3 (bias) -> BN -> ReLU;
    each block ends with a 2x2/2 max-pool whose indices are kept.

    Attributes:
        in_channels: input channels (3 RGB, 4 RGB + trimap for DMP).
        blocks: convs per block.
        widths: channels per block.
        bn_mode: see `layers.batch_norm`.

    References: Simonyan & Zisserman, VGG, ICLR 2015; SegNet (TPAMI 2017) for the indices.
    """

    in_channels: int = 3
    blocks: Sequence[int] = VGG16_BLOCKS
    widths: Sequence[int] = VGG16_WIDTHS
    bn_mode: str = "train"

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> dict[str, jax.Array]:
        """Args:
            x: [B, H, W, in_channels]; H, W multiples of 32 avoid dropped remainders.

        Returns:
            for each block i = 1..5: "block{i}" (features before the pool, stride 2**(i-1)),
            "pool{i}" (after the pool, stride 2**i) and "indices{i}" (its argmax, int32).
        """
        if x.shape[-1] != self.in_channels:
            raise ValueError(f"expected {self.in_channels} input channels, got {x.shape}")
        out = {}
        for i, (n, width) in enumerate(zip(self.blocks, self.widths), start=1):
            for j in range(1, n + 1):
                x = layers.ConvBN(
                    width, 3, use_bias=True, bn_mode=self.bn_mode, name=f"conv{i}_{j}"
                )(x, train)
            out[f"block{i}"] = x
            x, out[f"indices{i}"] = max_pool_with_indices(x)
            out[f"pool{i}"] = x
        return out

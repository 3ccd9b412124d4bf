"""DeepLabv3 atrous spatial pyramid pooling (ASPP), NHWC."""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxmatte.models import layers
from jaxmatte.registry import BACKBONES


@BACKBONES.register("aspp")
class ASPP(nn.Module):
    """Five parallel branches (1x1, three dilated 3x3, image pooling), concat, 1x1 projection.

    Children: "branch0" (1x1), "branch1".."branch3" (3x3 at `rates`), "pool" (image pooling:
    global mean -> 1x1 -> BN -> ReLU, broadcast back to H x W, which equals bilinear resizing of a
    1x1 map under any corner convention), "project" (1x1 on the concat), each a ConvBN + ReLU;
    then dropout.

    Attributes:
        features: channels of every branch and of the output (256 in DeepLabv3).
        rates: dilations of the 3x3 branches ((6, 12, 18) at output stride 16).
        use_bias: conv bias (the SGM/DeepLabv3+ lineage has it; torchvision's ASPP does not).
        dropout_rate: dropout after the projection (0.5 in DeepLabv3).
        bn_mode: see `layers.batch_norm`.

    References: Chen et al., Rethinking Atrous Convolution (DeepLabv3), arXiv 1706.05587, Sec. 3.3.
    """

    features: int = 256
    rates: Sequence[int] = (6, 12, 18)
    use_bias: bool = True
    dropout_rate: float = 0.5
    bn_mode: str = "train"

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        """Args: x: [B, H, W, C] (layer4 features). Returns: [B, H, W, features]."""

        def conv_bn(kernel: int, dilation: int, name: str) -> layers.ConvBN:
            return layers.ConvBN(
                self.features,
                kernel,
                dilation=dilation,
                use_bias=self.use_bias,
                bn_mode=self.bn_mode,
                name=name,
            )

        branches = [conv_bn(1, 1, "branch0")(x, train)]
        for i, rate in enumerate(self.rates):
            branches.append(conv_bn(3, rate, f"branch{i + 1}")(x, train))
        pooled = conv_bn(1, 1, "pool")(layers.global_mean(x), train)
        branches.append(jnp.broadcast_to(pooled, x.shape[:3] + (self.features,)))
        out = conv_bn(1, 1, "project")(jnp.concatenate(branches, axis=-1), train)
        return nn.Dropout(self.dropout_rate, deterministic=not train, name="dropout")(out)

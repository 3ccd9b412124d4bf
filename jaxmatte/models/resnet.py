"""ResNet-34 / ResNet-50 (atrous, output stride 8/16/32) / ResNet-50-D backbones, NHWC."""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax

from jaxmatte.models import layers
from jaxmatte.registry import BACKBONES

STAGE_WIDTHS = (64, 128, 256, 512)
STAGE_STRIDES = (1, 2, 2, 2)
OUTPUT_STRIDES = (8, 16, 32)
STEM_STRIDE = 4  # stride-2 stem conv, then the stride-2 max-pool.


def stage_plan(
    stage_sizes: Sequence[int], output_stride: int, multi_grid: Sequence[int] | None = None
) -> list[tuple[int, tuple[int, ...]]]:
    """Per stage: (stride of its first block, dilation of each block).

    Stages whose stride would exceed `output_stride` get stride 1 and dilation instead, as in
    torchvision's `replace_stride_with_dilation`: the first block of a dilated stage keeps the
    previous dilation, the others use the new one. `multi_grid` (DeepLab; SGM Net-T uses
    (1, 2, 1)) instead sets the last stage's dilations to `multi_grid[i] * d_prev`, d_prev being
    the dilation entering that stage.

    References: He et al., ResNet (CVPR 2016); Chen et al., DeepLabv3 (arXiv 1706.05587), Sec. 3.2.
    """
    if output_stride not in OUTPUT_STRIDES:
        raise ValueError(f"output_stride {output_stride} not in {OUTPUT_STRIDES}")
    plan, current, dilation = [], STEM_STRIDE, 1
    for i, (n, stride) in enumerate(zip(stage_sizes, STAGE_STRIDES)):
        previous = dilation
        if current * stride > output_stride:
            dilation, stride = dilation * stride, 1
        current *= stride
        dilations = (previous,) + (dilation,) * (n - 1)
        if multi_grid is not None and i == len(stage_sizes) - 1:
            if len(multi_grid) != n:
                raise ValueError(f"multi_grid {tuple(multi_grid)} needs {n} entries")
            dilations = tuple(previous * g for g in multi_grid)
        plan.append((stride, dilations))
    return plan


class BasicBlock(nn.Module):
    """ResNet-18/34 block: 3x3 (stride, dilation) -> 3x3, projection shortcut when needed."""

    width: int
    stride: int = 1
    dilation: int = 1
    avg_down: bool = False
    bn_mode: str = "train"

    expansion = 1

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        out = layers.ConvBN(
            self.width, 3, self.stride, self.dilation, bn_mode=self.bn_mode, name="conv1"
        )(x, train)
        out = layers.ConvBN(self.width, 3, relu=False, bn_mode=self.bn_mode, name="conv2")(
            out, train
        )
        return nn.relu(out + _shortcut(self, x, train))


class Bottleneck(nn.Module):
    """ResNet-50 v1.5 block: 1x1 -> 3x3 (stride, dilation) -> 1x1 (x4), projection shortcut."""

    width: int
    stride: int = 1
    dilation: int = 1
    avg_down: bool = False
    bn_mode: str = "train"

    expansion = 4

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        out = layers.ConvBN(self.width, 1, bn_mode=self.bn_mode, name="conv1")(x, train)
        out = layers.ConvBN(
            self.width, 3, self.stride, self.dilation, bn_mode=self.bn_mode, name="conv2"
        )(out, train)
        out = layers.ConvBN(
            self.width * self.expansion, 1, relu=False, bn_mode=self.bn_mode, name="conv3"
        )(out, train)
        return nn.relu(out + _shortcut(self, x, train))


def _shortcut(block: nn.Module, x: jax.Array, train: bool) -> jax.Array:
    """Identity, or the projection "downsample": 1x1 conv (strided) -> BN.

    With `avg_down` (ResNet-D) a strided projection becomes 2x2 avg-pool (ceil mode, padding
    excluded) -> 1x1 conv stride 1 -> BN; a stride-1 projection has no pool (as in mmcls).
    """
    out_features = block.width * block.expansion
    if block.stride == 1 and x.shape[-1] == out_features:
        return x
    stride = block.stride
    if block.avg_down and stride != 1:
        x, stride = layers.avg_pool_2x2_ceil(x), 1
    return layers.ConvBN(
        out_features, 1, stride, relu=False, bn_mode=block.bn_mode, name="downsample"
    )(x, train)


class ResNet(nn.Module):
    """ResNet backbone returning named feature maps.

    Attributes:
        stage_sizes: blocks per stage.
        block: "basic" (ResNet-18/34) or "bottleneck" (ResNet-50+).
        deep_stem: three 3x3 convs (width/2, width/2, width; first stride 2) instead of 7x7/2.
        avg_down: ResNet-D shortcut (avg-pool before the 1x1 conv in strided projections).
        stem_width: channels of the stem output.
        in_channels: input channels (3 RGB, 4 RGB + trimap, 6 RGB + one-hot trimap, ...).
        output_stride: 32, 16 or 8; see `stage_plan`.
        multi_grid: optional last-stage dilation multipliers; see `stage_plan`.
        bn_mode: "train", "frozen" or "sync"; see `layers.batch_norm`.

    References: He et al., CVPR 2016; He et al., Bag of Tricks (ResNet-D), CVPR 2019.
    """

    stage_sizes: Sequence[int] = (3, 4, 6, 3)
    block: str = "bottleneck"
    deep_stem: bool = False
    avg_down: bool = False
    stem_width: int = 64
    in_channels: int = 3
    output_stride: int = 32
    multi_grid: Sequence[int] | None = None
    bn_mode: str = "train"

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> dict[str, jax.Array]:
        """Args:
            x: [B, H, W, in_channels] float32, ImageNet-normalised RGB first.
            train: training step (batch statistics in "train"/"sync" BN modes).

        Returns:
            {"stem": [B, H/2, W/2, stem_width] (before the max-pool), "layer1": /4,
            "layer2": /8, "layer3": /16, "layer4": /32} (stride capped at `output_stride`);
            channels (64, 128, 256, 512) x block expansion.
        """
        if x.shape[-1] != self.in_channels:
            raise ValueError(f"expected {self.in_channels} input channels, got {x.shape}")
        block_cls = {"basic": BasicBlock, "bottleneck": Bottleneck}[self.block]
        if self.deep_stem:
            half = self.stem_width // 2
            x = layers.ConvBN(half, 3, 2, bn_mode=self.bn_mode, name="stem1")(x, train)
            x = layers.ConvBN(half, 3, bn_mode=self.bn_mode, name="stem2")(x, train)
            x = layers.ConvBN(self.stem_width, 3, bn_mode=self.bn_mode, name="stem3")(x, train)
        else:
            x = layers.ConvBN(self.stem_width, 7, 2, bn_mode=self.bn_mode, name="stem")(x, train)
        features = {"stem": x}
        x = layers.max_pool_3x3_s2(x)
        plan = stage_plan(self.stage_sizes, self.output_stride, self.multi_grid)
        for s, (width, (stride, dilations)) in enumerate(zip(STAGE_WIDTHS, plan)):
            for b, dilation in enumerate(dilations):
                x = block_cls(
                    width,
                    stride=stride if b == 0 else 1,
                    dilation=dilation,
                    avg_down=self.avg_down,
                    bn_mode=self.bn_mode,
                    name=f"layer{s + 1}_{b}",
                )(x, train)
            features[f"layer{s + 1}"] = x
        return features


@BACKBONES.register("resnet34")
class ResNet34(ResNet):
    """ResNet-34 (torchvision layout): basic blocks (3, 4, 6, 3), 7x7 stem."""

    stage_sizes: Sequence[int] = (3, 4, 6, 3)
    block: str = "basic"


@BACKBONES.register("resnet50")
class ResNet50(ResNet):
    """ResNet-50 v1.5 (torchvision layout), optionally atrous (output stride 8/16)."""

    stage_sizes: Sequence[int] = (3, 4, 6, 3)
    block: str = "bottleneck"


@BACKBONES.register("resnet50d")
class ResNet50D(ResNet):
    """ResNet-50-D / mmcls ResNetV1d / timm resnet50d: deep stem (32, 32, 64), avg-down."""

    stage_sizes: Sequence[int] = (3, 4, 6, 3)
    block: str = "bottleneck"
    deep_stem: bool = True
    avg_down: bool = True

"""torchvision checkpoints (resnet34, resnet50, vgg16_bn, DeepLabv3 ASPP) -> jaxmatte backbones."""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np

from jaxmatte.convert import common
from jaxmatte.models import aspp, resnet, vgg
from jaxmatte.registry import CONVERTERS

# Spatial size used only to trace the target module's variable shapes.
TRACE_HW = 64


def resnet_stage_entries(
    stage_sizes: Sequence[int],
    block: str,
    downsample_index: Callable[[int], int],
) -> list[common.Entry]:
    """Rows for layer1..layer4 in torchvision block naming (shared by timm and mmcls).

    Args:
        stage_sizes: blocks per stage.
        block: "basic" (convs 1-2) or "bottleneck" (convs 1-3).
        downsample_index: stage (1-based) -> index of the shortcut conv inside
            `layer{s}.0.downsample` (its BN follows at index + 1).
    """
    n_convs = {"basic": 2, "bottleneck": 3}[block]
    rows = []
    for s, n in enumerate(stage_sizes, start=1):
        for b in range(n):
            name, src = f"layer{s}_{b}", f"layer{s}.{b}"
            for k in range(1, n_convs + 1):
                rows += common.conv_bn_entries((name, f"conv{k}"), f"{src}.conv{k}", f"{src}.bn{k}")
            # Block 0 projects when it strides or widens: always for bottlenecks, from stage 2
            # for basic blocks (64 -> 64 in stage 1).
            if b == 0 and (block == "bottleneck" or s > 1):
                i = downsample_index(s)
                rows += common.conv_bn_entries(
                    (name, "downsample"), f"{src}.downsample.{i}", f"{src}.downsample.{i + 1}"
                )
    return rows


def _torchvision_resnet(
    state_dict: Mapping[str, np.ndarray], module: resnet.ResNet, in_channels: int, widen: str
) -> dict:
    first = lambda w: common.oihw_to_hwio(common.widen_input_channels(w, in_channels, widen))
    table = common.conv_bn_entries(("stem",), "conv1", "bn1", transform=first)
    table += resnet_stage_entries(module.stage_sizes, module.block, lambda s: 0)
    expected = common.expected_shapes(module, (1, TRACE_HW, TRACE_HW, in_channels))
    return common.apply_table(state_dict, table, expected, ignore_prefixes=("fc.",))


@CONVERTERS.register("torchvision_resnet34")
def convert_resnet34(
    state_dict: Mapping[str, np.ndarray], *, in_channels: int = 3, widen: str = "zero"
) -> dict:
    """torchvision `resnet34` -> `ResNet34`; extra input channels zero (TCP: trimap channels).

    Ignores the classifier "fc.*" and "num_batches_tracked".
    """
    module = resnet.ResNet34(in_channels=in_channels)
    return _torchvision_resnet(state_dict, module, in_channels, widen)


@CONVERTERS.register("torchvision_resnet50")
def convert_resnet50(
    state_dict: Mapping[str, np.ndarray], *, in_channels: int = 3, widen: str = "copy"
) -> dict:
    """torchvision `resnet50` -> `ResNet50` (any output stride: dilation has no parameters).

    Extra input channels copy the pretrained RGB kernels cyclically (SGM Net-T: the two
    soft-segmentation channels get the kernels of channels 0 and 1); `widen="zero"` zeroes them.
    """
    module = resnet.ResNet50(in_channels=in_channels)
    return _torchvision_resnet(state_dict, module, in_channels, widen)


@CONVERTERS.register("torchvision_vgg16_bn")
def convert_vgg16_bn(
    state_dict: Mapping[str, np.ndarray], *, in_channels: int = 3, widen: str = "zero"
) -> dict:
    """torchvision `vgg16_bn` features -> `VGG16BN`; extra input channels zero (DMP trimap).

    `features.{i}` = conv, `features.{i+1}` = BN, then ReLU, and a max-pool after each block.
    Ignores the classifier "classifier.*".
    """
    module = vgg.VGG16BN(in_channels=in_channels)
    first = lambda w: common.oihw_to_hwio(common.widen_input_channels(w, in_channels, widen))
    table, index = [], 0
    for i, n in enumerate(module.blocks, start=1):
        for j in range(1, n + 1):
            transform = first if index == 0 else None
            table += common.conv_bn_entries(
                (f"conv{i}_{j}",),
                f"features.{index}",
                f"features.{index + 1}",
                bias=True,
                transform=transform,
            )
            index += 3  # conv, BN, ReLU
        index += 1  # max-pool
    expected = common.expected_shapes(module, (1, TRACE_HW, TRACE_HW, in_channels))
    return common.apply_table(state_dict, table, expected, ignore_prefixes=("classifier.",))


@CONVERTERS.register("torchvision_aspp")
def convert_aspp(
    state_dict: Mapping[str, np.ndarray], *, in_channels: int = 2048, prefix: str = ""
) -> dict:
    """torchvision DeepLabv3 `ASPP` (e.g. `classifier.0.` of deeplabv3_resnet50) -> `ASPP`.

    Targets `aspp.ASPP(use_bias=False)` with the rates read from the module config you build;
    rates have no parameters. Branches: convs.0 (1x1), convs.1-3 (3x3), convs.4 (pooling:
    index 0 is the pool), project.
    """
    n_atrous = (
        sum(1 for k in state_dict if k.startswith(prefix + "convs.") and k.endswith(".0.weight"))
        - 1
    )
    module = aspp.ASPP(use_bias=False, rates=(1,) * n_atrous)
    table = common.conv_bn_entries(("branch0",), "convs.0.0", "convs.0.1")
    for i in range(1, n_atrous + 1):
        table += common.conv_bn_entries((f"branch{i}",), f"convs.{i}.0", f"convs.{i}.1")
    p = n_atrous + 1
    table += common.conv_bn_entries(("pool",), f"convs.{p}.1", f"convs.{p}.2")
    table += common.conv_bn_entries(("project",), "project.0", "project.1")
    expected = common.expected_shapes(module, (1, 8, 8, in_channels))
    return common.apply_table(state_dict, table, expected, prefix=prefix)

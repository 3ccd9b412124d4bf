"""timm `resnet50d` checkpoints -> `ResNet50D`."""

from __future__ import annotations

from typing import Mapping

import numpy as np

from jaxmatte.convert import common
from jaxmatte.convert.torchvision import TRACE_HW, resnet_stage_entries
from jaxmatte.models import resnet
from jaxmatte.registry import CONVERTERS


@CONVERTERS.register("timm_resnet50d")
def convert_resnet50d(
    state_dict: Mapping[str, np.ndarray], *, in_channels: int = 3, widen: str = "zero"
) -> dict:
    """timm `resnet50d` -> `ResNet50D`; extra input channels zero (LSA: the trimap channel).

    Layout: deep stem `conv1.{0,3,6}` (convs) with BNs `conv1.{1,4}` and `bn1`; every stage's
    shortcut is `downsample.1` (conv) / `downsample.2` (BN), index 0 being the avg-pool (an
    Identity in stage 1). Ignores the classifier "fc.*".
    """
    module = resnet.ResNet50D(in_channels=in_channels)
    first = lambda w: common.oihw_to_hwio(common.widen_input_channels(w, in_channels, widen))
    table = common.conv_bn_entries(("stem1",), "conv1.0", "conv1.1", transform=first)
    table += common.conv_bn_entries(("stem2",), "conv1.3", "conv1.4")
    table += common.conv_bn_entries(("stem3",), "conv1.6", "bn1")
    table += resnet_stage_entries(module.stage_sizes, module.block, lambda s: 1)
    expected = common.expected_shapes(module, (1, TRACE_HW, TRACE_HW, in_channels))
    return common.apply_table(state_dict, table, expected, ignore_prefixes=("fc.",))

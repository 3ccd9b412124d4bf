"""mmcls `ResNetV1d` checkpoints (LSA's encoder, ImageNet `resnetv1d50_b32x8`) -> `ResNet50D`."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from jaxmatte.convert import common
from jaxmatte.convert.torchvision import TRACE_HW, resnet_stage_entries
from jaxmatte.models import resnet
from jaxmatte.registry import CONVERTERS

DEFAULT_PREFIX = "backbone."
DEFAULT_IGNORED = ("head.",)


@CONVERTERS.register("mmcls_resnetv1d")
def convert_resnetv1d(
    state_dict: Mapping[str, np.ndarray],
    *,
    in_channels: int = 3,
    widen: str = "zero",
    prefix: str = DEFAULT_PREFIX,
    ignore_prefixes: Sequence[str] = DEFAULT_IGNORED,
) -> dict:
    """mmcls `ResNetV1d(depth=50)` under `prefix` -> `ResNet50D`.

    Extra input channels are zero (LSA: the stem conv becomes (32, 4, 3, 3) with channel 3, the
    trimap, zero); a checkpoint that already has `in_channels` inputs is taken as is.
    Layout: stem `stem.{0,1,2}.conv` / `stem.{0,1,2}.bn`; the shortcut indices are shifted
    between stages: stage 1 (stride 1, no avg-pool) has `downsample.0` (conv) / `downsample.1`
    (BN), stages 2-4 `downsample.1` / `downsample.2` (index 0 is the avg-pool). Keys outside
    `prefix` must start with one of `ignore_prefixes` (default: the ImageNet classifier "head.").

    References: spec lsa.md Sec. 3.1; mmcls `ResNetV1d`, `ResLayer` (avg_down).
    """
    module = resnet.ResNet50D(in_channels=in_channels)
    first = lambda w: common.oihw_to_hwio(common.widen_input_channels(w, in_channels, widen))
    table = []
    for i in range(3):
        transform = first if i == 0 else None
        table += common.conv_bn_entries(
            (f"stem{i + 1}",), f"stem.{i}.conv", f"stem.{i}.bn", transform=transform
        )
    table += resnet_stage_entries(module.stage_sizes, module.block, lambda s: 0 if s == 1 else 1)
    expected = common.expected_shapes(module, (1, TRACE_HW, TRACE_HW, in_channels))
    return common.apply_table(
        state_dict, table, expected, prefix=prefix, ignore_prefixes=ignore_prefixes
    )

"""ViTMatte-S: the ViT-S/16 backbone plus the Detail Capture decoder (RGB or RGB + trimap input)."""

from __future__ import annotations

import functools
from typing import Any, Dict, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxmatte.models import encode
from jaxmatte.models.resize import resize_2d
from jaxmatte.models.vit import ViT, torch_default_bias, torch_default_kernel
from jaxmatte.registry import MODELS

BN_MOMENTUM = 0.9  # Flax convention; = PyTorch momentum 0.1
BN_EPS = 1e-5
PATCH = 16  # ViT-S/16 patches; the 4 stride-2 ConvStream/fusion levels also divide 16


def _batch_norm(train: bool, dtype: Any, name: str) -> nn.BatchNorm:
    return nn.BatchNorm(
        use_running_average=not train,
        momentum=BN_MOMENTUM,
        epsilon=BN_EPS,
        dtype=dtype,
        use_fast_variance=False,
        name=name,
    )


class ConvBNReLU(nn.Module):
    """3x3 conv (no bias, PyTorch default init) -> BatchNorm -> ReLU."""

    features: int
    stride: int = 1
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
        s = self.stride
        x = nn.Conv(
            self.features,
            (3, 3),
            strides=(s, s),
            padding=((1, 1), (1, 1)),
            use_bias=False,
            dtype=self.dtype,
            kernel_init=torch_default_kernel,
            name="conv",
        )(x)
        return nn.relu(_batch_norm(train, self.dtype, "bn")(x))


class MattingHead(nn.Module):
    """3x3 conv (bias) -> BN -> ReLU -> 1x1 conv (bias) to one logit channel."""

    mid: int = 16
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
        c = x.shape[-1]
        conv = functools.partial(nn.Conv, dtype=self.dtype, kernel_init=torch_default_kernel)
        x = conv(
            self.mid,
            (3, 3),
            padding=((1, 1), (1, 1)),
            bias_init=torch_default_bias(c * 9),
            name="conv1",
        )(x)
        x = nn.relu(_batch_norm(train, self.dtype, "bn")(x))
        return conv(1, (1, 1), bias_init=torch_default_bias(self.mid), name="conv2")(x)


class DetailCapture(nn.Module):
    """ConvStream on the input image + fusion blocks upsampling the ViT features; returns logits.

    References:
      Yao et al., ViTMatte (2023) 3.3; spec ddc_vitmatte.md 4.3.
    """

    convstream_out: Sequence[int] = (48, 96, 192)
    fusion_out: Sequence[int] = (256, 128, 64, 32)
    head_mid: int = 16
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, features: jnp.ndarray, images: jnp.ndarray, train: bool) -> jnp.ndarray:
        """Args: features [B, H/16, W/16, C], images [B, H, W, C_in]. Returns [B, H, W, 1]."""
        details = [images]  # D0 .. D3
        for j, ch in enumerate(self.convstream_out):
            conv = ConvBNReLU(ch, stride=2, dtype=self.dtype, name=f"convstream_{j}")
            details.append(conv(details[-1], train))
        x = features
        for k, ch in enumerate(self.fusion_out):
            up = resize_2d(x, (2 * x.shape[1], 2 * x.shape[2]), method="linear")
            x = jnp.concatenate([details[-(k + 1)], up], axis=-1)  # detail first
            x = ConvBNReLU(ch, stride=1, dtype=self.dtype, name=f"fusion_{k}")(x, train)
        return MattingHead(self.head_mid, self.dtype, name="head")(x, train)


@MODELS.register("vitmatte_s")
class ViTMatte(nn.Module):
    """ViTMatte-S. `in_channels=3`: RGB only (DDC; the trimap is ignored); 4: RGB + trimap.

    Call: `model.apply(variables, {"image": [B,H,W,3] (, "trimap": [B,H,W,1])}, train=bool,
    mutable=["batch_stats"] when training)` -> `{"alpha": [B,H,W,1] in [0,1], "logits": ...}`.
    H and W must divide by 16; the inference procedure (`pad_apply`, multiple 32, ViTMatte's
    pad quirk) pads whole images and crops the output back.

    References:
      Yao et al., "ViTMatte" (2023); Liu et al., "Training Matting Models without Alpha Labels"
      (AAAI 2025); spec ddc_vitmatte.md 4.
    """

    in_channels: int = 3
    dtype: Any = jnp.float32  # compute dtype (a jnp dtype or its name); params stay float32
    global_attn: str = "full"
    # backbone (ViT-S/16 defaults; smaller values only for tests and tiny configs)
    dim: int = 384
    depth: int = 12
    num_heads: int = 6
    mlp_ratio: float = 4.0
    window_size: int = 14
    window_blocks: Sequence[int] = (0, 1, 3, 4, 6, 7, 9, 10)
    residual_blocks: Sequence[int] = (2, 5, 8, 11)
    img_size: int = 512
    pretrain_img_size: int = 224
    # decoder
    convstream_out: Sequence[int] = (48, 96, 192)
    fusion_out: Sequence[int] = (256, 128, 64, 32)
    head_mid: int = 16

    @property
    def inputs(self) -> tuple[str, ...]:
        """RGB only (DDC: trimaps are labels, not inputs), or RGB + scalar trimap (ViTMatte)."""
        return ("image",) if self.in_channels == 3 else ("image", "trimap")

    @nn.compact
    def __call__(
        self, batch: Mapping[str, jnp.ndarray], train: bool = False
    ) -> Dict[str, jnp.ndarray]:
        if self.in_channels not in (3, 4):
            raise ValueError(f"vitmatte_s supports in_channels 3 or 4, got {self.in_channels}")
        x = encode.stack(batch, self.inputs)
        dtype = jnp.dtype(self.dtype)
        h, w = x.shape[1:3]
        if h % PATCH or w % PATCH:
            raise ValueError(
                f"vitmatte_s needs H and W divisible by {PATCH}, got {h}x{w}: pad with the "
                "inference procedure (config.inference, pad_apply) before calling the model"
            )
        x = x.astype(dtype)
        backbone = ViT(
            in_channels=self.in_channels,
            dim=self.dim,
            depth=self.depth,
            num_heads=self.num_heads,
            mlp_ratio=self.mlp_ratio,
            window_size=self.window_size,
            window_blocks=tuple(self.window_blocks),
            residual_blocks=tuple(self.residual_blocks),
            img_size=self.img_size,
            pretrain_img_size=self.pretrain_img_size,
            global_attn=self.global_attn,
            dtype=dtype,
            name="backbone",
        )
        features = backbone(x, train=train)["vit"]
        decoder = DetailCapture(
            tuple(self.convstream_out), tuple(self.fusion_out), self.head_mid, dtype, name="decoder"
        )
        logits = decoder(features, x, train)
        logits = logits.astype(jnp.float32)
        return {"alpha": jax.nn.sigmoid(logits), "logits": logits}

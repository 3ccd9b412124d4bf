"""SGM Net-M: GCA-style spectral-norm U-Net with one light-weight non-local block + refinement."""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxmatte import conventions
from jaxmatte.models import encode
from jaxmatte.models.nonlocal_attention import LightweightNonLocal, nearest_downsample
from jaxmatte.models.spectral_norm import SpectralNorm
from jaxmatte.registry import MODELS

FINALS = ("paper", "gca")
REFINE_INPUTS = ("alpha", "alpha+rgb")
# Net-M's total stride (five stride-2 stages): the inference procedure pads to this multiple.
NET_M_STRIDE = 32
LEAKY_SLOPE = 0.2  # GCA's LeakyReLU slope (sgm.md §3.3)

xavier = nn.initializers.xavier_uniform()


def _bn(train: bool, name: str, dtype, zero: bool = False) -> nn.BatchNorm:
    return nn.BatchNorm(
        use_running_average=not train,
        momentum=conventions.BN_MOMENTUM,
        epsilon=conventions.BN_EPSILON,
        scale_init=nn.initializers.zeros if zero else nn.initializers.ones,
        dtype=dtype,
        name=name,
    )


class SNConv(nn.Module):
    """Spectral-normalised conv (PyTorch padding (k-1)//2) or 4x4/2 transposed conv (padding 1).

    The power-iteration vector lives in "batch_stats" and advances only when `train`.
    """

    features: int
    kernel: int = 3
    stride: int = 1
    use_bias: bool = False
    transpose: bool = False
    dtype: str = "float32"

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        k = (self.kernel, self.kernel)
        if self.transpose:  # torch ConvTranspose2d(k=4, s=2, p=1): flax padding k - 1 - p
            p = self.kernel - 2
            layer = nn.ConvTranspose(
                self.features,
                k,
                strides=(self.stride, self.stride),
                padding=((p, p), (p, p)),
                use_bias=self.use_bias,
                transpose_kernel=True,
                kernel_init=xavier,
                dtype=self.dtype,
                name="conv",
            )
        else:
            p = (self.kernel - 1) // 2
            layer = nn.Conv(
                self.features,
                k,
                strides=(self.stride, self.stride),
                padding=((p, p), (p, p)),
                use_bias=self.use_bias,
                kernel_init=xavier,
                dtype=self.dtype,
                name="conv",
            )
        return SpectralNorm(layer, name="sn")(x, update_stats=train)


class ResBlock(nn.Module):
    """ResBlocks of Fig. S5-S7: conv(+SN+BN+act) -> conv(+SN+BN), shortcut, act(sum).

    mode "down": conv1 3x3 stride `stride`, shortcut 2x2 avg pool -> SNConv 1x1 -> BN, ReLU.
    mode "up": conv1 = 4x4/2 SN deconv (in -> in), shortcut nearest x2 -> SNConv 1x1 -> BN,
    LeakyReLU (0.2). Stride-1 blocks whose channels change also project (GCA). The last BN has
    γ = 0 at init (GCA), so every block starts as its shortcut.
    """

    features: int
    stride: int = 1
    mode: str = "down"
    dtype: str = "float32"

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        up = self.mode == "up"
        act = (lambda t: nn.leaky_relu(t, LEAKY_SLOPE)) if up else nn.relu
        c_in = x.shape[-1]
        if up and self.stride == 2:
            out = SNConv(c_in, 4, 2, transpose=True, dtype=self.dtype, name="conv1")(x, train)
        else:
            mid = c_in if up else self.features
            s = 1 if up else self.stride
            out = SNConv(mid, 3, s, dtype=self.dtype, name="conv1")(x, train)
        out = act(_bn(train, "bn1", self.dtype)(out))
        out = SNConv(self.features, 3, dtype=self.dtype, name="conv2")(out, train)
        out = _bn(train, "bn2", self.dtype, zero=True)(out)
        short = x
        if self.stride != 1 or c_in != self.features:
            if self.stride != 1:
                if up:
                    short = jnp.repeat(jnp.repeat(short, 2, axis=1), 2, axis=2)
                else:
                    short = nn.avg_pool(short, (2, 2), strides=(2, 2))
            short = SNConv(self.features, 1, dtype=self.dtype, name="proj")(short, train)
            short = _bn(train, "proj_bn", self.dtype)(short)
        return act(out + short)


class ShortCut(nn.Module):
    """2 x (SNConv 3x3 -> ReLU -> BN), as printed in Table S4 (GCA's shortcut unit)."""

    features: int
    dtype: str = "float32"

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        for i in range(2):
            x = SNConv(self.features, 3, dtype=self.dtype, name=f"conv{i}")(x, train)
            x = _bn(train, f"bn{i}", self.dtype)(nn.relu(x))
        return x


class Guidance(nn.Module):
    """GCA's image-feature head: 3 x [reflect-pad 1, SNConv 3x3/2, ReLU, BN], output at 1/8."""

    features: Sequence[int] = (16, 32, 128)
    dtype: str = "float32"

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        for i, f in enumerate(self.features):
            x = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
            conv = nn.Conv(f, (3, 3), (2, 2), "VALID", kernel_init=xavier, dtype=self.dtype)
            x = SpectralNorm(conv, name=f"sn{i}")(x, update_stats=train)
            x = _bn(train, f"bn{i}", self.dtype)(nn.relu(x))
        return x


def _conv_bn_relu(x, features, train, name, dtype):
    x = nn.Conv(features, (3, 3), padding=((1, 1), (1, 1)), dtype=dtype, name=name)(x)
    return nn.relu(_bn(train, name + "_bn", dtype)(x))


def bilinear_x2(x: jax.Array) -> jax.Array:
    """2x bilinear upsampling, align_corners=False (our choice, sgm.md §3.5)."""
    b, h, w, c = x.shape
    return jax.image.resize(x, (b, 2 * h, 2 * w, c), "bilinear")


class Refinement(nn.Module):
    """Fig. S8 residual refinement U-Net (BASNet layout): 4 pooled levels, bridge, skip concat.

    Returns the residual [B, H, W, 1]; H, W must be multiples of 16.

    References: sgm.md §3.5.
    """

    width: int = 64
    levels: int = 4
    dtype: str = "float32"

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        dt = self.dtype
        x = nn.Conv(1, (3, 3), padding=((1, 1), (1, 1)), dtype=dt, name="conv0")(x)
        skips = []
        for i in range(self.levels):
            x = _conv_bn_relu(x, self.width, train, f"enc{i + 1}", dt)
            skips.append(x)  # pre-pool activations are the skips (sgm.md §3.5)
            x = nn.max_pool(x, (2, 2), strides=(2, 2))
        x = bilinear_x2(_conv_bn_relu(x, self.width, train, "bridge", dt))
        for i, skip in enumerate(reversed(skips)):
            x = _conv_bn_relu(jnp.concatenate([x, skip], -1), self.width, train, f"dec{i}", dt)
            if i < self.levels - 1:
                x = bilinear_x2(x)
        return nn.Conv(1, (3, 3), padding=((1, 1), (1, 1)), dtype=dt, name="conv_out")(x)


@MODELS.register("sgm_matting")
class SGMMatting(nn.Module):
    """SGM Net-M: Table S4 encoder/decoder (ResBlocks S5-S7, spectral norm), one LNA block at 1/8
    in the encoder, the S8 refinement on the coarse alpha.

    Outputs "coarse_alpha" = (tanh + 1)/2 of the U-Net, "refined_alpha" = coarse + residual
    (unclipped, for the losses), "alpha" = refined clipped to [0, 1] (coarse when `refine` is off).
    `batch["trimap"]` is either labels [B, H, W, 1] (one-hot encoded here) or already 3-channel
    (bg, unknown, fg) probabilities (joint inference with ji_trimap="soft").

    Attributes:
      width: base channels (32 in Table S4; stages use width x (1, 1, 2, 4, 8, 16)).
      encoder_blocks: blocks of the four encoder groups ((3, 4, 4, 2), the first group without
        downsampling; the others count their downsampling block).
      decoder_blocks: blocks of the four decoder groups ((2, 3, 3, 2), each counting its
        upsampling block).
      stem_relu: ReLU after the stem BNs (GCA, our choice; False = literal table).
      final: "paper" (SNConv 3x3 with bias -> BN(1)) or "gca" (plain conv with bias).
      refine: the S8 refinement module (False = the NLM ablation).
      refine_width: refinement channels (64).
      refine_in: "alpha" (paper reading) or "alpha+rgb" (our option).
      lna: keyword overrides of `LightweightNonLocal` (region_scale_on, dropout_rate, ...).
      dtype: compute dtype ("bfloat16" works; params stay float32, outputs float32).

    References: Zhou et al., SGM (arXiv 2103.17020), Sec. 3.2, Fig. S4-S8; sgm.md §3.
    """

    width: int = 32
    encoder_blocks: Sequence[int] = (3, 4, 4, 2)
    decoder_blocks: Sequence[int] = (2, 3, 3, 2)
    stem_relu: bool = True
    final: str = "paper"
    refine: bool = True
    refine_width: int = 64
    refine_in: str = "alpha"
    lna: dict | None = None
    dtype: str = "float32"

    inputs = ("image", "trimap")

    @nn.compact
    def __call__(self, batch, train: bool = False) -> dict[str, jax.Array]:
        if self.final not in FINALS:
            raise ValueError(f"final {self.final!r} not in {FINALS}")
        if self.refine_in not in REFINE_INPUTS:
            raise ValueError(f"refine_in {self.refine_in!r} not in {REFINE_INPUTS}")
        dt = jnp.dtype(self.dtype)
        image = batch["image"]
        tri = batch["trimap"]
        tri = encode.trimap_onehot(tri) if tri.shape[-1] == 1 else tri
        h, w = image.shape[1:3]
        if h % NET_M_STRIDE or w % NET_M_STRIDE:
            raise ValueError(f"Net-M needs H, W multiples of {NET_M_STRIDE}, got {(h, w)}")
        cw = self.width
        stem_act = nn.relu if self.stem_relu else (lambda t: t)
        x = jnp.concatenate([image, tri.astype(image.dtype)], -1).astype(dt)

        # Encoder (Table S4).
        s1 = ShortCut(cw, dt, name="shortcut1")(x, train)
        x = stem_act(
            _bn(train, "conv_s1_bn", dt)(SNConv(cw, 3, 2, dtype=dt, name="conv_s1")(x, train))
        )
        x = stem_act(_bn(train, "conv1_bn", dt)(SNConv(cw, 3, 1, dtype=dt, name="conv1")(x, train)))
        s2 = ShortCut(cw, dt, name="shortcut2")(x, train)
        x = stem_act(
            _bn(train, "conv_s2_bn", dt)(SNConv(2 * cw, 3, 2, dtype=dt, name="conv_s2")(x, train))
        )
        widths = (2 * cw, 4 * cw, 8 * cw, 16 * cw)
        shortcuts = []
        for g, (n, f) in enumerate(zip(self.encoder_blocks, widths)):
            for i in range(n):
                stride = 2 if g > 0 and i == 0 else 1
                x = ResBlock(f, stride, "down", dt, name=f"enc{g + 1}_{i}")(x, train)
            if g == 1:  # the LNA block after ResBlocks2, at 1/8 (Table S4)
                image_feat = Guidance((cw // 2, cw, 4 * cw), dt, name="guidance")(
                    image.astype(dt), train
                )
                unknown = nearest_downsample(tri[..., 1], 8)
                x = LightweightNonLocal(dtype=self.dtype, name="lna", **(self.lna or {}))(
                    x, image_feat, unknown, train
                )
            if g < 3:
                shortcuts.append(ShortCut(f, dt, name=f"shortcut{g + 3}")(x, train))

        # Decoder: upsample groups 16cw -> 8cw -> 4cw -> 2cw -> cw, adding s5, s4, s3, s2.
        dec_widths = (8 * cw, 4 * cw, 2 * cw, cw)
        skips = shortcuts[::-1] + [s2]
        for g, (n, f) in enumerate(zip(self.decoder_blocks, dec_widths)):
            for i in range(n):
                x = ResBlock(f, 2 if i == 0 else 1, "up", dt, name=f"dec{g + 1}_{i}")(x, train)
            x = x + skips[g]
        x = SNConv(cw, 4, 2, transpose=True, dtype=dt, name="deconv1")(x, train)
        x = nn.leaky_relu(_bn(train, "deconv1_bn", dt)(x), LEAKY_SLOPE) + s1
        if self.final == "paper":
            x = SNConv(1, 3, use_bias=True, dtype=dt, name="conv_out")(x, train)
            x = _bn(train, "conv_out_bn", dt)(x)
        else:
            x = nn.Conv(1, (3, 3), padding=((1, 1), (1, 1)), dtype=dt, name="conv_out")(x)
        coarse = ((jnp.tanh(x) + 1.0) / 2.0).astype(jnp.float32)
        out = {"coarse_alpha": coarse}
        if not self.refine:
            out["alpha"] = coarse
            return out
        r_in = coarse if self.refine_in == "alpha" else jnp.concatenate([coarse, image], -1)
        residual = Refinement(self.refine_width, dtype=dt, name="refine")(r_in.astype(dt), train)
        refined = coarse + residual.astype(jnp.float32)
        out["refined_alpha"] = refined
        out["alpha"] = jnp.clip(refined, 0.0, 1.0)
        return out

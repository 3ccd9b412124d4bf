"""SGM Net-T: atrous ResNet-50 (OS 16, multi-grid) + ASPP + the Table S3 decoder, 3-class trimap."""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxmatte.models import layers
from jaxmatte.models.aspp import ASPP
from jaxmatte.models.resize import is_static, resize_axis
from jaxmatte.models.resnet import ResNet
from jaxmatte.registry import MODELS

NUM_CLASSES = 3  # (bg, unknown, fg), the one-hot order Net-M reads (sgm.md §2.2)


def align_corners_taps(in_size: int, out_size: int, xp=np):
    """(i0 [out], i1 [out], float32 lam [out]): x[i0] * (1 - lam) + x[i1] * lam, align_corners.

    ``xp=jnp`` (inside ``jax.enable_x64(True)``) does the same float64 arithmetic in the graph,
    for ``jax.export`` symbolic sizes, and so gives the same bits as numpy.
    """
    if xp is np:
        scale = (in_size - 1) / max(out_size - 1, 1)
    else:
        top = jnp.maximum(jnp.asarray(out_size - 1, jnp.float64), 1.0)
        scale = jnp.asarray(in_size - 1, jnp.float64) / top
    src = xp.arange(out_size, dtype=xp.float64) * scale
    i0 = xp.minimum(xp.floor(src).astype(xp.int64), in_size - 1)
    i1 = xp.minimum(i0 + 1, in_size - 1)
    return i0, i1, (src - i0).astype(xp.float32)


def resize_axis_align_corners(x: jax.Array, out_size: int, axis: int) -> jax.Array:
    """Linear resizing of one axis with align_corners=True (torch `UpsamplingBilinear2d`).

    ``out_size`` and ``x.shape[axis]`` may be ``jax.export`` symbolic sizes (taps in the graph).
    """
    in_size = x.shape[axis]
    if in_size == out_size:  # symbolic sizes compare equal only when provably equal
        return x
    if is_static(in_size, out_size):
        i0, i1, lam = (jnp.asarray(a) for a in align_corners_taps(in_size, out_size))
    else:
        with jax.enable_x64(True):
            i0, i1, lam = align_corners_taps(in_size, out_size, xp=jnp)
            i0, i1 = i0.astype(jnp.int32), i1.astype(jnp.int32)
    # A barrier in both cases: XLA then compiles the same kernel for constant (static) and
    # computed (symbolic) taps, so an export matches the jit bit for bit.
    i0, i1, lam = jax.lax.optimization_barrier((i0, i1, lam))
    shape = [1] * x.ndim
    shape[axis] = out_size
    lam = lam.reshape(shape).astype(x.dtype)
    return jnp.take(x, i0, axis=axis) * (1 - lam) + jnp.take(x, i1, axis=axis) * lam


def resize_bilinear(x: jax.Array, hw: tuple[int, int], align_corners: bool) -> jax.Array:
    """[B, H, W, C] -> [B, h, w, C], torch bilinear with either corner convention."""
    if align_corners:
        return resize_axis_align_corners(resize_axis_align_corners(x, hw[0], 1), hw[1], 2)
    return resize_axis(resize_axis(x, hw[0], 1), hw[1], 2)


def _cast_floats(tree, dtype):
    return jax.tree.map(
        lambda p: p.astype(dtype) if jnp.issubdtype(p.dtype, jnp.floating) else p, tree
    )


@MODELS.register("sgm_trimap")
class SGMTrimap(nn.Module):
    """SGM Net-T (Table S3): RGB + soft segmentation (5 ch) -> 3-class trimap logits.

    Encoder: `ResNet` ("backbone") with output stride 16 and last-stage multi-grid (1, 2, 1).
    Decoder: ASPP (+ dropout 0.5) -> x4 bilinear; 48-ch 1x1 shortcuts of layer1 and of x2-upsampled
    layer2; concat -> 3x3 conv + BN + ReLU -> dropout -> 3x3 conv + BN + ReLU -> dropout ->
    x4 bilinear -> 1x1 conv -> 3 logits (the upsample before the classifier, as the paper says).
    Input: concat(batch["image"], batch["softseg"]) with softseg = (P_bg, P_fg) (our choice).
    Returns {"trimap_logits": [B, H, W, 3] float32} for classes (bg, unknown, fg); no "alpha".

    Attributes:
      stage_sizes: ResNet blocks per stage ((3, 4, 6, 3) = ResNet-50).
      block: "bottleneck" (ResNet-50) or "basic" (small test configurations).
      multi_grid: last-stage dilation multipliers ((1, 2, 1), Table S3).
      stem_width: backbone stem channels (64).
      aspp_features: ASPP and decoder conv channels (256).
      aspp_rates: ASPP dilations ((6, 12, 18), code lineage; (1, 1, 1) = fully literal).
      aspp_dropout: dropout after ASPP (0.5, Table S3).
      shortcut_features: channels of both 1x1 shortcuts (48).
      decoder_dropout: dropout after the two 3x3 decoder convs ((0.5, 0.1); the first from the
        code lineage, the table gives only ratio2 = 0.1).
      align_corners: bilinear convention (True, code lineage `UpsamplingBilinear2d`).
      bn_mode: see `layers.batch_norm` (momentum 0.9 in Flax = PyTorch's 0.1, our choice).
      dtype: compute dtype; backbone and ASPP params are cast to it on read, stats stay float32.

    References: Zhou et al., SGM (arXiv 2103.17020), Sec. 3.1, Fig. S3; sgm.md §2.1-2.2.
    """

    stage_sizes: Sequence[int] = (3, 4, 6, 3)
    block: str = "bottleneck"
    multi_grid: Sequence[int] = (1, 2, 1)
    stem_width: int = 64
    aspp_features: int = 256
    aspp_rates: Sequence[int] = (6, 12, 18)
    aspp_dropout: float = 0.5
    shortcut_features: int = 48
    decoder_dropout: Sequence[float] = (0.5, 0.1)
    align_corners: bool = True
    bn_mode: str = "train"
    dtype: str = "float32"

    inputs = ("image", "softseg")
    output_stride = 16

    @nn.compact
    def __call__(self, batch, train: bool = False) -> dict[str, jax.Array]:
        dt = jnp.dtype(self.dtype)
        x = jnp.concatenate([batch["image"], batch["softseg"]], axis=-1)
        h, w = x.shape[1:3]
        if h % self.output_stride or w % self.output_stride:
            raise ValueError(f"Net-T needs H, W multiples of {self.output_stride}, got {(h, w)}")

        def mixed(cls):
            # ResNet and ASPP have no dtype attribute: cast their params on read so that their
            # convs run in the compute dtype while the stored params stay float32.
            if dt == jnp.float32:
                return cls
            return nn.map_variables(
                cls,
                "params",
                trans_in_fn=lambda p: _cast_floats(p, dt),
                init=self.is_initializing(),
            )

        feats = mixed(ResNet)(
            stage_sizes=tuple(self.stage_sizes),
            block=self.block,
            stem_width=self.stem_width,
            in_channels=5,
            output_stride=self.output_stride,
            multi_grid=tuple(self.multi_grid),
            bn_mode=self.bn_mode,
            name="backbone",
        )(x.astype(dt), train)
        aspp = mixed(ASPP)(
            features=self.aspp_features,
            rates=tuple(self.aspp_rates),
            use_bias=True,
            dropout_rate=self.aspp_dropout,
            bn_mode=self.bn_mode,
            name="aspp",
        )(feats["layer4"], train)
        l1 = feats["layer1"]
        quarter = l1.shape[1:3]
        ac = self.align_corners

        def conv_bn(t, features, kernel, name):
            t = nn.Conv(
                features,
                (kernel, kernel),
                padding=[((kernel - 1) // 2,) * 2] * 2,
                kernel_init=layers.kaiming_fan_out,
                dtype=dt,
                name=name,
            )(t)
            return nn.relu(layers.batch_norm(self.bn_mode, train, name + "_bn", dtype=dt)(t))

        up = resize_bilinear(aspp.astype(dt), quarter, ac)
        s1 = conv_bn(l1.astype(dt), self.shortcut_features, 1, "shortcut1")
        l2 = resize_bilinear(feats["layer2"].astype(dt), quarter, ac)
        s2 = conv_bn(l2, self.shortcut_features, 1, "shortcut2")
        y = jnp.concatenate([up, s2, s1], axis=-1)
        for i, rate in enumerate(self.decoder_dropout):
            y = conv_bn(y, self.aspp_features, 3, f"cat_conv{i}")
            y = nn.Dropout(rate, deterministic=not train, name=f"cat_dropout{i}")(y)
        y = resize_bilinear(y, (h, w), ac)
        logits = nn.Conv(
            NUM_CLASSES, (1, 1), kernel_init=layers.kaiming_fan_out, dtype=dt, name="classifier"
        )(y)
        return {"trimap_logits": logits.astype(jnp.float32)}

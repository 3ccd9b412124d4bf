"""LSA-Matting: 4-channel ResNet-50-D encoder, eSE U-Net decoder with BRMs, 3-conv head."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxmatte.models import canonical_conv, layers, resize
from jaxmatte.models import encode as enc
from jaxmatte.models.resnet import ResNet50D
from jaxmatte.registry import MODELS

# Decoder stages in order, finest last; a BRM follows the first four (l = 5, 4, 3, 2).
STAGES = ("d5", "d4", "d3", "d2", "d1")
BRM_STAGES = STAGES[:4]
# Encoder skip feeding each decoder stage after d5 (spec lsa.md §3.2 table).
SKIPS = {"d4": "stage4", "d3": "stage3", "d2": "stage2", "d1": "stage1"}
TRIMAP_CODES = ("code", "label")

xavier = nn.initializers.xavier_uniform()


def _conv_fn(canonical_conv_grad: bool):
    """`nn.Conv`'s conv_general_dilated: see `LSA.canonical_conv_grad`."""
    return canonical_conv.conv_general_dilated if canonical_conv_grad else None


def hard_sigmoid(x: jax.Array) -> jax.Array:
    """h(z) = ReLU6(z + 3) / 6 (VoVNet eSE)."""
    return jnp.clip(x + 3.0, 0.0, 6.0) / 6.0


def upsample_nearest_2x(x: jax.Array) -> jax.Array:
    """Nearest x2 on [B, H, W, C] (an exact repeat, as torch's nearest at integer scale)."""
    return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


def cubic_matrix(in_size: int, out_size: int) -> np.ndarray:
    """[out, in] float32 matrix of torch's bicubic resize of one axis (a = −0.75,
    align_corners=False).

    Built from `resize.cubic_taps` (border taps clamped, their weights summed), so a matrix
    product reproduces `resize.resize_axis(..., "cubic")`; unlike its gathers, the product
    differentiates to a product, which keeps BR's 100 backward passes cheap. The BRM grids are
    at most 64 wide, so the dense matrices stay small.
    """
    idx, w = resize.cubic_taps(in_size, out_size)
    mat = np.zeros((out_size, in_size), np.float64)
    np.add.at(mat, (np.repeat(np.arange(out_size), idx.shape[1]), idx.ravel()), w.ravel())
    return mat.astype(np.float32)


def _cubic_matrix_any(in_size: Any, out_size: Any, dtype: Any) -> jax.Array:
    """`cubic_matrix` as an array; at ``jax.export`` symbolic sizes built in the graph with the
    same float64 taps and np.add.at's tap-by-tap summation order. The optimisation barrier makes
    XLA compile the products alike for constant and computed matrices (bit-identical outputs).
    """
    if resize.is_static(in_size, out_size):
        m = jnp.asarray(cubic_matrix(int(in_size), int(out_size)), dtype)
    else:
        with jax.enable_x64(True):
            idx, w = resize.cubic_taps(in_size, out_size, xp=jnp)
            cols = jnp.arange(in_size)
            m = jnp.zeros((out_size, in_size), jnp.float64)
            for k in range(idx.shape[1]):
                m = m + jnp.where(idx[:, k, None] == cols[None, :], w[:, k, None], 0.0)
            m = m.astype(jnp.float32).astype(dtype)
    return jax.lax.optimization_barrier(m)


def bicubic_resize(x: jax.Array, size: Sequence[int]) -> jax.Array:
    """Resizes [B, h, w, C] to `size` like F.interpolate(mode="bicubic", align_corners=False),
    as two matrix products (see `cubic_matrix`)."""
    hi = jax.lax.Precision.HIGHEST
    mh = _cubic_matrix_any(x.shape[1], size[0], x.dtype)
    mw = _cubic_matrix_any(x.shape[2], size[1], x.dtype)
    x = jnp.einsum("oh,bhwc->bowc", mh, x, precision=hi)
    return jnp.einsum("pw,bowc->bopc", mw, x, precision=hi)


def upsample_bilinear_2x(x: jax.Array) -> jax.Array:
    """F.interpolate(scale_factor=2, mode="bilinear", align_corners=False) on [B, H, W, C].

    At scale 2 every output is 0.75·(nearest input) + 0.25·(next one towards it), the border
    replicated; written with slices so it costs O(HW) forward and backward.
    """
    for axis in (1, 2):
        n = x.shape[axis]
        xp = jnp.concatenate(
            [
                jax.lax.slice_in_dim(x, 0, 1, axis=axis),
                x,
                jax.lax.slice_in_dim(x, n - 1, n, axis=axis),
            ],
            axis=axis,
        )
        prev = jax.lax.slice_in_dim(xp, 0, n, axis=axis)
        nxt = jax.lax.slice_in_dim(xp, 2, n + 2, axis=axis)
        even, odd = 0.25 * prev + 0.75 * x, 0.75 * x + 0.25 * nxt
        x = jnp.stack([even, odd], axis=axis + 1)
        x = x.reshape(x.shape[:axis] + (2 * n,) + x.shape[axis + 2 :])
    return x


def brm_apply(y: jax.Array, a: jax.Array, b: jax.Array) -> jax.Array:
    """BRM: exp(Ĩ(A))·y + Ĩ(B), Ĩ = PyTorch-exact bicubic (a = −0.75) to y's size.

    Args:
      y: [B, h, w, C] decoder feature.
      a, b: [g, g, C] or [B, g, g, C] float32 (g = 2^(8 − l), independent of the image size).

    Returns:
      [B, h, w, C] in y's dtype; exactly y when a = b = 0.

    References: spec lsa.md §5.3; paper Sec. 4.3.
    """
    size = y.shape[1:3]
    a = a if a.ndim == 4 else a[None]
    b = b if b.ndim == 4 else b[None]
    scale = jnp.exp(bicubic_resize(a.astype(jnp.float32), size))
    shift = bicubic_resize(b.astype(jnp.float32), size)
    return (scale * y.astype(jnp.float32) + shift).astype(y.dtype)


class ESEConv(nn.Module):
    """`my_conv`: conv 3x3 (no bias) -> BN -> ReLU -> eSE (GAP -> 1x1 conv -> hard-sigmoid -> x).

    References: spec lsa.md §3.2 (code `decoder_simple.py`); Lee & Park, CenterMask (VoVNetV2 eSE).
    """

    features: int
    bn_mode: str = "train"
    dtype: str = "float32"
    canonical_conv_grad: bool = False

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        conv_fn = _conv_fn(self.canonical_conv_grad)
        x = nn.Conv(
            self.features,
            (3, 3),
            padding=((1, 1), (1, 1)),
            use_bias=False,
            kernel_init=xavier,
            dtype=self.dtype,
            conv_general_dilated=conv_fn,
            name="conv",
        )(x)
        x = layers.batch_norm(self.bn_mode, train, name="bn", dtype=self.dtype)(x)
        x = nn.relu(x)
        gate = nn.Conv(
            self.features,
            (1, 1),
            kernel_init=xavier,
            dtype=self.dtype,
            conv_general_dilated=conv_fn,
            name="ese",
        )(layers.global_mean(x))
        return x * hard_sigmoid(gate)


class LSADecoder(nn.Module):
    """U-Net decoder (concat [skip, nearest-up]) with BRMs after d5..d2, then the head.

    Attributes: see `LSA`.

    References: spec lsa.md §3.2, §5.3.
    """

    widths: Sequence[int] = (512, 256, 128, 64, 64)
    head_width: int = 32
    head_upsample: str = "bilinear"
    use_brm: bool = True
    bn_mode: str = "train"
    dtype: str = "float32"
    canonical_conv_grad: bool = False

    @nn.compact
    def __call__(
        self,
        features: Mapping[str, jax.Array],
        brm: Mapping[str, tuple[jax.Array, jax.Array]] | None = None,
        train: bool = False,
    ) -> jax.Array:
        x = features["stage5"]
        for i, (name, width) in enumerate(zip(STAGES, self.widths)):
            if i:
                skip = features[SKIPS[name]]
                x = jnp.concatenate([skip.astype(self.dtype), upsample_nearest_2x(x)], axis=-1)
            x = ESEConv(width, self.bn_mode, self.dtype, self.canonical_conv_grad, name=name)(
                x, train
            )
            if name in BRM_STAGES and self.use_brm:
                if brm is None:  # training / plain inference: A = B = 0
                    zeros = jnp.zeros((1,) * 3 + x.shape[-1:], jnp.float32)
                    x = brm_apply(x, zeros, zeros)
                else:
                    x = brm_apply(x, *brm[name])
        inp = features["input"]
        if self.head_upsample == "bilinear":
            x = upsample_bilinear_2x(x)
        elif self.head_upsample == "nearest":
            x = upsample_nearest_2x(x)
        else:
            raise ValueError(
                f"head_upsample must be 'bilinear' or 'nearest', got {self.head_upsample!r}"
            )
        x = jnp.concatenate([inp.astype(self.dtype), x.astype(self.dtype)], axis=-1)
        for j, out in enumerate((self.head_width, self.head_width, 1)):
            x = nn.Conv(
                out,
                (3, 3),
                padding=((1, 1), (1, 1)),
                kernel_init=xavier,
                dtype=self.dtype,
                conv_general_dilated=_conv_fn(self.canonical_conv_grad),
                name=f"head{j}",
            )(x)
            x = nn.relu(x) if j < 2 else x
        return x


@MODELS.register("lsa")
class LSA(nn.Module):
    """LSA-Matting (Wang et al., arXiv 2112.13809): alpha from image + trimap.

    `encode` runs the ResNet-50-D once; `decode` runs the decoder (with optional BRM tensors
    A, B), so backpropagating refinement (`jaxmatte.inference.refine`) differentiates the decoder
    only. `__call__` = decode(encode(batch)).

    Attributes:
      decoder_widths: widths of d5..d1 (spec §3.2: 512/256/128/64/64).
      head_width: hidden width of the 3-conv head (32).
      head_upsample: "bilinear" (code, torch align_corners=False) up-sampling of d1 in the head.
      encoder_blocks: bottleneck blocks per stage ((3, 4, 6, 3) = ResNet-50-D; smaller for tests).
      encoder_block: "bottleneck" (ResNet-50-D) or "basic" (tests only).
      stem_width: deep-stem output width (64).
      trimap_code: "code": trimap channel T/255 = 0, 128/255, 1 (spec §3.3, code); "label": the
        paper's {0, 0.5, 1}.
      use_brm: apply the BRMs (identity at A = B = 0, spec §5.3); False drops them entirely.
      brm_grids: BRM grid side for d5, d4, d3, d2 (2^(8 − l): 8, 16, 32, 64; fixed, spec §5.3).
      bn_mode: see `layers.batch_norm` (spec §3.1: BN not frozen).
      dtype: compute dtype of the decoder and head ("float32" or "bfloat16"). The encoder runs
        at the dtype of `ResNet50D`, which has no dtype attribute yet (float32).
      canonical_conv_grad: the decoder's and head's convolutions take their input gradient from
        an NHWC/HWIO convolution (`canonical_conv`); same values. BR sets it: XLA:CPU runs
        autodiff's form of that gradient several times slower inside `lax.fori_loop`.

    Outputs: {"alpha": clip(raw, 0, 1) [B, H, W, 1], "alpha_raw": the unactivated output (the
    loss reads it; spec §3.2 "no output activation")}, float32.

    References: spec lsa.md §3; paper Sec. 3, Fig. 1.
    """

    decoder_widths: Sequence[int] = (512, 256, 128, 64, 64)
    head_width: int = 32
    head_upsample: str = "bilinear"
    encoder_blocks: Sequence[int] = (3, 4, 6, 3)
    encoder_block: str = "bottleneck"
    stem_width: int = 64
    trimap_code: str = "code"
    use_brm: bool = True
    brm_grids: Sequence[int] = (8, 16, 32, 64)
    bn_mode: str = "train"
    dtype: str = "float32"
    canonical_conv_grad: bool = False

    inputs = ("image", "trimap")
    stride = 32

    def brm_shapes(self) -> dict[str, tuple[int, int, int]]:
        """{stage: (g, g, C)} of the BRM tensors A and B (spec §5.3)."""
        return {s: (g, g, c) for s, g, c in zip(BRM_STAGES, self.brm_grids, self.decoder_widths)}

    def brm_zeros(self, batch_size: int) -> dict[str, tuple[jax.Array, jax.Array]]:
        """Per-image A = B = 0: {stage: ([B, g, g, C], [B, g, g, C])} float32."""
        return {
            s: (jnp.zeros((batch_size,) + shape), jnp.zeros((batch_size,) + shape))
            for s, shape in self.brm_shapes().items()
        }

    def encode(self, batch: Mapping[str, jax.Array], train: bool = False) -> dict[str, jax.Array]:
        """Encoder features {"input" (4-ch), "stage1".."stage5"} (spec §3.1)."""
        return self(batch, train, encode_only=True)

    def decode(
        self,
        features: Mapping[str, jax.Array],
        brm: Mapping[str, tuple[jax.Array, jax.Array]] | None = None,
        train: bool = False,
    ) -> dict[str, jax.Array]:
        """Decoder + head on `encode`'s features; `brm` = {"d5".."d2": (A, B)} or None (zeros)."""
        return self(None, train, features=features, brm=brm)

    @nn.compact
    def __call__(
        self,
        batch: Mapping[str, jax.Array] | None,
        train: bool = False,
        *,
        features: Mapping[str, jax.Array] | None = None,
        brm: Mapping[str, tuple[jax.Array, jax.Array]] | None = None,
        encode_only: bool = False,
    ) -> dict[str, jax.Array]:
        if len(self.decoder_widths) != len(STAGES) or len(self.brm_grids) != len(BRM_STAGES):
            raise ValueError("decoder_widths needs 5 entries and brm_grids 4")
        if brm is not None and not self.use_brm:
            raise ValueError("brm tensors given to a model built with use_brm=False")
        encoder = ResNet50D(
            stage_sizes=tuple(self.encoder_blocks),
            block=self.encoder_block,
            stem_width=self.stem_width,
            in_channels=4,
            bn_mode=self.bn_mode,
            name="encoder",
        )
        decoder = LSADecoder(
            widths=tuple(self.decoder_widths),
            head_width=self.head_width,
            head_upsample=self.head_upsample,
            use_brm=self.use_brm,
            bn_mode=self.bn_mode,
            dtype=self.dtype,
            canonical_conv_grad=self.canonical_conv_grad,
            name="decoder",
        )
        if features is None:
            x = jnp.concatenate([batch["image"], self._trimap(batch["trimap"])], axis=-1)
            h, w = x.shape[1:3]
            if h % self.stride or w % self.stride:
                raise ValueError(f"LSA needs H, W multiples of {self.stride}, got {x.shape}")
            feats = encoder(x, train)
            features = {
                "input": x,
                "stage1": feats["stem"],
                **{f"stage{i + 1}": feats[f"layer{i}"] for i in range(1, 5)},
            }
        if encode_only:
            return dict(features)
        raw = decoder(features, brm, train).astype(jnp.float32)
        return {"alpha": jnp.clip(raw, 0.0, 1.0), "alpha_raw": raw}

    def _trimap(self, trimap: jax.Array) -> jax.Array:
        if self.trimap_code == "code":
            return enc.trimap_code_scaled(trimap)
        if self.trimap_code == "label":
            return trimap
        raise ValueError(f"trimap_code must be one of {TRIMAP_CODES}, got {self.trimap_code!r}")

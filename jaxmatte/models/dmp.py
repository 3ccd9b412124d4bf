"""DMP (Wang et al., IJCAI 2018): SegNet + low-level features -> affinities -> propagation."""

from __future__ import annotations

from typing import Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxmatte import conventions as cv
from jaxmatte.inference import pad as pad_lib
from jaxmatte.models import encode, layers, vgg
from jaxmatte.propagation import laplacian
from jaxmatte.propagation.solve import propagate
from jaxmatte.registry import MODELS

PAIR_FEATURES = ("concat", "absdiff")
TRIMAP_ENCODINGS = ("scalar", "onehot")
# SegNet downsamples 5 times by 2 (dmp.md §2.2).
SEGNET_STRIDE = 2 ** len(vgg.VGG16_BLOCKS)


def _conv_bn_relu(x, features, train, bn_mode, dtype, name):
    """3x3 conv (bias, He-normal) -> BN -> ReLU in `dtype`; children "{name}_conv", "{name}_bn"."""
    x = nn.Conv(
        features,
        (3, 3),
        padding=((1, 1), (1, 1)),
        kernel_init=layers.kaiming_fan_out,
        dtype=dtype,
        name=f"{name}_conv",
    )(x)
    x = layers.batch_norm(bn_mode, train, name=f"{name}_bn", dtype=dtype)(x)
    return nn.relu(x)


class SegNet(nn.Module):
    """SegNet feature branch: VGG16-BN encoder keeping pool indices, mirrored unpooling decoder.

    Decoder stage i (i = 5 .. 1) unpools with the indices of encoder pool i, then runs
    `blocks[i]` conv 3x3 -> BN -> ReLU layers: `blocks[i] - 1` of width `widths[i]` and one of
    width `widths[i - 1]` (`out_features` for i = 1), i.e. SegNet's [512, 512, 512], [512, 512,
    256], [256, 256, 128], [128, 64], [64, T_s] for VGG16 widths. The unpooled maps are sown as
    "intermediates" "unpool{i}" (no cost unless that collection is mutable).

    Attributes:
      out_features: T_s.
      blocks, widths: the VGG16 encoder layout (children "encoder/conv{i}_{j}" as in
        `vgg.VGG16BN`, so its weight converter applies).
      in_channels: input channels (4: RGB + scalar trimap).
      bn_mode: see `layers.batch_norm`.
      dtype: decoder compute dtype (the encoder follows `vgg.VGG16BN`, i.e. its params' dtype).

    References: dmp.md §2.2; Badrinarayanan et al., SegNet, TPAMI 2017, Sec. 3.
    """

    out_features: int = 64
    blocks: Sequence[int] = vgg.VGG16_BLOCKS
    widths: Sequence[int] = vgg.VGG16_WIDTHS
    in_channels: int = 4
    bn_mode: str = "train"
    dtype: str = "float32"

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        """Args: x [B, H, W, in_channels], H and W multiples of 32. Returns [B, H, W, T_s]."""
        enc = vgg.VGG16BN(self.in_channels, self.blocks, self.widths, self.bn_mode, name="encoder")
        feats = enc(x, train)
        n = len(self.blocks)
        y = feats[f"pool{n}"].astype(self.dtype)
        for i in range(n, 0, -1):
            hw = feats[f"block{i}"].shape[1:3]
            y = vgg.max_unpool(y, feats[f"indices{i}"], output_hw=hw)
            self.sow("intermediates", f"unpool{i}", y)
            k = self.blocks[i - 1]
            out_width = self.widths[i - 2] if i > 1 else self.out_features
            for j in range(1, k + 1):
                width = out_width if j == k else self.widths[i - 1]
                y = _conv_bn_relu(y, width, train, self.bn_mode, self.dtype, f"dec{i}_{j}")
        return y


def _shift_hw(f: jax.Array, dy: int, dx: int) -> jax.Array:
    """`laplacian.shift` over the H, W axes of a [B, H, W, C] array."""
    return jnp.moveaxis(laplacian.shift(jnp.moveaxis(f, -1, 1), dy, dx), 1, -1)


def pair_logits(h1: jax.Array, h2: jax.Array, bias: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Edge logits of the paper's shared 1x1 conv over [f_p; f_q], from two per-pixel maps.

    With theta = [theta_1; theta_2], z_pq = theta_1^T f_p + theta_2^T f_q + b, p = left/top,
    q = right/bottom. Only the two [B, H, W] edge maps are formed, never the N_n pair rows.

    Args:
      h1, h2: [B, H, W] theta_1^T f and theta_2^T f.
      bias: scalar b.

    Returns:
      (z_right, z_down) [B, H, W]: z_right[y, x] for edge (y, x)-(y, x+1), z_down[y, x] for
      (y, x)-(y+1, x); the last column / row (no neighbour) hold bias-only filler values that
      `laplacian.grid_laplacian` ignores.

    References: dmp.md §2.5 (efficient form).
    """
    z_right = h1 + laplacian.shift(h2, *laplacian.RIGHT) + bias
    z_down = h1 + laplacian.shift(h2, *laplacian.DOWN) + bias
    return z_right, z_down


class Affinity(nn.Module):
    """Affinity learning module: w_pq = exp(clip(1x1 conv over [f_p; f_q])) per 4-neighbour edge.

    Params: "kernel" [1, 1, 2C, 1] (the paper's 1 x 1 x 2(T_s + T_l) kernel, rows theta_1 for
    f_p then theta_2 for f_q) and a scalar "bias" (one bias; a scale/shift inside the exponential
    would be redundant, dmp.md §2.5). With pair_features="absdiff" (our option) the kernel is
    [1, 1, C, 1] and w = exp(-softplus(theta)^T |f_p - f_q|).

    Attributes:
      pair_features: "concat" (paper) or "absdiff" (our option).
      logit_clip: z is clipped to [-logit_clip, logit_clip] before exp (our choice, 10);
        0 disables it.

    References: dmp.md §2.5; Wang et al. 2018, Sec. 3.2.
    """

    pair_features: str = "concat"
    logit_clip: float = 10.0

    @nn.compact
    def __call__(self, f: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Args: f [B, H, W, C] pixel features (any float dtype; computed in f's dtype).

        Returns: (w_right, w_down) [B, H, W] > 0, the last column / row unused.
        """
        if self.pair_features not in PAIR_FEATURES:
            raise ValueError(f"pair_features must be one of {PAIR_FEATURES}")
        c = f.shape[-1]
        init = nn.initializers.lecun_normal()
        if self.pair_features == "concat":
            kernel = self.param("kernel", init, (1, 1, 2 * c, 1), jnp.float32).astype(f.dtype)
            bias = self.param("bias", nn.initializers.zeros, (), jnp.float32).astype(f.dtype)
            h1 = f @ kernel[0, 0, :c, 0]
            h2 = f @ kernel[0, 0, c:, 0]
            z_right, z_down = pair_logits(h1, h2, bias)
        else:
            kernel = self.param("kernel", init, (1, 1, c, 1), jnp.float32).astype(f.dtype)
            theta = nn.softplus(kernel[0, 0, :, 0])
            z_right = -jnp.abs(f - _shift_hw(f, *laplacian.RIGHT)) @ theta
            z_down = -jnp.abs(f - _shift_hw(f, *laplacian.DOWN)) @ theta
        if self.logit_clip:
            z_right = jnp.clip(z_right, -self.logit_clip, self.logit_clip)
            z_down = jnp.clip(z_down, -self.logit_clip, self.logit_clip)
        return jnp.exp(z_right), jnp.exp(z_down)


@MODELS.register("dmp")
class DMP(nn.Module):
    """DeepMattePropNet: RGB + trimap -> SegNet and low-level features -> affinities -> alpha.

    alpha = (L + C)^-1 C alpha*, L = D - W the 4-neighbour Laplacian of the learned affinities,
    C = diag(confidence on trimap-known pixels), alpha* = the trimap's labels. Known pixels are
    tied softly (the paper's model); in eval mode they are overwritten with the trimap
    (`hard_known_at_eval`). The solve runs in float32 (float64 if `dtype` is), differentiated
    by one adjoint CG solve (`propagation.solve.propagate`); memory is flat in `maxiter`.
    An image with no known pixel gets propagate's ridge (alpha = 0 there, never NaN).

    Attributes:
      ts, tl: T_s, T_l feature widths (our choice 64 / 64, dmp.md §2.4).
      low_widths: widths of the low-level branch's first two convs (our choice 64, 64; §2.3).
      blocks, widths: the SegNet encoder layout (VGG16: (2, 2, 3, 3, 3), (64, ..., 512)).
      confidence: c on known pixels (paper 0.8, §2.6).
      logit_clip: affinity logit clamp (our choice 10, §2.5).
      pair_features: "concat" (paper) or "absdiff" (our option, §2.5).
      trimap_encoding: "scalar" ({0, 0.5, 1} as one channel, our choice §2.1) or "onehot".
      pad_multiple, pad_mode: the SegNet input is padded at the bottom/right to this multiple
        with this `jnp.pad` mode and its features cropped back (our choice reflect / 32, §2.2);
        the low-level branch and the solve run at the input size, so any H, W works.
      tol, maxiter, preconditioner, on_singular: solver settings (our choice 1e-5, 2000,
        "jacobi", "ridge"; §4.2-4.3), see `propagate`.
      hard_known_at_eval: overwrite known pixels with the trimap when not training (our choice,
        §2.6).
      solver_stats: also return per-image solver diagnostics ([B] float32).
      bn_mode: see `layers.batch_norm`.
      dtype: compute dtype of the feature branches.

    References: Wang et al., Deep Propagation Based Image Matting, IJCAI 2018, Sec. 3;
      dmp.md §2-4.
    """

    inputs = ("image", "trimap")

    ts: int = 64
    tl: int = 64
    low_widths: Sequence[int] = (64, 64)
    blocks: Sequence[int] = vgg.VGG16_BLOCKS
    widths: Sequence[int] = vgg.VGG16_WIDTHS
    confidence: float = 0.8
    logit_clip: float = 10.0
    pair_features: str = "concat"
    trimap_encoding: str = "scalar"
    pad_multiple: int = SEGNET_STRIDE
    pad_mode: str = "reflect"
    tol: float = cv.CG_TOL
    maxiter: int = cv.CG_MAXITER
    preconditioner: str = "jacobi"
    on_singular: str = "ridge"
    hard_known_at_eval: bool = True
    solver_stats: bool = True
    bn_mode: str = "train"
    dtype: str = "float32"

    def features(self, x: jax.Array, train: bool) -> jax.Array:
        """[B, H, W, C_in] -> [B, H, W, T_s + T_l] (SegNet ⊕ low-level branch; §2.2-2.3)."""
        b, h, w, c = x.shape
        m = self.pad_multiple
        # padded_size's ceil form (not -h % m) lets jax.export simplify the pooled symbolic sizes
        hp, wp = pad_lib.padded_size(h, w, m, "minimal")
        xp = pad_lib.pad_bottom_right(x, hp - h, wp - w, self.pad_mode)  # also at symbolic sizes
        seg = SegNet(self.ts, self.blocks, self.widths, c, self.bn_mode, self.dtype, name="segnet")
        fs = seg(xp, train)[:, :h, :w]
        fl = x
        for i, width in enumerate(tuple(self.low_widths) + (self.tl,)):
            conv = nn.Conv(
                width, (3, 3), padding=((1, 1), (1, 1)), dtype=self.dtype, name=f"low{i + 1}"
            )
            fl = nn.relu(conv(fl))
        return jnp.concatenate([fs.astype(self.dtype), fl.astype(self.dtype)], axis=-1)

    @nn.compact
    def __call__(self, batch: Mapping[str, jax.Array], train: bool = False) -> dict[str, jax.Array]:
        """Args:
          batch: "image" [B, H, W, 3] ImageNet-normalised, "trimap" [B, H, W, 1] in {0, 0.5, 1}.

        Returns:
          "alpha" [B, H, W, 1] in [0, 1]; "edge_weights" [B, H, W, 2] (right, down; 0 where
          there is no neighbour); with solver_stats, [B] "solve_iterations", "solve_residual",
          "solve_converged", "solve_singular". All in the solve dtype: float32 (float64 only
          when `dtype` is float64, for gradient checks).
        """
        if self.trimap_encoding not in TRIMAP_ENCODINGS:
            raise ValueError(f"trimap_encoding must be one of {TRIMAP_ENCODINGS}")
        trimap = batch["trimap"].astype(jnp.float32)
        tri_in = trimap if self.trimap_encoding == "scalar" else encode.trimap_onehot(trimap)
        x = jnp.concatenate([batch["image"], tri_in], axis=-1).astype(self.dtype)
        f = self.features(x, train)

        solve_dtype = jnp.promote_types(jnp.float32, self.dtype)
        w_right, w_down = Affinity(self.pair_features, self.logit_clip, name="affinity")(
            f.astype(solve_dtype)
        )
        onehot = encode.trimap_onehot(trimap)
        known = (onehot[..., 0] + onehot[..., 2]).astype(solve_dtype)
        alpha_star = onehot[..., 2].astype(solve_dtype)
        matvec, diag = laplacian.grid_laplacian(w_right, w_down)
        alpha, info = propagate(
            matvec,
            diag,
            self.confidence * known,
            alpha_star,
            tol=self.tol,
            maxiter=self.maxiter,
            on_singular=self.on_singular,
            preconditioner=self.preconditioner,
            return_info=True,
        )
        if self.hard_known_at_eval and not train:
            alpha = jnp.where(known > 0, alpha_star, alpha)
        alpha = jnp.clip(alpha, 0.0, 1.0)

        h, w = alpha.shape[1:]
        valid_r = laplacian.shift(jnp.ones((h, w), solve_dtype), *laplacian.RIGHT)
        valid_d = laplacian.shift(jnp.ones((h, w), solve_dtype), *laplacian.DOWN)
        edges = jnp.stack([w_right * valid_r, w_down * valid_d], axis=-1)
        out = {"alpha": alpha[..., None], "edge_weights": edges}
        if self.solver_stats:
            for k, v in info._asdict().items():
                out[f"solve_{k}"] = v.astype(solve_dtype)
        return out

"""TCP (Liu et al., WACV 2021): GCA res_shortcut U-Net semantic path + full-resolution TCP."""

from __future__ import annotations

from typing import Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxmatte.models import encode, layers
from jaxmatte.models.spectral_norm import SpectralNorm
from jaxmatte.registry import MODELS

ABLATIONS = ("baseline", "tcp", "imrp")  # tcp.md §11, Table 1 rows
FFU_SOURCES = ("enc_x1", "sc1", "dec_half", "enc_x2")
FFU_MODES = ("add", "concat")
FFU_WEIGHTS = ("scalar", "per_channel")
OUTPUT_ACTS = ("tanh", "tanh_affine")
LEAK = 0.2  # GCA decoder LeakyReLU slope

xavier = nn.initializers.xavier_uniform()


def upsample_nearest(x: jax.Array, factor: int) -> jax.Array:
    """Exact nearest-neighbour repeat [B, h, w, C] -> [B, h·f, w·f, C]."""
    return jnp.repeat(jnp.repeat(x, factor, axis=1), factor, axis=2)


def _zero_trimap_channels(init: nn.initializers.Initializer) -> nn.initializers.Initializer:
    """Initialiser whose kernel rows for input channels 3.. (the one-hot trimap) are zero."""

    def f(key, shape, dtype=jnp.float32):
        w = init(key, shape, dtype)
        return w.at[:, :, 3:, :].set(0.0)

    return f


class SNConv(nn.Module):
    """Conv k x k (PyTorch padding (k-1)/2), no bias, optionally spectrally normalised.

    With `spectral_norm` (GCA semantics, `spectral_norm.SpectralNorm`): one power iteration per
    training call, stored in "batch_stats"; evaluation divides by the stored sigma (tcp.md §12).
    """

    features: int
    kernel: int = 3
    stride: int = 1
    spectral_norm: bool = True
    # 4x4 stride-2 ConvTranspose (PyTorch padding 1): exact x2 upsample. The kernel is stored
    # [4, 4, out, in] (transpose_kernel) so that SN's matrix is GCA's [in, -1] of the PyTorch
    # [in, out, 4, 4] weight.
    transpose: bool = False
    kernel_init: nn.initializers.Initializer = xavier
    dtype: str = "float32"

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        if self.transpose:
            # PyTorch ConvTranspose2d(4, 2, padding=1) = dilate by 2, pad k - 1 - p = 2, conv.
            conv = nn.ConvTranspose(
                self.features, (4, 4), (2, 2), padding=((2, 2), (2, 2)), use_bias=False,
                transpose_kernel=True, kernel_init=self.kernel_init, dtype=self.dtype, name="conv",
            )  # fmt: skip
        else:
            p = (self.kernel - 1) // 2
            conv = nn.Conv(
                self.features, (self.kernel,) * 2, (self.stride,) * 2, padding=((p, p), (p, p)),
                use_bias=False, kernel_init=self.kernel_init, dtype=self.dtype, name="conv",
            )  # fmt: skip
        if self.spectral_norm:
            return SpectralNorm(conv, name="sn")(x, update_stats=train)
        return conv(x)


def _conv(m: nn.Module, features: int, name: str, kernel=3, stride=1, transpose=False, init=xavier):
    """An `SNConv` child of `m` (called inside m's compact method) with m's SN flag and dtype."""
    return SNConv(features, kernel, stride, m.spectral_norm, transpose, init, m.dtype, name=name)


def _bn(m: nn.Module, train: bool, name: str, zero: bool = False) -> nn.BatchNorm:
    """BatchNorm child of `m`; `zero` = γ initialised to 0 (last BN of a residual block, §4.3)."""
    init = nn.initializers.zeros if zero else nn.initializers.ones
    return layers.batch_norm(m.bn_mode, train, name, scale_init=init, dtype=m.dtype)


class EncBlock(nn.Module):
    """GCA encoder BasicBlock (tcp.md §4.1): conv(stride) BN ReLU conv BN(γ=0) + shortcut, ReLU.

    The projection shortcut is ResNet-D: AvgPool 2x2 s2 (when strided) -> conv 1x1 -> BN.
    """

    features: int
    stride: int = 1
    spectral_norm: bool = True
    bn_mode: str = "train"
    dtype: str = "float32"

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        out = _conv(self, self.features, "conv1", stride=self.stride)(x, train)
        out = nn.relu(_bn(self, train, "bn1")(out))
        out = _conv(self, self.features, "conv2")(out, train)
        out = _bn(self, train, "bn2", zero=True)(out)
        if self.stride != 1 or x.shape[-1] != self.features:
            if self.stride != 1:
                x = layers.avg_pool_2x2_ceil(x)
            x = _conv(self, self.features, "down_conv", kernel=1)(x, train)
            x = _bn(self, train, "down_bn")(x)
        return nn.relu(out + x)


class DecBlock(nn.Module):
    """GCA decoder block (tcp.md §4.2): [ConvT 4x4 s2 | conv 3x3] (in→in) BN LReLU, conv 3x3
    (in→out) BN(γ=0); identity = [nearest x2 ->] conv 1x1 -> BN when the shape changes; LReLU."""

    features: int
    upsample: bool = False
    spectral_norm: bool = True
    bn_mode: str = "train"
    dtype: str = "float32"

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        c_in = x.shape[-1]
        out = _conv(self, c_in, "conv1", transpose=self.upsample)(x, train)
        out = nn.leaky_relu(_bn(self, train, "bn1")(out), LEAK)
        out = _conv(self, self.features, "conv2")(out, train)
        out = _bn(self, train, "bn2", zero=True)(out)
        if self.upsample or c_in != self.features:
            if self.upsample:
                x = upsample_nearest(x, 2)
            x = _conv(self, self.features, "up_conv", kernel=1)(x, train)
            x = _bn(self, train, "up_bn")(x)
        return nn.leaky_relu(out + x, LEAK)


class Shortcut(nn.Module):
    """ "Two convs in each shortcut" (tcp.md §4.1): [conv 3x3 -> ReLU -> BN] x 2, same width."""

    features: int
    spectral_norm: bool = True
    bn_mode: str = "train"
    dtype: str = "float32"

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        for i in range(2):
            x = _conv(self, self.features, f"conv{i}")(x, train)
            x = _bn(self, train, f"bn{i}")(nn.relu(x))
        return x


class SemanticPath(nn.Module):
    """GCA res_shortcut U-Net (tcp.md §4): encoder_29 + decoder_22, total stride 32.

    Attributes:
        widths: (stem/x1, layer1, layer2, layer3, bottleneck) channels, GCA (32, 64, 128, 256,
            512). Shortcuts: sc0 = sc1 = widths[0] wide, sc2..sc4 = widths[1..3].
        enc_blocks: encoder BasicBlocks per stage, GCA (3, 4, 4, 2).
        dec_blocks: decoder blocks per stage, GCA (2, 3, 3, 2).
        spectral_norm: SN on every conv except the output conv (GCA code).
        bn_mode: see `layers.batch_norm`.
    """

    widths: Sequence[int] = (32, 64, 128, 256, 512)
    enc_blocks: Sequence[int] = (3, 4, 4, 2)
    dec_blocks: Sequence[int] = (2, 3, 3, 2)
    spectral_norm: bool = True
    bn_mode: str = "train"
    dtype: str = "float32"

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> tuple[jax.Array, dict[str, jax.Array]]:
        """Args: x: [B, H, W, 6] (RGB ⊕ one-hot trimap), H and W multiples of 32.

        Returns: (logit s [B, H, W, 1], features {"enc_x1", "enc_x2", "sc0".."sc4", "dec_half"};
        enc_x1, sc1 and dec_half are widths[0] @ 1/2, enc_x2 is widths[1] @ 1/4).
        """
        w = self.widths
        kw = dict(spectral_norm=self.spectral_norm, bn_mode=self.bn_mode, dtype=self.dtype)

        def stem(h, features, name, stride=1, init=xavier):
            h = _conv(self, features, f"{name}_conv", stride=stride, init=init)(h, train)
            return nn.relu(_bn(self, train, f"{name}_bn")(h))

        # §4.3: the first conv's weights for the trimap channels start at zero.
        h = stem(x, w[0], "stem1", 2, _zero_trimap_channels(xavier))
        x1 = stem(h, w[0], "stem2")
        h = stem(x1, w[1], "stem3", 2)
        stages = []
        for s, (width, n) in enumerate(zip(w[1:], self.enc_blocks)):
            for b in range(n):
                stride = 2 if b == 0 and s > 0 else 1
                h = EncBlock(width, stride, **kw, name=f"enc{s + 1}_{b}")(h, train)
            stages.append(h)
        x2, x3, x4, h = stages
        sources = (x, x1, x2, x3, x4)
        sc_widths = (w[0], w[0], w[1], w[2], w[3])
        sc = [
            Shortcut(c, **kw, name=f"sc{i}")(f, train)
            for i, (c, f) in enumerate(zip(sc_widths, sources))
        ]
        for s, (width, n) in enumerate(zip(w[3::-1], self.dec_blocks)):
            for b in range(n):
                h = DecBlock(width, b == 0, **kw, name=f"dec{s + 1}_{b}")(h, train)
            h = h + sc[4 - s]
        feats = {"enc_x1": x1, "enc_x2": x2, "dec_half": h}
        feats.update({f"sc{i}": f for i, f in enumerate(sc)})
        h = _conv(self, w[0], "head1_conv", transpose=True)(h, train)
        h = nn.leaky_relu(_bn(self, train, "head1_bn")(h), LEAK) + sc[0]
        # The output conv is plain: bias, no SN (GCA).
        s_logit = nn.Conv(1, (3, 3), padding=((1, 1), (1, 1)), dtype=self.dtype, name="head2")(h)
        return s_logit, feats


class TexturalPath(nn.Module):
    """Textural Compensate Path (tcp.md §5): every layer at the input's H x W, stride 1.

    Spatial feature extraction (conv + 2 residual blocks) -> FFU (F_t + w_c·NN(F_s)) -> feature
    refinement (conv, then the 1-channel output conv). Every conv but the output one is followed
    by ReLU then BN (paper Sec. 4.1). Each layer's output is sown into "intermediates".

    Attributes:
        width: C_t (tcp.md §2 `tcp.width`); must equal the FFU source channels in "add" mode.
        res_post_act: ReLU after the residual add (`tcp.res_post_act`, default off).
        spectral_norm: SN on the TCP convs (`tcp.spectral_norm`, default off).
        ffu_mode: "add" (F_t + w_c·NN(F_s)) or "concat" (channel concat) (`ffu.mode`).
        ffu_weight: "scalar" or "per_channel" w_c (`ffu.weight`).
        ffu_init: initial value of w_c (`ffu.init`, 1.0).
        bn_mode: see `layers.batch_norm`.
    """

    width: int = 32
    res_post_act: bool = False
    spectral_norm: bool = False
    ffu_mode: str = "add"
    ffu_weight: str = "scalar"
    ffu_init: float = 1.0
    bn_mode: str = "train"
    dtype: str = "float32"

    @nn.compact
    def __call__(self, x: jax.Array, f_s: jax.Array, train: bool) -> jax.Array:
        """Args: x: [B, H, W, 6]; f_s: SP feature [B, H/f, W/f, C_s], f an integer.

        Returns: t, the TCP logit [B, H, W, 1].
        """

        def unit(h, name):  # conv 3x3 -> ReLU -> BN
            h = _conv(self, self.width, f"{name}_conv")(h, train)
            h = _bn(self, train, f"{name}_bn")(nn.relu(h))
            self.sow("intermediates", name, h)
            return h

        h = unit(x, "extract")
        for r in range(2):
            y = unit(unit(h, f"res{r}_a"), f"res{r}_b")
            h = nn.relu(h + y) if self.res_post_act else h + y
            self.sow("intermediates", f"res{r}", h)
        factor = x.shape[1] // f_s.shape[1]
        if f_s.shape[1] * factor != x.shape[1] or f_s.shape[2] * factor != x.shape[2]:
            raise ValueError(f"FFU source {f_s.shape} does not divide the input {x.shape}")
        f_up = upsample_nearest(f_s, factor)
        self.sow("intermediates", "ffu_source", f_s)
        self.sow("intermediates", "ffu_resized", f_up)
        shape = () if self.ffu_weight == "scalar" else (f_s.shape[-1],)
        w_c = self.param("w_c", nn.initializers.constant(self.ffu_init), shape, jnp.float32)
        f_w = f_up * w_c.astype(f_up.dtype)
        if self.ffu_mode == "add":
            if f_s.shape[-1] != self.width:
                raise ValueError(
                    f"ffu_mode 'add' needs tcp_width == FFU source channels ({f_s.shape[-1]}), "
                    f"got {self.width}; use ffu_mode='concat' or change the width"
                )
            h = h + f_w
        else:
            h = jnp.concatenate([h, f_w], axis=-1)
        self.sow("intermediates", "ffu", h)
        h = unit(h, "refine")
        t = nn.Conv(1, (3, 3), padding=((1, 1), (1, 1)), dtype=self.dtype, name="out")(h)
        self.sow("intermediates", "output", t)
        return t


def _check(name: str, value, allowed) -> None:
    if value not in allowed:
        raise ValueError(f"tcp: {name} must be one of {allowed}, got {value!r}")


@MODELS.register("tcp")
class TCP(nn.Module):
    """TCP matting model: α̂ = act(s + t), s from the semantic path, t from the TCP (tcp.md §1).

    Reads "image" and "trimap"; in training also the optional "trimap_tcp" (tcp.md §8, the
    `tcp` data recipe), which feeds the TCP while "trimap" feeds the semantic path. Inference
    batches hold only "trimap", which then feeds both paths (tcp.md §3, §8.4).

    Synced BN (tcp.md §10): the train step is one jit over the global mesh, so plain BatchNorm
    (bn_mode "train") already computes statistics over the global batch; "sync" is only needed
    under shard_map.

    Attributes:
        widths, enc_blocks, dec_blocks: semantic-path size, see `SemanticPath` (GCA defaults).
        sp_spectral_norm: SN in the semantic path (tcp.md §2, default on as in GCA).
        gca_attention: GCA attention blocks in the SP (`sp.gca_attention`); only off (the
            paper's plain U-Net) is implemented.
        tcp_width, tcp_res_post_act, tcp_spectral_norm: see `TexturalPath` (tcp.md §2).
        ffu_source: the SP "2nd layer" feature (`ffu.source`): "enc_x1" (default, x1 after the
            second stem conv), "sc1", "dec_half" (decoder output @ 1/2) or "enc_x2".
        ffu_mode, ffu_weight, ffu_init: see `TexturalPath`.
        output_act: "tanh" (paper; α̂ in (−1, 1)) or "tanh_affine" ((tanh + 1)/2, GCA).
        force_known: "alpha" is α = 1 on trimap FG and 0 on BG (GCA test convention, §6).
        ablation: Table 1 row (tcp.md §11): "baseline" (SP alone, α̂ = act(s)); "tcp" (both
            paths, the TCP sees "trimap"); "imrp" (default: the TCP sees "trimap_tcp" when the
            batch has it). The IMRP loss term and data are config choices (configs/tcp.py).
        bn_mode: see `layers.batch_norm`.
        dtype: compute dtype; params and outputs stay float32.
    """

    inputs = ("image", "trimap")
    optional_inputs = ("trimap_tcp",)  # the noisier TCP trimap, read in training when present
    stride = 32

    widths: Sequence[int] = (32, 64, 128, 256, 512)
    enc_blocks: Sequence[int] = (3, 4, 4, 2)
    dec_blocks: Sequence[int] = (2, 3, 3, 2)
    sp_spectral_norm: bool = True
    gca_attention: bool = False
    tcp_width: int = 32
    tcp_res_post_act: bool = False
    tcp_spectral_norm: bool = False
    ffu_source: str = "enc_x1"
    ffu_mode: str = "add"
    ffu_weight: str = "scalar"
    ffu_init: float = 1.0
    output_act: str = "tanh"
    force_known: bool = True
    ablation: str = "imrp"
    bn_mode: str = "train"
    dtype: str = "float32"

    def activate(self, z: jax.Array) -> jax.Array:
        """The output activation of tcp.md §6 on float32 logits."""
        a = jnp.tanh(z)
        return (a + 1.0) / 2.0 if self.output_act == "tanh_affine" else a

    @nn.compact
    def __call__(self, batch: Mapping[str, jax.Array], train: bool = False) -> dict[str, jax.Array]:
        """Args:
            batch: "image" [B, H, W, 3] normalised RGB, "trimap" [B, H, W, 1] labels {0, .5, 1},
                optionally "trimap_tcp" (same encoding); H, W multiples of 32.
            train: batch statistics and spectral-norm updates.

        Returns: float32 [B, H, W, 1] maps: "alpha" (act(s + t) clipped to [0, 1], known regions
        forced if `force_known`), "alpha_raw" (act(s + t), what the losses use), "logits"
        (s + t), "semantic_logits" (s), "semantic_alpha" (act(s), clipped), and "tcp_logits" (t)
        unless `ablation == "baseline"`.
        """
        _check("ablation", self.ablation, ABLATIONS)
        _check("ffu_source", self.ffu_source, FFU_SOURCES)
        _check("ffu_mode", self.ffu_mode, FFU_MODES)
        _check("ffu_weight", self.ffu_weight, FFU_WEIGHTS)
        _check("output_act", self.output_act, OUTPUT_ACTS)
        if self.gca_attention:
            raise NotImplementedError("tcp: gca_attention=True (sp.gca_attention) is not built")
        image, trimap = batch["image"], batch["trimap"]
        h, w = image.shape[1:3]
        if h % self.stride or w % self.stride:
            raise ValueError(f"tcp: H, W must be multiples of {self.stride}, got {(h, w)}")

        def encode_input(t):  # tcp.md §3: RGB ⊕ one-hot [BG, U, FG]
            return jnp.concatenate([image, encode.trimap_onehot(t)], -1).astype(self.dtype)

        x_sp = encode_input(trimap)
        s, feats = SemanticPath(
            self.widths, self.enc_blocks, self.dec_blocks, self.sp_spectral_norm,
            self.bn_mode, self.dtype, name="sp",
        )(x_sp, train)  # fmt: skip
        s = s.astype(jnp.float32)
        out = {"semantic_logits": s}
        z = s
        if self.ablation != "baseline":
            use_tcp_trimap = self.ablation == "imrp" and "trimap_tcp" in batch
            x_t = encode_input(batch["trimap_tcp"]) if use_tcp_trimap else x_sp
            t = TexturalPath(
                self.tcp_width, self.tcp_res_post_act, self.tcp_spectral_norm, self.ffu_mode,
                self.ffu_weight, self.ffu_init, self.bn_mode, self.dtype, name="tcp",
            )(x_t, feats[self.ffu_source], train)  # fmt: skip
            out["tcp_logits"] = t = t.astype(jnp.float32)
            z = s + t
        raw = self.activate(z)
        out.update(
            logits=z,
            alpha_raw=raw,
            alpha=self.finish(raw, trimap),
            semantic_alpha=self.finish(self.activate(s), trimap),
        )
        return out

    def finish(self, raw: jax.Array, trimap: jax.Array) -> jax.Array:
        """Inference mapping (tcp.md §6): clip to [0, 1], then force the trimap's known labels."""
        alpha = jnp.clip(raw, 0.0, 1.0)
        if self.force_known:
            onehot = encode.trimap_onehot(trimap.astype(jnp.float32))
            alpha = jnp.where(onehot[..., 2:] > 0, 1.0, jnp.where(onehot[..., :1] > 0, 0.0, alpha))
        return alpha

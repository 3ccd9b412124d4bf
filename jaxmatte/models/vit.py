"""ViTDet-style ViT-S/16 backbone: windowed/global attention, decomposed rel-pos, conv blocks."""

from __future__ import annotations

import functools
from typing import Any, Dict, Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxmatte.models.resize import is_static, resize_2d, resize_axis
from jaxmatte.registry import BACKBONES

LN_EPS = 1e-6  # ViTDet / DINO LayerNorm epsilon, also used by the residual blocks' channel-LN
INIT_STD = 0.02  # trunc-normal std of linear layers and pos_embed (ViTDet _init_weights)
TRUNC_BOUND = 2.0  # timm trunc_normal_ cuts at +-2 in absolute units (= +-100 std here)

trunc_normal = nn.initializers.truncated_normal(
    stddev=INIT_STD, lower=-TRUNC_BOUND / INIT_STD, upper=TRUNC_BOUND / INIT_STD
)
he_fan_out = nn.initializers.variance_scaling(2.0, "fan_out", "normal")  # c2_msra_fill
torch_default_kernel = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")
gelu = functools.partial(nn.gelu, approximate=False)


def torch_default_bias(fan_in: int):
    """PyTorch's default conv/linear bias init U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    bound = 1.0 / np.sqrt(fan_in)

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def window_partition(
    x: jnp.ndarray, window: int, fill: jnp.ndarray | None = None
) -> Tuple[jnp.ndarray, Tuple[int, int]]:
    """Pads [B, H, W, C] bottom/right to multiples of `window` and cuts it into windows.

    Args:
      x: [B, H, W, C].
      window: the window side.
      fill: [C] (or broadcastable to it), the value of the padded positions; None: zeros.

    Returns:
      (windows [B * (Hp/window) * (Wp/window), window, window, C] in row-major window order,
      (Hp, Wp) the padded size).
    """
    b, h, w, c = x.shape
    nh, nw = -(-h // window), -(-w // window)  # windows per column / row (symbolic allowed)
    hp, wp = nh * window, nw * window
    if (hp, wp) != (h, w):  # symbolic sides never compare equal: pad by a symbolic width
        x = jnp.pad(x, ((0, 0), (0, hp - h), (0, wp - w), (0, 0)))
        if fill is not None:
            rows = jax.lax.broadcasted_iota(jnp.int32, (1, hp, wp, 1), 1)
            cols = jax.lax.broadcasted_iota(jnp.int32, (1, hp, wp, 1), 2)
            x = jnp.where((rows < h) & (cols < w), x, jnp.asarray(fill, x.dtype))
    x = x.reshape(b, nh, window, nw, window, c)
    return x.transpose(0, 1, 3, 2, 4, 5).reshape(b * nh * nw, window, window, c), (hp, wp)


def window_unpartition(
    windows: jnp.ndarray, window: int, pad_hw: Tuple[int, int], hw: Tuple[int, int]
) -> jnp.ndarray:
    """Inverse of `window_partition`: windows -> [B, Hp, Wp, C] cropped to [B, H, W, C]."""
    hp, wp = pad_hw
    nh, nw = hp // window, wp // window
    c = windows.shape[-1]
    # [B * nh * nw, ...] -> [B, nh, nw, ...]: -1 lets jax divide out nh * nw also when symbolic.
    x = windows.reshape(-1, nh, nw, window, window, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, hp, wp, c)[:, : hw[0], : hw[1]]


def get_rel_pos(table: jnp.ndarray, q_size: int, k_size: int) -> jnp.ndarray:
    """Relative-position embeddings R[q, k] = table'[q - k + k_size - 1] as [q_size, k_size, C].

    The table [L, C] is first linearly resized (torch "linear", align_corners=False) to
    2 * max(q_size, k_size) - 1 rows when L differs. Coordinates are scaled as in ViTDet when
    q_size != k_size.

    Symbolic sizes (``jax.export``) need ``q_size == k_size`` (self-attention), where the
    indices are the integers q - k + k_size - 1 and the resize runs in the graph.

    References:
      Li et al., "Exploring Plain ViT Backbones for Object Detection" (ViTDet), get_rel_pos.
    """
    if not is_static(q_size, k_size):
        if not q_size == k_size:
            raise ValueError(f"get_rel_pos: symbolic sizes must be equal, got {q_size}, {k_size}")
        table = resize_axis(table, 2 * q_size - 1, axis=0, method="linear")
        idx = jnp.arange(q_size)[:, None] - jnp.arange(k_size)[None, :] + (k_size - 1)
        return table[idx]
    max_dist = 2 * max(q_size, k_size) - 1
    table = resize_axis(table, max_dist, axis=0, method="linear")
    q = np.arange(q_size)[:, None] * max(k_size / q_size, 1.0)
    k = np.arange(k_size)[None, :] * max(q_size / k_size, 1.0)
    idx = (q - k + (k_size - 1) * max(q_size / k_size, 1.0)).astype(np.int64)
    return table[jnp.asarray(idx)]


def abs_pos_embed(pos_embed: jnp.ndarray, hw: Tuple[int, int], has_cls: bool = True) -> jnp.ndarray:
    """Drops the cls entry of [1, (1 +) G*G, C] and bicubic-resizes the G x G grid to [1, h, w, C].

    Resizing follows torch F.interpolate(mode="bicubic", align_corners=False) (a = -0.75, clamped).
    """
    if has_cls:
        pos_embed = pos_embed[:, 1:]
    g = int(round(np.sqrt(pos_embed.shape[1])))
    grid = pos_embed.reshape(1, g, g, -1)
    return resize_2d(grid, hw, method="cubic")


class Attention(nn.Module):
    """Multi-head self-attention with decomposed relative position (ViTDet / MViTv2).

    Call: `attn(x [B, H, W, dim], window)` -> [B, H, W, dim]; `window > 0` attends within
    window x window tiles of the grid zero-padded bottom/right (ViTDet), global otherwise.
    """

    dim: int
    num_heads: int
    rel_size: Tuple[int, int]  # grid size the rel-pos tables are built for (2S - 1 rows)
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray, window: int = 0) -> jnp.ndarray:
        dense = functools.partial(nn.Dense, dtype=self.dtype, kernel_init=trunc_normal)
        qkv_layer = dense(3 * self.dim, name="qkv")
        qkv = qkv_layer(x)
        if window > 0:
            # ViTDet pads the normed tokens with zeros and projects every window, so a padded
            # token is an unmasked key whose q, k, v are those of a zero token: the qkv bias.
            # Projecting the real tokens only and padding with a zero token's projection gives
            # the same windows with 1/3 of the qkv and proj work at 256² (16² tokens padded to
            # 28²); proj is per token, so it runs after the crop.
            hw = x.shape[1:3]
            zero_token = qkv_layer(jnp.zeros((1, x.shape[-1]), x.dtype))[0]
            qkv, pad_hw = window_partition(qkv, window, fill=zero_token)
            out = window_unpartition(self._attend(qkv), window, pad_hw, hw)
        else:
            out = self._attend(qkv)
        return dense(self.dim, name="proj")(out)

    def _attend(self, qkv: jnp.ndarray) -> jnp.ndarray:
        """qkv [B, h, w, 3 * dim] (q, k, v head-major) -> heads merged [B, h, w, dim]."""
        b, h, w, _ = qkv.shape
        hd = self.dim // self.num_heads
        qkv = qkv.reshape(b, h * w, 3, self.num_heads, hd).transpose(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # [B, heads, N, hd]
        attn = jnp.einsum("bnqc,bnkc->bnqk", q * hd**-0.5, k)
        zeros = nn.initializers.zeros
        rel_h = self.param("rel_pos_h", zeros, (2 * self.rel_size[0] - 1, hd))
        rel_w = self.param("rel_pos_w", zeros, (2 * self.rel_size[1] - 1, hd))
        r_h = get_rel_pos(rel_h, h, h).astype(self.dtype)
        r_w = get_rel_pos(rel_w, w, w).astype(self.dtype)
        r_q = q.reshape(b, self.num_heads, h, w, hd)  # the unscaled q
        bias_h = jnp.einsum("bnhwc,hkc->bnhwk", r_q, r_h)
        bias_w = jnp.einsum("bnhwc,wkc->bnhwk", r_q, r_w)
        attn = attn.reshape(b, self.num_heads, h, w, h, w)
        attn = attn + bias_h[..., :, None] + bias_w[..., None, :]
        attn = attn.reshape(b, self.num_heads, h * w, h * w)
        attn = jax.nn.softmax(attn.astype(jnp.float32), axis=-1).astype(self.dtype)
        out = jnp.einsum("bnqk,bnkc->bnqc", attn, v)
        return out.transpose(0, 2, 1, 3).reshape(b, h, w, self.dim)  # heads merged head-major


class Mlp(nn.Module):
    """Linear -> exact GELU -> Linear."""

    hidden: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        dense = functools.partial(nn.Dense, dtype=self.dtype, kernel_init=trunc_normal)
        out = x.shape[-1]
        return dense(out, name="fc2")(gelu(dense(self.hidden, name="fc1")(x)))


class ResBottleneck(nn.Module):
    """1x1 -> LN -> GELU -> 3x3 -> LN -> GELU -> 1x1 -> LN, added to the input (no final act).

    The LNs normalise over channels per position (detectron2 "LN"); norm3 starts at zero so the
    block starts as the identity.
    """

    bottleneck: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        conv = functools.partial(nn.Conv, use_bias=False, dtype=self.dtype, kernel_init=he_fan_out)
        norm = functools.partial(
            nn.LayerNorm, epsilon=LN_EPS, dtype=self.dtype, use_fast_variance=False
        )
        zeros = nn.initializers.zeros
        y = gelu(norm(name="norm1")(conv(self.bottleneck, (1, 1), name="conv1")(x)))
        y = conv(self.bottleneck, (3, 3), padding=((1, 1), (1, 1)), name="conv2")(y)
        y = gelu(norm(name="norm2")(y))
        y = conv(x.shape[-1], (1, 1), name="conv3")(y)
        y = norm(scale_init=zeros, bias_init=zeros, name="norm3")(y)
        return x + y


class Block(nn.Module):
    """Pre-norm transformer block, windowed if `window > 0`, with an optional residual block."""

    dim: int
    num_heads: int
    mlp_ratio: float
    window: int
    rel_size: Tuple[int, int]
    use_residual: bool
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        norm = functools.partial(
            nn.LayerNorm, epsilon=LN_EPS, dtype=self.dtype, use_fast_variance=False
        )
        y = norm(name="norm1")(x)
        attn = Attention(self.dim, self.num_heads, self.rel_size, self.dtype, name="attn")
        x = x + attn(y, self.window)
        x = x + Mlp(int(self.dim * self.mlp_ratio), self.dtype, name="mlp")(norm(name="norm2")(x))
        if self.use_residual:
            x = ResBottleneck(self.dim // 2, self.dtype, name="residual")(x)
        return x


@BACKBONES.register("vit_s16")
class ViT(nn.Module):
    """ViT-S/16 (ViTDet layout, as in ViTMatte-S): returns {"vit": [B, H/16, W/16, dim]}.

    Attributes:
      in_channels: input channels (3 RGB, 4 RGB + trimap, 6 RGB + 3-channel trimap coding).
      img_size: training size the global blocks' rel-pos tables are built for (2*img/patch - 1).
      pretrain_img_size: size of the stored absolute position grid (224 -> 14 x 14 + cls).
      global_attn: "full" (the only mode implemented) for the non-windowed blocks.

    References:
      Yao et al., ViTMatte (2023) 3.2; Li et al., ViTDet (2022); spec ddc_vitmatte.md 4.2.
    """

    in_channels: int = 3
    patch_size: int = 16
    dim: int = 384
    depth: int = 12
    num_heads: int = 6
    mlp_ratio: float = 4.0
    window_size: int = 14
    window_blocks: Sequence[int] = (0, 1, 3, 4, 6, 7, 9, 10)
    residual_blocks: Sequence[int] = (2, 5, 8, 11)
    img_size: int = 512
    pretrain_img_size: int = 224
    global_attn: str = "full"
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> Dict[str, jnp.ndarray]:
        """Args: x [B, H, W, in_channels] with H, W multiples of `patch_size`."""
        del train  # no dropout / drop-path (drop_path = 0 in ViTMatte-S)
        if x.shape[-1] != self.in_channels:
            raise ValueError(f"expected {self.in_channels} input channels, got {x.shape}")
        if self.global_attn != "full":
            raise ValueError(f"global_attn={self.global_attn!r} is not implemented; use 'full'")
        dtype = jnp.dtype(self.dtype)  # accepts a dtype name from a config
        p = self.patch_size
        x = nn.Conv(
            self.dim,
            (p, p),
            strides=(p, p),
            padding="VALID",
            dtype=dtype,
            kernel_init=torch_default_kernel,
            bias_init=torch_default_bias(self.in_channels * p * p),
            name="patch_embed",
        )(x.astype(dtype))
        n_pre = (self.pretrain_img_size // p) ** 2 + 1  # + the cls entry, as DINO stores it
        pos = self.param("pos_embed", trunc_normal, (1, n_pre, self.dim))
        x = x + abs_pos_embed(pos, x.shape[1:3]).astype(dtype)
        grid = self.img_size // p
        for i in range(self.depth):
            windowed = i in self.window_blocks
            x = Block(
                self.dim,
                self.num_heads,
                self.mlp_ratio,
                self.window_size if windowed else 0,
                (self.window_size,) * 2 if windowed else (grid, grid),
                i in self.residual_blocks,
                dtype,
                name=f"blocks_{i}",
            )(x)
        return {"vit": x}

"""Small shared CNN building blocks: BatchNorm modes, conv + BN (+ ReLU), PyTorch-style pooling."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxmatte import conventions

# PyTorch's ResNet/VGG init: Kaiming-normal with fan_out and the ReLU gain.
kaiming_fan_out = nn.initializers.variance_scaling(2.0, "fan_out", "normal")


def batch_norm(bn_mode: str, train: bool, name: str, **kwargs) -> nn.BatchNorm:
    """A BatchNorm layer with PyTorch's defaults in one of the `conventions.BN_MODES`.

    Args:
        bn_mode: "train" (batch statistics when `train`, running ones otherwise), "frozen"
            (always the running statistics; freezing the affine parameters is the optimiser's
            job) or "sync" (like "train", with batch statistics averaged over
            `conventions.DATA_AXIS`; needs that axis bound, e.g. inside `jax.shard_map`. Under a
            plain `jax.jit` over a sharded batch the "train" statistics are already global).
        train: whether the surrounding forward pass is a training step.
        name: the submodule name.
        **kwargs: passed on to `nn.BatchNorm` (e.g. `scale_init`).
    """
    if bn_mode not in conventions.BN_MODES:
        raise ValueError(f"bn_mode {bn_mode!r} not in {conventions.BN_MODES}")
    return nn.BatchNorm(
        use_running_average=bn_mode == "frozen" or not train,
        momentum=conventions.BN_MOMENTUM,
        epsilon=conventions.BN_EPSILON,
        axis_name=conventions.DATA_AXIS if bn_mode == "sync" else None,
        name=name,
        **kwargs,
    )


class ConvBN(nn.Module):
    """Conv (PyTorch padding semantics) -> BatchNorm -> optional ReLU; children "conv", "bn".

    Attributes:
        features: output channels.
        kernel: square kernel size.
        stride: stride.
        dilation: kernel dilation; the padding is `dilation * (kernel - 1) // 2` per side, as in
            PyTorch's ResNet/VGG (not "SAME", which pads asymmetrically at stride 2).
        use_bias: conv bias (VGG has one; ResNet does not).
        relu: apply ReLU after BN.
        bn_mode: see `batch_norm`.
        kernel_init: conv kernel initialiser.
    """

    features: int
    kernel: int = 3
    stride: int = 1
    dilation: int = 1
    use_bias: bool = False
    relu: bool = True
    bn_mode: str = "train"
    kernel_init: nn.initializers.Initializer = kaiming_fan_out

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        """Args: x: [B, H, W, C_in]. Returns: [B, H', W', features]."""
        pad = self.dilation * (self.kernel - 1) // 2
        x = nn.Conv(
            self.features,
            (self.kernel, self.kernel),
            strides=(self.stride, self.stride),
            padding=((pad, pad), (pad, pad)),
            kernel_dilation=(self.dilation, self.dilation),
            use_bias=self.use_bias,
            kernel_init=self.kernel_init,
            name="conv",
        )(x)
        x = batch_norm(self.bn_mode, train, name="bn")(x)
        return nn.relu(x) if self.relu else x


def max_pool_3x3_s2(x: jax.Array) -> jax.Array:
    """PyTorch `MaxPool2d(3, stride=2, padding=1)` on [B, H, W, C] (padding acts as -inf)."""
    return nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))


def avg_pool_2x2_ceil(x: jax.Array) -> jax.Array:
    """PyTorch `AvgPool2d(2, 2, ceil_mode=True, count_include_pad=False)` on [B, H, W, C].

    An odd trailing row/column forms a partial window averaged over its valid pixels only.
    """
    pad_h, pad_w = x.shape[1] % 2, x.shape[2] % 2
    return nn.avg_pool(
        x,
        (2, 2),
        strides=(2, 2),
        padding=((0, pad_h), (0, pad_w)),
        count_include_pad=False,
    )


def global_mean(x: jax.Array) -> jax.Array:
    """Spatial mean keeping dims: [B, H, W, C] -> [B, 1, 1, C]."""
    return jnp.mean(x, axis=(1, 2), keepdims=True)

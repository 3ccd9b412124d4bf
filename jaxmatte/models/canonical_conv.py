"""A convolution whose input gradient is an NHWC/HWIO convolution (fast inside XLA:CPU loops)."""

from __future__ import annotations

import functools
from typing import Any, Sequence

import jax
import jax.numpy as jnp
from jax import lax

Array = jax.Array
# The dimension order of the convolutions XLA:CPU runs with its fast kernels.
DIMENSION_NUMBERS = ("NHWC", "HWIO", "NHWC")
Padding = tuple[tuple[int, int], tuple[int, int]]

# Why (jaxlib 0.10 CPU): autodiff writes the input gradient of a convolution as a convolution
# whose kernel is indexed HWOI ("01oi" in the HLO). XLA:CPU's ConvCanonicalization pass transposes
# such kernels to HWIO, the form its fast convolutions (Eigen, YNNPACK) take, but it only visits
# the entry computation: in a while body (lax.fori_loop) the "01oi" convolution is emitted as a
# generic loop nest, several times slower (LSA's BR step at 512²: 6-8x; jax-ml/jax issue #12868
# shows the same effect). Here the input gradient flips and transposes the kernel itself and
# convolves with HWIO dimension numbers, which is the fast form wherever it sits.


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def conv_nhwc(x: Array, kernel: Array, padding: Padding, precision: Any = None) -> Array:
    """Stride-1, undilated 2-D convolution.

    Args:
      x: [B, H, W, Cin].
      kernel: [kh, kw, Cin, Cout].
      padding: ((top, bottom), (left, right)), each may be negative (cropping).
      precision: as `lax.conv_general_dilated`.

    Returns:
      [B, H + top + bottom − kh + 1, W + left + right − kw + 1, Cout]; its VJP gives the input
      gradient as a convolution in `DIMENSION_NUMBERS` order (the kernel one is autodiff's).
    """
    return _conv(x, kernel, padding, precision)


def _conv(x, kernel, padding, precision):
    return lax.conv_general_dilated(
        x, kernel, (1, 1), padding, dimension_numbers=DIMENSION_NUMBERS, precision=precision
    )


def _conv_nhwc_fwd(x, kernel, padding, precision):
    return conv_nhwc(x, kernel, padding, precision), (x, kernel)


def _conv_nhwc_bwd(padding, precision, residuals, g):
    x, kernel = residuals
    kh, kw = kernel.shape[:2]
    # Stride 1: dL/dx = g ⋆ (kernel rotated by 180° with in/out swapped), padded by k − 1 − pad.
    flipped = jnp.flip(kernel, (0, 1)).swapaxes(2, 3)
    (top, bottom), (left, right) = padding
    pads = ((kh - 1 - top, kh - 1 - bottom), (kw - 1 - left, kw - 1 - right))
    dx = _conv(g, flipped, pads, precision)
    _, kernel_vjp = jax.vjp(lambda k: _conv(x, k, padding, precision), kernel)
    return dx.astype(x.dtype), kernel_vjp(g)[0]


conv_nhwc.defvjp(_conv_nhwc_fwd, _conv_nhwc_bwd)


def conv_general_dilated(
    lhs: Array,
    rhs: Array,
    window_strides: Sequence[int],
    padding: str | Sequence[tuple[int, int]],
    lhs_dilation: Sequence[int] | None = None,
    rhs_dilation: Sequence[int] | None = None,
    dimension_numbers: Any = None,
    feature_group_count: int = 1,
    batch_group_count: int = 1,
    precision: Any = None,
    preferred_element_type: Any = None,
) -> Array:
    """`lax.conv_general_dilated` (same arguments; for `nn.Conv(conv_general_dilated=...)`).

    Stride-1, undilated, ungrouped 2-D NHWC/HWIO convolutions go through `conv_nhwc`; any other
    one is handed to `lax.conv_general_dilated` unchanged (its input gradient keeps autodiff's
    form). The values are the same either way.
    """
    simple = (
        lhs.ndim == 4
        and tuple(window_strides) == (1, 1)
        and tuple(lhs_dilation or (1, 1)) == (1, 1)
        and tuple(rhs_dilation or (1, 1)) == (1, 1)
        and feature_group_count == 1
        and batch_group_count == 1
        and preferred_element_type is None
        and lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
        == lax.conv_dimension_numbers(lhs.shape, rhs.shape, DIMENSION_NUMBERS)
    )
    if not simple:
        return lax.conv_general_dilated(
            lhs,
            rhs,
            window_strides,
            padding,
            lhs_dilation,
            rhs_dilation,
            dimension_numbers,
            feature_group_count,
            batch_group_count,
            precision,
            preferred_element_type,
        )
    if isinstance(padding, str):
        padding = lax.padtype_to_pads(lhs.shape[1:3], rhs.shape[:2], (1, 1), padding)
    pads = tuple((int(lo), int(hi)) for lo, hi in padding)
    return conv_nhwc(lhs, rhs, pads, precision)

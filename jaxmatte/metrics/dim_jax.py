"""Jitted, batched SAD, MSE and Grad with the DIM MATLAB semantics, for on-device evaluation.

References: Xu et al., "Deep Image Matting", CVPR 2017, DIM_evaluation_code/ (see `dim.py`).

Conn needs connected components and stays on the host (`dim.conn`). Everything runs in float32;
convolutions use `precision=HIGHEST` (TF32 on a GPU moves Grad by ~2e-3 relative).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from jaxmatte.conventions import GRAD_SIGMA, METRIC_SCALE, TRIMAP_UNKNOWN, UINT8_MAX
from jaxmatte.metrics.dim import gaussian_derivative_factors


def _unknown(trimap: jax.Array) -> jax.Array:
    return (trimap == TRIMAP_UNKNOWN).astype(jnp.float32)


@jax.jit
def sad(pred: jax.Array, gt: jax.Array, trimap: jax.Array) -> jax.Array:
    """[B] SAD / 1000 over trimap == 128.

    Args:
      pred, gt: [B, H, W] values 0..255 (any real dtype).
      trimap: [B, H, W] codes 0 / 128 / 255.
    """
    err = jnp.abs(pred.astype(jnp.float32) - gt.astype(jnp.float32)) / UINT8_MAX
    return jnp.sum(err * _unknown(trimap), axis=(1, 2)) / METRIC_SCALE


@jax.jit
def mse(pred: jax.Array, gt: jax.Array, trimap: jax.Array) -> jax.Array:
    """[B] mean over unknown pixels of ((pred − gt) / 255)² (NaN without unknown pixels)."""
    err = (pred.astype(jnp.float32) - gt.astype(jnp.float32)) / UINT8_MAX
    mask = _unknown(trimap)
    return jnp.sum(err * err * mask, axis=(1, 2)) / jnp.sum(mask, axis=(1, 2))


def _filter_1d(x: jax.Array, taps: jax.Array, axis: int) -> jax.Array:
    """True convolution of [B, H, W] along `axis` (1 or 2) with replicated borders."""
    half = taps.shape[0] // 2
    pad = [(0, 0)] * 3
    pad[axis] = (half, half)
    x = jnp.pad(x, pad, mode="edge")[:, None]  # [B, 1, H', W'] (NCHW)
    shape = (1, 1, -1, 1) if axis == 1 else (1, 1, 1, -1)
    kernel = taps[::-1].reshape(shape)  # flip: convolution, not correlation
    out = lax.conv_general_dilated(x, kernel, (1, 1), "VALID", precision=lax.Precision.HIGHEST)
    return out[:, 0]


def gradient_magnitude(x: jax.Array, sigma: float = GRAD_SIGMA) -> jax.Array:
    """[B, H, W] float32 |∇ mat2gray(x)| with the gaussgradient.m kernel and replicated borders."""
    g, dg = (jnp.asarray(f, jnp.float32) for f in gaussian_derivative_factors(sigma))
    x = x.astype(jnp.float32)
    lo = jnp.min(x, axis=(1, 2), keepdims=True)
    hi = jnp.max(x, axis=(1, 2), keepdims=True)
    span = hi - lo
    x = jnp.where(span > 0, (x - lo) / jnp.where(span > 0, span, 1.0), 0.0)  # mat2gray
    gx = _filter_1d(_filter_1d(x, g, 1), dg, 2)
    gy = _filter_1d(_filter_1d(x, dg, 1), g, 2)
    return jnp.sqrt(gx * gx + gy * gy)


@jax.jit
def grad(pred: jax.Array, gt: jax.Array, trimap: jax.Array) -> jax.Array:
    """[B] Σ_unknown (|∇pred| − |∇gt|)² / 1000, as evaluate.m reports it."""
    diff = gradient_magnitude(pred) - gradient_magnitude(gt)
    return jnp.sum(diff * diff * _unknown(trimap), axis=(1, 2)) / METRIC_SCALE

"""Closed-form matting (Levin et al.) from an image and a trimap, with a coarse-to-fine guess."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import Array, lax

from jaxmatte import conventions
from jaxmatte.propagation.laplacian import matting_laplacian
from jaxmatte.propagation.solve import SolveInfo, propagate

# Label thresholds on a trimap in [0, 1] (the 8-bit model-side thresholds, rescaled).
_BG_BELOW = conventions.TRIMAP_BG_BELOW / conventions.UINT8_MAX
_FG_FROM = conventions.TRIMAP_FG_FROM / conventions.UINT8_MAX


def trimap_constraints(trimap: Array, lam: float) -> tuple[Array, Array]:
    """Confidence and known alpha from a trimap.

    Args:
      trimap: [B, H, W] labels in [0, 1] (0 background, 0.5 unknown, 1 foreground; values below
        85/255 count as background and from 170/255 as foreground).
      lam: confidence lambda given to known pixels.

    Returns:
      (confidence [B, H, W] = lam on known pixels else 0, alpha_known [B, H, W] in {0, 1}).

    References:
      Levin, Lischinski, Weiss, TPAMI 2008, Sec. 3.1 (lambda D_S, b_S).
    """
    fg = trimap >= _FG_FROM
    known = fg | (trimap < _BG_BELOW)
    return jnp.where(known, lam, 0.0).astype(trimap.dtype), fg.astype(trimap.dtype)


def _downsample2(x: Array) -> Array:
    """2x2 average pooling of [B, H, W, ...], edge-padding odd sizes."""
    h, w = x.shape[1:3]
    pad = [(0, 0), (0, h % 2), (0, w % 2)] + [(0, 0)] * (x.ndim - 3)
    x = jnp.pad(x, pad, mode="edge")
    s = x.shape
    return x.reshape(s[0], s[1] // 2, 2, s[2] // 2, 2, *s[3:]).mean(axis=(2, 4))


def coarse_guess(
    image: Array,
    trimap: Array,
    *,
    levels: int,
    eps: float,
    lam: float,
    radius: int,
    tol: float,
    maxiter: int,
) -> Array | None:
    """Initial guess from closed-form matting on 2x-downsampled inputs, `levels` deep.

    Args:
      image: [B, H, W, 3] RGB in [0, 1].
      trimap: [B, H, W] labels in [0, 1].
      levels: number of coarser levels (0: no guess, returns None).
      eps, lam, radius, tol, maxiter: as in `closed_form_matting`.

    Returns:
      [B, H, W] guess (no gradient), or None.
    """
    h, w = trimap.shape[1:]
    if levels <= 0 or min(h, w) // 2 < 2 * radius + 1:
        return None
    image_c, trimap_c = _downsample2(lax.stop_gradient(image)), _downsample2(trimap)
    alpha_c = closed_form_matting(
        image_c, trimap_c, eps=eps, lam=lam, radius=radius, tol=tol, maxiter=maxiter,
        levels=levels - 1, clip=False,
    )  # fmt: skip
    up = jax.image.resize(alpha_c, trimap.shape, method="linear")
    return lax.stop_gradient(up)


def closed_form_matting(
    image: Array,
    trimap: Array,
    *,
    eps: float = conventions.MATTING_EPS,
    lam: float = conventions.MATTING_LAMBDA,
    radius: int = 1,
    tol: float = conventions.CG_TOL,
    maxiter: int = conventions.CG_MAXITER,
    levels: int = 0,
    clip: bool = True,
    return_info: bool = False,
) -> Array | tuple[Array, SolveInfo]:
    """Closed-form alpha matting: solves (L + lambda D_S) alpha = lambda b_S matrix-free.

    Differentiable w.r.t. the image (and the trimap values through alpha*), in both modes.

    Args:
      image: [B, H, W, 3] RGB in [0, 1].
      trimap: [B, H, W] labels in [0, 1], see `trimap_constraints`.
      eps: colour-line regulariser of the matting Laplacian.
      lam: confidence of trimap-known pixels (soft constraint weight).
      radius: window radius (1 = 3x3 windows).
      tol, maxiter: CG relative tolerance and iteration cap.
      levels: coarse-to-fine depth for the initial guess (0 = none); changes speed, not the answer.
      clip: clip alpha to [0, 1] (pymatting does the same).
      return_info: also return the SolveInfo of the full-resolution solve.

    Returns:
      alpha [B, H, W] (and SolveInfo when return_info).

    References:
      Levin, Lischinski, Weiss, A Closed-Form Solution to Natural Image Matting, TPAMI 2008,
      Eq. (12) and Sec. 3.1.
    """
    confidence, alpha_known = trimap_constraints(trimap, lam)
    matvec, diag = matting_laplacian(image, eps=eps, radius=radius)
    x0 = coarse_guess(
        image, trimap, levels=levels, eps=eps, lam=lam, radius=radius, tol=tol, maxiter=maxiter
    )
    alpha, info = propagate(
        matvec, diag, confidence, alpha_known, tol=tol, maxiter=maxiter, x0=x0, return_info=True
    )
    if clip:
        alpha = jnp.clip(alpha, 0.0, 1.0)
    return (alpha, info) if return_info else alpha

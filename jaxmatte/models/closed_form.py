"""Closed-form matting (Levin et al. 2008) as a parameter-free model under the model contract."""

from __future__ import annotations

from typing import Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import Array

from jaxmatte import conventions
from jaxmatte.propagation.closed_form import closed_form_matting
from jaxmatte.registry import MODELS


@MODELS.register("closed_form")
class ClosedForm(nn.Module):
    """Closed-form matting; no parameters, no training, no checkpoint.

    Attributes:
      eps: colour-line regulariser of the matting Laplacian.
      lam: confidence lambda of trimap-known pixels ("lambda" is a Python keyword).
      tol: CG tolerance (relative to the residual of the trimap guess).
      maxiter: CG iteration cap.
      levels: coarse-to-fine depth of the initial guess (speed only).
      radius: matting window radius (1 = 3x3).
      constraints: "hard" (known pixels fixed, as pymatting) or "soft" (lam, as Levin's code).
      preconditioner: "jacobi" or "multigrid".
      tiled: with "hard" and "jacobi", solve only on the 8 x 8 tiles holding unknown pixels.
      dtype: "float32" or "float64" (needs x64 enabled, e.g. `config.x64 = True`).

    References:
      Levin, Lischinski, Weiss, A Closed-Form Solution to Natural Image Matting, TPAMI 2008.
    """

    eps: float = conventions.MATTING_EPS
    lam: float = conventions.MATTING_LAMBDA
    tol: float = conventions.CG_TOL_CLOSED_FORM
    maxiter: int = conventions.CG_MAXITER_CLOSED_FORM
    levels: int = 0
    radius: int = 1
    constraints: str = "hard"
    preconditioner: str = "jacobi"
    tiled: bool = True
    dtype: str = "float32"

    inputs = ("image", "trimap")
    # No variables at all: `weights.load` skips tracing init to find their shapes.
    parameter_free = True
    # An all-unknown trimap leaves the system without constraint: predict refuses it (named).
    needs_known_pixels = True

    @nn.compact
    def __call__(self, batch: Mapping[str, Array], train: bool = False) -> dict[str, Array]:
        """Predicts alpha.

        Args:
          batch: "image" [B, H, W, 3] ImageNet-normalised RGB, "trimap" [B, H, W, 1] labels
            {0, 0.5, 1}.
          train: unused (no state).

        Returns:
          {"alpha": [B, H, W, 1] float32 in [0, 1]}.
        """
        del train
        image, trimap = batch["image"], batch["trimap"]
        dtype = jnp.dtype(self.dtype)
        if dtype == jnp.float64 and not jax.config.jax_enable_x64:
            raise ValueError(
                "closed_form: dtype float64 needs x64; set config.x64 = True or run under "
                "jax.enable_x64(True)"
            )
        mean = jnp.asarray(conventions.IMAGENET_MEAN, dtype)
        std = jnp.asarray(conventions.IMAGENET_STD, dtype)
        rgb = jnp.clip(image.astype(dtype) * std + mean, 0.0, 1.0)
        alpha = closed_form_matting(
            rgb,
            trimap[..., 0].astype(dtype),
            eps=self.eps,
            lam=self.lam,
            radius=self.radius,
            tol=self.tol,
            maxiter=self.maxiter,
            levels=self.levels,
            constraints=self.constraints,
            preconditioner=self.preconditioner,
            tiled=self.tiled,
            clip=True,
        )
        return {"alpha": alpha[..., None].astype(jnp.float32)}

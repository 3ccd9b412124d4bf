"""``closed_form_buckets``: closed-form prediction with host-side shape buckets (few compiles)."""

from __future__ import annotations

from typing import Any, Mapping

import jax
import numpy as np

from jaxmatte import conventions as cv
from jaxmatte.inference import procedures
from jaxmatte.registry import INFERENCE


@INFERENCE.register("closed_form_buckets")
def closed_form_buckets(
    models: Mapping[str, Any],
    *,
    size_multiple: int = 64,
    square: bool = True,
    slot_steps: int = 4,
    aggregate: int = 4,
) -> procedures.PredictFn:
    """Closed-form matting padded to size buckets, its tile capacity chosen on the host.

    The procedure runs on the host (``host_side``): it needs the trimap's values to choose the
    shapes it compiles for (`propagation/buckets.py`). Models other than hard-constraint tiled
    Jacobi closed-form (multigrid, soft, coarse-to-fine) fall back to ``pad_apply`` under jit.

    Args:
      models: run name -> module; ``"main"`` is a ``ClosedForm``.
      size_multiple: images are padded (outside every matting window) to multiples of it.
      square: pad to squares (portrait and landscape images share compiled programs).
      slot_steps: tile-capacity buckets per octave.
      aggregate: A > 0 adds the two-level colour-line coarse space on A x A pixel aggregates to
        Jacobi (`propagation/coarse.py`: 20-60x fewer PCG iterations on realmatte, the coarse
        system LU-factored on the host); 0: Jacobi alone. A must divide CF_TILE.
    """
    if aggregate < 0 or (aggregate and cv.CF_TILE % aggregate):
        raise ValueError(
            f"config.inference.kwargs.aggregate must be 0 or a divisor of the tile size "
            f"{cv.CF_TILE}, got {aggregate}"
        )
    from jaxmatte.propagation import buckets

    model = models["main"]
    plain = (
        model.constraints == "hard"
        and model.preconditioner == "jacobi"
        and model.tiled
        and model.levels == 0
        and 2 * model.radius <= cv.CF_TILE
    )
    if not plain:
        return jax.jit(procedures.pad_apply(models))

    def fn(variables: Mapping[str, Any], batch: Mapping[str, Any]) -> dict[str, Any]:
        del variables
        dtype = np.dtype(model.dtype)
        mean, std = np.asarray(cv.IMAGENET_MEAN, dtype), np.asarray(cv.IMAGENET_STD, dtype)
        rgb = np.clip(np.asarray(batch["image"], dtype) * std + mean, 0.0, 1.0)
        alpha = buckets.closed_form_bucketed(
            rgb,
            np.asarray(batch["trimap"], dtype)[..., 0],
            eps=model.eps,
            radius=model.radius,
            tol=model.tol,
            maxiter=model.maxiter,
            size_multiple=size_multiple,
            slot_steps=slot_steps,
            square=square,
            aggregate=aggregate,
        )
        return {"alpha": np.asarray(alpha, np.float32)[..., None]}

    fn.host_side = True
    return fn

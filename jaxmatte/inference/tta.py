"""LSA test-time augmentation: scales x 8 dihedral views, each inverted exactly and averaged."""

from __future__ import annotations

import fractions
import functools
from typing import Any, Callable, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxmatte.inference import refine as refine_lib
from jaxmatte.models import resize
from jaxmatte.registry import INFERENCE

Array = jax.Array
# (transpose, hflip, vflip): identity, h, v, h+v, t, t+h, t+v, t+h+v (spec lsa.md §8).
VIEWS = tuple((t, h, v) for t in (False, True) for h, v in ((0, 0), (1, 0), (0, 1), (1, 1)))
# Batch keys resized by nearest neighbour (labels); everything else is resized bicubically.
NEAREST_KEYS = ("trimap", "trimap_tcp", "mask")


def apply_view(x: Array, view: tuple[bool, int, int]) -> Array:
    """Transpose (H <-> W), then flip horizontally, then vertically, on [B, H, W, C]."""
    t, h, v = view
    if t:
        x = jnp.swapaxes(x, 1, 2)
    if h:
        x = x[:, :, ::-1]
    if v:
        x = x[:, ::-1]
    return x


def invert_view(x: Array, view: tuple[bool, int, int]) -> Array:
    """The exact inverse of `apply_view` (flips are involutions; undo in reverse order)."""
    t, h, v = view
    if v:
        x = x[:, ::-1]
    if h:
        x = x[:, :, ::-1]
    if t:
        x = jnp.swapaxes(x, 1, 2)
    return x


def resize_nearest(x: Array, size: Sequence[int]) -> Array:
    """cv2 INTER_NEAREST on [B, H, W, C]: source index floor(i · in / out).

    Symbolic sizes (``jax.export``): the same float64 arithmetic in the graph (local x64).
    """
    for axis, out in zip((1, 2), size):
        n = x.shape[axis]
        if resize.is_static(n, out):
            idx = np.minimum(np.floor(np.arange(out) * (n / out)).astype(np.int64), n - 1)
        else:
            with jax.enable_x64(True):
                scale = jnp.asarray(n, jnp.float64) / jnp.asarray(out, jnp.float64)
                idx = jnp.floor(jnp.arange(out, dtype=jnp.float64) * scale).astype(jnp.int64)
                idx = jnp.minimum(idx, n - 1).astype(jnp.int32)
        x = jnp.take(x, jnp.asarray(idx), axis=axis)  # gathers copy values: same bits either way
    return x


def scaled_size(h: int, w: int, scale: float) -> tuple[int, int]:
    """(int(scale · h), int(scale · w)); for ``jax.export`` symbolic sides, the same as
    floor(p · side / q) with p / q the shortest fraction printing as ``scale`` (0.8 = 4 / 5)."""
    if resize.is_static(h, w):
        return int(scale * h), int(scale * w)
    if scale == 1.0:
        return h, w
    frac = fractions.Fraction(repr(float(scale)))
    return (frac.numerator * h) // frac.denominator, (frac.numerator * w) // frac.denominator


def resize_batch(batch: Mapping[str, Array], size: Sequence[int], method: str) -> dict:
    """Resizes every [B, H, W, C] entry: labels nearest, the others `method` ("cubic"/"linear")."""
    return {
        k: resize_nearest(v, size) if k in NEAREST_KEYS else resize.resize_2d(v, size, method)
        for k, v in batch.items()
    }


def tta(
    apply_fn: Callable[[Mapping[str, Array]], Mapping[str, Array]],
    batch: Mapping[str, Array],
    scales: Sequence[float] = (0.8, 1.0, 1.25),
    *,
    dihedral: bool = True,
    force: bool = True,
) -> dict[str, Array]:
    """Averages `apply_fn` over scales x dihedral views, each mapped back to the input frame.

    At scale s the inputs are resized to (int(s·H), int(s·W)) (bicubic a = −0.75; trimaps
    nearest), the 8 views are averaged, and the mean is resized back to H x W (bicubic, no clip).
    The scale means are averaged, the known regions forced and the result clipped.

    Args:
      apply_fn: batch -> {"alpha": [B, h, w, 1]} (one view; LSA clips and forces per view).
      batch: [B, H, W, C] inputs, including "trimap" labels {0, 0.5, 1}.
      scales: resize factors (paper: 0.8, 1, 1.25).
      dihedral: average the 8 dihedral views (else the identity view only).
      force: force α on the trimap's known regions at the end.

    Returns:
      {"alpha": float32 [B, H, W, 1] in [0, 1]}.

    References: paper Sec. 5 (TTA); spec lsa.md §8.
    """
    h, w = batch["trimap"].shape[1:3]
    views = VIEWS if dihedral else VIEWS[:1]
    per_scale = []
    for s in scales:
        size = scaled_size(h, w, s)
        scaled = dict(batch) if size == (h, w) else resize_batch(batch, size, "cubic")
        total = None
        for view in views:
            out = apply_fn({k: apply_view(v, view) for k, v in scaled.items()})["alpha"]
            out = invert_view(out.astype(jnp.float32), view)
            total = out if total is None else total + out
        mean = total / len(views)
        per_scale.append(resize.resize_2d(mean, (h, w), "cubic"))
    alpha = sum(per_scale[1:], per_scale[0]) / len(per_scale)
    if force:
        alpha = refine_lib.force_known(alpha, batch["trimap"])
    return {"alpha": jnp.clip(alpha, 0.0, 1.0)}


def cap_size(
    fn: Callable[[Mapping[str, Array]], Mapping[str, Array]],
    batch: Mapping[str, Array],
    max_size: int,
) -> dict[str, Array]:
    """Comp-1k rule: a side above `max_size` is resized to it (image bilinear, trimap nearest)
    and the alpha is resized back bilinearly (spec §8, `tools/test.py`). 0 disables."""
    h, w = batch["trimap"].shape[1:3]
    if not max_size or max(h, w) <= max_size:
        return dict(fn(batch))
    size = (min(h, max_size), min(w, max_size))
    out = fn(resize_batch(batch, size, "linear"))
    return {"alpha": resize.resize_2d(out["alpha"], (h, w), "linear")}


@INFERENCE.register("lsa_tta")
def make_lsa_tta(
    models: Mapping[str, nn.Module],
    *,
    scales: Sequence[float] = (0.8, 1.0, 1.25),
    dihedral: bool = True,
    refine: bool = False,
    refine_kwargs: Mapping[str, Any] | None = None,
    multiple: int = 64,
    reflect: int = 16,
    zero: int = 16,
    force: bool = True,
    max_size: int = 0,
) -> Callable[[Mapping[str, Any], Mapping[str, Array]], dict[str, Array]]:
    """LSA inference: each view padded per spec §8, optionally refined by BR, clipped, cropped
    and forced; views and scales averaged by `tta`.

    scales=(1.0,), dihedral=False is the single-view Comp-1k protocol; the defaults with
    refine=True are the alphamatting.com protocol (24 BR runs per image).

    Args:
      models: {"main": LSA module}.
      scales, dihedral, force: see `tta`.
      refine: run `refine.refine` in every view; refine_kwargs: its steps, lr, c2_weight,
        boundary, count_offset.
      multiple, reflect, zero: see `refine.pad_view`.
      max_size: see `cap_size` (Comp-1k: 2176; 0 = off).

    Returns fn(variables, batch) -> {"alpha": float32 [B, H, W, 1]}.
    """
    model = models["main"]
    rkw = dict(refine_kwargs or {})

    def fn(variables, batch):
        v = variables["main"]
        if refine:
            forward = lambda b: refine_lib.refine(model, v, b, **rkw)
        else:
            forward = lambda b: model.apply(v, b, train=False)
        view = functools.partial(
            refine_lib.single_view,
            forward,
            multiple=multiple,
            reflect=reflect,
            zero=zero,
            force=force,
        )
        run = lambda b: tta(view, b, tuple(scales), dihedral=dihedral, force=force)
        return cap_size(run, {k: batch[k] for k in model.inputs}, max_size)

    return fn

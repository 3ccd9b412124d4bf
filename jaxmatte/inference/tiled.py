"""Tiled inference: any model over overlapping tiles with blended seams, peak memory bounded.

``config.inference = {"name": "tiled", "kwargs": {"tile": 512, "overlap": 64,
"memory_budget_mb": 0, "multiple": 32}}``.

How it runs. The image is zero-padded bottom/right to a canvas covered by an ny x nx grid of
tiles of side ``tile`` at stride ``tile - overlap`` (a side shorter than the tile gets one tile
of its own padded length). A ``lax.fori_loop`` over the tiles slices each tile's inputs, applies
the model and adds ``weight * output`` into canvas-sized accumulators, so the peak memory is the
canvas buffers plus one tile's activations, whatever the image size. The weights are separable,
static and sum to one at every pixel: 1 inside a tile, 0 within ``margin`` pixels of an edge it
shares with a neighbour, a linear ramp across the rest of the overlap. A convolutional model whose
receptive field reaches at most ``margin`` pixels (and whose strides divide ``multiple``, so tile
origins stay on its sampling grid) therefore gives the whole-image result, up to float rounding,
except near the bottom/right image border where the two pad differently.

Trimap-input models (``"trimap"`` among ``model.inputs``): a tile with no unknown pixel in any
batch element skips the model (``lax.cond``) and its alpha is the trimap label (1 on FG, 0 on
BG). Since the other outputs of such a tile are undefined, these models return ``"alpha"`` only;
other models return every output with the tile's spatial size, blended the same way (outputs of
other shapes, e.g. pooled features, are dropped).

Memory budget. With ``memory_budget_mb > 0`` the tile is chosen when the procedure is traced for
an image shape (so once per shape under ``apply.InferenceFn``'s jit): each candidate tile (a
ladder ``multiple * 2^k`` and ``multiple * 3 * 2^(k-1)`` up to ``tile``, or to the image side when
``tile`` is 0) is lowered and compiled as the whole tiled program, and
``memory.predict_peak_bytes`` reads its ``memory_analysis()``; a binary search keeps the largest
tile whose figure fits. The figure counts XLA's buffers (inputs, canvas, accumulators, one tile's
activations), not the Python process around them; ``accounted_compile`` (default) compiles the
program that runs with the prediction's compiler options, so the two are the same program. Each
probe is one extra compile (3-4 for a 4096² image); ``fn.plans`` records
``{(shape...): (tile, predicted_bytes)}``.

What tiling changes for ViTMatte. Every attention, the global blocks' included, sees only its
tile; the absolute position embedding is resampled to the tile's token grid (each tile sees the
whole embedding, not a crop of the image's); the global blocks' relative-position tables are
interpolated for the tile's grid rather than the image's; the 14-token windows start at each
tile's origin. The output is therefore not the whole-image output anywhere, not even in tile
interiors. ``bench/tiled.py compare`` measures it: ViTMatte-S, random init, 512² image, 256 tiles
with overlap 64: mean |d alpha| 1.2e-4, max 6.6e-3 (alpha's own std there: 4.4e-3).
With one tile covering the image the result equals ``pad_apply`` with mode ``"minimal"``.
"""

from __future__ import annotations

import functools
import logging
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxmatte import conventions as cv
from jaxmatte.inference import memory
from jaxmatte.models import base
from jaxmatte.registry import INFERENCE

KEY = "config.inference.kwargs"


def round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def axis_layout(length: int, tile: int, overlap: int, multiple: int) -> tuple[int, int, int]:
    """``(count, side, canvas)``: the tiles along an axis of ``length`` pixels.

    ``side`` is ``tile``, or the padded length when that is smaller (one tile); tiles start at
    ``k * (side - overlap)`` and the canvas ``(count - 1) * (side - overlap) + side`` covers
    ``length``.
    """
    padded = round_up(length, multiple)
    if padded <= tile:
        return 1, padded, padded
    stride = tile - overlap
    count = -(-(length - tile) // stride) + 1
    return count, tile, (count - 1) * stride + tile


def axis_weights(count: int, side: int, overlap: int, margin: int) -> np.ndarray:
    """Blend weights ``[count, side]`` of the tiles along one axis; they sum to 1 per pixel.

    A tile's weight is 0 within ``margin`` pixels of an edge shared with a neighbour, ramps
    linearly to 1 across the next ``overlap - 2 margin`` pixels, and is 1 elsewhere (image
    borders included).
    """
    i = np.arange(side, dtype=np.float64)
    w = np.ones((count, side))
    if count > 1 and overlap > 0:
        ramp = np.clip((i - margin + 0.5) / (overlap - 2 * margin), 0.0, 1.0)
        w[1:] *= ramp
        w[:-1] *= ramp[::-1]
    stride = side - overlap
    total = np.zeros((count - 1) * stride + side)
    for k in range(count):
        total[k * stride : k * stride + side] += w[k]
    for k in range(count):
        w[k] /= total[k * stride : k * stride + side]
    return w.astype(np.float32)


def _pad_to(x: jax.Array, hw: tuple[int, int]) -> jax.Array:
    h, w = x.shape[1:3]
    return jnp.pad(x, ((0, 0), (0, hw[0] - h), (0, hw[1] - w), (0, 0)))


def skips_known(model: Any) -> bool:
    """Whether tiles without unknown pixels skip ``model`` (it reads a trimap, returns alpha)."""
    return "trimap" in base.input_keys(model)


def tiled_apply(
    model: Any,
    variables: Any,
    batch: Mapping[str, jax.Array],
    *,
    tile: int,
    overlap: int,
    margin: int,
    multiple: int,
    skip_known: bool = True,
) -> dict[str, jax.Array]:
    """``model`` in eval mode over overlapping tiles of ``batch``, blended back to its size.

    Args:
      model: a registered model (``inputs`` declared); variables: its variables.
      batch: encoded inputs ``[B, H, W, C]`` (static shapes; works under jit).
      tile, overlap, margin, multiple: see the module docstring; ``tile`` and ``overlap`` are
        multiples of ``multiple`` and ``2 * margin < overlap`` (or both 0).
      skip_known: skip tiles with no unknown trimap pixel (trimap-input models only).

    Returns:
      float32 outputs ``[B, H, W, C]``: ``"alpha"`` only for skipping trimap models, else every
      output with the tile's spatial size.
    """
    inputs = base.select_inputs(model, batch)
    first = next(iter(inputs.values()))
    b, h, w = first.shape[:3]
    (ny, th, ch), (nx, tw, cw) = (axis_layout(n, tile, overlap, multiple) for n in (h, w))
    wy = jnp.asarray(axis_weights(ny, th, overlap, margin))
    wx = jnp.asarray(axis_weights(nx, tw, overlap, margin))
    canvas = {k: _pad_to(v, (ch, cw)) for k, v in inputs.items()}
    skip = skip_known and skips_known(model)

    def run_model(tile_in):
        out = model.apply(variables, tile_in, train=False)
        return {k: out[k].astype(jnp.float32) for k in keys}

    tile_shapes = {k: (b, th, tw, v.shape[-1]) for k, v in inputs.items()}
    out_shapes = jax.eval_shape(
        lambda t: model.apply(variables, t, train=False),
        {k: jax.ShapeDtypeStruct(s, inputs[k].dtype) for k, s in tile_shapes.items()},
    )
    keys = [
        k
        for k, s in out_shapes.items()
        if len(s.shape) == 4 and tuple(s.shape[:3]) == (b, th, tw) and (not skip or k == "alpha")
    ]
    if skip and keys != ["alpha"]:
        skip = False  # a trimap model without alpha output (e.g. a trimap net) never skips
        keys = [k for k, s in out_shapes.items() if len(s.shape) == 4 and s.shape[1:3] == (th, tw)]

    def body(k, acc):
        y0, x0 = (k // nx) * (th - overlap), (k % nx) * (tw - overlap)
        tile_in = {
            name: lax.dynamic_slice(v, (0, y0, x0, 0), tile_shapes[name])
            for name, v in canvas.items()
        }
        if skip:
            t = tile_in["trimap"]
            unknown = jnp.any((t != cv.LABEL_BG) & (t != cv.LABEL_FG))
            out = lax.cond(unknown, run_model, lambda ti: {"alpha": ti["trimap"]}, tile_in)
        else:
            out = run_model(tile_in)
        weight = (wy[k // nx][:, None] * wx[k % nx][None, :])[None, :, :, None]
        new = {}
        for name, a in acc.items():
            start = (0, y0, x0, 0)
            cur = lax.dynamic_slice(a, start, out[name].shape)
            new[name] = lax.dynamic_update_slice(a, cur + weight * out[name], start)
        return new

    acc0 = {k: jnp.zeros((b, ch, cw, out_shapes[k].shape[-1]), jnp.float32) for k in keys}
    acc = lax.fori_loop(0, ny * nx, body, acc0)
    return {k: v[:, :h, :w] for k, v in acc.items()}


def candidate_tiles(longest: int, overlap: int, multiple: int, max_tile: int) -> list[int]:
    """Ascending tiles ``multiple * {2^k, 3 * 2^(k-1)}`` above ``overlap``, up to the cap.

    The cap is ``max_tile`` (when > 0) and the padded longest image side (larger tiles are one
    tile); the cap itself is the last candidate.
    """
    cap = round_up(longest, multiple)
    if max_tile > 0:
        cap = min(cap, max_tile)
    out, k = [], 0
    while multiple * 2**k < cap:
        for t in (multiple * 2**k, multiple * 3 * 2**k // 2):
            if overlap < t < cap and t % multiple == 0:
                out.append(t)
        k += 1
    return sorted(set(out)) + [cap]


def choose_tile(
    model: Any,
    variables: Any,
    batch: Mapping[str, Any],
    *,
    budget_bytes: int,
    max_tile: int,
    **kwargs: Any,
) -> tuple[int, int]:
    """``(tile, predicted_bytes)``: the largest candidate whose tiled program fits the budget.

    Binary search over ``candidate_tiles`` (peak memory grows with the tile); each probe compiles
    the tiled program for the shapes of ``variables`` and ``batch`` (nothing runs).
    """
    inputs = base.select_inputs(model, batch)
    h, w = next(iter(inputs.values())).shape[1:3]
    cands = candidate_tiles(max(h, w), kwargs["overlap"], kwargs["multiple"], max_tile)
    fits, lo, hi = {}, 0, len(cands) - 1
    while lo <= hi:
        mid = (lo + hi) // 2
        fn = functools.partial(tiled_apply, model, tile=cands[mid], **kwargs)
        need = memory.predict_peak_bytes(fn, variables, inputs)
        logging.info("tiled: tile %d predicts %.0f MiB", cands[mid], need / memory.MIB)
        if need <= budget_bytes:
            fits[cands[mid]] = need
            lo = mid + 1
        else:
            hi = mid - 1
    if not fits:
        raise ValueError(
            f"{KEY}.memory_budget_mb: {budget_bytes / memory.MIB:.0f} MiB is too small for the "
            f"smallest tile {cands[0]} at image size {h}x{w}"
        )
    best = max(fits)
    return best, fits[best]


def _check(tile: int, overlap: int, margin: int, multiple: int, budget: float) -> None:
    if multiple < 1:
        raise ValueError(f"{KEY}.multiple must be >= 1, got {multiple}")
    if tile < 0 or tile % multiple or (tile == 0 and budget <= 0):
        raise ValueError(
            f"{KEY}.tile must be a positive multiple of multiple={multiple} "
            f"(or 0 with a memory_budget_mb), got {tile}"
        )
    if overlap < 0 or overlap % multiple or (tile and overlap >= tile):
        raise ValueError(
            f"{KEY}.overlap must be a multiple of multiple={multiple} in [0, tile), got {overlap}"
        )
    if margin < 0 or (overlap and 2 * margin >= overlap):
        raise ValueError(f"{KEY}.margin must be >= 0 and < overlap / 2, got {margin}")
    if budget < 0:
        raise ValueError(f"{KEY}.memory_budget_mb must be >= 0, got {budget}")


@INFERENCE.register("tiled")
def tiled(
    models: Mapping[str, Any],
    *,
    tile: int = 512,
    overlap: int = 64,
    memory_budget_mb: float = 0.0,
    multiple: int = 32,
    margin: int = -1,
    skip_known: bool = True,
    accounted_compile: bool = True,
    mmap_threshold_kib: int = 1024,
):
    """The main model over tiles (module docstring); ``margin`` -1 means ``overlap // 4``.

    With ``memory_budget_mb > 0``, ``tile`` is the largest tile tried (0: the image side), and
    with ``accounted_compile`` the program that runs is compiled with the options the prediction
    used (`memory.compiler_options`: on CPU, XLA's YNNPACK fusions off, whose scratch memory XLA
    does not report), so the budget holds for what runs; False keeps XLA's default executable
    (faster or slower by model; its peak can exceed the prediction, see memory.py). Under a
    budget, ``mmap_threshold_kib`` > 0 also fixes glibc's mmap threshold for the process
    (`memory.return_freed_blocks`: freed transient blocks of XLA's runtime leave the process
    instead of staying in malloc's arenas); 0 keeps glibc's dynamic threshold.
    """
    margin = overlap // 4 if margin < 0 else margin
    _check(tile, overlap, margin, multiple, memory_budget_mb)
    if mmap_threshold_kib < 0:
        raise ValueError(f"{KEY}.mmap_threshold_kib must be >= 0, got {mmap_threshold_kib}")
    if memory_budget_mb > 0:
        memory.return_freed_blocks(mmap_threshold_kib)
    model = models["main"]
    opts = dict(overlap=overlap, margin=margin, multiple=multiple, skip_known=skip_known)

    def fn(variables: Mapping[str, Any], batch: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
        chosen = tile
        if memory_budget_mb > 0:
            shape = tuple(tuple(v.shape) for v in base.select_inputs(model, batch).values())
            if shape not in fn.plans:
                fn.plans[shape] = choose_tile(
                    model,
                    variables["main"],
                    batch,
                    budget_bytes=int(memory_budget_mb * memory.MIB),
                    max_tile=tile,
                    **opts,
                )
            chosen = fn.plans[shape][0]
        return tiled_apply(model, variables["main"], batch, tile=chosen, **opts)

    fn.plans = {}
    if memory_budget_mb > 0 and accounted_compile:
        fn.compiler_options = memory.compiler_options()  # read by apply.InferenceFn
    return fn

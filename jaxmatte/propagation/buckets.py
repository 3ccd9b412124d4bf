"""Closed-form prediction in size buckets: a few compiled solves serve images of every size.

XLA compiles one program per input shape, seconds each for closed-form matting on CPU. Here the
host pads every image to a size bucket (`TRIMAP_OUTSIDE` on the padding, which enters no matting
window, so the answer on the image is unchanged), counts the active tiles and rounds that count
up to a slot bucket. With Jacobi, two programs run: the system (compiled per size bucket) and
PCG on the active tiles (per slot bucket, whatever the image size); the tile gather and scatter
between them run on the host, so no program depends on both buckets. With the two-level
preconditioner (the predict default), the system is built on haloed patches of the active tiles
(`tile_system.py`, one program for all sizes), and PCG runs from the host (`two_level.py`,
per slot bucket): no program depends on the image size.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from jaxmatte import conventions
from jaxmatte.propagation import closed_form as cf
from jaxmatte.propagation import tile_system, tiles, two_level


def bucket_size(h: int, w: int, multiple: int, square: bool) -> tuple[int, int]:
    """(H, W) rounded up to multiples of `multiple`; both the larger of them when `square`."""
    h, w = -(-h // multiple) * multiple, -(-w // multiple) * multiple
    return (max(h, w),) * 2 if square else (h, w)


def slot_bucket(need: int, steps: int) -> int:
    """Smallest m 2^e >= need with m in [steps, 2 steps): at most 1/steps unused slots.

    Args:
      need: active tiles (>= 0).
      steps: buckets per octave (a power of 2 keeps the ladder 8, 10, 12, 14, 16, 20, ... for 4).
    """
    if need <= steps:
        return max(need, 1)
    e = max(math.ceil(math.log2(need)) - int(math.log2(steps)) - 1, 0)
    while True:
        m = -(-need // 2**e)
        if m < 2 * steps:
            return m * 2**e
        e += 1


def unknown_mask(trimap: np.ndarray) -> np.ndarray:
    """Host twin of the unknown mask of `closed_form.hard_system` for [..., H, W] labels."""
    return (trimap >= cf._BG_BELOW) & (trimap < cf._FG_FROM)


def active_tile_count(unknown: np.ndarray, tile: int) -> int:
    """Most active T x T tiles of any image of a [B, H, W] bool mask (host twin of tiles.py)."""
    b, h, w = unknown.shape
    th, tw = tiles.tile_grid((h, w), tile)
    m = np.zeros((b, th * tile, tw * tile), bool)
    m[:, :h, :w] = unknown
    on = m.reshape(b, th, tile, tw, tile).any(axis=(2, 4))
    return int(on.sum(axis=(1, 2)).max())


def pad_inputs(image: np.ndarray, trimap: np.ndarray, size: tuple[int, int]):
    """Pads [B, H, W, 3] and [B, H, W] bottom/right to `size`; padding is TRIMAP_OUTSIDE."""
    h, w = trimap.shape[1:]
    ph, pw = size[0] - h, size[1] - w
    image = np.pad(image, ((0, 0), (0, ph), (0, pw), (0, 0)))
    trimap = np.pad(trimap, ((0, 0), (0, ph), (0, pw)), constant_values=cf.TRIMAP_OUTSIDE)
    return image, trimap


@functools.partial(jax.jit, static_argnames=("eps", "radius"))
def _system(image: Array, trimap: Array, *, eps: float, radius: int):
    return cf.hard_system(image, trimap, eps=eps, radius=radius)


def host_layout(unknown: np.ndarray, tile: int, slots: int) -> tuple[np.ndarray, np.ndarray]:
    """Host twin of `tiles.tile_layout` for [B, H, W] bool with H, W multiples of T.

    Returns:
      (ids [B, S] int32, neighbours [B, S, 9] int32), as in `tiles.TileLayout`.
    """
    b, h, w = unknown.shape
    th, tw = h // tile, w // tile
    on = unknown.reshape(b, th, tile, tw, tile).any(axis=(2, 4)).reshape(b, th * tw)
    empty = th * tw
    ids = np.full((b, slots), empty, np.int64)
    slot_of = np.full((b, empty + 1), slots, np.int64)
    for i in range(b):
        act = np.flatnonzero(on[i])
        if act.size > slots:
            raise ValueError(f"{act.size} active tiles do not fit in {slots} slots")
        ids[i, : act.size] = act
        slot_of[i, act] = np.arange(act.size)
    ty, tx = ids // tw, ids % tw
    neighbours = []
    for dy, dx in tiles.NEIGHBOURS:
        ny, nx = ty + dy, tx + dx
        inside = (ny >= 0) & (ny < th) & (nx >= 0) & (nx < tw) & (ids < empty)
        nid = np.where(inside, ny * tw + nx, empty)
        neighbours.append(np.take_along_axis(slot_of, nid, axis=1))
    return ids.astype(np.int32), np.stack(neighbours, axis=-1).astype(np.int32)


def gather_host(x: np.ndarray, ids: np.ndarray, tile: int) -> np.ndarray:
    """Host twin of `tiles.gather_tiles`: [B, ..., H, W] -> [B, S, ..., T, T].

    Copies only the slotted tiles (a view of the grid indexed by tile row and column), not the
    whole grid: the 25-plane stencil of an 832^2 image is 69 MB in float32.
    """
    b, *lead, h, w = x.shape
    th, tw = h // tile, w // tile
    n = len(lead)
    out = np.zeros((b, ids.shape[1], *lead, tile, tile), x.dtype)
    for i in range(b):
        used = ids[i] < th * tw  # empty slots stay zero
        ty, tx = np.divmod(ids[i][used], tw)
        view = x[i].reshape(*lead, th, tile, tw, tile)
        picked = view[(slice(None),) * n + (ty, slice(None), tx)]  # [S', ..., T, T]
        out[i, used] = picked
    return out


def scatter_host(xt: np.ndarray, ids: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Host twin of `tiles.scatter_tiles`: [B, S, T, T] -> [B, H, W], zero off the tiles."""
    b, _, tile, _ = xt.shape
    th, tw = size[0] // tile, size[1] // tile
    full = np.zeros((b, th * tw + 1, tile, tile), xt.dtype)
    for i in range(b):
        full[i, ids[i]] = xt[i]
    full = full[:, :-1].reshape(b, th, tw, tile, tile).transpose(0, 1, 3, 2, 4)
    return full.reshape(b, th * tile, tw * tile)


@functools.partial(jax.jit, static_argnames=("tol", "maxiter"))
def _pcg(coeffs: Array, unknown: Array, rhs: Array, neighbours: Array, *, tol, maxiter):
    guess = jnp.zeros_like(rhs)
    return cf.solve_on_tiles(coeffs, unknown, rhs, guess, neighbours, tol=tol, maxiter=maxiter)


def closed_form_bucketed(
    image: np.ndarray,
    trimap: np.ndarray,
    *,
    eps: float,
    radius: int,
    tol: float,
    maxiter: int,
    size_multiple: int,
    slot_steps: int,
    square: bool = True,
    aggregate: int = 0,
    return_info: bool = False,
):
    """`closed_form_matting` (hard constraints, tiled Jacobi-PCG) with host-side shape buckets.

    Args:
      image: [B, H, W, 3] RGB in [0, 1] (numpy; dtype sets the precision).
      trimap: [B, H, W] labels in [0, 1].
      eps, radius, tol, maxiter: as in `closed_form_matting`.
      size_multiple: Jacobi: H and W are padded up to multiples of it (and of the tile).
      square: Jacobi: pad both sides to the larger one (portrait and landscape images share
        programs). The two-level path pads to whole tiles only: no program depends on the size.
      slot_steps: tile-capacity buckets per octave (`slot_bucket`).
      aggregate: A > 0: two-level preconditioner with a colour-line coarse space on A x A
        aggregates (`coarse.py`; A divides the tile); 0: Jacobi alone. Same system and tolerance.
      return_info: also return the SolveInfo.

    Returns:
      alpha [B, H, W] in [0, 1] (numpy), and the SolveInfo when return_info.
    """
    tile = conventions.CF_TILE
    if aggregate and tile % aggregate:
        raise ValueError(f"aggregate {aggregate} must divide the tile size {tile}")
    h, w = trimap.shape[1:]
    # Jacobi builds the system on the whole padded image (compiled per size bucket); the
    # two-level solver on the active tiles only (`tile_system`: one program for every size), so
    # it pads to whole tiles only. PCG compiles per slot bucket; the tile gathers and scatters
    # run on the host, so no program depends on both.
    if aggregate:
        size = bucket_size(h, w, tile, square=False)
    else:
        size = bucket_size(h, w, math.lcm(size_multiple, tile), square)
    image, trimap = pad_inputs(image, trimap, size)
    mask = unknown_mask(trimap)
    need = active_tile_count(mask, tile)
    slots = min(slot_bucket(need, slot_steps), (size[0] // tile) * (size[1] // tile))
    ids, neighbours = host_layout(mask, tile, slots)
    if aggregate:
        grid = (size[0] // tile, size[1] // tile)
        tiled = tile_system.tile_system(image, trimap, ids, grid, eps=eps, radius=radius)
        rgb = gather_host(np.moveaxis(image, -1, 1), ids, tile)
        x, info = two_level.two_level_pcg(
            *tiled, neighbours, rgb, ids, grid, aggregate=aggregate, tol=tol, maxiter=maxiter
        )
        unknown = mask.astype(image.dtype)
        fixed = (trimap >= cf._FG_FROM).astype(image.dtype)  # `hard_system`'s: known foreground
    else:
        coeffs, unknown, rhs, fixed = map(
            np.asarray, _system(image, trimap, eps=eps, radius=radius)
        )  # fmt: skip
        tiled = [gather_host(v, ids, tile) for v in (coeffs, unknown, rhs)]
        x, info = _pcg(*tiled, neighbours, tol=tol, maxiter=maxiter)
    x = scatter_host(np.asarray(x), ids, size)
    alpha = np.clip(fixed + unknown * x, 0.0, 1.0)[:, :h, :w]
    return (alpha, info) if return_info else alpha

"""The closed-form system on haloed patches of the active tiles (propagation/tile_system.py)."""

import numpy as np
import pytest

from jaxmatte.propagation import buckets, tile_system
from jaxmatte.propagation.closed_form import TRIMAP_OUTSIDE, hard_system

TILE = 8


def _inputs(seed: int, h: int, w: int):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    image = 0.5 + 0.3 * np.sin(np.stack([yy / 3, xx / 5, (yy + xx) / 4], -1))
    image = np.clip(image + 0.2 * rng.random((h, w, 3)), 0, 1).astype(np.float32)
    trimap = np.where(xx < w / 3, 0.0, np.where(xx > 2 * w / 3, 1.0, 0.5))
    trimap[rng.random((h, w)) < 0.05] = 0.5  # scattered unknown pixels: many partial tiles
    return image[None], trimap.astype(np.float32)[None]


@pytest.mark.parametrize("radius", [1, 2])
def test_tile_system_equals_the_whole_image_system_on_every_slot(radius):
    """Stencil, mask and right-hand side on the tiles = `hard_system` on the whole image padded
    with TRIMAP_OUTSIDE to whole tiles, gathered; across chunks (a partial last one), image
    borders, tiles next to unslotted ones, and empty slots (zero)."""
    h, w = 45, 61  # not tile multiples: the bottom/right tiles hold outside pixels
    image, trimap = _inputs(0, h, w)
    size = buckets.bucket_size(h, w, TILE, square=False)
    image, trimap = buckets.pad_inputs(image, trimap, size)
    assert (trimap[0, h:] == TRIMAP_OUTSIDE).all()
    mask = buckets.unknown_mask(trimap)
    grid = (size[0] // TILE, size[1] // TILE)
    active = buckets.active_tile_count(mask, TILE)
    assert 10 < active < grid[0] * grid[1]  # some tiles are not slotted
    ids, _ = buckets.host_layout(mask, TILE, active + 3)
    got = tile_system.tile_system(image, trimap, ids, grid, eps=1e-5, radius=radius, chunk=7)
    full = [np.asarray(v) for v in hard_system(image, trimap, eps=1e-5, radius=radius)[:3]]
    ref = [buckets.gather_host(v, ids, TILE) for v in full]
    assert got[0].shape == (1, active + 3, (4 * radius + 1) ** 2, TILE, TILE)
    assert np.abs(ref[0]).max() > 1 and np.abs(ref[2]).max() > 1e-3  # not an empty problem
    for g, r in zip(got, ref):
        np.testing.assert_allclose(g, r, rtol=1e-6, atol=1e-6 * np.abs(r).max())
    assert not got[0][0, active:].any()  # empty slots


def test_patches_reject_an_image_that_is_not_the_tile_grid():
    image, trimap = _inputs(1, 16, 24)
    ids = np.zeros((1, 1), np.int32)
    with pytest.raises(ValueError, match="16x24 is not the 3x3 grid"):
        tile_system.patches(trimap, ids, (3, 3), TILE, 2, TRIMAP_OUTSIDE)

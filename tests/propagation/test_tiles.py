"""Active-tile storage (propagation/tiles.py) and closed-form matting solved on it."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmatte import conventions
from jaxmatte.propagation import tiles
from jaxmatte.propagation.closed_form import closed_form_matting
from jaxmatte.propagation.stencil import stencil_matvec


def ring_mask(b: int, h: int, w: int, widths=(2, 5)) -> np.ndarray:
    """[B, H, W] bool: thin rings of different radii and widths (image i uses widths[i])."""
    yy, xx = np.mgrid[:h, :w]
    out = np.zeros((b, h, w), bool)
    for i in range(b):
        r = np.hypot(yy - h * (0.4 + 0.1 * i), xx - w * 0.5)
        out[i] = np.abs(r - 0.3 * min(h, w)) < widths[i % len(widths)] / 2
    return out


@pytest.mark.parametrize("tile", [4, 8])
def test_gather_scatter_keep_exactly_the_active_tiles(tile):
    rng = np.random.default_rng(0)
    mask = ring_mask(2, 37, 30)  # sizes not multiples of the tile
    layout = tiles.tile_layout(jnp.asarray(mask), tile, slots=60)
    assert (np.asarray(layout.count) <= 60).all()
    x = rng.random(mask.shape).astype(np.float32)
    back = np.asarray(tiles.scatter_tiles(tiles.gather_tiles(jnp.asarray(x), layout), layout))
    th, tw = tiles.tile_grid(mask.shape[1:], tile)
    on = np.asarray(tiles.active_tiles(jnp.asarray(mask), tile)).reshape(2, th, tw)
    on_px = np.repeat(np.repeat(on, tile, 1), tile, 2)[:, :37, :30]
    np.testing.assert_array_equal(back, np.where(on_px, x, 0.0))
    assert on_px[mask].all() and not on_px.all()
    # Ids in raster order, then the empty marker; counts match the active tiles.
    np.testing.assert_array_equal(np.asarray(layout.count), on.reshape(2, -1).sum(1))
    for i in range(2):
        ids = np.asarray(layout.ids[i])
        n = int(layout.count[i])
        np.testing.assert_array_equal(ids[:n], np.flatnonzero(on[i]))
        assert (ids[n:] == th * tw).all()


@pytest.mark.parametrize("tile", [2, 4, 8])
def test_tiled_matvec_equals_grid_matvec(tile):
    """A radius-2 stencil on tiles (halos from neighbour slots) = the full-grid product."""
    rng = np.random.default_rng(1)
    mask = ring_mask(2, 29, 35)
    coeffs = jnp.asarray(rng.normal(size=(2, 25, 29, 35)))
    x = jnp.asarray(rng.random(mask.shape) * mask)  # lives on the active pixels only
    layout = tiles.tile_layout(jnp.asarray(mask), tile, slots=200)
    got = tiles.tiled_stencil_matvec(
        tiles.gather_tiles(coeffs, layout), tiles.gather_tiles(x, layout), layout
    )
    ref = tiles.gather_tiles(stencil_matvec(coeffs, x), layout)
    np.testing.assert_allclose(np.asarray(got), np.asarray(ref), atol=1e-12)


def test_tiled_matvec_rejects_tiles_smaller_than_the_stencil():
    mask = jnp.ones((1, 8, 8), bool)
    layout = tiles.tile_layout(mask, 1, slots=64)
    c = tiles.gather_tiles(jnp.ones((1, 25, 8, 8)), layout)
    with pytest.raises(ValueError, match="stencil radius 2"):
        tiles.tiled_stencil_matvec(c, tiles.gather_tiles(jnp.ones((1, 8, 8)), layout), layout)


def test_layout_reports_overflow():
    mask = ring_mask(1, 40, 40)
    layout = tiles.tile_layout(jnp.asarray(mask), 4, slots=3)
    assert int(layout.count[0]) > 3 and layout.ids.shape == (1, 3)


def smooth_image(seed: int, b: int, h: int, w: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w] / max(h, w)
    img = np.stack([np.sin(4 * xx + c) * np.cos(3 * yy - c) for c in range(3)], -1) * 0.4 + 0.5
    return np.clip(img[None] + rng.normal(0, 0.03, (b, h, w, 3)), 0, 1)


def ring_trimap(mask: np.ndarray) -> np.ndarray:
    h, w = mask.shape[1:]
    yy, _ = np.mgrid[:h, :w]
    trimap = np.where(yy < h / 2, 1.0, 0.0)[None].repeat(mask.shape[0], 0)
    trimap[mask] = 0.5
    return trimap


@pytest.mark.parametrize("slots", [None, (0.01,)])
def test_closed_form_on_tiles_equals_full_grid(monkeypatch, slots):
    """The tiled solve (and, with too few slots, its full-grid fallback) = the full-grid one,
    values and image gradients, for a batch whose images need different numbers of tiles."""
    if slots is not None:
        monkeypatch.setattr(conventions, "CF_TILE_SLOTS", slots)
    calls = []  # tiled products run (a runtime callback: lax.switch traces every branch)
    tiled_matvec = tiles.halo_matvec

    def spy(*args, **kwargs):
        jax.debug.callback(lambda: calls.append(1))
        return tiled_matvec(*args, **kwargs)

    monkeypatch.setattr(tiles, "halo_matvec", spy)
    with jax.enable_x64(True):
        mask = ring_mask(2, 64, 56)
        trimap = jnp.asarray(ring_trimap(mask))
        image = jnp.asarray(smooth_image(2, 2, 64, 56))
        frac = np.asarray(tiles.active_tiles(jnp.asarray(mask), conventions.CF_TILE)).mean(1)
        assert frac.max() <= conventions.CF_TILE_SLOTS[-1] or slots is not None  # tiled
        assert frac.min() > 0.01  # with slots (0.01,) every image overflows: full grid

        def run(img, tiled):
            return closed_form_matting(img, trimap, eps=1e-5, tol=1e-12, tiled=tiled, clip=False)

        np.testing.assert_allclose(run(image, True), run(image, False), atol=1e-9)
        assert bool(calls) == (slots is None)
        weights = jnp.asarray(np.random.default_rng(3).normal(size=trimap.shape))
        grads = [
            jax.grad(lambda im, t=t: jnp.sum(weights * run(im, t)))(image) for t in (True, False)
        ]
        np.testing.assert_allclose(grads[0], grads[1], atol=1e-7 * np.abs(grads[1]).max())


def test_host_halo_gather_and_restricted_planes_equal_the_device_ones():
    """The host-driven two-level solver builds its operator with numpy (`two_level.py`): the
    numpy branches of `halo_index`, `gather_halo` and `restricted_planes` give the jax values."""
    from jaxmatte.propagation.buckets import gather_host, host_layout
    from jaxmatte.propagation.closed_form import hard_system, restricted_planes

    rng = np.random.default_rng(3)
    image = rng.random((1, 40, 32, 3)).astype(np.float32)
    trimap = np.where(rng.random((1, 40, 32)) < 0.3, 0.5, 1.0).astype(np.float32)
    trimap[:, :16] = 0.0  # the top tiles hold no unknown pixel: not slotted
    coeffs, unknown, _, _ = map(np.asarray, hard_system(image, trimap, eps=1e-5, radius=1))
    ids, neighbours = host_layout(unknown > 0, 8, 14)  # 12 active tiles, 2 empty slots
    c_t, u_t = gather_host(coeffs, ids, 8), gather_host(unknown, ids, 8)
    index = tiles.halo_index(neighbours, 8, 2)
    assert isinstance(index, np.ndarray)
    np.testing.assert_array_equal(index, tiles.halo_index(jnp.asarray(neighbours), 8, 2))
    halo = tiles.gather_halo(c_t[:, :, 0], index)
    assert isinstance(halo, np.ndarray)
    np.testing.assert_array_equal(halo, tiles.gather_halo(jnp.asarray(c_t[:, :, 0]), index))
    host = restricted_planes(c_t, u_t, index)
    assert isinstance(host, np.ndarray) and host.shape == (1, 25, 14, 8, 8)
    dev = restricted_planes(jnp.asarray(c_t), jnp.asarray(u_t), jnp.asarray(index))
    np.testing.assert_array_equal(host, np.asarray(dev))
    assert (host[0, 12, 12:] == 1).all()  # empty slots: identity rows

"""Size and slot buckets: padding outside every window keeps the answer; few compiled programs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmatte import conventions
from jaxmatte.propagation import buckets, tiles
from jaxmatte.propagation.closed_form import TRIMAP_OUTSIDE, closed_form_matting
from jaxmatte.propagation.stencil import matting_stencil


def band_inputs(seed: int, h: int, w: int):
    """A smooth-ish random image and a trimap with a diagonal unknown band, [1, H, W(, 3)]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    image = 0.5 + 0.3 * np.sin(np.stack([yy / 5, xx / 7, (yy + xx) / 9], -1))
    image = np.clip(image + 0.1 * rng.random((h, w, 3)), 0, 1)
    d = yy - 0.8 * xx - h / 4
    trimap = np.where(d < -3, 0.0, np.where(d > 3, 1.0, 0.5))
    return image[None], trimap[None]


def test_stencil_of_padded_image_equals_unpadded_and_naive_padding_differs():
    with jax.enable_x64(True):
        image, trimap = band_inputs(0, 13, 11)
        pimg, ptri = buckets.pad_inputs(image, trimap, (16, 16))
        assert np.all(ptri[:, 13:] == TRIMAP_OUTSIDE) and np.all(pimg[:, :, 11:] == 0)
        ref = matting_stencil(jnp.asarray(image), eps=1e-5)
        got = matting_stencil(jnp.asarray(pimg), eps=1e-5, valid=jnp.asarray(ptri >= 0))
        np.testing.assert_allclose(got[..., :13, :11], ref, rtol=1e-12, atol=1e-12)
        assert float(jnp.abs(got[..., 13:, :]).max()) == 0.0  # padding: zero rows
        assert float(jnp.abs(got[..., :, 11:]).max()) == 0.0
        naive = matting_stencil(jnp.asarray(pimg), eps=1e-5)  # windows straddle the border
        assert float(jnp.abs(naive[..., :13, :11] - ref).max()) > 1e-3


@pytest.mark.parametrize("tiled", [True, False])
def test_padded_solve_equals_unpadded_solve(tiled):
    with jax.enable_x64(True):
        image, trimap = band_inputs(1, 21, 18)
        trimap[0, 20, :] = 0.5  # unknown pixels on the last row and column touch the padding
        trimap[0, :, 17] = 0.5
        pimg, ptri = buckets.pad_inputs(image, trimap, (32, 24))
        kw = {"eps": 1e-5, "tol": 1e-12, "maxiter": 5000, "tiled": tiled, "clip": False}
        ref = closed_form_matting(jnp.asarray(image), jnp.asarray(trimap), **kw)
        got = closed_form_matting(jnp.asarray(pimg), jnp.asarray(ptri), **kw)
        np.testing.assert_allclose(got[:, :21, :18], ref, atol=1e-9)
        assert float(jnp.abs(got[:, 21:]).max()) == 0.0


def test_bucketed_prediction_equals_closed_form_matting_with_few_compilations():
    with jax.enable_x64(True):
        kw = {"eps": 1e-5, "radius": 1, "tol": 1e-12, "maxiter": 5000}
        compiled = buckets._system._cache_size(), buckets._pcg._cache_size()
        for seed, (h, w) in enumerate([(30, 37), (27, 40), (31, 33)]):  # one 32 x 48 bucket
            image, trimap = band_inputs(seed, h, w)
            got, info = buckets.closed_form_bucketed(
                image, trimap, size_multiple=16, slot_steps=4, return_info=True, **kw
            )
            ref = closed_form_matting(jnp.asarray(image), jnp.asarray(trimap), **kw)
            assert got.shape == (1, h, w) and bool(info.converged[0])
            np.testing.assert_allclose(got, ref, atol=1e-8)
        assert buckets._system._cache_size() - compiled[0] <= 1  # one size bucket
        assert buckets._pcg._cache_size() - compiled[1] <= 2  # slot buckets, whatever the size


def test_host_layout_gather_and_scatter_equal_the_device_ones():
    rng = np.random.default_rng(5)
    unknown = rng.random((2, 40, 24)) < 0.02
    unknown[1] = False
    unknown[1, 17, 9] = True
    x = rng.random((2, 3, 40, 24))
    slots = 16
    ref = tiles.tile_layout(jnp.asarray(unknown), 8, slots)
    ids, neighbours = buckets.host_layout(unknown, 8, slots)
    np.testing.assert_array_equal(ids, ref.ids)
    np.testing.assert_array_equal(neighbours, ref.neighbours)
    with jax.enable_x64(True):
        got = buckets.gather_host(x, ids, 8)
        np.testing.assert_array_equal(got, tiles.gather_tiles(jnp.asarray(x), ref))
        back = buckets.scatter_host(got[:, :, 0], ids, (40, 24))
        np.testing.assert_array_equal(back, tiles.scatter_tiles(jnp.asarray(got[:, :, 0]), ref))


def test_slot_bucket_ladder():
    got = [buckets.slot_bucket(n, 4) for n in range(1, 200)]
    assert all(g >= n for n, g in zip(range(1, 200), got))
    assert all(g <= n * 1.25 + 1 for n, g in zip(range(1, 200), got))  # <= 1/steps spare
    assert got == sorted(got)
    assert sorted(set(g for g in got if g >= 16))[:8] == [16, 20, 24, 28, 32, 40, 48, 56]


def test_host_tile_count_matches_device_count():
    rng = np.random.default_rng(3)
    trimap = rng.choice([0.0, 0.5, 1.0], size=(2, 37, 29), p=[0.6, 0.05, 0.35])
    unknown = buckets.unknown_mask(trimap)
    on = tiles.active_tiles(jnp.asarray(unknown), conventions.CF_TILE)
    assert buckets.active_tile_count(unknown, conventions.CF_TILE) == int(on.sum(1).max())


def test_too_few_host_slots_give_nan_not_a_wrong_answer():
    image, trimap = band_inputs(4, 24, 24)
    alpha = closed_form_matting(
        jnp.asarray(image, jnp.float32), jnp.asarray(trimap, jnp.float32), slots=1, maxiter=20
    )
    assert bool(jnp.isnan(alpha).any())

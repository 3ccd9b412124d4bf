"""Two-level preconditioner (propagation/coarse.py): coarse system, symmetry, answers."""

import importlib
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmatte import conventions
from jaxmatte.propagation import buckets, coarse, tiles
from jaxmatte.propagation.closed_form import closed_form_matting, hard_system, restricted_planes

REPO = pathlib.Path(__file__).resolve().parents[2]
TILE = conventions.CF_TILE


def blob_inputs(seed: int, h: int, w: int):
    """[1, H, W, 3] image with colour edges and noise; [1, H, W] trimap with an unknown ring."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    r = np.hypot(yy - h / 2, xx - w / 2)
    fg = r < 0.3 * min(h, w)
    image = np.where(fg[..., None], [0.8, 0.3, 0.2], [0.1, 0.4, 0.7]) + 0.05 * rng.random((h, w, 3))
    trimap = np.where(r < 0.22 * min(h, w), 1.0, 0.0)
    trimap[np.abs(r - 0.3 * min(h, w)) < 0.1 * min(h, w)] = 0.5
    return np.clip(image, 0, 1)[None], trimap[None]


def wide_band_inputs(seed: int, h: int, w: int, half_width: int):
    """[1, H, W, 3] textured image; [1, H, W] trimap with a wide diagonal unknown band, on which
    Jacobi-PCG needs hundreds of iterations (the colour-line modes the coarse space holds)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    image = 0.5 + 0.3 * np.sin(np.stack([yy / 5, xx / 7, (yy + xx) / 9], -1))
    image = np.clip(image + 0.1 * rng.random((h, w, 3)), 0, 1)
    d = yy - 0.8 * xx - h / 4
    trimap = np.where(d < -half_width, 0.0, np.where(d > half_width, 1.0, 0.5))
    return image[None], trimap[None]


def _setup(h: int, w: int, slots: int, aggregate: int):
    """Stencil tiles, layout and the dense reference pieces of a small float64 problem."""
    image, trimap = blob_inputs(0, h, w)
    coeffs, unknown, _, _ = map(
        np.asarray, hard_system(jnp.asarray(image), jnp.asarray(trimap), eps=1e-5, radius=1)
    )
    mask = unknown > 0
    ids, neighbours = buckets.host_layout(mask, TILE, slots)
    c_t, u_t = (buckets.gather_host(v, ids, TILE) for v in (coeffs, unknown))
    rgb_t = buckets.gather_host(np.moveaxis(image, -1, 1), ids, TILE)
    basis = coarse.basis_tiles(jnp.asarray(rgb_t), jnp.asarray(u_t))
    groups = jnp.asarray(coarse.aggregate_map(TILE, aggregate), jnp.float64)
    return image, coeffs, mask, ids, neighbours, c_t, u_t, basis, groups


@pytest.mark.parametrize("aggregate,h,w", [(4, 48, 40), (2, 48, 40), (1, 24, 16)])
def test_probed_coarse_matrix_is_the_galerkin_product_in_the_order_restrict_uses(aggregate, h, w):
    """E by probing (`probe_coarse` + `assemble`) = Z^T (M A M) Z with Z^T = `restrict` on unit
    vectors and M A M the tiled operator PCG applies, both built densely here. Aggregates of 1
    need 5 colours per axis (the stencil reaches 2 pixels), larger ones 3. On 48 x 40, some of
    the 6 x 5 tiles hold no unknown pixel (not slotted); 2 slots stay empty."""
    active = buckets.active_tile_count(buckets.unknown_mask(blob_inputs(0, h, w)[1]), TILE)
    assert 0 < active and (h < 48 or active < (h // TILE) * (w // TILE))
    with jax.enable_x64(True):
        slots = active + 2
        image, _, mask, ids, neighbours, c_t, u_t, basis, groups = _setup(h, w, slots, aggregate)
        n_px = slots * TILE * TILE
        unit = jnp.eye(n_px).reshape(n_px, 1, slots, TILE, TILE)
        zt = jax.vmap(lambda e: coarse.restrict(e, basis, groups))(unit)[:, 0].T  # [nc, n_px]
        index = tiles.halo_index(jnp.asarray(neighbours), TILE, 2)
        planes = restricted_planes(jnp.asarray(c_t), jnp.asarray(u_t), index)
        a = jax.vmap(lambda e: tiles.halo_matvec(planes, e, index))(unit)[:, 0]
        a = np.asarray(a).reshape(n_px, n_px).T  # column j = A e_j
        ref = np.asarray(zt) @ a @ np.asarray(zt).T
        grid = (h // TILE, w // TILE)
        period = coarse.colour_period(2, aggregate)
        assert period == {4: 3, 2: 3, 1: 5}[aggregate]
        colours = coarse.aggregate_colours(ids, grid, TILE, aggregate, period)
        probes = coarse.probe_coarse(planes, index, basis, groups, jnp.asarray(colours), period)
        (got,) = coarse.assemble(np.asarray(probes), ids, grid, TILE, aggregate)
        ridge = coarse.RIDGE * max(np.abs(got.diagonal()).max(), 1.0)
        got = got.toarray() - ridge * np.eye(got.shape[0])
        assert got.shape == ref.shape == (slots * 4 * (TILE // aggregate) ** 2,) * 2
        assert np.abs(ref).max() > 1.0  # not an empty problem
        np.testing.assert_allclose(got, ref, atol=1e-9 * np.abs(ref).max())


def test_prolong_is_the_transpose_of_restrict_and_the_correction_is_symmetric():
    with jax.enable_x64(True):
        *_, ids, neighbours, c_t, u_t, basis, groups = _setup(24, 16, 6, 4)
        rng = np.random.default_rng(1)
        r = jnp.asarray(rng.normal(size=(1, 6, TILE, TILE)))
        e = jnp.asarray(rng.normal(size=(1, 6 * 4 * 4)))
        lhs = float(jnp.vdot(coarse.restrict(r, basis, groups), e))
        rhs = float(jnp.vdot(r, coarse.prolong(e, basis, groups)))
        assert abs(lhs - rhs) <= 1e-12 * abs(lhs) and abs(lhs) > 1e-3


def test_two_level_bucketed_solve_equals_the_jacobi_answer_in_far_fewer_iterations():
    with jax.enable_x64(True):
        image, trimap = wide_band_inputs(2, 96, 90, 20)
        kw = {"eps": 1e-7, "radius": 1, "tol": 1e-10, "maxiter": 20000}
        ref = closed_form_matting(jnp.asarray(image), jnp.asarray(trimap), **kw)
        runs = {}
        for aggregate in (0, 4):
            runs[aggregate] = buckets.closed_form_bucketed(
                image, trimap, size_multiple=16, slot_steps=4, aggregate=aggregate,
                return_info=True, **kw,
            )  # fmt: skip
        for alpha, info in runs.values():
            assert bool(info.converged[0])
            np.testing.assert_allclose(alpha, ref, atol=1e-6)
        iters = {a: int(info.iterations[0]) for a, (_, info) in runs.items()}
        assert iters[4] * 5 < iters[0], iters


def test_two_level_float32_matches_jacobi_on_realmatte(realmatte_dir):
    """GT02 at full size, the predict path: SAD within 0.5% of Jacobi's, 20x fewer iterations."""
    cv2 = pytest.importorskip("cv2")
    image = cv2.imread(str(realmatte_dir / "image" / "GT02.png"))[..., ::-1] / 255.0
    trimap = cv2.imread(str(realmatte_dir / "trimap" / "GT02.png"), cv2.IMREAD_GRAYSCALE) / 255.0
    gt = cv2.imread(str(realmatte_dir / "alpha" / "GT02.png"), cv2.IMREAD_GRAYSCALE) / 255.0
    kw = {"eps": conventions.MATTING_EPS, "radius": 1, "tol": conventions.CG_TOL_CLOSED_FORM}
    sad, iters = {}, {}
    for aggregate in (0, 4):
        alpha, info = buckets.closed_form_bucketed(
            image[None].astype(np.float32), trimap[None].astype(np.float32),
            maxiter=conventions.CG_MAXITER_CLOSED_FORM, size_multiple=64, slot_steps=4,
            aggregate=aggregate, return_info=True, **kw,
        )  # fmt: skip
        assert bool(info.converged[0])
        sad[aggregate] = np.abs(alpha[0] - gt).sum() / 1000
        iters[aggregate] = int(info.iterations[0])
    assert abs(sad[4] - sad[0]) <= 0.005 * sad[0], sad
    assert iters[4] * 20 < iters[0], iters


@pytest.mark.parametrize("aggregate", [-1, 3])
def test_bad_aggregate_is_an_error_naming_the_key(aggregate):
    from jaxmatte.inference.closed_form import closed_form_buckets
    from jaxmatte.registry import MODELS

    config = importlib.import_module("configs.closed_form").get_config()
    assert config.inference.kwargs.aggregate == 4  # the default predict path is two-level
    model = MODELS.get(config.model.name)(**config.model.kwargs)
    with pytest.raises(ValueError, match="inference.kwargs.aggregate"):
        closed_form_buckets({"main": model}, aggregate=aggregate)


def test_two_level_batch_of_two_equals_each_image_alone():
    """Images of one batch share the slot bucket but keep their own coarse systems and steps."""
    a_img, a_tri = wide_band_inputs(3, 48, 56, 8)
    b_img, b_tri = blob_inputs(4, 48, 56)
    kw = {"eps": 1e-7, "radius": 1, "tol": 1e-6, "maxiter": 2000, "size_multiple": 16,
          "slot_steps": 4, "aggregate": 4, "return_info": True}  # fmt: skip
    image = np.concatenate([a_img, b_img]).astype(np.float32)
    trimap = np.concatenate([a_tri, b_tri]).astype(np.float32)
    both, info = buckets.closed_form_bucketed(image, trimap, **kw)
    assert info.converged.all() and info.iterations[0] != info.iterations[1]
    for i in range(2):
        alone, one = buckets.closed_form_bucketed(image[i : i + 1], trimap[i : i + 1], **kw)
        assert one.iterations[0] == info.iterations[i]
        np.testing.assert_allclose(both[i], alone[0], atol=1e-5)

"""Multigrid preconditioner: Galerkin blocks, symmetry and definiteness, speed-up of PCG."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmatte.propagation import multigrid as mg
from jaxmatte.propagation import stencil as st
from jaxmatte.propagation.closed_form import colour_line_basis
from jaxmatte.propagation.laplacian import grid_laplacian
from jaxmatte.propagation.solve import pcg, propagate
from tests.propagation.test_solve import dense_operator
from tests.propagation.test_stencil import stencil_to_dense


def matting_system(seed: int, h: int, w: int):
    """Hard-constrained matting system: stencil, rhs and colour-line basis (fp64)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w] / max(h, w)
    img = np.stack([np.sin(3 * xx + c) * np.cos(2 * yy - c) for c in range(3)], -1) * 0.4 + 0.5
    img = np.clip(img + rng.normal(0, 0.02, img.shape), 0, 1)[None]
    r = np.hypot(yy - 0.5 * h / max(h, w), xx - 0.5 * w / max(h, w))
    unknown = ((r > 0.15) & (r < 0.35)).astype(np.float64)[None]
    coeffs = st.restrict_to_unknown(st.matting_stencil(jnp.asarray(img), eps=1e-5), unknown)
    fixed = (r <= 0.15).astype(np.float64)[None]
    full = st.matting_stencil(jnp.asarray(img), eps=1e-5)
    rhs = -unknown * st.stencil_matvec(full, jnp.asarray(fixed))
    return coeffs, rhs, colour_line_basis(jnp.asarray(img), jnp.asarray(unknown))


def test_first_coarse_and_aggregate_are_galerkin_products():
    with jax.enable_x64(True):
        coeffs, _, basis = matting_system(0, 16, 12)
        tile = 4
        a = stencil_to_dense(np.asarray(coeffs)[0])
        z = np.asarray(basis)[0]  # [nb, H, W]
        nb, h, w = z.shape
        th, tw = h // tile, w // tile
        # Z[:, (i, ty, tx)] = basis i restricted to tile (ty, tx).
        big_z = np.zeros((h * w, nb * th * tw))
        for i in range(nb):
            for y in range(h):
                for x in range(w):
                    big_z[y * w + x, (i * th + y // tile) * tw + x // tile] = z[i, y, x]
        ref = big_z.T @ a @ big_z
        blocks = mg.first_coarse(coeffs, basis, tile)
        dense = np.asarray(mg._dense(blocks))[0]
        np.testing.assert_allclose(dense, ref, atol=1e-9 * np.abs(ref).max())
        # Merging 2 x 2 tiles: P sums children, P^T A P.
        p = np.zeros((nb * th * tw, nb * ((th + 1) // 2) * ((tw + 1) // 2)))
        cw = (tw + 1) // 2
        ch = (th + 1) // 2
        for i in range(nb):
            for ty in range(th):
                for tx in range(tw):
                    p[(i * th + ty) * tw + tx, (i * ch + ty // 2) * cw + tx // 2] = 1
        coarse = np.asarray(mg._dense(mg.aggregate(blocks)))[0]
        np.testing.assert_allclose(coarse, p.T @ ref @ p, atol=1e-9 * np.abs(ref).max())


@pytest.mark.parametrize("sweeps", [1, 2])
def test_vcycle_is_symmetric_positive_definite(sweeps):
    with jax.enable_x64(True):
        coeffs, _, basis = matting_system(1, 20, 16)
        precond = mg.multigrid_preconditioner(coeffs, basis, coarsest=4, sweeps=sweeps)
        m = dense_operator(jax.jit(precond), 1, 20, 16)[0]
        np.testing.assert_allclose(m, m.T, atol=1e-10 * np.abs(m).max())
        assert np.linalg.eigvalsh(m).min() > 0


def test_vcycle_needs_a_smoother():
    coeffs, _, basis = matting_system(1, 8, 8)
    with pytest.raises(ValueError, match="sweeps >= 1"):
        mg.multigrid_preconditioner(coeffs, basis, sweeps=0)


def test_multigrid_pcg_matches_dense_solve_in_fewer_iterations():
    with jax.enable_x64(True):
        coeffs, rhs, basis = matting_system(2, 48, 40)
        a = stencil_to_dense(np.asarray(coeffs)[0])
        ref = np.linalg.solve(a, np.asarray(rhs)[0].ravel())

        def matvec(x):
            return st.stencil_matvec(coeffs, x)

        inv_diag = 1.0 / coeffs[:, st.centre_index(coeffs)]
        zero = jnp.zeros_like(rhs)
        x_j, info_j = pcg(matvec, rhs, lambda r: inv_diag * r, zero, tol=1e-10, maxiter=5000)
        precond = mg.multigrid_preconditioner(coeffs, basis)
        x_m, info_m = pcg(matvec, rhs, precond, zero, tol=1e-10, maxiter=5000)
        for x in (x_j, x_m):
            np.testing.assert_allclose(np.asarray(x)[0].ravel(), ref, atol=1e-8)
        print("iterations jacobi", info_j.iterations, "multigrid", info_m.iterations)
        assert int(info_m.iterations[0]) * 4 < int(info_j.iterations[0])


@pytest.mark.parametrize("preconditioner", ["jacobi", "multigrid"])
def test_propagate_multigrid_probes_grid_stencil(preconditioner):
    with jax.enable_x64(True):
        rng = np.random.default_rng(5)
        b, h, w = 2, 13, 11
        weights = [jnp.asarray(rng.lognormal(size=(b, h, w))) for _ in range(2)]
        conf = jnp.asarray((rng.random((b, h, w)) < 0.2) * 2.0)
        alpha = jnp.asarray(rng.random((b, h, w)))
        matvec, diag = grid_laplacian(*weights)
        x, info = propagate(
            matvec, diag, conf, alpha, tol=1e-13, preconditioner=preconditioner, return_info=True
        )
        assert bool(jnp.all(info.converged))
        lap = dense_operator(matvec, b, h, w)
        for i in range(b):
            c = np.asarray(conf[i]).ravel()
            ref = np.linalg.solve(lap[i] + np.diag(c), c * np.asarray(alpha[i]).ravel())
            np.testing.assert_allclose(np.asarray(x[i]).ravel(), ref, atol=1e-8)


def test_propagate_multigrid_gradients_match_jacobi():
    with jax.enable_x64(True):
        rng = np.random.default_rng(6)
        b, h, w = 1, 9, 10
        w0 = jnp.asarray(rng.lognormal(size=(2, b, h, w)))
        conf = jnp.asarray((rng.random((b, h, w)) < 0.3) * 1.0)
        alpha = jnp.asarray(rng.random((b, h, w)))
        target = jnp.asarray(rng.random((b, h, w)))

        def loss(weights, pc):
            matvec, diag = grid_laplacian(weights[0], weights[1])
            x = propagate(matvec, diag, conf, alpha, tol=1e-13, preconditioner=pc)
            return jnp.sum((x - target) ** 2)

        g_j = jax.grad(loss)(w0, "jacobi")
        g_m = jax.grad(loss)(w0, "multigrid")
        np.testing.assert_allclose(g_m, g_j, atol=1e-9)

"""propagate(): dense-solve equality in fp64, gradients in both modes, batching, singular inputs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from jaxmatte.propagation.laplacian import grid_laplacian, matting_laplacian
from jaxmatte.propagation.solve import propagate

B, H, W = 2, 5, 6


def dense_operator(matvec, b, h, w) -> np.ndarray:
    """[B, N, N] matrix of a batched matvec, column by column from unit vectors."""
    n = h * w
    eye = np.eye(n).reshape(n, h, w)
    cols = [np.asarray(matvec(jnp.asarray(np.broadcast_to(e, (b, h, w))))) for e in eye]
    return np.stack([np.stack([c[i].ravel() for c in cols], 1) for i in range(b)])


def problem(seed=0, b=B, h=H, w=W, diagonals=False):
    rng = np.random.default_rng(seed)
    n_maps = 4 if diagonals else 2
    weights = [jnp.asarray(rng.lognormal(size=(b, h, w))) for _ in range(n_maps)]
    known = rng.random((b, h, w)) < 0.4
    known[:, 0, 0] = True
    conf = jnp.asarray(known * 0.8)
    alpha = jnp.asarray(rng.random((b, h, w)))
    return weights, conf, alpha


@pytest.mark.parametrize("diagonals", [False, True])
def test_grid_propagation_equals_dense_solve_fp64(diagonals):
    with jax.enable_x64(True):
        weights, conf, alpha = problem(diagonals=diagonals)
        matvec, diag = grid_laplacian(*weights)
        x = np.asarray(propagate(matvec, diag, conf, alpha, tol=1e-14))
        lap = dense_operator(matvec, B, H, W)
        for i in range(B):
            c = np.asarray(conf[i]).ravel()
            ref = jnp.linalg.solve(lap[i] + np.diag(c), c * np.asarray(alpha[i]).ravel())
            np.testing.assert_allclose(x[i].ravel(), np.asarray(ref), atol=1e-8, rtol=0)


def test_matting_propagation_equals_dense_solve_fp64():
    with jax.enable_x64(True):
        rng = np.random.default_rng(4)
        img = jnp.asarray(rng.random((B, 8, 9, 3)))
        _, conf, alpha = problem(seed=4, h=8, w=9)
        matvec, diag = matting_laplacian(img, eps=1e-5)
        x = np.asarray(propagate(matvec, diag, conf * 100, alpha, tol=1e-14, maxiter=5000))
        lap = dense_operator(matvec, B, 8, 9)
        for i in range(B):
            c = 100 * np.asarray(conf[i]).ravel()
            ref = jnp.linalg.solve(lap[i] + np.diag(c), c * np.asarray(alpha[i]).ravel())
            np.testing.assert_allclose(x[i].ravel(), np.asarray(ref), atol=1e-8, rtol=0)


def test_gradients_fwd_and_rev_all_inputs():
    with jax.enable_x64(True):
        (wr, wd, wdr, wdl), conf, alpha = problem(seed=1, b=1, h=4, w=5, diagonals=True)

        def f(wr, wd, wdr, wdl, conf, alpha):
            matvec, diag = grid_laplacian(wr, wd, wdr, wdl)
            return propagate(matvec, diag, conf, alpha, tol=1e-14)

        # Shift confidence off 0 so finite differences do not cross the known/unknown boundary.
        args = (wr, wd, wdr, wdl, conf + 0.3 * (conf > 0), alpha)
        check_grads(f, args, order=1, modes=("fwd", "rev"), atol=1e-6, rtol=1e-6)


def test_grad_matches_dense_autodiff():
    with jax.enable_x64(True):
        (wr, wd), conf, alpha = problem(seed=2, b=1)
        target = jnp.linspace(0, 1, H * W).reshape(1, H, W)

        def loss(wr, solver):
            matvec, diag = grid_laplacian(wr, wd)
            return jnp.sum((solver(matvec, diag) - target) ** 2)

        def cg(matvec, diag):
            return propagate(matvec, diag, conf, alpha, tol=1e-14)

        def dense(matvec, diag):
            n = H * W
            cols = jax.vmap(lambda e: matvec(e.reshape(1, H, W)).ravel())(jnp.eye(n))
            a = cols.T + jnp.diag(conf.ravel())
            return jnp.linalg.solve(a, (conf * alpha).ravel()).reshape(1, H, W)

        g_cg = jax.grad(loss)(wr, cg)
        g_dense = jax.grad(loss)(wr, dense)
        np.testing.assert_allclose(g_cg, g_dense, atol=1e-9, rtol=1e-7)


def test_batched_equals_per_image_under_jit():
    (wr, wd), conf, alpha = problem(seed=3, b=3, h=16, w=16)
    conf = conf.astype(jnp.float32)

    @jax.jit
    def run(wr, wd, conf, alpha):
        matvec, diag = grid_laplacian(wr, wd)
        return propagate(matvec, diag, conf, alpha, return_info=True)

    args = [a.astype(jnp.float32) for a in (wr, wd, conf, alpha)]
    x, info = run(*args)
    assert x.dtype == jnp.float32 and bool(jnp.all(info.converged))
    for i in range(3):
        xi, info_i = run(*[a[i : i + 1] for a in args])
        np.testing.assert_allclose(x[i], xi[0], rtol=1e-6, atol=1e-6)
        assert int(info.iterations[i]) == int(info_i.iterations[0])


def test_no_known_pixel_ridge_flags_and_no_nan():
    (wr, wd), conf, alpha = problem(seed=5)
    conf = conf.at[1].set(0.0)
    matvec, diag = grid_laplacian(wr, wd)
    x, info = jax.jit(lambda c: propagate(matvec, diag, c, alpha, return_info=True))(conf)
    assert bool(jnp.all(jnp.isfinite(x)))
    assert info.singular.tolist() == [False, True]
    np.testing.assert_allclose(x[1], 0.0, atol=1e-5)  # C alpha* = 0 -> the ridge answer is 0
    g = jax.grad(lambda w: propagate(*grid_laplacian(w, wd), conf, alpha).sum())(wr)
    assert bool(jnp.all(jnp.isfinite(g)))


def test_no_known_pixel_error_mode_raises():
    (wr, wd), conf, alpha = problem(seed=6)
    matvec, diag = grid_laplacian(wr, wd)
    with pytest.raises(ValueError, match=r"images \[0, 1\]"):
        propagate(matvec, diag, jnp.zeros_like(conf), alpha, on_singular="error")
    with pytest.raises(Exception, match="no known pixel"):
        jax.jit(lambda c: propagate(matvec, diag, c, alpha, on_singular="error"))(
            jnp.zeros_like(conf)
        ).block_until_ready()


def test_initial_guess_changes_speed_not_answer():
    with jax.enable_x64(True):
        (wr, wd), conf, alpha = problem(seed=7, h=12, w=12)
        matvec, diag = grid_laplacian(wr, wd)
        x_ref, info_ref = propagate(matvec, diag, conf, alpha, tol=1e-12, return_info=True)
        x, info = propagate(matvec, diag, conf, alpha, tol=1e-12, x0=x_ref + 1e-6, return_info=True)
        np.testing.assert_allclose(x, x_ref, atol=1e-10)
        assert int(info.iterations.max()) < int(info_ref.iterations.min())


def test_grad_memory_does_not_grow_with_maxiter():
    (wr, wd), conf, alpha = problem(seed=8, b=2, h=32, w=32)
    args = [a.astype(jnp.float32) for a in (wr, wd, conf, alpha)]

    def temp_bytes(maxiter):
        def loss(wr, wd, conf, alpha):
            x = propagate(*grid_laplacian(wr, wd), conf, alpha, maxiter=maxiter)
            return jnp.sum(x**2)

        compiled = jax.jit(jax.grad(loss, (0, 1, 2, 3))).lower(*args).compile()
        return compiled.memory_analysis().temp_size_in_bytes

    assert temp_bytes(10) == temp_bytes(1000)


def test_grad_with_info_and_jvp():
    (wr, wd), conf, alpha = problem(seed=9)

    def f(wr):
        x, info = propagate(*grid_laplacian(wr, wd), conf, alpha, return_info=True)
        return jnp.sum(x**2), info

    (val, info), g = jax.value_and_grad(f, has_aux=True)(wr)
    _, tangent = jax.jvp(lambda w: f(w)[0], (wr,), (jnp.ones_like(wr),))
    assert bool(jnp.all(info.converged)) and bool(jnp.all(jnp.isfinite(g)))
    np.testing.assert_allclose(tangent, jnp.sum(g), rtol=1e-3)

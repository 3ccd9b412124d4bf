"""Explicit stencils: the matting stencil against Levin's assembled matrix, probing, symmetry."""

import jax
import jax.numpy as jnp
import numpy as np

from jaxmatte.propagation import stencil as st
from jaxmatte.propagation.laplacian import grid_laplacian
from tests.propagation.test_laplacian import levin_matrix


def stencil_to_dense(coeffs: np.ndarray) -> np.ndarray:
    """[N, N] matrix of a single-image stencil [K, H, W] (independent numpy assembly)."""
    k, h, w = coeffs.shape
    s = (int(round(k**0.5)) - 1) // 2
    dense = np.zeros((h * w, h * w), coeffs.dtype)
    for i, (dy, dx) in enumerate(st.offsets(s)):
        for y in range(h):
            for x in range(w):
                yy, xx = y + dy, x + dx
                if 0 <= yy < h and 0 <= xx < w:
                    dense[y * w + x, yy * w + xx] = coeffs[i, y, x]
                else:
                    assert coeffs[i, y, x] == 0, "out-of-grid coefficient must be zero"
    return dense


def test_matting_stencil_equals_levin_assembly_fp64():
    with jax.enable_x64(True):
        rng = np.random.default_rng(0)
        img = rng.random((12, 11, 3))
        coeffs = np.asarray(st.matting_stencil(jnp.asarray(img[None]), eps=1e-5))[0]
        ref = levin_matrix(img, 1e-5).toarray()
        np.testing.assert_allclose(stencil_to_dense(coeffs), ref, atol=1e-9, rtol=0)


def test_matting_stencil_is_exactly_symmetric_in_fp32():
    rng = np.random.default_rng(1)
    img = jnp.asarray(rng.random((1, 10, 9, 3)), jnp.float32)
    dense = stencil_to_dense(np.asarray(st.matting_stencil(img, eps=1e-7))[0])
    assert np.array_equal(dense, dense.T)


def test_probe_stencil_recovers_a_grid_laplacian_and_matvec_agrees():
    with jax.enable_x64(True):
        rng = np.random.default_rng(2)
        w = [jnp.asarray(rng.lognormal(size=(2, 7, 8))) for _ in range(4)]
        matvec, diag = grid_laplacian(*w)
        coeffs = st.probe_stencil(matvec, (2, 7, 8), 1, jnp.float64)
        np.testing.assert_allclose(coeffs[:, 4], diag, atol=1e-12)
        x = jnp.asarray(rng.random((2, 7, 8)))
        np.testing.assert_allclose(st.stencil_matvec(coeffs, x), matvec(x), atol=1e-12)
        # A stencil of radius 2 probed with radius 2 gives the same centre block.
        wide = st.probe_stencil(matvec, (2, 7, 8), 2, jnp.float64)
        np.testing.assert_allclose(st.stencil_matvec(wide, x), matvec(x), atol=1e-12)


def test_restrict_to_unknown_is_masked_operator_plus_identity():
    with jax.enable_x64(True):
        rng = np.random.default_rng(3)
        img = jnp.asarray(rng.random((1, 8, 7, 3)))
        unknown = (rng.random((1, 8, 7)) < 0.5).astype(np.float64)
        coeffs = st.matting_stencil(img, eps=1e-4)
        got = stencil_to_dense(np.asarray(st.restrict_to_unknown(coeffs, jnp.asarray(unknown)))[0])
        a = stencil_to_dense(np.asarray(coeffs)[0])
        m = np.diag(unknown[0].ravel())
        np.testing.assert_allclose(got, m @ a @ m + np.eye(56) - m, atol=1e-12)

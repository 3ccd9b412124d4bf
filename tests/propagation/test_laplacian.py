"""Matrix-free Laplacians against matrices assembled independently from their definitions."""

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse

from jaxmatte.propagation.laplacian import grid_laplacian, matting_laplacian

OFFSETS = {"right": (0, 1), "down": (1, 0), "down_right": (1, 1), "down_left": (1, -1)}


def grid_matrix(weights: dict, h: int, w: int) -> np.ndarray:
    """Dense D - W of one image from per-direction weight maps, by a loop over edges."""
    n = h * w
    wmat = np.zeros((n, n))
    for name, wmap in weights.items():
        dy, dx = OFFSETS[name]
        for y in range(h):
            for x in range(w):
                if 0 <= y + dy < h and 0 <= x + dx < w:
                    i, j = y * w + x, (y + dy) * w + x + dx
                    wmat[i, j] += wmap[y, x]
                    wmat[j, i] += wmap[y, x]
    return np.diag(wmat.sum(1)) - wmat


def levin_matrix(img: np.ndarray, eps: float, r: int = 1) -> scipy.sparse.csr_matrix:
    """Levin et al. 2008 Eq. (12), one window at a time, as a scipy sparse matrix."""
    h, w, _ = img.shape
    size = (2 * r + 1) ** 2
    rows, cols, vals = [], [], []
    for y in range(r, h - r):
        for x in range(r, w - r):
            win = img[y - r : y + r + 1, x - r : x + r + 1].reshape(-1, 3)
            idx = [(y + a) * w + x + b for a in range(-r, r + 1) for b in range(-r, r + 1)]
            mu = win.mean(0)
            cov = (win - mu).T @ (win - mu) / size
            inv = np.linalg.inv(cov + eps / size * np.eye(3))
            block = np.eye(size) - (1 + (win - mu) @ inv @ (win - mu).T) / size
            for a in range(size):
                for b in range(size):
                    rows.append(idx[a])
                    cols.append(idx[b])
                    vals.append(block[a, b])
    return scipy.sparse.csr_matrix((vals, (rows, cols)), shape=(h * w, h * w))


def test_grid_laplacian_matches_dense_4_and_8_neighbours():
    rng = np.random.default_rng(0)
    b, h, w = 2, 5, 6
    maps = {k: rng.lognormal(size=(b, h, w)).astype(np.float32) for k in OFFSETS}
    x = rng.normal(size=(b, h, w)).astype(np.float32)
    for names in (["right", "down"], list(OFFSETS)):
        args = [jnp.asarray(maps[k]) for k in names]
        matvec, diag = grid_laplacian(*args)
        got = np.asarray(matvec(jnp.asarray(x)))
        for i in range(b):
            mat = grid_matrix({k: maps[k][i] for k in names}, h, w)
            np.testing.assert_allclose(got[i].ravel(), mat @ x[i].ravel(), rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(np.asarray(diag[i]).ravel(), np.diag(mat), rtol=1e-6)


def test_grid_laplacian_ignores_out_of_grid_weights():
    rng = np.random.default_rng(1)
    wr, wd = (jnp.asarray(rng.lognormal(size=(1, 4, 4))) for _ in range(2))
    x = jnp.asarray(rng.normal(size=(1, 4, 4)))
    base = grid_laplacian(wr, wd)[0](x)
    bumped = grid_laplacian(wr.at[:, :, -1].add(5.0), wd.at[:, -1, :].add(5.0))[0](x)
    np.testing.assert_allclose(base, bumped, rtol=1e-6)


def test_matting_laplacian_matches_levin_sparse_assembly():
    rng = np.random.default_rng(2)
    img = rng.random((12, 12, 3))
    p = rng.normal(size=(12, 12))
    eps = 1e-4
    mat = levin_matrix(img, eps)
    with jax.enable_x64(True):
        matvec, diag = matting_laplacian(jnp.asarray(img[None]), eps=eps)
        got = np.asarray(matvec(jnp.asarray(p[None])))[0]
        d = np.asarray(diag)[0]
    np.testing.assert_allclose(got.ravel(), mat @ p.ravel(), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(d.ravel(), mat.diagonal(), rtol=1e-9, atol=1e-9)


def test_matting_laplacian_fp32_close_to_fp64_for_tiny_eps():
    rng = np.random.default_rng(3)
    img = np.round(rng.random((12, 12, 3)) * 255) / 255
    p = rng.random((12, 12))
    mat = levin_matrix(img, 1e-7)
    matvec, _ = matting_laplacian(jnp.asarray(img[None], jnp.float32), eps=1e-7)
    got = np.asarray(matvec(jnp.asarray(p[None], jnp.float32)))[0].ravel()
    ref = mat @ p.ravel()
    assert np.abs(got - ref).max() <= 1e-3 * np.abs(ref).max()

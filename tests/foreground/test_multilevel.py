"""LSA foreground re-estimation: vs a per-pixel numpy loop, stationarity, gradients, quality."""

import cv2
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from data_prep import foreground as prep
from jaxmatte.foreground import reference
from jaxmatte.foreground.multilevel import _neighbours, estimate_foreground, jacobi_sweeps

RNG = np.random.default_rng(0)


def _alpha(h, w):
    """Alpha with exact 0 and 1 regions and a soft band, like a matte."""
    x = np.linspace(-1.5, 1.5, w)[None, :] + 0.3 * RNG.standard_normal((h, w))
    return np.clip(x + 0.5, 0.0, 1.0)


def test_vectorised_reference_matches_loop():
    img, a = RNG.random((9, 11, 3)), _alpha(9, 11)
    loop = reference.jacobi_loop(img, a[..., None] * img, a, 0.7, 5)
    vec = reference.jacobi_vectorised(img, a[..., None] * img, a, 0.7, 5)
    np.testing.assert_allclose(loop, vec, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("hw", [(1, 1), (1, 5), (2, 3), (6, 1), (7, 9)])
def test_neighbours_are_reflect_101(hw):
    """Shift-and-select neighbours == numpy's reflect (-101) padding, incl. 1-pixel sides."""
    x = RNG.random((2, 3, *hw)).astype(np.float32)
    p = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), mode="reflect")
    want = (p[:, :, 1:-1, :-2], p[:, :, 1:-1, 2:], p[:, :, :-2, 1:-1], p[:, :, 2:, 1:-1])
    for got, ref in zip(_neighbours(jnp.asarray(x)), want, strict=True):
        np.testing.assert_array_equal(np.asarray(got), ref)


SHAPE = (40, 72)  # 6 levels down to 1 x 2; shared with the data_prep test (one compilation)


@pytest.mark.parametrize(
    "batch,shape,kwargs",
    [(1, SHAPE, {}), (2, (23, 37), dict(levels=3, kappa=0.5, finest_iters=7))],
)
def test_matches_numpy_loop_reference(batch, shape, kwargs):
    """Batched JAX result == the slow per-pixel float64 Algorithm 2 (OpenCV resizes)."""
    imgs = RNG.random((batch, *shape, 3)).astype(np.float32)
    alphas = np.stack([_alpha(*shape), _alpha(*shape)[::-1]][:batch]).astype(np.float32)
    got = np.asarray(estimate_foreground(imgs, alphas[..., None], **kwargs))
    for b in range(batch):
        want = reference.estimate_foreground_np(imgs[b], alphas[b], slow=True, **kwargs)
        np.testing.assert_allclose(got[b], want, atol=2e-5)


def _cost(f_hat, f, alpha, kappa):
    """C(F^, F) with free (non-wrapped) borders; f_hat, f: [H, W, 3]; alpha: [H, W, 1]."""
    data = 0.5 * jnp.sum(alpha**2 * (f_hat - f) ** 2)
    q = (1 - alpha) ** 2
    dx = (f_hat[:, 1:] - f_hat[:, :-1]) ** 2
    dy = (f_hat[1:] - f_hat[:-1]) ** 2
    # each ordered pair (i, j) of 4-neighbours contributes q_i (F^_i - F^_j)^2
    smooth = jnp.sum((q[:, 1:] + q[:, :-1]) * dx) + jnp.sum((q[1:] + q[:-1]) * dy)
    return data + 0.5 * kappa * smooth


def test_fixed_point_is_stationary():
    """Converged sweeps zero the gradient of C at every pixel whose 4 neighbours are inside."""
    h, w, kappa = 12, 14, 1.3
    with jax.enable_x64(True):  # float64 so that the residual measures the algorithm, not rounding
        f = jnp.asarray(RNG.random((h, w, 3)))
        a = jnp.asarray(_alpha(h, w)[..., None])
        nchw = lambda x: jnp.transpose(x[None], (0, 3, 1, 2))  # noqa: E731
        fixed = jacobi_sweeps(nchw(f), nchw(a * f), nchw(a), kappa, 8000)
        fixed = jnp.transpose(fixed, (0, 2, 3, 1))[0]
        grad = jax.grad(_cost)(fixed, f, a, kappa)[1:-1, 1:-1]
        start = jax.grad(_cost)(f, f, a, kappa)[1:-1, 1:-1]
        assert fixed.dtype == jnp.float64
        assert float(jnp.abs(start).max()) > 0.1  # the test can fail
        assert float(jnp.abs(grad).max()) < 1e-9


def test_gradients_match_finite_differences():
    h, w = 10, 13
    img = jnp.asarray(RNG.random((1, h, w, 3)))
    a = jnp.asarray(_alpha(h, w)[None, ..., None])
    wts = jnp.asarray(RNG.standard_normal((1, h, w, 3)))

    def loss(image, alpha, init):
        out = estimate_foreground(image, alpha, init=init, levels=2, finest_iters=4, clip=False)
        return jnp.sum(wts * out)

    grads = jax.grad(loss, argnums=(0, 1, 2))(img, a, img)
    eps = 1e-3
    for i, x in enumerate((img, a, img)):
        d = jnp.asarray(RNG.standard_normal(x.shape))
        args_p = [img, a, img]
        args_m = [img, a, img]
        args_p[i], args_m[i] = x + eps * d, x - eps * d
        fd = (loss(*args_p) - loss(*args_m)) / (2 * eps)
        np.testing.assert_allclose(float(jnp.sum(grads[i] * d)), float(fd), rtol=2e-2, atol=2e-3)


def _load(path, hw=(160, 200)):
    """An image downscaled to one size for all (portraits are squeezed; one compilation)."""
    x = cv2.imread(str(path))[..., ::-1].astype(np.float32) / 255
    return cv2.resize(x, hw[::-1], interpolation=cv2.INTER_AREA)


def test_colour_error_no_worse_than_pymatting(realmatte_dir):
    """F = a realmatte photo, B = the next one, composited with the GT alpha (downscaled);
    mean |F^ - F| over alpha > 0 over GT01..GT03 (a fixed choice), vs estimate_foreground_ml."""
    pymatting = pytest.importorskip("pymatting")
    f = np.stack([_load(realmatte_dir / f"image/GT{i:02d}.png") for i in (1, 2, 3)])
    a = np.stack([_load(realmatte_dir / f"alpha/GT{i:02d}.png")[..., :1] for i in (1, 2, 3)])
    b = np.stack([_load(realmatte_dir / f"image/GT{i + 1:02d}.png") for i in (1, 2, 3)])
    img = a * f + (1 - a) * b
    est = np.asarray(estimate_foreground(img, a))
    ours, theirs = [], []
    for i in range(3):
        mask = a[i, ..., 0] > 0
        ours.append(np.abs(est[i] - f[i]).mean(-1)[mask].mean())
        a64 = a[i, ..., 0].astype(np.float64)
        ml = pymatting.estimate_foreground_ml(img[i].astype(np.float64), a64)
        theirs.append(np.abs(ml - f[i]).mean(-1)[mask].mean())
    assert np.mean(ours) <= np.mean(theirs), (ours, theirs)


def test_data_prep_writes_and_resumes(tmp_path):
    h, w = SHAPE
    fg = (RNG.random((h, w, 3)) * 255).astype(np.uint8)
    a = (_alpha(h, w) * 255).astype(np.uint8)
    for d in ("train/fg", "train/alpha"):
        (tmp_path / d).mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "train/fg/x.jpg"), fg[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 100])
    cv2.imwrite(str(tmp_path / "train/alpha/x.png"), a)
    cv2.imwrite(str(tmp_path / "train/alpha/y.png"), a)  # no fg: reported
    written, skipped = prep.run(tmp_path, progress=False)
    assert written == ["x"] and "y.png" in skipped[0].path
    out = tmp_path / "train/kappa_fg/x.png"
    got = cv2.imread(str(out))[..., ::-1]
    fg_read = cv2.imread(str(tmp_path / "train/fg/x.jpg"))[..., ::-1] / 255
    want = (reference.estimate_foreground_np(fg_read, a / 255) * 255).astype(np.uint8)
    assert np.abs(got.astype(int) - want).max() <= 1  # float32 vs float64 at the truncation
    assert not list(out.parent.glob(".*tmp"))
    stamp = out.stat().st_mtime_ns
    assert prep.run(tmp_path, progress=False)[0] == []  # resumed: nothing left to do
    assert out.stat().st_mtime_ns == stamp

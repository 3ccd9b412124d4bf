"""Closed-form matting: image gradients, pymatting parity on realmatte, the registered model."""

import importlib
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from jaxmatte import conventions
from jaxmatte.propagation.closed_form import closed_form_matting
from jaxmatte.registry import MODELS

REPO = pathlib.Path(__file__).resolve().parents[2]
# Images and downscale factor for the pymatting comparison (about 200 x 140 px, a few seconds).
REALMATTE_IMAGES = ("GT01", "GT02", "GT13")
REALMATTE_DOWNSCALE = 4
REALMATTE_CROP = (124, 200)  # (H, W): the smallest of the three images at 1/4 (GT01)
SAD_MARGIN = 1.02


def random_inputs(seed: int, b: int = 1, h: int = 8, w: int = 9):
    rng = np.random.default_rng(seed)
    image = rng.random((b, h, w, 3))
    trimap = np.full((b, h, w), 0.5)
    trimap[:, :, :2] = 0.0
    trimap[:, :, -2:] = 1.0
    return image, trimap


def test_image_gradients_fwd_and_rev():
    with jax.enable_x64(True):
        image, trimap = random_inputs(0)

        def f(img):
            return closed_form_matting(img, jnp.asarray(trimap), eps=1e-4, tol=1e-13, clip=False)

        check_grads(f, (jnp.asarray(image),), order=1, modes=("fwd", "rev"), atol=1e-5, rtol=1e-5)


def test_coarse_to_fine_guess_keeps_the_answer():
    with jax.enable_x64(True):
        image, trimap = random_inputs(1, h=24, w=20)
        args = (jnp.asarray(image), jnp.asarray(trimap))
        a0 = closed_form_matting(*args, tol=1e-12)
        a2 = closed_form_matting(*args, tol=1e-12, levels=2)
        np.testing.assert_allclose(a0, a2, atol=1e-8)


@pytest.mark.parametrize("constraints", ["hard", "soft"])
def test_constraints_equal_dense_solves_of_levin_matrix(constraints):
    from tests.propagation.test_laplacian import levin_matrix

    with jax.enable_x64(True):
        image, trimap = random_inputs(3, h=14, w=12)
        trimap[:, 5:9, 4:8] = 1.0
        lap = levin_matrix(image[0], 1e-5).toarray()
        t = trimap[0].ravel()
        unknown = t == 0.5
        alpha_k = (t == 1.0).astype(float)
        if constraints == "hard":
            ref = alpha_k.copy()
            lu = lap[np.ix_(unknown, unknown)]
            ref[unknown] = np.linalg.solve(lu, -lap[np.ix_(unknown, ~unknown)] @ alpha_k[~unknown])
        else:
            c = np.where(unknown, 0.0, 100.0)
            ref = np.linalg.solve(lap + np.diag(c), c * alpha_k)
        for pc in ("multigrid", "jacobi"):
            got = closed_form_matting(
                jnp.asarray(image), jnp.asarray(trimap), eps=1e-5, lam=100.0, tol=1e-13,
                constraints=constraints, preconditioner=pc, clip=False, maxiter=5000,
            )  # fmt: skip
            np.testing.assert_allclose(np.asarray(got)[0].ravel(), ref, atol=1e-8)


def _load(path: pathlib.Path, grey: bool) -> np.ndarray:
    cv2 = pytest.importorskip("cv2")
    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE if grey else cv2.IMREAD_COLOR)
    return img if grey else img[..., ::-1]


def test_realmatte_sad_close_to_pymatting(realmatte_dir):
    """pymatting's formulation (eps 1e-7) in float64 and float32, Jacobi and multigrid PCG."""
    cv2 = pytest.importorskip("cv2")
    pymatting = pytest.importorskip("pymatting")
    for name in REALMATTE_IMAGES:
        image = _load(realmatte_dir / "image" / f"{name}.png", grey=False) / 255.0
        trimap = _load(realmatte_dir / "trimap" / f"{name}.png", grey=True)
        gt = _load(realmatte_dir / "alpha" / f"{name}.png", grey=True) / 255.0
        size = (trimap.shape[1] // REALMATTE_DOWNSCALE, trimap.shape[0] // REALMATTE_DOWNSCALE)
        image = np.clip(cv2.resize(image, size, interpolation=cv2.INTER_AREA), 0.0, 1.0)
        trimap = cv2.resize(trimap, size, interpolation=cv2.INTER_NEAREST) / 255.0
        gt = cv2.resize(gt, size, interpolation=cv2.INTER_AREA)
        # The central REALMATTE_CROP of each: one shape, so one compilation per variant.
        top, left = ((n - c) // 2 for n, c in zip(gt.shape, REALMATTE_CROP))
        rows, cols = slice(top, top + REALMATTE_CROP[0]), slice(left, left + REALMATTE_CROP[1])
        image, trimap, gt = image[rows, cols], trimap[rows, cols], gt[rows, cols]
        size = gt.shape
        ref = pymatting.estimate_alpha_cf(image, trimap)  # eps 1e-7, hard constraints
        sad_ref = np.abs(ref - gt).sum() / 1000
        variants = ((jnp.float64, "jacobi"), (jnp.float32, "jacobi"), (jnp.float32, "multigrid"))
        for dtype, pc in variants:
            with jax.enable_x64(dtype == jnp.float64):
                ours = closed_form_matting(
                    jnp.asarray(image[None], dtype), jnp.asarray(trimap[None], dtype), eps=1e-7,
                    preconditioner=pc,
                )  # fmt: skip
            sad_ours = np.abs(np.asarray(ours[0]) - gt).sum() / 1000
            print(f"{name} {size} {dtype.__name__} {pc}: SAD ours {sad_ours:.4f} pm {sad_ref:.4f}")
            assert abs(sad_ours - sad_ref) <= (SAD_MARGIN - 1) * sad_ref, (name, dtype, pc)
            assert np.abs(np.asarray(ours[0]) - ref).max() < 0.02, (name, dtype, pc)


def test_model_contract_and_batching():
    image, trimap = random_inputs(2, b=2, h=16, w=12)
    image[1] = image[1, ::-1]  # two different images
    mean, std = np.array(conventions.IMAGENET_MEAN), np.array(conventions.IMAGENET_STD)
    normalised = jnp.asarray((image - mean) / std, jnp.float32)
    config = importlib.import_module("configs.closed_form").get_config()
    assert config.inference.name == "closed_form_buckets"  # same answer (tests/.../test_buckets)
    model = MODELS.get(config.model.name)(**config.model.kwargs)
    assert model.inputs == ("image", "trimap")
    out = jax.jit(lambda x, t: model.apply({}, {"image": x, "trimap": t}, train=False))(
        normalised, jnp.asarray(trimap[..., None], jnp.float32)
    )
    alpha = out["alpha"]
    assert set(out) == {"alpha"} and alpha.shape == (2, 16, 12, 1) and alpha.dtype == jnp.float32
    assert float(alpha.min()) >= 0.0 and float(alpha.max()) <= 1.0
    for i in range(2):
        ref = closed_form_matting(
            jnp.asarray(image[i : i + 1], jnp.float32),
            jnp.asarray(trimap[i : i + 1], jnp.float32),
            **{k: v for k, v in config.model.kwargs.items() if k != "dtype"},
        )
        np.testing.assert_allclose(alpha[i, ..., 0], ref[0], atol=1e-4)


def test_float64_model_without_x64_names_the_fix():
    image, trimap = random_inputs(4)
    model = MODELS.get("closed_form")(dtype="float64")
    with jax.enable_x64(False), pytest.raises(ValueError, match="config.x64"):
        model.apply(
            {}, {"image": jnp.asarray(image, jnp.float32), "trimap": jnp.asarray(trimap[..., None])}
        )

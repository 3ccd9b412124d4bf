"""DIM MATLAB-semantics metrics: hand-computed cases, independent references and properties."""

import math

import numpy as np
import pytest
from scipy import ndimage

from jaxmatte.metrics import dim

SIGMA = 1.4


def _gauss(x):
    return math.exp(-(x**2) / (2 * SIGMA**2)) / (SIGMA * math.sqrt(2 * math.pi))


def _reference_hx():
    """gaussgradient.m's hx built element by element from its definition (half-size 4)."""
    half = math.ceil(SIGMA * math.sqrt(-2 * math.log(math.sqrt(2 * math.pi) * SIGMA * 1e-2)))
    hx = np.zeros((2 * half + 1, 2 * half + 1))
    for i in range(2 * half + 1):
        for j in range(2 * half + 1):
            u, v = i - half, j - half
            hx[i, j] = _gauss(u) * (-v * _gauss(v) / SIGMA**2)
    return hx / np.sqrt(np.sum(hx * hx))


def _reference_grad(pred, gt, trimap):
    """mat2gray + 9x9 true convolution with replicated borders (scipy 'nearest') + masked sum."""
    hx = _reference_hx()

    def amp(x):
        x = x.astype(np.float64)
        x = (x - x.min()) / (x.max() - x.min())
        gx = ndimage.convolve(x, hx, mode="nearest")
        gy = ndimage.convolve(x, hx.T, mode="nearest")
        return np.sqrt(gx**2 + gy**2).astype(np.float32)

    return float(np.sum(((amp(pred) - amp(gt)) ** 2)[trimap == 128], dtype=np.float64)) / 1000


def _ramp_alpha(h=40, w=48):
    """A smooth synthetic matte: a soft disc with a 0..255 transition band."""
    yy, xx = np.mgrid[:h, :w]
    r = np.hypot(yy - h / 2, xx - w / 2)
    return np.clip((14 - r) * 40 + 128, 0, 255).astype(np.uint8)


def _band_trimap(alpha):
    tri = np.where(alpha >= 255, 255, np.where(alpha == 0, 0, 128)).astype(np.uint8)
    return np.where(ndimage.binary_dilation(tri == 128, iterations=3), 128, tri).astype(np.uint8)


def test_kernel_is_the_gaussgradient_definition():
    g, dg = dim.gaussian_derivative_factors()
    assert len(g) == 9
    np.testing.assert_allclose(np.outer(g, dg), _reference_hx(), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", ["sad", "mse", "grad", "conn"])
def test_perfect_prediction_scores_zero(name):
    gt = _ramp_alpha()
    assert getattr(dim, name)(gt.copy(), gt, _band_trimap(gt)) == 0.0


def test_constant_offset_sad_and_mse():
    gt = _ramp_alpha()
    gt = np.clip(gt, 0, 200).astype(np.uint8)  # room for +30 without clipping
    tri = _band_trimap(gt)
    n = int((tri == 128).sum())
    pred = gt + np.uint8(30)
    assert dim.sad(pred, gt, tri) == pytest.approx(30 / 255 * n / 1000, rel=1e-9)
    assert dim.mse(pred, gt, tri) == pytest.approx((30 / 255) ** 2, rel=1e-9)
    # The prediction is not masked: errors in known regions do not count.
    pred2 = gt.copy()
    pred2[tri != 128] = 77
    assert dim.sad(pred2, gt, tri) == 0.0


def test_no_unknown_pixel():
    gt = _ramp_alpha()
    tri = np.full(gt.shape, 255, np.uint8)
    assert math.isnan(dim.mse(gt // 2, gt, tri))
    assert (
        dim.sad(gt // 2, gt, tri) == dim.grad(gt // 2, gt, tri) == dim.conn(gt // 2, gt, tri) == 0
    )


def test_step_edge_grad_by_hand():
    """gt: a vertical 0 -> 255 step, pred constant: Grad = Σ gx² of the step, gy = 0."""
    h, w, c = 12, 24, 12
    gt = np.zeros((h, w), np.uint8)
    gt[:, c:] = 255
    pred = np.full((h, w), 90, np.uint8)  # constant: mat2gray gives zero gradient
    tri = np.full((h, w), 128, np.uint8)
    hx = _reference_hx()
    row_sum = hx.sum(axis=1)  # unused direction: rows are constant
    col_taps = hx.sum(axis=0) / row_sum.sum() * row_sum.sum()
    # gx(j) = Σ_v col_taps[v] · step(j − v) (true convolution), step(x) = [x ≥ c].
    gx = np.array(
        [
            sum(col_taps[v + 4] for v in range(-4, 5) if min(max(j - v, 0), w - 1) >= c)
            for j in range(w)
        ]
    )
    expected = h * float(np.sum(gx.astype(np.float32) ** 2)) / 1000
    assert expected > 0
    assert dim.grad(pred, gt, tri) == pytest.approx(expected, rel=1e-6)


def test_grad_matches_scipy_reference_on_random_images():
    rng = np.random.default_rng(0)
    gt = _ramp_alpha()
    pred = np.clip(gt + rng.normal(0, 25, gt.shape), 5, 250).astype(np.uint8)  # min > 0: mat2gray
    tri = _band_trimap(gt)
    assert dim.grad(pred, gt, tri) == pytest.approx(_reference_grad(pred, gt, tri), rel=1e-6)


def test_grad_uses_mat2gray_not_division_by_255():
    gt = _ramp_alpha()
    tri = _band_trimap(gt)
    pred = np.float32(40) + gt.astype(np.float32) * np.float32(0.5)  # an affine copy of gt
    assert dim.grad(pred, gt, tri) < 1e-12  # identical after min-max normalisation
    hx = _reference_hx()

    def amp255(x):  # the GCA / alpha-free port: α / 255, no mat2gray
        x = x.astype(np.float64) / 255
        return np.hypot(
            ndimage.convolve(x, hx, mode="nearest"), ndimage.convolve(x, hx.T, mode="nearest")
        )

    assert np.sum(((amp255(pred) - amp255(gt)) ** 2)[tri == 128]) / 1000 > 1e-4


def test_one_pixel_island_conn():
    """A block and a diagonal (not 4-connected) one-pixel island.

    Block: pred 230, gt 255 -> l = 0.9, both d < 0.15, contributes 0.
    Island: outside the largest component from t = 0.1, l = 0: |(1 − 99/255) − 0|.
    """
    gt = np.zeros((8, 8), np.uint8)
    gt[1:4, 1:4] = 255
    gt[4, 4] = 255
    pred = gt.copy()
    pred[1:4, 1:4] = 230
    pred[4, 4] = 99
    tri = np.full(gt.shape, 128, np.uint8)
    assert dim.conn(pred, gt, tri) == pytest.approx((1 - 99 / 255) / 1000, rel=1e-6)


@pytest.mark.parametrize("value", [51, 102, 153, 204])
def test_conn_thresholds_compare_in_single(value):
    """α = k/255 on a threshold counts as ≥ it (float32): l = α, so the pixel error is 1 − α.

    A float64 port gives l = α − 0.1 and 1.1 − α instead.
    """
    gt = np.zeros((6, 6), np.uint8)
    gt[1:5, 1:5] = 255
    pred = gt.copy()
    pred[1:5, 1:5] = value
    tri = np.full(gt.shape, 128, np.uint8)
    assert dim.conn(pred, gt, tri) == pytest.approx(16 * (1 - value / 255) / 1000, rel=1e-6)


def test_conn_ties_go_to_first_component_in_column_major_order():
    """Two 2-pixel components: MATLAB's bwconncomp + max keeps the one with the lower column.

    B (bottom-left, 255/255) is the largest component, so A (top-right, pred 230) leaves at
    t = 0.1 and scores |(1 − 230/255) − 0| per pixel. Taking A (row-major order) would give 0.
    """
    gt = np.zeros((6, 6), np.uint8)
    gt[0, 4:6] = 255
    gt[4:6, 0] = 255
    pred = gt.copy()
    pred[0, 4:6] = 230
    tri = np.full(gt.shape, 128, np.uint8)
    assert dim.conn(pred, gt, tri) == pytest.approx(2 * (25 / 255) / 1000, rel=1e-6)


def test_conn_excludes_the_background_label():
    """The background (0) is larger than the object; Ω must still be the object."""
    gt = np.zeros((12, 12), np.uint8)
    gt[2:5, 2:5] = 255
    pred = gt.copy()
    pred[2:5, 2:5] = 230  # inside Ω up to t = 0.9: l = 0.9 and no error (0 if Ω is the object)
    tri = np.full(gt.shape, 128, np.uint8)
    assert dim.conn(pred, gt, tri) == pytest.approx(0.0, abs=1e-9)
    assert dim.sad(pred, gt, tri) > 0


@pytest.mark.parametrize("name", ["sad", "mse", "grad", "conn"])
def test_error_grows_with_noise_amplitude(name):
    gt = _ramp_alpha()
    tri = _band_trimap(gt)
    noise = np.random.default_rng(1).normal(0, 1, gt.shape)
    values = [
        getattr(dim, name)(np.clip(gt + a * noise, 0, 255).astype(np.uint8), gt, tri)
        for a in (4, 16, 48)
    ]
    assert values[0] < values[1] < values[2], values


def test_shifted_edge_raises_grad():
    gt = _ramp_alpha()
    tri = np.full(gt.shape, 128, np.uint8)
    shifted = [
        np.concatenate([gt[:, :1].repeat(s, 1), gt[:, : gt.shape[1] - s]], 1) for s in (1, 2, 4)
    ]
    values = [dim.grad(p, gt, tri) for p in shifted]
    assert 0 < values[0] < values[1] < values[2], values


def test_float_inputs_equal_uint8_inputs():
    gt = _ramp_alpha()
    pred = np.clip(gt.astype(int) + 17, 0, 255).astype(np.uint8)
    tri = _band_trimap(gt)
    for name in ("sad", "mse", "grad", "conn"):
        f = getattr(dim, name)
        assert f(pred.astype(np.float32), gt.astype(np.float32), tri) == pytest.approx(
            f(pred, gt, tri), rel=1e-6
        )

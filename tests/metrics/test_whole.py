"""Whole-image, -T and MAD variants (P3M / GFM / DDC definitions) by hand and by property."""

import math

import numpy as np
import pytest
from scipy import ndimage

from jaxmatte.metrics import catalog, dim, whole

ALL_WHOLE = [
    "sad_whole",
    "mse_whole",
    "mad_whole",
    "sad_t",
    "mse_t",
    "mad_t",
    "sad_fg",
    "sad_bg",
    "grad_whole_dim",
    "grad_whole_p3m",
    "conn_whole",
]


def _case():
    yy, xx = np.mgrid[:30, :40]
    gt = np.clip((12 - np.hypot(yy - 15, xx - 20)) * 50 + 128, 0, 255).astype(np.uint8)
    tri = np.where(gt == 255, 255, np.where(gt == 0, 0, 128)).astype(np.uint8)
    tri[ndimage.binary_dilation(tri == 128, iterations=2)] = 128
    return gt, tri


@pytest.mark.parametrize("name", ALL_WHOLE)
def test_perfect_prediction_scores_zero(name):
    gt, tri = _case()
    assert catalog.METRICS.get(name)(gt.copy(), gt, tri) == 0.0


def test_constant_offset_by_hand():
    gt, tri = _case()
    gt = np.minimum(gt, 200).astype(np.uint8)
    pred = gt + np.uint8(10)
    n, hw = int((tri == 128).sum()), gt.size
    assert whole.sad_whole(pred, gt, tri) == pytest.approx(10 / 255 * hw / 1000)
    assert whole.mse_whole(pred, gt, tri) == pytest.approx((10 / 255) ** 2)
    assert whole.mad_whole(pred, gt, tri) == pytest.approx(10 / 255)
    assert whole.sad_bg(pred, gt, tri) == pytest.approx(10 / 255 * (tri == 0).sum() / 1000)
    # Forced known regions: only unknown pixels differ (gt is 0 / 255 there... up to the clip).
    forced_err = np.abs(whole.forced(pred, tri) - gt / 255.0)
    assert whole.sad_t(pred, gt, tri) == pytest.approx(forced_err.sum() / 1000)
    assert whole.mad_t(pred, gt, tri) == pytest.approx(forced_err.sum() / n)
    assert whole.mse_t(pred, gt, tri) == pytest.approx((forced_err**2).sum() / n)
    # An offset has no gradient.
    assert whole.grad_whole_p3m(pred, gt, tri) == pytest.approx(0, abs=1e-9)
    assert whole.grad_whole_dim(pred, gt, tri) == pytest.approx(0, abs=1e-12)


def test_sad_t_equals_unknown_sad_when_gt_is_binary_in_known_regions():
    gt, tri = _case()
    rng = np.random.default_rng(0)
    pred = rng.integers(0, 256, gt.shape).astype(np.uint8)
    assert whole.sad_t(pred, gt, tri) == pytest.approx(dim.sad(pred, gt, tri), rel=1e-6)
    assert whole.sad_whole(pred, gt, tri) > whole.sad_t(pred, gt, tri)


def test_no_unknown_pixel_gives_nan_for_t_means():
    gt, _ = _case()
    tri = np.where(gt > 127, 255, 0).astype(np.uint8)
    assert math.isnan(whole.mse_t(gt // 2, gt, tri))
    assert math.isnan(whole.mad_t(gt // 2, gt, tri))


def test_grad_whole_dim_has_no_mat2gray():
    gt, tri = _case()
    half = (gt // 2).astype(np.uint8)
    assert dim.grad(half * 2, gt, tri) < 1e-3  # mat2gray hides the contrast change (up to rounding)
    assert whole.grad_whole_dim(half, gt, tri) > 1.0 / 1000


def test_grad_whole_p3m_step_edge_against_1d_reference():
    """Rows constant: only the x-derivative remains, a 1-D Gaussian derivative of the step."""
    gt = np.zeros((10, 30), np.uint8)
    gt[:, 15:] = 255
    pred = np.zeros_like(gt)
    tri = np.full(gt.shape, 128, np.uint8)
    step = (np.arange(30) >= 15).astype(np.float64)
    d = ndimage.gaussian_filter1d(step, 1.4, order=1).astype(np.float32)
    assert whole.grad_whole_p3m(pred, gt, tri) == pytest.approx(10 * np.sum(d**2) / 10, rel=1e-5)


def test_conn_whole_skips_empty_thresholds():
    """pred 100, gt 50 everywhere: from t = 0.2 on the intersection is empty.

    MATLAB assigns l = 0.1 there (error 100/255 − 0.1 per pixel); P3M skips it and l stays 1 (0).
    """
    gt = np.full((5, 6), 50, np.uint8)
    pred = np.full((5, 6), 100, np.uint8)
    tri = np.full(gt.shape, 128, np.uint8)
    assert whole.conn_whole(pred, gt, tri) == 0.0
    assert dim.conn(pred, gt, tri) == pytest.approx(30 * (100 / 255 - 0.1) / 1000, rel=1e-5)


def test_catalog_knows_every_name():
    assert set(ALL_WHOLE + list(catalog.OFFICIAL)) <= set(catalog.METRICS.names())
    assert catalog.parse_names("sad, mad_whole") == ["sad", "mad_whole"]
    with pytest.raises(ValueError, match="unknown metric"):
        catalog.parse_names("sad,nope")

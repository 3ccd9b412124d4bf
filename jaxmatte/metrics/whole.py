"""Whole-image, trimap-forced ("-T") and MAD variants of the AM-2K / P3M / DDC benchmarks.

References: Li et al., "Privacy-Preserving Portrait Matting", ACM MM 2021 (JizhiziLi/P3M
  core/evaluate.py, shared with GFM); poppuppy/alpha-free-matting evaluation_whole.py (DDC).

Inputs are [H, W] arrays of 0..255 values; they are used as α = value / 255 in float64, as those
scripts do. Every function returns the value the scripts report.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from scipy import ndimage

from jaxmatte.conventions import (
    CONN_STEP,
    CONN_THETA,
    GRAD_SIGMA,
    METRIC_SCALE,
    P3M_GRAD_SCALE,
    TRIMAP_BG,
    TRIMAP_FG,
    TRIMAP_UNKNOWN,
    UINT8_MAX,
)
from jaxmatte.metrics import dim
from jaxmatte.metrics.catalog import METRICS


def _unit(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, np.float64) / UINT8_MAX


def forced(pred: np.ndarray, trimap: np.ndarray) -> np.ndarray:
    """[H, W] float64 α of pred with 1 on trimap 255 and 0 on trimap 0 (P3M test convention)."""
    p = _unit(pred).copy()
    trimap = np.asarray(trimap)
    p[trimap == TRIMAP_FG] = 1.0
    p[trimap == TRIMAP_BG] = 0.0
    return p


def _unknown_count(trimap: np.ndarray) -> float:
    """|U|, or (as P3M) H·W − |FG| − |BG| when there is no 128 pixel (0 for a clean trimap)."""
    trimap = np.asarray(trimap)
    n = float(np.count_nonzero(trimap == TRIMAP_UNKNOWN))
    if n == 0:
        n = float(trimap.size - np.count_nonzero(trimap == TRIMAP_FG))
        n -= float(np.count_nonzero(trimap == TRIMAP_BG))
    return n


def _ratio(num: float, den: float) -> float:
    return num / den if den else math.nan


@METRICS.register("sad_whole")
def sad_whole(pred: np.ndarray, gt: np.ndarray, trimap: np.ndarray) -> float:
    """Σ_all |p − g| / 1000."""
    return float(np.abs(_unit(pred) - _unit(gt)).sum()) / METRIC_SCALE


@METRICS.register("mse_whole")
def mse_whole(pred: np.ndarray, gt: np.ndarray, trimap: np.ndarray) -> float:
    """Σ_all (p − g)² / (H·W)."""
    return float(np.mean((_unit(pred) - _unit(gt)) ** 2))


@METRICS.register("mad_whole")
def mad_whole(pred: np.ndarray, gt: np.ndarray, trimap: np.ndarray) -> float:
    """Σ_all |p − g| / (H·W) (the MAD of GFM / P3M)."""
    return float(np.mean(np.abs(_unit(pred) - _unit(gt))))


@METRICS.register("sad_t")
def sad_t(pred: np.ndarray, gt: np.ndarray, trimap: np.ndarray) -> float:
    """P3M "SAD TRIMAP": known regions forced in pred, then Σ_all |p − g| / 1000."""
    return float(np.abs(forced(pred, trimap) - _unit(gt)).sum()) / METRIC_SCALE


@METRICS.register("mse_t")
def mse_t(pred: np.ndarray, gt: np.ndarray, trimap: np.ndarray) -> float:
    """Forced pred, Σ_all (p − g)² / |U| (NaN when the trimap has no unknown pixel)."""
    total = float(((forced(pred, trimap) - _unit(gt)) ** 2).sum())
    return _ratio(total, _unknown_count(trimap))


@METRICS.register("mad_t")
def mad_t(pred: np.ndarray, gt: np.ndarray, trimap: np.ndarray) -> float:
    """Forced pred, Σ_all |p − g| / |U| (NaN when the trimap has no unknown pixel)."""
    total = float(np.abs(forced(pred, trimap) - _unit(gt)).sum())
    return _ratio(total, _unknown_count(trimap))


def _sad_where(pred: np.ndarray, gt: np.ndarray, where: np.ndarray) -> float:
    return float(np.abs(_unit(pred) - _unit(gt))[where].sum()) / METRIC_SCALE


@METRICS.register("sad_fg")
def sad_fg(pred: np.ndarray, gt: np.ndarray, trimap: np.ndarray) -> float:
    """Σ |p − g| over trimap 255, / 1000, pred not forced (P3M diagnostics)."""
    return _sad_where(pred, gt, np.asarray(trimap) == TRIMAP_FG)


@METRICS.register("sad_bg")
def sad_bg(pred: np.ndarray, gt: np.ndarray, trimap: np.ndarray) -> float:
    """Σ |p − g| over trimap 0, / 1000, pred not forced (P3M diagnostics)."""
    return _sad_where(pred, gt, np.asarray(trimap) == TRIMAP_BG)


@METRICS.register("grad_whole_dim")
def grad_whole_dim(pred: np.ndarray, gt: np.ndarray, trimap: np.ndarray) -> float:
    """DDC evaluation_whole.py: DIM 9×9 kernel on α = v/255 (no mat2gray), Σ_all / 1000."""
    amp = []
    for x in (pred, gt):
        gx, gy = dim.gauss_gradient(np.asarray(x), GRAD_SIGMA, scale=1.0 / UINT8_MAX)
        amp.append(cv2.magnitude(gx, gy))
    return float(((amp[0] - amp[1]) ** 2).sum()) / METRIC_SCALE


@METRICS.register("grad_whole_p3m")
def grad_whole_p3m(pred: np.ndarray, gt: np.ndarray, trimap: np.ndarray) -> float:
    """P3M: `gaussian_filter(σ = 1.4, order 1)` per axis (reflect), Σ_all (|∇p| − |∇g|)² / 10."""
    amp = []
    for x in (_unit(pred), _unit(gt)):
        dx = ndimage.gaussian_filter(x, GRAD_SIGMA, order=(1, 0), output=np.float32)
        dy = ndimage.gaussian_filter(x, GRAD_SIGMA, order=(0, 1), output=np.float32)
        amp.append(np.sqrt(dx**2 + dy**2))
    return float(np.sum((amp[0] - amp[1]) ** 2)) / P3M_GRAD_SCALE


@METRICS.register("conn_whole")
def conn_whole(pred: np.ndarray, gt: np.ndarray, trimap: np.ndarray) -> float:
    """P3M whole-image Conn: float64 thresholds, empty ones skipped, Σ_all |φp − φg| / 1000."""
    p, g = _unit(pred), _unit(gt)
    thresholds = np.arange(0.0, 1.0 + CONN_STEP, CONN_STEP)
    l_map = np.full(p.shape, -1.0, np.float32)
    for i in range(1, len(thresholds)):
        both = (p >= thresholds[i]) & (g >= thresholds[i])
        if not both.any():
            continue  # P3M skips a threshold with an empty intersection (MATLAB does not)
        omega = dim.largest_component(both, order="C")
        l_map[(l_map == -1) & ~omega] = thresholds[i - 1]
    l_map[l_map == -1] = 1.0
    dp, dg = p - l_map, g - l_map
    phi_p = 1.0 - dp * (dp >= CONN_THETA)
    phi_g = 1.0 - dg * (dg >= CONN_THETA)
    return float(np.abs(phi_p - phi_g).sum()) / METRIC_SCALE

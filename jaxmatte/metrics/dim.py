"""SAD, MSE, Grad and Conn with the exact semantics of the DIM MATLAB evaluation scripts.

References: Rhemann et al., "A Perceptually Motivated Online Benchmark for Image Matting",
  CVPR 2009; Xu et al., "Deep Image Matting", CVPR 2017, `DIM_evaluation_code/` (compute_*_loss.m,
  compute_connectivity_error.m, gaussgradient.m, evaluate.m).

Every function takes [H, W] arrays holding 0..255 values (uint8 as `imread` returns them, or
float), counts only pixels with trimap == 128, never masks the prediction, and returns the value
`evaluate.m` prints (SAD, Grad and Conn divided by 1000, MSE a plain mean over unknown pixels).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from jaxmatte.conventions import (
    CONN_STEP,
    CONN_THETA,
    GRAD_EPSILON,
    GRAD_SIGMA,
    METRIC_SCALE,
    TRIMAP_UNKNOWN,
    UINT8_MAX,
)
from jaxmatte.metrics.catalog import METRICS

_F32_MAX = np.float32(UINT8_MAX)


def single01(x: np.ndarray) -> np.ndarray:
    """MATLAB `single(x) / 255`: float32 [H, W] in [0, 1], divided in float32."""
    return np.asarray(x, np.float32) / _F32_MAX


def unknown_mask(trimap: np.ndarray) -> np.ndarray:
    """[H, W] uint8 0/1: exactly the pixels whose trimap value is 128."""
    return (np.asarray(trimap) == TRIMAP_UNKNOWN).view(np.uint8)


def _masked_norm(a: np.ndarray, b: np.ndarray, kind: int, mask: np.ndarray) -> float:
    """cv2.norm of a − b over mask; uint8 pairs are summed exactly, float32 terms in float64.

    MATLAB sums single terms in single; it lands within ~1e-6 of these sums.
    """
    a, b = np.asarray(a), np.asarray(b)
    if not (a.dtype == b.dtype == np.uint8):
        a, b = np.ascontiguousarray(a, np.float32), np.ascontiguousarray(b, np.float32)
    return float(cv2.norm(a, b, kind, mask))


@METRICS.register("sad")
def sad(pred: np.ndarray, gt: np.ndarray, trimap: np.ndarray) -> float:
    """Σ_unknown |pred − gt| / 255, divided by 1000 (compute_sad_loss.m)."""
    total = _masked_norm(pred, gt, cv2.NORM_L1, unknown_mask(trimap))
    return total / UINT8_MAX / METRIC_SCALE


@METRICS.register("mse")
def mse(pred: np.ndarray, gt: np.ndarray, trimap: np.ndarray) -> float:
    """Mean over unknown pixels of ((pred − gt) / 255)², NaN if none (compute_mse_loss.m)."""
    mask = unknown_mask(trimap)
    count = cv2.countNonZero(mask)
    if not count:
        return math.nan
    return _masked_norm(pred, gt, cv2.NORM_L2SQR, mask) / UINT8_MAX**2 / count


def gaussian_derivative_factors(
    sigma: float = GRAD_SIGMA, epsilon: float = GRAD_EPSILON
) -> tuple[np.ndarray, np.ndarray]:
    """The two 1-D factors of gaussgradient.m's x kernel, hx = outer(g, dg) / ‖outer(g, dg)‖.

    Args:
      sigma: standard deviation of the Gaussian.
      epsilon: tail mass that fixes the half-size ceil(σ·sqrt(−2·ln(sqrt(2π)·σ·ε))) (4 for σ = 1.4).

    Returns:
      (g, dg): [K] float64 each, of unit L2 norm, so that hx[i, j] = g[i] · dg[j] with i the row
      offset and j the column offset, both running from −half to +half.
    """
    half = math.ceil(sigma * math.sqrt(-2.0 * math.log(math.sqrt(2.0 * math.pi) * sigma * epsilon)))
    u = np.arange(-half, half + 1, dtype=np.float64)
    g = np.exp(-(u**2) / (2.0 * sigma**2)) / (sigma * math.sqrt(2.0 * math.pi))
    dg = -u * g / sigma**2
    # The Frobenius norm of an outer product is the product of the vector norms.
    return g / np.linalg.norm(g), dg / np.linalg.norm(dg)


def gauss_gradient(
    image: np.ndarray,
    sigma: float = GRAD_SIGMA,
    epsilon: float = GRAD_EPSILON,
    scale: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """gaussgradient.m: `imfilter(image, h, 'replicate', 'conv')` with hx and hy = hxᵀ.

    Args:
      image: [H, W] uint8 or float image.
      sigma, epsilon: see `gaussian_derivative_factors`.
      scale: factor applied to the result (folded into the kernel).

    Returns:
      (gx, gy): [H, W] float64 derivatives along columns (x) and rows (y).
    """
    g, dg = gaussian_derivative_factors(sigma, epsilon)
    g = g * scale
    img = np.asarray(image)
    if img.dtype != np.uint8:
        img = img.astype(np.float64)
    # cv2 correlates; a true convolution flips the kernel (only dg is not symmetric).
    dg_flip, border = dg[::-1].copy(), cv2.BORDER_REPLICATE
    gx = cv2.sepFilter2D(img, cv2.CV_64F, dg_flip, g, borderType=border)
    gy = cv2.sepFilter2D(img, cv2.CV_64F, g, dg_flip, borderType=border)
    return gx, gy


def mat2gray(x: np.ndarray) -> np.ndarray:
    """MATLAB/Octave `mat2gray`: per-image min–max scaling to [0, 1] in float64.

    A constant image is only clipped to [0, 1] (Octave image 2.14); its gradient is zero either way.
    """
    x = np.asarray(x, np.float64)
    lo, hi = float(x.min()), float(x.max())
    if lo == hi:
        return np.clip(x, 0.0, 1.0)
    return np.clip((x - lo) * (1.0 / (hi - lo)), 0.0, 1.0)


def gradient_magnitude(
    x: np.ndarray, sigma: float = GRAD_SIGMA, window: tuple[slice, slice] | None = None
) -> np.ndarray:
    """|∇ mat2gray(x)| with gaussgradient.m, as float32 (compute_gradient_loss.m).

    The derivative kernels sum to zero, so filtering x and dividing by (max − min) equals filtering
    mat2gray(x) up to float64 rounding, and saves a pass over the image.

    Args:
      x: [H, W] image, 0..255.
      sigma: Gaussian standard deviation.
      window: optional crop (rows, cols) to filter; it must extend the pixels of interest by the
        kernel half-size wherever it does not reach the image border.

    Returns:
      [h, w] float32 magnitude over `window` (or the whole image).
    """
    x = np.asarray(x)
    lo, hi = float(x.min()), float(x.max())  # mat2gray limits: always the whole image
    crop = x if window is None else x[window]
    if lo == hi:
        return np.zeros(crop.shape, np.float32)
    gx, gy = gauss_gradient(crop, sigma, scale=1.0 / (hi - lo))
    return cv2.magnitude(gx, gy).astype(np.float32)


def _unknown_window(mask: np.ndarray, margin: int) -> tuple[slice, slice] | None:
    x, y, w, h = cv2.boundingRect(mask)
    if w == 0:
        return None
    rows, cols = mask.shape
    return (
        slice(max(y - margin, 0), min(y + h + margin, rows)),
        slice(max(x - margin, 0), min(x + w + margin, cols)),
    )


@METRICS.register("grad")
def grad(pred: np.ndarray, gt: np.ndarray, trimap: np.ndarray) -> float:
    """Σ_unknown (|∇pred| − |∇gt|)² after mat2gray, σ = 1.4, divided by 1000 (as evaluate.m)."""
    mask = unknown_mask(trimap)
    # Filter only the unknown bounding box plus the kernel half-size: identical values there.
    window = _unknown_window(mask, len(gaussian_derivative_factors()[0]) // 2)
    if window is None:
        return 0.0
    amp_p, amp_g = gradient_magnitude(pred, window=window), gradient_magnitude(gt, window=window)
    return _masked_norm(amp_p, amp_g, cv2.NORM_L2SQR, mask[window]) / METRIC_SCALE


def conn_thresholds(step: float = CONN_STEP) -> np.ndarray:
    """`0:step:1` as Octave builds it (base + i·step in float64), then cast to single.

    MATLAB compares a single image with a double threshold in single precision, so α = 153/255 is
    ≥ 0.6 there (and false in float64). Returns [N] float32, starting at 0.
    """
    n = int(math.floor(1.0 / step + 1e-10))
    return (np.arange(n + 1, dtype=np.float64) * step).astype(np.float32)


def threshold_index(x01: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """[H, W] uint8: the largest i with x01 ≥ thresholds[i], compared in thresholds' dtype."""
    x01 = np.asarray(x01, thresholds.dtype)
    return (np.searchsorted(thresholds, x01, side="right") - 1).astype(np.uint8)


def largest_component(mask: np.ndarray, order: str = "F") -> np.ndarray:
    """The largest 4-connected component of a [H, W] mask (all zero if the mask is empty).

    Args:
      mask: [H, W] bool or uint8 0/1.
      order: tie-break among equally large components: the one whose first pixel comes first in
        column-major ("F": MATLAB `bwconncomp` + `max`) or row-major ("C": skimage `regionprops`
        + `argmax`) scan order.

    Returns:
      [H, W] bool.
    """
    n, labels = cv2.connectedComponents(
        np.ascontiguousarray(mask, np.uint8), connectivity=4, ltype=cv2.CV_32S
    )
    if n <= 1:
        return np.zeros(labels.shape, bool)
    areas = np.bincount(labels.ravel(), minlength=n)[1:]
    best = np.flatnonzero(areas == areas.max()) + 1
    if len(best) > 1:
        scan = labels.T.ravel() if order == "F" else labels.ravel()
        first = [int(np.argmax(scan == b)) for b in best]
        best = best[[int(np.argmin(first))]]
    return labels == best[0]


def connectivity_levels(level: np.ndarray, n_thresholds: int, order: str = "F") -> np.ndarray:
    """The l_map of compute_connectivity_error.m as threshold indices.

    Args:
      level: [H, W] uint8, for each pixel the largest threshold index i with min(pred, gt) ≥ t_i.
      n_thresholds: N, the number of thresholds including t_0 = 0.
      order: tie-break of `largest_component`.

    Returns:
      [H, W] uint8: the index of l (l = t_index): i − 1 for the first i ≥ 1 at which the pixel is
      outside the largest component of {min(pred, gt) ≥ t_i}, or N − 1 if it never is.
    """
    # l = t_k with k = the number of consecutive components (from i = 1) that hold the pixel. The
    # masks shrink with i, so each labelling runs on the bounding box of its mask (a crop keeps
    # components and their scan order).
    count = np.zeros(level.shape, np.uint8)
    inside = np.ones(level.shape, bool)
    y0, x0 = 0, 0
    for i in range(1, n_thresholds):
        mask = level[y0 : y0 + inside.shape[0], x0 : x0 + inside.shape[1]] >= i
        x, y, w, h = cv2.boundingRect(mask.view(np.uint8))
        if w == 0:
            break
        window = (slice(y, y + h), slice(x, x + w))
        inside = inside[window] & largest_component(mask[window], order)
        y0, x0 = y0 + y, x0 + x
        count[y0 : y0 + h, x0 : x0 + w] += inside.view(np.uint8)
    return count


@METRICS.register("conn")
def conn(pred: np.ndarray, gt: np.ndarray, trimap: np.ndarray) -> float:
    """Σ_unknown |φ(pred) − φ(gt)|, φ = 1 − d·[d ≥ 0.15], d = α − l, / 1000 (as evaluate.m)."""
    thresholds = conn_thresholds()
    pred, gt = np.asarray(pred), np.asarray(gt)
    if pred.dtype == gt.dtype == np.uint8:  # the same comparisons, tabulated for the 256 codes
        level = threshold_index(single01(np.arange(UINT8_MAX + 1)), thresholds)[
            np.minimum(pred, gt)
        ]
    else:
        level = threshold_index(np.minimum(single01(pred), single01(gt)), thresholds)
    l_index = connectivity_levels(level, len(thresholds))
    # Only unknown pixels enter the sum: evaluate phi on those alone.
    idx = np.flatnonzero(unknown_mask(trimap))
    l_map = thresholds[l_index.ravel()[idx]]
    theta = np.float32(CONN_THETA)
    pd, gd = single01(pred.ravel()[idx]) - l_map, single01(gt.ravel()[idx]) - l_map
    phi_p = np.float32(1) - pd * (pd >= theta)
    phi_g = np.float32(1) - gd * (gd >= theta)
    return float(np.abs(phi_p - phi_g).sum(dtype=np.float64)) / METRIC_SCALE

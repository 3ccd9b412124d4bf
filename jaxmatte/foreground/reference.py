"""Plain numpy references of LSA Algorithm 1/2 (float64, OpenCV resizes) for tests and benchmarks.

References: Feng et al., LSA, Alg. 1/2; code ``tools/reestimate_foreground_final.py``.
"""

from __future__ import annotations

import cv2
import numpy as np

from jaxmatte import conventions as cv


def _reflect101(i: int, n: int) -> int:
    if n == 1:
        return 0
    return -i if i < 0 else (2 * (n - 1) - i if i >= n else i)


def jacobi_loop(fg: np.ndarray, composite: np.ndarray, alpha: np.ndarray, kappa: float, iters: int):
    """Algorithm 1 pixel by pixel (slow). fg, composite: [H, W, C]; alpha: [H, W]."""
    h, w, c = fg.shape
    f = fg.astype(np.float64).tolist()
    a = alpha.astype(np.float64).tolist()
    img = composite.astype(np.float64).tolist()
    offsets = ((0, -1), (0, 1), (-1, 0), (1, 0))
    for _ in range(iters):
        new = [[None] * w for _ in range(h)]
        for y in range(h):
            for x in range(w):
                ai = a[y][x]
                qi = (1.0 - ai) ** 2
                nbrs = [(_reflect101(y + dy, h), _reflect101(x + dx, w)) for dy, dx in offsets]
                qs = [(1.0 - a[ny][nx]) ** 2 for ny, nx in nbrs]
                den = ai * ai + 4.0 * kappa * qi + kappa * sum(qs)
                new[y][x] = [
                    (
                        ai * img[y][x][k]
                        + kappa * sum((qi + qj) * f[ny][nx][k] for qj, (ny, nx) in zip(qs, nbrs))
                    )
                    / den
                    for k in range(c)
                ]
        f = new
    return np.array(f, dtype=np.float64)


def _shifts(x: np.ndarray) -> list[np.ndarray]:
    h, w = x.shape[:2]
    pad = ((1, 1), (1, 1)) + ((0, 0),) * (x.ndim - 2)
    p = np.pad(x, pad, mode="reflect")
    return [p[1 : h + 1, 0:w], p[1 : h + 1, 2 : w + 2], p[0:h, 1 : w + 1], p[2 : h + 2, 1 : w + 1]]


def jacobi_vectorised(fg, composite, alpha, kappa: float, iters: int) -> np.ndarray:
    """Algorithm 1 with whole-array numpy operations (the LSA code's formulation)."""
    q = (1.0 - alpha) ** 2
    qn = _shifts(q)
    den = (alpha**2 + 4.0 * kappa * q + kappa * sum(qn))[..., None]
    data = alpha[..., None] * composite / den
    weights = [(kappa * (q + qj))[..., None] / den for qj in qn]
    f = fg
    for _ in range(iters):
        f = data + sum(wj * fj for wj, fj in zip(weights, _shifts(f)))
    return f


def estimate_foreground_np(
    image: np.ndarray,
    alpha: np.ndarray,
    levels: int = cv.FG_LEVELS,
    kappa: float = cv.FG_KAPPA,
    finest_iters: int = cv.FG_FINEST_ITERS,
    slow: bool = False,
) -> np.ndarray:
    """Algorithm 2 on one image. image: [H, W, 3] in [0, 1]; alpha: [H, W]; returns [H, W, 3].

    Clipped to [0, 1] at the end (no uint8 truncation). ``slow`` selects the per-pixel sweep.
    """
    image = image.astype(np.float64)
    alpha = alpha.astype(np.float64)
    composite = alpha[..., None] * image
    sweeps = jacobi_loop if slow else jacobi_vectorised
    h, w = alpha.shape
    est = image
    for s in reversed(range(levels)):
        size = (max(1, w >> s), max(1, h >> s))
        if s:
            img_s = cv2.resize(composite, size, interpolation=cv2.INTER_LINEAR)
            a_s = cv2.resize(alpha, size, interpolation=cv2.INTER_LINEAR)
        else:
            img_s, a_s = composite, alpha
        est = cv2.resize(est, size, interpolation=cv2.INTER_LINEAR)
        est = sweeps(
            est, img_s.reshape(est.shape), a_s.reshape(est.shape[:2]), kappa, finest_iters * 2**s
        )
    return np.clip(est, 0.0, 1.0)

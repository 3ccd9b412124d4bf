"""Metrics by name: each is `fn(pred, gt, trimap) -> float` on [H, W] arrays of 0..255 values."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from jaxmatte.registry import METRICS

MetricFn = Callable[[np.ndarray, np.ndarray, np.ndarray], float]

# METRICS (registry.py): lookups import every module of jaxmatte.metrics, so `dim` and `whole`
# register themselves.

# The four DIM MATLAB metrics, in the column order of evaluate.m.
OFFICIAL = ("sad", "mse", "grad", "conn")


def parse_names(spec: str | Sequence[str]) -> list[str]:
    """Splits "sad,mse" (or takes a list) and checks every name is a known metric."""
    names = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else list(spec)
    names = [n for n in names if n]
    unknown = [n for n in names if n not in METRICS]
    if unknown or not names:
        raise ValueError(
            f"unknown metric(s) {unknown or spec!r}; known: {', '.join(METRICS.names())}"
        )
    return names


def compute(
    names: Sequence[str], pred: np.ndarray, gt: np.ndarray, trimap: np.ndarray
) -> dict[str, float]:
    """Evaluates the named metrics on one image.

    Args:
      names: metric names registered in `METRICS`.
      pred: [H, W] predicted alpha, 0..255 (uint8 or float).
      gt: [H, W] ground-truth alpha, 0..255.
      trimap: [H, W] trimap with codes 0 / 128 / 255.

    Returns:
      {name: value} in the order of `names`.
    """
    return {n: float(METRICS.get(n)(pred, gt, trimap)) for n in names}

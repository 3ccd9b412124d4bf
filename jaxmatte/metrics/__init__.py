"""Matting error measures (DIM MATLAB semantics and the AM-2K / P3M variants) and evaluation."""

from jaxmatte.metrics.catalog import METRICS, OFFICIAL

# Every registered metric name (importing the registry's modules registers them).
METRIC_NAMES = tuple(METRICS.names())

__all__ = ["METRICS", "METRIC_NAMES", "OFFICIAL"]

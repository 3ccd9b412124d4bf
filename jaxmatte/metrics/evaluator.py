"""Per-image metric rows, their means, and the per-image CSV plus summary JSON of an evaluation."""

from __future__ import annotations

import csv
import json
import math
import os
import pathlib
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

from jaxmatte import atomic
from jaxmatte.conventions import (
    LABEL_BG,
    LABEL_FG,
    TRIMAP_BG,
    TRIMAP_FG,
    TRIMAP_UNKNOWN,
    UINT8_MAX,
)
from jaxmatte.metrics import catalog

Sample = tuple[str, np.ndarray, np.ndarray, np.ndarray]  # (name, pred, gt, trimap), 0..255 maps
QUANTIZE_RULES = ("floor", "round")


def quantize(alpha: np.ndarray, rule: str = "floor") -> np.ndarray:
    """α in [0, 1] -> the uint8 a reference pipeline would save (ViTMatte / alpha-free: floor).

    Args:
      alpha: [...] float alpha; clipped to [0, 1] first.
      rule: "floor" (floor(α·255)) or "round" (round half to even of α·255).

    Returns:
      [...] uint8.
    """
    scaled = np.clip(np.asarray(alpha, np.float32), 0.0, 1.0) * np.float32(UINT8_MAX)
    if rule == "floor":
        return np.floor(scaled).astype(np.uint8)
    if rule == "round":
        return np.rint(scaled).astype(np.uint8)
    raise ValueError(f"unknown quantisation rule {rule!r}; known: {QUANTIZE_RULES}")


def trimap_codes(labels: np.ndarray) -> np.ndarray:
    """Model-side trimap labels {0, 0.5, 1} -> file codes {0, 128, 255} as uint8 (same shape)."""
    labels = np.asarray(labels, np.float32)
    codes = np.full(labels.shape, TRIMAP_UNKNOWN, np.uint8)
    codes[labels == LABEL_BG] = TRIMAP_BG
    codes[labels == LABEL_FG] = TRIMAP_FG
    return codes


def samples_from_batch(
    names: Sequence[str],
    pred: np.ndarray,
    alpha: np.ndarray,
    trimap: np.ndarray,
    rule: str = "floor",
) -> Iterator[Sample]:
    """Turns a model batch into evaluation samples (for `--mode eval` and periodic eval).

    Args:
      names: B image names.
      pred: [B, H, W, 1] or [B, H, W] predicted α in [0, 1] (quantised with `rule`).
      alpha: same shape, ground-truth α in [0, 1] (from 8-bit files, so α·255 is rounded back).
      trimap: same shape, labels {0, 0.5, 1}.
      rule: quantisation rule of `quantize`.

    Yields:
      (name, pred uint8 [H, W], gt uint8 [H, W], trimap uint8 [H, W]).
    """
    pred, alpha, trimap = (np.asarray(x) for x in (pred, alpha, trimap))
    if pred.ndim == 4:
        pred, alpha, trimap = pred[..., 0], alpha[..., 0], trimap[..., 0]
    gt = np.rint(np.clip(alpha, 0.0, 1.0) * UINT8_MAX).astype(np.uint8)
    for i, name in enumerate(names):
        yield name, quantize(pred[i], rule), gt[i], trimap_codes(trimap[i])


def evaluate(
    samples: Iterable[Sample], names: Sequence[str], progress: Any = None
) -> list[dict[str, Any]]:
    """Computes the named metrics for every sample.

    Args:
      samples: (image name, pred, gt, trimap) with [H, W] maps of 0..255 values.
      names: metric names (see `catalog.METRICS`).
      progress: optional callable wrapping the iterable (e.g. `tqdm.tqdm`).

    Returns:
      One row per image: {"image": name, metric: value, ...}.
    """
    rows = []
    for image, pred, gt, trimap in samples if progress is None else progress(samples):
        rows.append({"image": image, **catalog.compute(names, pred, gt, trimap)})
    return rows


def evaluate_arrays(
    preds: Sequence[np.ndarray],
    alphas: Sequence[np.ndarray],
    trimaps: Sequence[np.ndarray],
    names: Sequence[str],
    metrics: Sequence[str],
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Scores lists of 8-bit maps (the `--mode eval` / periodic eval entry point).

    Args:
      preds: N predictions, [H, W] 0..255 (already quantised, e.g. with `quantize`).
      alphas: N ground truths, [H, W] 0..255.
      trimaps: N trimaps, [H, W] codes 0 / 128 / 255.
      names: N image names.
      metrics: metric names (see `catalog.METRICS`).

    Returns:
      (rows, means): one {"image": name, metric: value} per image, and {metric: mean}.
    """
    metrics = catalog.parse_names(metrics)
    rows = evaluate(zip(names, preds, alphas, trimaps), metrics)
    return rows, summarize(rows, metrics)


def summarize(rows: Sequence[Mapping[str, Any]], names: Sequence[str]) -> dict[str, float]:
    """The mean of each metric over images, as papers report it (NaN propagates, as in MATLAB)."""
    return {n: float(np.mean([r[n] for r in rows])) if rows else math.nan for n in names}


def write_results(
    rows: Sequence[Mapping[str, Any]],
    summary: Mapping[str, Any],
    out_dir: str | os.PathLike,
    csv_name: str = "per_image.csv",
    json_name: str = "metrics.json",
) -> None:
    """Writes `out_dir/per_image.csv` (image + the rows' metrics) and `out_dir/metrics.json`.

    Each file appears whole or not at all.
    """
    out = pathlib.Path(out_dir)
    names = [k for k in rows[0] if k != "image"] if rows else []
    write_files(rows, names, out / csv_name)
    atomic.write_text(out / json_name, json.dumps(dict(summary), indent=2) + "\n")


def write_files(
    rows: Sequence[Mapping[str, Any]],
    names: Sequence[str],
    csv_path: str | os.PathLike | None = None,
    json_path: str | os.PathLike | None = None,
    meta: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Writes the per-image CSV and the summary JSON; each file appears whole or not at all.

    Args:
      rows: output of `evaluate`.
      names: metric names, the CSV column order.
      csv_path: per-image CSV (columns image, *names), or None.
      json_path: summary JSON ({"mean": ..., "count": ..., "metrics": ..., **meta}), or None.
      meta: extra fields for the JSON (quantisation rule, forcing, trimap snapping, sources, ...).

    Returns:
      The summary dictionary.
    """
    summary = {"count": len(rows), "metrics": list(names), "mean": summarize(rows, names)}
    summary.update(meta or {})
    if csv_path is not None:

        def write_csv(f):
            w = csv.writer(f)
            w.writerow(["image", *names])
            for r in rows:
                w.writerow([r["image"], *(repr(float(r[n])) for n in names)])

        atomic.write(csv_path, write_csv, binary=False)
    if json_path is not None:
        atomic.write_text(json_path, json.dumps(summary, indent=2) + "\n")
    return summary


def format_table(
    rows: Sequence[Mapping[str, Any]], names: Sequence[str], mean: Mapping[str, float]
) -> str:
    """A plain text table, one line per image and a final MEAN line (as evaluate.m prints)."""
    width = max([len("MEAN")] + [len(str(r["image"])) for r in rows])
    head = " ".join([f"{'image':<{width}}", *(f"{n.upper():>12}" for n in names)])
    lines = [head, "-" * len(head)]
    for r in [*rows, {"image": "MEAN", **mean}]:
        lines.append(" ".join([f"{r['image']:<{width}}", *(f"{r[n]:12.6g}" for n in names)]))
    return "\n".join(lines)

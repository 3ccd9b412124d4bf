"""Trimap-classification scores (SGM Net-T): pixel accuracy and mean IoU over bg/unknown/fg."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from jaxmatte import conventions as cv

NUM_CLASSES = 3
TRIMAP_METRICS = ("pixel_accuracy", "mean_iou")


def classes_from_codes(trimap: np.ndarray) -> np.ndarray:
    """8-bit trimap codes [H, W] -> class ids 0 (bg), 1 (unknown), 2 (fg)."""
    t = np.asarray(trimap)
    return np.where(t < cv.TRIMAP_BG_BELOW, 0, np.where(t >= cv.TRIMAP_FG_FROM, 2, 1)).astype(
        np.int64
    )


def confusion(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """[3, 3] counts, rows = target class, columns = predicted class."""
    idx = np.asarray(target).ravel() * NUM_CLASSES + np.asarray(pred).ravel()
    return np.bincount(idx, minlength=NUM_CLASSES**2).reshape(NUM_CLASSES, NUM_CLASSES)


def scores(conf: np.ndarray) -> dict[str, float]:
    """Pixel accuracy and the mean over classes of IoU = TP / (TP + FP + FN).

    A class absent from both prediction and target is left out of the mean (IoU undefined).
    """
    conf = np.asarray(conf, np.float64)
    tp = np.diag(conf)
    union = conf.sum(0) + conf.sum(1) - tp
    present = union > 0
    iou = np.where(present, tp / np.where(present, union, 1.0), np.nan)
    return {
        "pixel_accuracy": float(tp.sum() / max(conf.sum(), 1.0)),
        "mean_iou": float(np.nanmean(iou)) if present.any() else float("nan"),
    }


def evaluate(
    preds: Sequence[np.ndarray], targets: Sequence[np.ndarray], names: Sequence[str]
) -> tuple[list[dict], dict[str, float]]:
    """Per-image rows and pooled scores (one confusion matrix over every pixel of the split).

    Args:
      preds: class maps [H, W] in {0, 1, 2}.
      targets: 8-bit trimaps [H, W] (codes 0/128/255).
      names: image names.
    """
    total = np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64)
    rows = []
    for name, p, t in zip(names, preds, targets):
        c = confusion(p, classes_from_codes(t))
        total += c
        rows.append({"image": name, **scores(c)})
    return rows, scores(total)

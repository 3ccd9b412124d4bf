"""TensorBoard writers, image grids (image | trimap | prediction | ground truth) and progress."""

from __future__ import annotations

import time

import numpy as np
from clu import metric_writers

from jaxmatte import conventions as cv


def create(workdir: str, is_main: bool) -> metric_writers.MetricWriter:
    """TensorBoard + console writer on the main process, a logging-only one elsewhere."""
    return metric_writers.create_default_writer(workdir, just_logging=not is_main)


def denormalize(image: np.ndarray) -> np.ndarray:
    """ImageNet-normalised RGB [..., 3] back to [0, 1]."""
    return np.clip(image * np.asarray(cv.IMAGENET_STD) + np.asarray(cv.IMAGENET_MEAN), 0.0, 1.0)


def image_grid(
    image: np.ndarray, trimap: np.ndarray | None, pred: np.ndarray, alpha: np.ndarray | None
) -> np.ndarray:
    """Rows of image | trimap | prediction | ground truth.

    Args:
      image: [N, H, W, 3] normalised RGB.
      trimap: [N, H, W, 1] in [0, 1] or None (drawn black).
      pred: [N, H, W, 1] alpha in [0, 1].
      alpha: [N, H, W, 1] ground truth in [0, 1] or None (drawn black).

    Returns:
      uint8 [N, H, 4 W, 3].
    """
    grey = lambda x: np.repeat(np.zeros_like(pred) if x is None else x, 3, axis=-1)
    row = np.concatenate([denormalize(image), grey(trimap), grey(pred), grey(alpha)], axis=2)
    return np.round(np.clip(row, 0, 1) * cv.UINT8_MAX).astype(np.uint8)


def trimap_labels(logits: np.ndarray) -> np.ndarray:
    """3-class logits [..., 3] (bg, unknown, fg) -> labels {0, 0.5, 1} [..., 1]."""
    labels = np.asarray((cv.LABEL_BG, cv.LABEL_UNKNOWN, cv.LABEL_FG), np.float32)
    return labels[np.argmax(np.asarray(logits), axis=-1)][..., None]


def displayable(outputs: dict, batch: dict) -> tuple[np.ndarray, np.ndarray | None]:
    """(prediction, ground truth) [N, H, W, 1] in [0, 1] of what the model outputs.

    Alpha models show alpha against the batch's alpha; trimap models their argmax trimap
    against the batch's trimap.
    """
    if "alpha" in outputs:
        return np.asarray(outputs["alpha"]), batch.get("alpha")
    return trimap_labels(outputs["trimap_logits"]), batch.get("trimap")


class Progress:
    """A console line with step, steps/s and ETA, printed every ``every`` steps."""

    def __init__(self, first_step: int, num_steps: int, every: int, enabled: bool):
        self.num_steps, self.every, self.enabled = num_steps, every, enabled
        self._t, self._s = time.perf_counter(), first_step

    def update(self, step: int, scalars: dict[str, float]) -> float | None:
        """Returns the steps/s since the last report when ``step`` is a report step."""
        if step % self.every and step != self.num_steps:
            return None
        now = time.perf_counter()
        rate = (step - self._s) / max(now - self._t, 1e-9)
        self._t, self._s = now, step
        if self.enabled:
            eta = (self.num_steps - step) / max(rate, 1e-9)
            items = " ".join(f"{k.split('/')[-1]}={v:.4g}" for k, v in sorted(scalars.items()))
            print(
                f"step {step}/{self.num_steps}  {rate:.2f} steps/s  ETA {_hms(eta)}  {items}",
                flush=True,
            )
        return rate


def _hms(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600:d}:{s % 3600 // 60:02d}:{s % 60:02d}"

"""Checked, atomic image writes: a file appears whole or not at all, and a failed write raises."""

from __future__ import annotations

import os
import pathlib

import cv2
import numpy as np

from jaxmatte import atomic


def write_png(path: str | os.PathLike, image: np.ndarray) -> pathlib.Path:
    """Writes ``image`` (uint8 [H, W] grey or [H, W, 3] RGB) to ``path`` as PNG, atomically.

    Encoded in memory first, then written by ``atomic.write_bytes`` (temporary file in the same
    folder, renamed over ``path`` once written and closed): a reader never sees a partial file,
    and an interrupted run leaves the old file or the new one, never a torn one.

    Raises:
      OSError: naming the file, when it cannot be encoded or written (a folder in the way, the
        disk full, no permission); no temporary file is left behind.
    """
    path = atomic.check_destination(path)
    try:
        data = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        ok, buf = cv2.imencode(".png", data)
    except cv2.error as e:
        raise OSError(f"{path}: could not encode a {image.dtype} {image.shape} array as PNG") from e
    if not ok:
        raise OSError(f"{path}: could not encode the image as PNG")
    return atomic.write_bytes(path, buf.tobytes())

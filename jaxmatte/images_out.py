"""Checked, atomic image writes: a file appears whole or not at all, and a failed write raises."""

from __future__ import annotations

import os
import pathlib
import tempfile

import cv2
import numpy as np


def write_png(path: str | os.PathLike, image: np.ndarray) -> pathlib.Path:
    """Writes ``image`` (uint8 [H, W] grey or [H, W, 3] RGB) to ``path`` as PNG, atomically.

    Raises:
      OSError: naming the file, when it cannot be encoded or written.
    """
    path = pathlib.Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path}: a folder stands where the output file should go")
    data = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", data)
    if not ok:
        raise OSError(f"{path}: could not encode the image as PNG")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(buf.tobytes())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path

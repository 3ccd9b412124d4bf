"""Reading alpha mattes and trimaps for evaluation: grey, RGB, palette and 16-bit files."""

from __future__ import annotations

import pathlib

import cv2
import numpy as np

from jaxmatte.conventions import TRIMAP_CODES, UINT16_PER_UINT8
from jaxmatte.data import images


class EvaluationInputError(ValueError):
    """A bad evaluation input; the message names the file."""


def read_matte(path: str | pathlib.Path) -> np.ndarray:
    """Reads one single-channel map as 0..255 values, as MATLAB `imread(...)(:, :, 1)` sees them.

    - grey files as they are; palette files through their palette (then they must be grey);
    - RGB / RGBA / grey + alpha: channel 0, and R = G = B is required (a colour image is refused);
    - 16-bit files are scaled by 255 / 65535 and kept as float32; 8-bit files stay uint8.

    Args:
      path: image file.

    Returns:
      [H, W] uint8, or float32 for 16-bit input, values in [0, 255].

    Raises:
      EvaluationInputError: unreadable file, colour image or unsupported depth.
    """
    path = pathlib.Path(path)
    try:
        arr = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_UNCHANGED)
    except (OSError, cv2.error) as e:
        raise EvaluationInputError(f"{path}: cannot read the image ({e})") from e
    if arr is None or arr.size == 0:
        raise EvaluationInputError(f"{path}: cannot read the image (not a decodable image file)")
    if arr.ndim == 3:
        grey = arr[..., 0]
        if arr.shape[-1] >= 3 and not (
            np.array_equal(grey, arr[..., 1]) and np.array_equal(grey, arr[..., 2])
        ):
            raise EvaluationInputError(
                f"{path}: a colour image (R, G, B differ); expected a grey map"
            )
        arr = np.ascontiguousarray(grey)
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.uint16:
        return (arr / UINT16_PER_UINT8).astype(np.float32)
    raise EvaluationInputError(
        f"{path}: unsupported sample type {arr.dtype} (expected 8 or 16 bit)"
    )


def snap_trimap(trimap: np.ndarray) -> np.ndarray:
    """[H, W] uint8: every value moved to the nearest of 0 / 128 / 255 (ties go to 128)."""
    codes = np.asarray(TRIMAP_CODES, np.float64)
    dist = np.abs(np.asarray(trimap, np.float64)[..., None] - codes)
    # argmin takes the first minimum; order the candidates so that a tie prefers 128.
    order = np.argsort([c != 128 for c in TRIMAP_CODES], kind="stable")
    return codes[order][np.argmin(dist[..., order], axis=-1)].astype(np.uint8)


def read_trimap(
    path: str | pathlib.Path, snap: bool = False, snap_flag: str = "--snap-trimap"
) -> np.ndarray:
    """Reads a trimap and checks that it holds only 0 / 128 / 255.

    Args:
      path: image file (grey, palette or RGB; 8 or 16 bit).
      snap: move other values to the nearest code instead of refusing the file.
      snap_flag: how the calling command spells ``snap`` (named in the error).

    Returns:
      [H, W] uint8 with values in {0, 128, 255}.

    Raises:
      EvaluationInputError: unreadable file, or (without `snap`) a value that is not a code.
    """
    tri = read_matte(path)
    if snap:
        return snap_trimap(tri)
    bad = ~np.isin(tri, TRIMAP_CODES)
    if bad.any():
        values = np.unique(np.asarray(tri)[bad])[:8]
        raise EvaluationInputError(
            f"{path}: trimap values other than 0/128/255 ({bad.sum()} pixels, e.g. "
            f"{', '.join(f'{v:g}' for v in values)}); pass {snap_flag} to move them to the "
            "nearest code"
        )
    return tri.astype(np.uint8)


def list_by_stem(folder: str | pathlib.Path) -> dict[str, pathlib.Path]:
    """{stem: path} of the image files in a folder; two files with one stem are an error."""
    folder = pathlib.Path(folder)
    if not folder.is_dir():
        raise EvaluationInputError(f"{folder}: not a directory")
    groups, _ = images.files_by_stem(folder)
    for stem, paths in groups.items():
        if len(paths) > 1:
            raise EvaluationInputError(f"{paths[1]}: the stem {stem!r} also names {paths[0]}")
    return {stem: paths[0] for stem, paths in groups.items()}

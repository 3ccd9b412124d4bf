"""Predict inputs: pair images with trimaps or masks by stem, and check every pair before use.

Checking decodes each file once (all of it: a truncated file fails here, not halfway through a
folder) and keeps at most ``CACHE_BYTES`` of decoded arrays for the prediction pass; the rest is
read again by the streaming reader, so memory stays bounded on big folders.
"""

from __future__ import annotations

import dataclasses
import pathlib
from concurrent import futures
from typing import Mapping

import numpy as np
from ml_collections import ConfigDict

from jaxmatte import conventions as cv
from jaxmatte.data import images
from jaxmatte.metrics import reading

# Per-image inputs read from files besides the image: config.predict key -> image kind.
SIDE_INPUTS = {"trimap": "trimap", "mask": "alpha"}
# Decoded inputs kept from the check for the prediction pass (the rest is read again).
CACHE_BYTES = 256 << 20
SNAP_HINT = "--config.predict.snap_trimap=True"


class PredictInputError(ValueError):
    """Bad predict inputs; the message names every bad file and its problem."""


@dataclasses.dataclass
class Checked:
    """The outcome of checking a folder: good pairs, ``"file: problem"`` lines, warnings."""

    good: list[tuple[str, dict[str, pathlib.Path]]]
    sizes: dict[str, tuple[int, int]]  # stem -> (H, W)
    bad: list[str]
    warnings: list[str]
    cache: dict[str, dict[str, np.ndarray]]


def list_images(path: pathlib.Path, what: str) -> dict[str, pathlib.Path]:
    """``{stem: path}`` of an image file, or of the images in a folder (duplicate stems refused)."""
    if path.is_file():
        return {path.stem: path}
    if path.is_dir():
        groups, _ = images.files_by_stem(path)
        for stem, paths in groups.items():
            if len(paths) > 1:
                raise FileNotFoundError(
                    f"{path}: several files share the stem {stem!r} "
                    f"({', '.join(p.name for p in paths)}); rename all but one"
                )
        files = {stem: paths[0] for stem, paths in groups.items()}
        if not files:
            raise FileNotFoundError(
                f"{path}: no images ({', '.join(cv.IMAGE_SUFFIXES)}) in config.predict.{what}"
            )
        return files
    raise FileNotFoundError(f"config.predict.{what}={str(path)!r}: no such file or folder")


def pair_inputs(
    predict_cfg: ConfigDict, keys: tuple[str, ...]
) -> tuple[list[tuple[str, dict[str, pathlib.Path]]], list[str]]:
    """``(stem, {key: path})`` for every image, side inputs matched by stem.

    Returns:
      ``(pairs, bad)``: complete pairs, and ``"image: no trimap in DIR"`` lines for the others.
    """
    if not predict_cfg.get("image", ""):
        raise ValueError("config.predict.image is empty: give an image file or a folder")
    imgs = list_images(pathlib.Path(predict_cfg.image), "image")
    side = {}
    for key in SIDE_INPUTS:
        if key not in keys:
            continue
        src = predict_cfg.get(key, "")
        if not src:
            raise ValueError(f"config.predict.{key} is empty: this model needs a {key} per image")
        side[key] = list_images(pathlib.Path(src), key)
    pairs, bad = [], []
    for stem, path in imgs.items():
        entry = {"image": path}
        for key, files in side.items():
            if len(imgs) == 1 and len(files) == 1:
                entry[key] = next(iter(files.values()))
            elif stem in files:
                entry[key] = files[stem]
            else:
                bad.append(f"{path}: no {key} named {stem}.* in {predict_cfg[key]}")
                break
        else:
            pairs.append((stem, entry))
    return pairs, bad


def read_trimap(path: pathlib.Path, snap: bool) -> np.ndarray:
    """The evaluation reader's trimap (``reading.read_trimap``: 0/128/255 only, or snapped)."""
    return reading.read_trimap(path, snap=snap, snap_flag=SNAP_HINT)


def read_inputs(entry: Mapping[str, pathlib.Path], snap: bool = False) -> dict[str, np.ndarray]:
    """Reads one image and its side inputs as uint8; sizes must match (errors name the files).

    Returns:
      "image" uint8 [H, W, 3]; "trimap" / "mask" uint8 [H, W] (trimaps hold 0/128/255 only).
    """
    ex = {"image": images.read_image(entry["image"], "rgb")}
    h, w = ex["image"].shape[:2]
    for key, path in entry.items():
        if key == "image":
            continue
        if key == "trimap":
            arr = read_trimap(path, snap)
        else:
            arr = images.read_image(path, SIDE_INPUTS[key])
            if arr.dtype != np.uint8:
                arr = np.round(arr / cv.UINT16_PER_UINT8).astype(np.uint8)
        if arr.shape != (h, w):
            raise PredictInputError(
                f"{path}: {key} is {arr.shape[1]}x{arr.shape[0]} but {entry['image']} is {w}x{h}"
            )
        ex[key] = arr
    return ex


def trimap_notes(trimap: np.ndarray, path: pathlib.Path, needs_known: bool) -> tuple[str, str]:
    """``(problem, warning)`` of a valid trimap ("" when none).

    A trimap with no unknown pixel, or none known, gets a warning; with none known it is a problem
    for a model that ``needs_known_pixels`` (closed-form matting has no constraint then).
    """
    unknown = trimap == cv.TRIMAP_UNKNOWN
    if not unknown.any():
        return "", f"{path}: the trimap has no unknown pixel (the prediction is the trimap)"
    if unknown.all():
        if needs_known:
            return (
                f"{path}: the trimap has no known pixel (all 128); this model needs some "
                "foreground or background pixels to constrain the solution",
                "",
            )
        return "", f"{path}: the trimap has no known pixel (all 128)"
    return "", ""


def _check_one(entry, snap, needs_known):
    try:
        ex = read_inputs(entry, snap)
    except (ValueError, OSError) as e:  # ImageError, EvaluationInputError, PredictInputError
        return None, str(e), ""
    problem, warning = ("", "")
    if "trimap" in ex:
        problem, warning = trimap_notes(ex["trimap"], entry["trimap"], needs_known)
    return (None if problem else ex), problem, warning


def check_inputs(
    pairs: list[tuple[str, dict[str, pathlib.Path]]],
    snap: bool = False,
    needs_known: bool = False,
    threads: int = 2,
    cache_bytes: int = CACHE_BYTES,
) -> Checked:
    """Decodes and checks every pair (in ``threads`` threads); keeps some decoded arrays.

    Returns:
      ``Checked`` with the good pairs in input order, their sizes, ``"file: problem"`` lines,
      warnings, and the decoded examples of the first good pairs up to ``cache_bytes``.
    """
    out = Checked([], {}, [], [], {})
    kept = 0
    with futures.ThreadPoolExecutor(max(1, threads)) as pool:
        results = pool.map(lambda p: _check_one(p[1], snap, needs_known), pairs)
        for (stem, entry), (ex, problem, warning) in zip(pairs, results):
            if warning:
                out.warnings.append(warning)
            if problem:
                out.bad.append(problem)
                continue
            out.good.append((stem, entry))
            out.sizes[stem] = ex["image"].shape[:2]
            size = sum(a.nbytes for a in ex.values())
            if kept + size <= cache_bytes:
                out.cache[stem], kept = ex, kept + size
    return out


def refusal(bad: list[str], total: int) -> PredictInputError:
    """One error (one line) naming every bad file and its problem."""
    return PredictInputError(
        f"config.predict.image: {len(bad)} of {total} input(s) are bad, nothing was written "
        f"(--config.predict.skip_bad=True predicts the others): " + "; ".join(bad)
    )

"""``--mode predict``: alpha PNGs for an image file or a folder (with trimaps where needed)."""

from __future__ import annotations

import pathlib
from typing import Any

import cv2
import numpy as np
from ml_collections import ConfigDict

from jaxmatte import conventions as cv
from jaxmatte.data import images
from jaxmatte.inference import apply as apply_lib
from jaxmatte.metrics import evaluator

IMAGE_SUFFIXES = cv.IMAGE_SUFFIXES


def _listing(path: pathlib.Path, what: str) -> dict[str, pathlib.Path]:
    if path.is_file():
        return {path.stem: path}
    if path.is_dir():
        files = {p.stem: p for p in sorted(path.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES}
        if not files:
            raise FileNotFoundError(f"{path}: no images ({', '.join(IMAGE_SUFFIXES)}) in {what}")
        return files
    raise FileNotFoundError(f"config.predict.{what}={str(path)!r}: no such file or folder")


def pair_inputs(
    image: str, trimap: str, needs_trimap: bool
) -> list[tuple[str, pathlib.Path, pathlib.Path | None]]:
    """``(stem, image path, trimap path or None)`` for a file or folder, trimaps matched by stem."""
    if not image:
        raise ValueError("config.predict.image is empty: give an image file or a folder")
    imgs = _listing(pathlib.Path(image), "image")
    if not needs_trimap:
        return [(s, p, None) for s, p in imgs.items()]
    if not trimap:
        raise ValueError("config.predict.trimap is empty: this model needs a trimap per image")
    tris = _listing(pathlib.Path(trimap), "trimap")
    if len(imgs) == 1 and len(tris) == 1:
        return [(next(iter(imgs)), next(iter(imgs.values())), next(iter(tris.values())))]
    missing = sorted(set(imgs) - set(tris))
    if missing:
        raise FileNotFoundError(f"{trimap}: no trimap for image(s) {', '.join(missing[:10])}")
    return [(s, p, tris[s]) for s, p in imgs.items()]


def predict_files(
    predict_fn: Any, variables: Any, config: ConfigDict, out_dir: pathlib.Path
) -> list[pathlib.Path]:
    """Runs the model on every input and writes ``<stem>.png`` (and ``<stem>_fg.png``)."""
    needs_trimap = config.model.get("needs_trimap", True)
    pairs = pair_inputs(config.predict.image, config.predict.trimap, needs_trimap)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for i, (stem, img_path, tri_path) in enumerate(pairs):
        image = images.read_image(img_path, "rgb")
        trimap = None
        if tri_path is not None:
            trimap = images.read_image(tri_path, "trimap")
            if trimap.shape != image.shape[:2]:
                raise ValueError(
                    f"{tri_path}: trimap is {trimap.shape[1]}x{trimap.shape[0]} but "
                    f"{img_path} is {image.shape[1]}x{image.shape[0]}"
                )
            trimap = apply_lib.encode_trimap(trimap)[None]
        alpha, aux = predict_fn(variables, apply_lib.encode_image(image)[None], trimap)
        pred = evaluator.quantize(np.asarray(alpha)[0, ..., 0], config.eval.quantize)
        path = out_dir / f"{stem}.png"
        cv2.imwrite(str(path), pred)
        written.append(path)
        if "foreground" in aux:
            fg = np.clip(np.asarray(aux["foreground"])[0], 0, 1)
            fg8 = np.round(fg * 255).astype(np.uint8)
            cv2.imwrite(str(out_dir / f"{stem}_fg.png"), cv2.cvtColor(fg8, cv2.COLOR_RGB2BGR))
        print(f"[{i + 1}/{len(pairs)}] {path}", flush=True)
    return written


def run(config: ConfigDict, workdir: str) -> list[pathlib.Path]:
    """Restores the newest checkpoint in ``workdir`` (none for parameter-free models), predicts."""
    from jaxmatte import train

    model, variables, _ = train.restore_variables(config, workdir)
    out = pathlib.Path(config.predict.out_dir or pathlib.Path(workdir) / "predict")
    return predict_files(apply_lib.make_predict_fn(model, config.model), variables, config, out)

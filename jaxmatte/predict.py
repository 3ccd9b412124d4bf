"""``--mode predict``: alpha PNGs for an image file or a folder (with trimaps or masks as needed).

Every input pair is checked (readable, sizes match) before anything is written; inputs are
encoded by ``config.data.pp_eval`` and run through the config's inference procedure.
"""

from __future__ import annotations

import pathlib
from typing import Any

import jax
import numpy as np
from ml_collections import ConfigDict

from jaxmatte import conventions as cv
from jaxmatte import images_out
from jaxmatte.data import images
from jaxmatte.foreground import multilevel
from jaxmatte.inference import apply as apply_lib
from jaxmatte.metrics import evaluator

# Per-image inputs read from files besides the image: config.predict key -> image kind.
SIDE_INPUTS = {"trimap": "trimap", "mask": "alpha"}


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


def pair_inputs(predict_cfg: ConfigDict, keys: tuple[str, ...]) -> list[tuple[str, dict]]:
    """``(stem, {key: path})`` for every image, side inputs matched by stem."""
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
    pairs = []
    for stem, path in imgs.items():
        entry = {"image": path}
        for key, files in side.items():
            if len(imgs) == 1 and len(files) == 1:
                entry[key] = next(iter(files.values()))
            elif stem in files:
                entry[key] = files[stem]
            else:
                raise FileNotFoundError(f"{predict_cfg[key]}: no {key} for image {path.name}")
        pairs.append((stem, entry))
    return pairs


def read_inputs(entry: dict[str, pathlib.Path]) -> dict[str, np.ndarray]:
    """Reads one image and its side inputs as uint8; sizes must match (errors name the files)."""
    ex = {"image": images.read_image(entry["image"], "rgb")}
    h, w = ex["image"].shape[:2]
    for key, path in entry.items():
        if key == "image":
            continue
        arr = images.read_image(path, SIDE_INPUTS[key])
        if arr.dtype != np.uint8:
            arr = np.round(arr / cv.UINT16_PER_UINT8).astype(np.uint8)
        if arr.shape != (h, w):
            raise ValueError(
                f"{path}: {key} is {arr.shape[1]}x{arr.shape[0]} but {entry['image']} is {w}x{h}"
            )
        ex[key] = arr
    return ex


def predict_files(
    predict_fn: Any, variables: Any, config: ConfigDict, out_dir: pathlib.Path, keys
) -> list[pathlib.Path]:
    """Runs the procedure on every input and writes ``<stem>.png``.

    ``<stem>_fg.png`` too when the procedure outputs a foreground, or with
    ``config.predict.foreground=True`` (LSA's foreground re-estimation of the photo under the
    predicted alpha, ``foreground.multilevel``), saved with ``multilevel.to_uint8``'s rule.
    """
    pairs = pair_inputs(config.predict, keys)
    # User files hold no ground truth: the final encoding ops of every recipe, unless the config
    # names its own (``data.pp_predict``): ``pp_eval`` may need alpha (SGM soft segmentation).
    spec = config.data.get("pp_predict", "") if "data" in config else ""
    spec = spec or apply_lib.DEFAULT_PP_EVAL
    loaded = [(stem, read_inputs(entry)) for stem, entry in pairs]  # every input checked first
    out_dir.mkdir(parents=True, exist_ok=True)
    want_fg = bool(config.predict.get("foreground", False))
    fg_fn = jax.jit(multilevel.estimate_foreground)  # LSA Alg. 2 on the photo and predicted alpha
    written = []
    for i, (stem, ex) in enumerate(loaded):
        batch = apply_lib.encode_example(ex, spec, seed=config.get("seed", 0), index=i)
        outputs = predict_fn(variables, batch)
        if "alpha" in outputs:
            alpha = np.asarray(outputs["alpha"])[0, ..., 0]
            if not np.all(np.isfinite(alpha)):
                raise FloatingPointError(f"{pairs[i][1]['image']}: the prediction is not finite")
            png = evaluator.quantize(alpha, config.eval.quantize)
        else:  # a trimap model: the predicted trimap as 0 / 128 / 255 codes
            classes = np.argmax(np.asarray(outputs["trimap_logits"])[0], axis=-1)
            png = np.asarray(cv.TRIMAP_CODES, np.uint8)[classes]
        path = images_out.write_png(out_dir / f"{stem}.png", png)
        written.append(path)
        fg = outputs.get("foreground")
        if fg is None and want_fg and "alpha" in outputs:
            fg = fg_fn(ex["image"].astype(np.float32)[None] / cv.UINT8_MAX, outputs["alpha"])
        if fg is not None:
            images_out.write_png(out_dir / f"{stem}_fg.png", multilevel.to_uint8(np.asarray(fg)[0]))
        print(f"[{i + 1}/{len(loaded)}] {path}", flush=True)
    return written


def run(config: ConfigDict, workdir: str) -> list[pathlib.Path]:
    """Restores the run's weights (none for parameter-free models) and predicts."""
    from jaxmatte import weights

    models, variables, _ = weights.load_runs(config, workdir)
    predict_fn = apply_lib.make_inference_fn(config, models)
    keys = predict_fn.inputs
    out = pathlib.Path(config.predict.out_dir or pathlib.Path(workdir) / "predict")
    return predict_files(predict_fn, variables, config, out, keys)

"""Adobe Image Matting / Composition-1k and Distinctions-646: fg + alpha training sets, background
lists, and the official test composition (Adobe ``composite_test.py``) reproduced exactly.
"""

from __future__ import annotations

import dataclasses
import math
import pathlib
from typing import Any

import numpy as np
from PIL import Image

from jaxmatte.data import images
from jaxmatte.data.layouts_base import (
    TRIMAP_RULES,
    Entry,
    LayoutError,
    Skipped,
    SplitSource,
    existing_dirs,
    list_many,
    load_files,
    make_trimap,
    paired_source,
    with_options,
)


@dataclasses.dataclass(frozen=True)
class AimFolders:
    """Folders (relative to the root; comma-separated lists allowed) and name lists of AIM."""

    fg_dir: str = "train/fg"
    alpha_dir: str = "train/alpha"
    bg_dir: str = "train/bg"  # MS-COCO
    bg_list: str = "train/training_bg_names.txt"  # optional: else every image of bg_dir, sorted
    test_fg_dir: str = "test/fg"
    test_alpha_dir: str = "test/alpha"
    test_trimap_dir: str = "test/trimaps"  # <fg>.png (shared by 20 composites) or <fg>_<k>.png
    test_bg_dir: str = "test/bg"  # Pascal VOC
    test_fg_list: str = "test/test_fg_names.txt"  # optional: else the sorted fg stems
    test_bg_list: str = (
        "test/test_bg_names.txt"  # optional: else every image of test_bg_dir, sorted
    )
    bgs_per_fg: int = 20


D646_FOLDERS = AimFolders(
    fg_dir="Train/FG",
    alpha_dir="Train/GT",
    bg_dir="Train/BG",
    bg_list="Train/training_bg_names.txt",
    test_fg_dir="Test/FG",
    test_alpha_dir="Test/GT",
    test_trimap_dir="Test/Trimap",
    test_bg_dir="Test/BG",
    test_fg_list="Test/test_fg_names.txt",
    test_bg_list="Test/test_bg_names.txt",
)
SPLITS = ("train", "bg", "test")


def composite_official(fg: np.ndarray, alpha: np.ndarray, bg: Image.Image) -> np.ndarray:
    """Composites like Adobe's ``composite4``: bicubic bg upscale, top-left crop, float, int().

    Args:
      fg: uint8 [h, w, 3] foreground (an RGBA file's A channel is ignored, as in the script).
      alpha: uint8 or uint16 [h, w] matte (channel 0 of an RGB matte).
      bg: the background as a Pillow image, converted to RGB.

    Returns:
      uint8 [h, w, 3]: fg where alpha == 1, bg where alpha == 0, else int(a*fg + (1-a)*bg).

    References: DIM ``composite_test.py`` (copy: kfeng123/LSA-Matting misc/composite_testset.py).
    """
    h, w = alpha.shape
    bw, bh = bg.size
    wratio, hratio = w / bw, h / bh
    ratio = wratio if wratio > hratio else hratio
    if ratio > 1:
        bg = bg.resize((math.ceil(bw * ratio), math.ceil(bh * ratio)), Image.Resampling.BICUBIC)
    bga = np.asarray(bg.crop((0, 0, w, h)), dtype=np.float64)
    a = (alpha.astype(np.float64) / np.iinfo(alpha.dtype).max)[..., None]
    mixed = np.trunc(a * fg.astype(np.float64) + (1 - a) * bga)
    out = np.where(a >= 1, fg, np.where(a > 0, mixed, bga))
    return out.astype(np.uint8)


def open_bg_official(path: pathlib.Path) -> Image.Image:
    """A background as the Adobe script opens it: Pillow, converted to RGB when it is not."""
    try:
        im = Image.open(path)
        im.load()
    except Exception as e:  # Pillow raises many types
        raise images.ImageError(path, f"unreadable image ({type(e).__name__}: {e})") from e
    return im if im.mode == "RGB" else im.convert("RGB")


def _read_list(path: pathlib.Path) -> list[str]:
    return [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]


def _resolve(names, folder_files: dict[str, pathlib.Path]) -> list[pathlib.Path | str]:
    """List names -> files of the folder (exact name, else same stem); missing -> the name."""
    by_name = {p.name: p for p in folder_files.values()}
    return [by_name.get(n) or folder_files.get(pathlib.PurePath(n).stem) or n for n in names]


def _backgrounds(src, split, bg_dir, bg_list) -> tuple[list, list[Skipped], list[str]]:
    if not existing_dirs(src, bg_dir):
        raise FileNotFoundError(f"{src / bg_dir}: no such folder (backgrounds of split {split!r})")
    files, skipped = list_many(src, bg_dir, split)
    if (src / bg_list).is_file():
        return _resolve(_read_list(src / bg_list), files), skipped, []
    note = f"[{split}] no list {src / bg_list}: using every image of {src / bg_dir}, sorted"
    return [files[s] for s in sorted(files)], skipped, [note]


def _bg_source(src: pathlib.Path, f: AimFolders) -> SplitSource:
    bgs, skipped, notes = _backgrounds(src, "bg", f.bg_dir, f.bg_list)
    entries = []
    for b in bgs:
        if isinstance(b, str):
            skipped.append(Skipped("bg", b, f"listed in {f.bg_list} but not found in {f.bg_dir}"))
        else:
            entries.append(Entry(b.stem, {"image": b}))
    return SplitSource("bg", entries, load_files, skipped, notes)


def _test_source(src: pathlib.Path, f: AimFolders, trimaps: str, seed: int) -> SplitSource:
    fgs, skipped = list_many(src, f.test_fg_dir, "test")
    alphas, sk = list_many(src, f.test_alpha_dir, "test")
    skipped += sk
    tris, notes = {}, []
    if trimaps == "provided" and existing_dirs(src, f.test_trimap_dir):
        tris, sk = list_many(src, f.test_trimap_dir, "test")
        skipped += sk
    elif trimaps == "provided":
        notes.append(f"[test] no trimap folder {src / f.test_trimap_dir}; composites have none")
    if (src / f.test_fg_list).is_file():
        order = [pathlib.PurePath(n).stem for n in _read_list(src / f.test_fg_list)]
    else:
        order = sorted(fgs)
        notes.append(f"[test] no list {src / f.test_fg_list}: foregrounds in sorted order")
    bgs, sk, nt = _backgrounds(src, "test", f.test_bg_dir, f.test_bg_list)
    skipped, notes = skipped + sk, notes + nt
    entries = []
    for i, stem in enumerate(order):  # the bg list is consumed in order even for skipped fgs
        if stem not in fgs or stem not in alphas:
            what = "fg" if stem not in fgs else "alpha"
            skipped.append(Skipped("test", stem, f"missing {what} of a listed test foreground"))
            continue
        for k in range(f.bgs_per_fg):
            name = f"{stem}_{k}"
            j = i * f.bgs_per_fg + k
            bg = bgs[j] if j < len(bgs) else f"<entry {j} of a list of {len(bgs)}>"
            if isinstance(bg, str):
                skipped.append(Skipped("test", name, f"background {bg} not found"))
                continue
            files = {"fg": fgs[stem], "alpha": alphas[stem], "bg": bg}
            tri = tris.get(name) or tris.get(stem)
            if tri is not None:
                files["trimap"] = tri
            has_trimap = tri is not None or trimaps in ("ddc_offline", "gca_erode")
            keys = {"image", "alpha"} | ({"trimap"} if has_trimap else set())
            entries.append(Entry(name, files, {"keys": keys, "fg_stem": stem}))
    cache: dict[str, Any] = {}

    def load(entry: Entry) -> dict[str, Any]:
        stem = entry.extra["fg_stem"]
        if cache.get("stem") != stem:  # 20 composites in a row share one fg and alpha
            cache.clear()
            fg = images.read_image(entry.files["fg"], "rgb")
            alpha, raw = images.read_image_and_bytes(entry.files["alpha"], "alpha")
            if fg.shape[:2] != alpha.shape:
                raise LayoutError(
                    f"{entry.name}: sizes differ: fg {fg.shape[1]}x{fg.shape[0]} "
                    f"({entry.files['fg']}), alpha {alpha.shape[1]}x{alpha.shape[0]} "
                    f"({entry.files['alpha']})"
                )
            cache.update(stem=stem, fg=fg, alpha=alpha, raw=raw)
        fg, alpha = cache["fg"], cache["alpha"]
        image = composite_official(fg, alpha, open_bg_official(entry.files["bg"]))
        ex = {"name": entry.name, "image": image, "alpha": cache["raw"] if cache["raw"] else alpha}
        if "trimap" in entry.files:
            tri = images.read_image(entry.files["trimap"], "trimap")
            if tri.shape != alpha.shape:
                raise LayoutError(f"{entry.name}: trimap {entry.files['trimap']} size differs")
            ex["trimap"] = tri
        elif trimaps in ("ddc_offline", "gca_erode"):
            ex["trimap"] = make_trimap(alpha, trimaps, seed, stem)  # shared by the 20 composites
        return ex

    return SplitSource("test", entries, load, skipped, notes)


def open_aim_split(
    src: str | pathlib.Path,
    split: str,
    *,
    trimaps: str = "provided",
    seed: int = 0,
    folders: AimFolders = AimFolders(),
    **options: Any,
) -> SplitSource:
    """One split of an AIM-structured dataset: "train" (fg + alpha), "bg" or "test" (composites).

    Args:
      src: the dataset root.
      split: "train", "bg" or "test".
      trimaps: one of TRIMAP_RULES ("provided" reads test trimaps; train has none by default).
      seed: seed of generated trimaps (keyed by fg stem).
      folders: default folder names; ``options`` override single fields (e.g. fg_dir="...").
    """
    src = pathlib.Path(src)
    if trimaps not in TRIMAP_RULES:
        raise ValueError(f"trimaps must be one of {TRIMAP_RULES}, got {trimaps!r}")
    f = with_options(folders, options)
    if split == "train":
        return paired_source(
            src, "train", ("fg", f.fg_dir), {"alpha": f.alpha_dir}, {}, trimaps, seed
        )
    if split == "bg":
        return _bg_source(src, f)
    if split == "test":
        return _test_source(src, f, trimaps, seed)
    raise ValueError(f"AIM-style splits are {SPLITS}, got {split!r}")

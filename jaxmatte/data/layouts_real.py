"""Real-image layouts: AM-2K, P3M-10K, alphamatting.com (GTxx) and generic image/alpha folders."""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any

from jaxmatte.data.layouts_base import SplitSource, paired_source, with_options


@dataclasses.dataclass(frozen=True)
class Am2kFolders:
    """AM-2K (GFM release) folders; the validation split is the test set."""

    train_image_dir: str = "train/original"
    train_alpha_dir: str = "train/mask"
    train_trimap_dir: str = "train/trimap"  # read only with trimaps="provided"
    val_image_dir: str = "validation/original"
    val_alpha_dir: str = "validation/mask"
    val_trimap_dir: str = "validation/trimap"


@dataclasses.dataclass(frozen=True)
class P3mFolders:
    """P3M-10K folders (JizhiziLi/P3M core/config.py)."""

    train_image_dir: str = "train/blurred_image"
    train_alpha_dir: str = "train/mask"
    train_fg_dir: str = "train/fg"  # optional
    train_bg_dir: str = "train/bg"  # optional
    train_trimap_dir: str = "train/trimap"  # read only with trimaps="provided"
    test_p_image_dir: str = "P3M-500-P/blurred_image"
    test_p_alpha_dir: str = "P3M-500-P/mask"
    test_p_trimap_dir: str = "P3M-500-P/trimap"
    test_np_image_dir: str = "P3M-500-NP/original_image"
    test_np_alpha_dir: str = "P3M-500-NP/mask"
    test_np_trimap_dir: str = "P3M-500-NP/trimap"


@dataclasses.dataclass(frozen=True)
class AlphamattingFolders:
    """alphamatting.com training set with GT; ``a|b`` = the first folder of these that exists
    (the project copy ``shared/data/realmatte`` names first, then the original release names)."""

    image_dir: str = "image|input_training_lowres"
    alpha_dir: str = "alpha|gt_training_lowres"
    trimap1_dir: str = "trimap|trimap_training_lowres/Trimap1"
    trimap2_dir: str = "trimap2|trimap_training_lowres/Trimap2"


@dataclasses.dataclass(frozen=True)
class FolderFolders:
    """Generic folders under ``<src>/<split>`` (or ``<src>`` when that does not exist)."""

    image_dir: str = "image"
    alpha_dir: str = "alpha"  # optional
    trimap_dir: str = "trimap"  # optional
    fg_dir: str = "fg"  # optional
    bg_dir: str = "bg"  # optional


def _first(src: pathlib.Path, choices: str) -> str:
    options = choices.split("|")
    return next((c for c in options if (src / c).is_dir()), options[0])


def open_am2k_split(src, split: str, *, trimaps: str | None = None, seed: int = 0, **options: Any):
    """AM-2K "train" (trimaps default: DDC offline labels) or "validation" (provided trimaps)."""
    f = with_options(Am2kFolders(), options)
    src = pathlib.Path(src)
    if split == "train":
        rule = trimaps or "ddc_offline"
        dirs = (f.train_image_dir, f.train_alpha_dir, f.train_trimap_dir)
    elif split == "validation":
        rule = trimaps or "provided"
        dirs = (f.val_image_dir, f.val_alpha_dir, f.val_trimap_dir)
    else:
        raise ValueError(f"AM-2K splits are ('train', 'validation'), got {split!r}")
    return paired_source(
        src, split, ("image", dirs[0]), {"alpha": dirs[1]}, {"trimap": dirs[2]}, rule, seed
    )


def open_p3m_split(src, split: str, *, trimaps: str | None = None, seed: int = 0, **options: Any):
    """P3M-10K "train" (+ fg/bg when present; DDC offline trimaps), "test_p" or "test_np"."""
    f = with_options(P3mFolders(), options)
    src = pathlib.Path(src)
    if split == "train":
        optional = {"fg": f.train_fg_dir, "bg": f.train_bg_dir, "trimap": f.train_trimap_dir}
        return paired_source(
            src,
            split,
            ("image", f.train_image_dir),
            {"alpha": f.train_alpha_dir},
            optional,
            trimaps or "ddc_offline",
            seed,
        )
    if split not in ("test_p", "test_np"):
        raise ValueError(f"P3M splits are ('train', 'test_p', 'test_np'), got {split!r}")
    image, alpha, trimap = (getattr(f, f"{split}_{k}_dir") for k in ("image", "alpha", "trimap"))
    return paired_source(
        src,
        split,
        ("image", image),
        {"alpha": alpha},
        {"trimap": trimap},
        trimaps or "provided",
        seed,
    )


def open_alphamatting_split(
    src, split: str, *, trimaps: str | None = None, seed: int = 0, **options: Any
) -> SplitSource:
    """alphamatting.com GT01..GT27 with Trimap1 ("test") or Trimap2 ("test_trimap2")."""
    f = with_options(AlphamattingFolders(), options)
    src = pathlib.Path(src)
    if split not in ("test", "test_trimap2"):
        raise ValueError(f"alphamatting splits are ('test', 'test_trimap2'), got {split!r}")
    tri = _first(src, f.trimap1_dir if split == "test" else f.trimap2_dir)
    return paired_source(
        src,
        split,
        ("image", _first(src, f.image_dir)),
        {"alpha": _first(src, f.alpha_dir)},
        {"trimap": tri},
        trimaps or "provided",
        seed,
    )


def open_folder_split(
    src, split: str, *, trimaps: str | None = None, seed: int = 0, **options: Any
) -> SplitSource:
    """Generic ``image/`` (+ optional ``alpha/``, ``trimap/``, ``fg/``, ``bg/``) by stem."""
    f = with_options(FolderFolders(), options)
    src = pathlib.Path(src)
    root = src / split if (src / split).is_dir() else src
    optional = {"alpha": f.alpha_dir, "trimap": f.trimap_dir, "fg": f.fg_dir, "bg": f.bg_dir}
    return paired_source(
        root, split, ("image", f.image_dir), {}, optional, trimaps or "provided", seed
    )

"""The dataset layouts by name (``aim``, ``d646``, ``am2k``, ``p3m``, ``alphamatting``, ``folder``).

``open_split(layout, src, split, trimaps=..., seed=..., **folder_options)`` returns a
``SplitSource`` (entries in a deterministic order, skipped files with reasons, ``examples()``);
``data_prep.build`` writes it with ``records.write_split``. Folder names are options (see each
layout's ``*Folders`` dataclass); the defaults follow ``specs/data_and_metrics.md`` §2.
"""

from __future__ import annotations

import dataclasses
import functools
import pathlib
from typing import Any, Callable

from jaxmatte.data import layouts_aim, layouts_real
from jaxmatte.data.layouts_base import SplitSource


@dataclasses.dataclass(frozen=True)
class Layout:
    """A layout: its splits (in build order) and the reader of one split."""

    splits: tuple[str, ...]
    open: Callable[..., SplitSource]
    folders: type


LAYOUTS = {
    "aim": Layout(layouts_aim.SPLITS, layouts_aim.open_aim_split, layouts_aim.AimFolders),
    "d646": Layout(
        layouts_aim.SPLITS,
        functools.partial(layouts_aim.open_aim_split, folders=layouts_aim.D646_FOLDERS),
        layouts_aim.AimFolders,
    ),
    "am2k": Layout(("train", "validation"), layouts_real.open_am2k_split, layouts_real.Am2kFolders),
    "p3m": Layout(
        ("train", "test_p", "test_np"), layouts_real.open_p3m_split, layouts_real.P3mFolders
    ),
    "alphamatting": Layout(
        ("test", "test_trimap2"),
        layouts_real.open_alphamatting_split,
        layouts_real.AlphamattingFolders,
    ),
    "folder": Layout(("train",), layouts_real.open_folder_split, layouts_real.FolderFolders),
}


def open_split(
    layout: str,
    src: str | pathlib.Path,
    split: str,
    *,
    trimaps: str | None = None,
    seed: int = 0,
    **options: Any,
) -> SplitSource:
    """One split of a dataset folder in the named layout.

    Args:
      layout: a key of ``LAYOUTS``.
      src: the dataset root.
      split: a split of the layout (``LAYOUTS[layout].splits``; any name for ``folder``).
      trimaps: "provided", "ddc_offline", "gca_erode", "none", or None for the layout's default
        (DDC offline labels for AM-2K / P3M train, provided files elsewhere).
      seed: seed of generated trimaps (each keyed by (seed, stem), so order does not matter).
      options: folder-name overrides, fields of the layout's ``*Folders`` dataclass.
    """
    if layout not in LAYOUTS:
        raise KeyError(f"unknown layout {layout!r}; known: {', '.join(LAYOUTS)}")
    if layout in ("aim", "d646") and trimaps is None:
        trimaps = "provided"
    return LAYOUTS[layout].open(src, split, trimaps=trimaps, seed=seed, **options)

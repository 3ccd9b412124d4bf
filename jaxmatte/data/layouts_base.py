"""Shared machinery of the dataset layout readers: pairing files by stem, validation, skips.

A layout reader turns ``(src, split, options)`` into a ``SplitSource``: the split's entries in a
fixed order (sorted stems, or the order of the dataset's own name list), the files it skipped with
a reason each, and ``examples()`` yielding ``{"name", "image", "alpha", "trimap", "fg", "bg"}``
dicts (arrays, or file bytes that need no conversion; absent keys are ``None``). Files are paired
by stem (AIM mixes ``.jpg`` and ``.png``). See ``jaxmatte.data.images`` for the conversions.
"""

from __future__ import annotations

import dataclasses
import pathlib
import zlib
from typing import Any, Callable, Iterable, Iterator, Mapping

import numpy as np

from jaxmatte.data import images, ops_trimap

TRIMAP_RULES = ("provided", "ddc_offline", "gca_erode", "none")
KINDS = {"image": "rgb", "fg": "rgb", "bg": "rgb", "alpha": "alpha", "trimap": "trimap"}


class LayoutError(ValueError):
    """A per-example problem (size mismatch, missing counterpart); the message names the files."""


@dataclasses.dataclass(frozen=True)
class Skipped:
    """A file (or example) left out of a split, and why."""

    split: str
    path: str
    reason: str


@dataclasses.dataclass(frozen=True)
class Entry:
    """One example to be: its name, its files by key, and layout-specific extras."""

    name: str
    files: Mapping[str, pathlib.Path]
    extra: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class SplitSource:
    """The examples of one split: entries in order, what was skipped, and the loader."""

    split: str
    entries: list[Entry]
    load: Callable[[Entry], dict[str, Any]]
    skipped: list[Skipped] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)
    validated: bool = False

    def validate(self, progress: Callable[[Iterable], Iterable] = iter) -> None:
        """Loads every entry once; an entry that fails moves to ``skipped`` with the error."""
        good = []
        for e in progress(self.entries):
            try:
                self.load(e)
                good.append(e)
            except (images.ImageError, LayoutError) as err:
                where = getattr(err, "path", e.name)  # the bad file, else the example
                self.skipped.append(Skipped(self.split, where, getattr(err, "reason", str(err))))
        self.entries, self.validated = good, True

    @property
    def names(self) -> list[str]:
        return [e.name for e in self.entries]

    def keys(self, entry: Entry) -> set[str]:
        """Keys an entry's example will hold (without loading it)."""
        return set(entry.extra.get("keys", entry.files))

    def examples(self) -> Iterator[dict[str, Any]]:
        for e in self.entries:
            yield self.load(e)


def list_images(folder: pathlib.Path, split: str) -> tuple[dict[str, pathlib.Path], list[Skipped]]:
    """Image files of ``folder`` by stem; ambiguous stems and non-image files are reported."""
    found, others = images.files_by_stem(folder)
    skipped = [Skipped(split, str(p), f"not an image file (suffix {p.suffix!r})") for p in others]
    out = {}
    for stem, paths in found.items():
        if len(paths) > 1:
            names = ", ".join(q.name for q in paths)
            skipped += [Skipped(split, str(q), f"ambiguous stem {stem!r}: {names}") for q in paths]
        else:
            out[stem] = paths[0]
    return out, skipped


def list_many(src: pathlib.Path, dirs: str, split: str):
    """``list_images`` over comma-separated folders of ``src``; a stem may appear only once."""
    out: dict[str, pathlib.Path] = {}
    skipped: list[Skipped] = []
    for d in (x.strip() for x in dirs.split(",") if x.strip()):
        found, sk = list_images(src / d, split)
        skipped += sk
        for stem, p in found.items():
            if stem in out:
                skipped.append(Skipped(split, str(p), f"stem {stem!r} also in {out[stem]}"))
            else:
                out[stem] = p
    return out, skipped


def existing_dirs(src: pathlib.Path, dirs: str) -> bool:
    return all((src / d.strip()).is_dir() for d in dirs.split(",") if d.strip())


def pair_by_stem(
    src: pathlib.Path,
    split: str,
    primary: tuple[str, str],
    required: Mapping[str, str],
    optional: Mapping[str, str],
) -> tuple[list[Entry], list[Skipped], list[str]]:
    """Entries keyed by the stems of the ``primary`` (key, folder), sorted by stem.

    ``required`` folders must exist and hold a counterpart for every stem; an ``optional`` folder
    is used when it exists, and then must hold a counterpart too. A missing counterpart, or a
    counterpart without a primary file, is reported (never silently dropped).
    """
    key0, dir0 = primary
    if not existing_dirs(src, dir0):
        raise FileNotFoundError(
            f"{src / dir0}: no such folder (the {key0} files of split {split!r})"
        )
    for key, d in required.items():
        if not existing_dirs(src, d):
            raise FileNotFoundError(
                f"{src / d}: no such folder (the {key} files of split {split!r})"
            )
    used = dict(required)
    notes = []
    for key, d in optional.items():
        if existing_dirs(src, d):
            used[key] = d
        else:
            notes.append(f"[{split}] no {key} folder {src / d}; examples have no {key}")
    listed, skipped = list_many(src, dir0, split)
    others = {}
    for key, d in used.items():
        others[key], sk = list_many(src, d, split)
        skipped += sk
        for stem in sorted(set(others[key]) - set(listed)):
            skipped.append(Skipped(split, str(others[key][stem]), f"no {key0} file for this {key}"))
    entries = []
    for stem in sorted(listed):
        missing = [k for k in used if stem not in others[k]]
        if missing:
            where = ", ".join(f"{k} in {src / used[k]}" for k in missing)
            skipped.append(Skipped(split, str(listed[stem]), f"missing counterpart: {where}"))
            continue
        files = {key0: listed[stem], **{k: others[k][stem] for k in used}}
        entries.append(Entry(stem, files))
    return entries, skipped, notes


def name_rng(seed: int, name: str) -> np.random.Generator:
    """The generator of an example's offline draws: keyed by (seed, crc32(name)), order-free."""
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def make_trimap(alpha: np.ndarray, rule: str, seed: int, name: str) -> np.ndarray:
    """An offline trimap from alpha (uint8/uint16 [H, W]) by ``rule``, seeded by (seed, name).

    ``ddc_offline``: DDC's label trimaps (erosion at 640^2, random interpolation, k in 1..29);
    ``gca_erode``: erosion with k_fg, k_bg in 1..29 (the ViTMatte / D646 test convention).
    """
    a = alpha.astype(np.float32) / np.iinfo(alpha.dtype).max
    rng = name_rng(seed, name)
    if rule == "ddc_offline":
        return ops_trimap.sample_ddc_offline_trimap(a, rng)
    if rule == "gca_erode":
        k_fg, k_bg = (int(k) for k in rng.integers(1, 30, size=2))
        return ops_trimap.erode_trimap(a, k_fg, k_bg)
    raise ValueError(f"no trimap generator {rule!r}")


def load_files(entry: Entry, trimap_rule: str = "provided", seed: int = 0) -> dict[str, Any]:
    """Reads an entry's files, checks that their sizes agree, and adds a generated trimap."""
    ex: dict[str, Any] = {"name": entry.name}
    sizes = {}
    alpha = None
    for key, path in entry.files.items():
        arr, raw = images.read_image_and_bytes(path, KINDS[key])
        sizes[key] = (arr.shape[:2], path)
        ex[key] = raw if raw is not None else arr
        alpha = arr if key == "alpha" else alpha
    if len({s for s, _ in sizes.values()}) > 1:
        desc = ", ".join(f"{k} {s[1]}x{s[0]} ({p})" for k, (s, p) in sizes.items())
        raise LayoutError(f"{entry.name}: sizes differ: {desc}")
    if trimap_rule in ("ddc_offline", "gca_erode") and "trimap" not in entry.files:
        if alpha is None:
            raise LayoutError(f"{entry.name}: trimap rule {trimap_rule!r} needs an alpha")
        ex["trimap"] = make_trimap(alpha, trimap_rule, seed, entry.name)
    return ex


def paired_source(
    src: pathlib.Path,
    split: str,
    primary: tuple[str, str],
    required: Mapping[str, str],
    optional: Mapping[str, str],
    trimaps: str,
    seed: int,
) -> SplitSource:
    """A split of files paired by stem, with trimaps read (``provided``) or generated."""
    if trimaps not in TRIMAP_RULES:
        raise ValueError(f"trimaps must be one of {TRIMAP_RULES}, got {trimaps!r}")
    optional = dict(optional)
    trimap_dir = optional.pop("trimap", None)
    if trimaps == "provided" and trimap_dir:
        optional["trimap"] = trimap_dir
    entries, skipped, notes = pair_by_stem(src, split, primary, required, optional)
    if trimaps in ("ddc_offline", "gca_erode"):
        entries = [Entry(e.name, e.files, {"keys": {*e.files, "trimap"}}) for e in entries]

    def load(entry: Entry) -> dict[str, Any]:
        return load_files(entry, trimaps, seed)

    return SplitSource(split, entries, load, skipped, notes)


def with_options(folders: Any, options: Mapping[str, Any]) -> Any:
    """``folders`` (a frozen dataclass) with fields replaced by ``options`` (cast to their type)."""
    fields = {f.name: f for f in dataclasses.fields(folders)}
    unknown = sorted(set(options) - set(fields))
    if unknown:
        raise ValueError(
            f"--opt {', '.join(unknown)}: unknown layout option; known: {', '.join(sorted(fields))}"
        )
    return dataclasses.replace(
        folders, **{k: type(getattr(folders, k))(v) for k, v in options.items()}
    )

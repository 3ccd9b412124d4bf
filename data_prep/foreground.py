"""Offline LSA foreground re-estimation of a training set: python -m data_prep.foreground --src D.

Writes ``<out_dir>/<stem>.png`` (default ``train/kappa_fg``, the foregrounds LSA trains on) for
every fg/alpha pair (matched by stem). Resumable: existing outputs are skipped and each file is
written under a temporary name, then renamed. A final report lists skipped inputs with reasons.

References: LSA Alg. 2 (``jaxmatte.foreground.multilevel``); code
``tools/reestimate_foreground_final.py`` (clip, x255, truncate to uint8).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys

import numpy as np
import tqdm

from jaxmatte import cli, images_out
from jaxmatte import conventions as cv
from jaxmatte.data import images
from jaxmatte.data.layouts_base import LayoutError, Skipped, pair_by_stem
from jaxmatte.foreground.multilevel import estimate_foreground, to_uint8


def reestimate_file(fg_path, alpha_path, levels: int, kappa: float, iters: int) -> np.ndarray:
    """The re-estimated foreground of one pair as uint8 [H, W, 3] RGB (clip, x255, truncate)."""
    fg = images.read_image(fg_path, "rgb")
    alpha = images.read_image(alpha_path, "alpha")
    if fg.shape[:2] != alpha.shape:
        raise LayoutError(
            f"{fg_path}: size {fg.shape[:2]} differs from alpha {alpha_path} {alpha.shape}"
        )
    a = alpha.astype(np.float32) / np.iinfo(alpha.dtype).max
    f = fg.astype(np.float32) / cv.UINT8_MAX
    est = estimate_foreground(
        f[None], a[None, ..., None], levels=levels, kappa=kappa, finest_iters=iters
    )
    return to_uint8(est[0])


def run(
    src: str | os.PathLike,
    fg_dir: str = "train/fg",
    alpha_dir: str = "train/alpha",
    out_dir: str = "train/kappa_fg",
    levels: int = cv.FG_LEVELS,
    kappa: float = cv.FG_KAPPA,
    iters: int = cv.FG_FINEST_ITERS,
    progress: bool = True,
) -> tuple[list[str], list[Skipped]]:
    """Re-estimates every pair without an output yet; returns (written stems, skipped)."""
    src = pathlib.Path(src)
    if not src.is_dir():
        raise FileNotFoundError(f"--src {src}: no such folder")
    entries, skipped, _ = pair_by_stem(src, "train", ("fg", fg_dir), {"alpha": alpha_dir}, {})
    out = src / out_dir
    out.mkdir(parents=True, exist_ok=True)
    todo = [e for e in entries if not (out / f"{e.name}.png").exists()]
    written = []
    for e in tqdm.tqdm(todo, desc="kappa_fg", unit="img", file=sys.stderr, disable=not progress):
        try:
            fg = reestimate_file(e.files["fg"], e.files["alpha"], levels, kappa, iters)
        except (images.ImageError, LayoutError) as err:
            skipped.append(Skipped("train", getattr(err, "path", e.name), str(err)))
            continue
        images_out.write_png(out / f"{e.name}.png", fg)
        written.append(e.name)
    return written, skipped


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--src", required=True, help="dataset root (e.g. the AIM root)")
    p.add_argument("--fg-dir", default="train/fg")
    p.add_argument("--alpha-dir", default="train/alpha")
    p.add_argument("--out-dir", default="train/kappa_fg")
    p.add_argument("--levels", type=int, default=cv.FG_LEVELS)
    p.add_argument("--kappa", type=float, default=cv.FG_KAPPA)
    p.add_argument("--iters", type=int, default=cv.FG_FINEST_ITERS, help="sweeps at full size")
    p.add_argument("--no-progress", action="store_true")
    cli.add_verbosity(p)
    a = p.parse_args(argv)
    written, skipped = run(
        a.src, a.fg_dir, a.alpha_dir, a.out_dir, a.levels, a.kappa, a.iters, not a.no_progress
    )
    print(f"kappa_fg: {len(written)} written, {len(skipped)} skipped")
    for s in skipped:
        print(f"  skipped {s.path}: {s.reason}")
    return 0


if __name__ == "__main__":
    cli.run(main)

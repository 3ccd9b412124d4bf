"""Builds TFRecord splits from a dataset folder: python -m data_prep.build --layout L --src D.

Every split is validated first (each file decoded once; a missing counterpart, size mismatch or
unreadable file skips that example with a reason), then written with ``records.write_split``:
shards appear atomically, so a stopped run resumes at the first missing shard. A final report
lists every skipped file and is saved as ``<out>/build_report.json``.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import re
import sys
from typing import Any, Iterator

import tensorflow as tf
import tqdm

from jaxmatte import atomic, cli
from jaxmatte.data import layouts, records
from jaxmatte.data.layouts_base import SplitSource

EXAMPLES_PER_SHARD = 256


def _existing_shards(out: pathlib.Path, split: str, names: list[str], per_shard: int) -> set[int]:
    """Indices of complete shards already written for exactly these examples (else an error)."""
    n = max(1, -(-len(names) // per_shard))
    pattern = re.compile(rf"{re.escape(split)}-(\d{{5}})-of-(\d{{5}})\.tfrecord")
    done = set()
    for p in sorted(out.glob(f"{split}-*-of-*.tfrecord")):
        m = pattern.fullmatch(p.name)
        if not m:
            continue
        if int(m.group(2)) != n:
            raise RuntimeError(
                f"{p}: a shard of another build ({m.group(2)} shards, now {n}); use a new --out"
            )
        s = int(m.group(1))
        got = [
            tf.train.Example.FromString(r.numpy())
            .features.feature["name"]
            .bytes_list.value[0]
            .decode()
            for r in tf.data.TFRecordDataset(str(p))
        ]
        if got != names[s * per_shard : (s + 1) * per_shard]:
            raise RuntimeError(
                f"{p}: holds other examples than this build would write; use a new --out"
            )
        done.add(s)
    return done


def _stream(source: SplitSource, done: set[int], per_shard: int, bar) -> Iterator[dict[str, Any]]:
    """The split's examples; those of complete shards are cheap stand-ins that are never written."""
    for i, entry in enumerate(source.entries):
        if i // per_shard in done:
            example = {"name": entry.name, **{k: b"" for k in source.keys(entry)}}
        else:
            example = source.load(entry)
        if bar is not None:
            bar.update(1)
        yield example


def build_split(
    source: SplitSource, out: pathlib.Path, per_shard: int, progress: bool, encoding: str = "png"
) -> dict[str, Any]:
    """Validates and writes one split; returns its report entry."""

    def checking(it):
        return (
            tqdm.tqdm(it, desc=f"[{source.split}] check", unit="ex", file=sys.stderr)
            if progress
            else it
        )

    source.validate(checking)
    report = {
        "count": len(source.entries),
        "skipped": [vars(s) for s in source.skipped],
        "notes": source.notes,
    }
    if not source.entries:
        report["notes"].append(f"[{source.split}] no valid examples: split not written")
        return report
    done = _existing_shards(out, source.split, source.names, per_shard)
    bar = None
    if progress:
        bar = tqdm.tqdm(
            total=len(source.entries), desc=f"[{source.split}] write", unit="ex", file=sys.stderr
        )
    stream = _stream(source, done, per_shard, bar)
    try:
        info = records.write_split(
            stream, out, source.split, len(source.entries), per_shard, False, encoding
        )
    finally:
        if bar is not None:
            bar.close()
    report.update(keys=info["keys"], shards=info["shards"], resumed_shards=len(done))
    return report


def build(
    layout: str,
    src: str,
    out: str,
    splits: list[str] | None = None,
    trimaps: str | None = None,
    seed: int = 0,
    options: dict[str, str] | None = None,
    per_shard: int = EXAMPLES_PER_SHARD,
    progress: bool = True,
    encoding: str = "png",
) -> dict[str, Any]:
    """Builds the splits (default: all of the layout) and writes ``build_report.json``.

    ``encoding``: "png" (compact) or "raw" (RGB and alpha as raw samples, JPEG files kept as
    JPEG, trimaps PNG; ~2x the PNG bytes for photos, ~5x for alphas, no decoding when
    training: see ``records``).
    """
    if encoding not in records.ENCODINGS:
        raise ValueError(f"encoding must be one of {records.ENCODINGS}, got {encoding!r}")
    if not pathlib.Path(src).is_dir():
        raise FileNotFoundError(f"--src {src}: no such folder")
    out_dir = atomic.check_folder(out)
    # Every split is opened (folders found, files paired) before anything is written.
    sources = {
        split: layouts.open_split(layout, src, split, trimaps=trimaps, seed=seed, **(options or {}))
        for split in splits or layouts.LAYOUTS[layout].splits
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    report = {"layout": layout, "src": str(src), "encoding": encoding, "splits": {}}
    for split, source in sources.items():
        report["splits"][split] = build_split(source, out_dir, per_shard, progress, encoding)
    atomic.write_text(out_dir / "build_report.json", json.dumps(report, indent=1))
    return report


def format_report(report: dict[str, Any]) -> str:
    lines = []
    for split, r in report["splits"].items():
        lines.append(f"{split}: {r['count']} examples written, {len(r['skipped'])} skipped")
        lines += [f"  note: {n}" for n in r["notes"]]
        lines += [f"  skipped {s['path']}: {s['reason']}" for s in r["skipped"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--layout", required=True, choices=sorted(layouts.LAYOUTS))
    p.add_argument("--src", required=True, help="the dataset root folder")
    p.add_argument("--out", required=True, help="output folder of TFRecord shards")
    p.add_argument("--split", action="append", help="split to build (repeat; default: all)")
    p.add_argument(
        "--trimaps",
        choices=("provided", "ddc_offline", "gca_erode", "none"),
        help="trimap source (default: the layout's)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of generated trimaps")
    p.add_argument(
        "--opt",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="folder-name override, e.g. fg_dir=Training_set/fg (repeat)",
    )
    p.add_argument(
        "--encoding",
        choices=records.ENCODINGS,
        default="png",
        help="png: compact; raw: uncompressed RGB/alpha (JPEG files stay JPEG, trimaps PNG), "
        "no decoding when training, ~2x (RGB) / ~5x (alpha) the disk of PNG",
    )
    p.add_argument("--examples-per-shard", type=int, default=EXAMPLES_PER_SHARD)
    p.add_argument("--no-progress", action="store_true")
    cli.add_verbosity(p)
    args = p.parse_args(argv)
    bad = [o for o in args.opt if "=" not in o]
    if bad:
        p.error(f"--opt needs KEY=VALUE, got {bad}")
    options = dict(o.split("=", 1) for o in args.opt)
    report = build(
        args.layout,
        args.src,
        args.out,
        args.split,
        args.trimaps,
        args.seed,
        options,
        args.examples_per_shard,
        not args.no_progress,
        args.encoding,
    )
    print(format_report(report))
    return 0


if __name__ == "__main__":
    cli.run(main)

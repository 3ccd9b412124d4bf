"""The one TFRecord schema of jaxmatte: writing splits (atomic, resumable) and parsing them.

A prepared dataset is a folder holding, per split, shards ``<split>-NNNNN-of-MMMMM.tfrecord`` and
``<split>.json`` (count, names, which keys are present). Every record holds encoded images:

  name:   bytes, the file stem
  image:  PNG/JPEG bytes (RGB)            alpha:  PNG bytes (grey, 8 or 16 bit) or b""
  trimap: PNG bytes (grey, 0/128/255) or b""   fg, bg: PNG/JPEG bytes (RGB) or b""
"""

from __future__ import annotations

import json
import os
import pathlib
from typing import Any, Iterable, Iterator

import cv2
import numpy as np
import tensorflow as tf

IMAGE_KEYS = ("image", "alpha", "trimap", "fg", "bg")
_FEATURES = {
    "name": tf.io.FixedLenFeature([], tf.string),
    **{k: tf.io.FixedLenFeature([], tf.string, default_value=b"") for k in IMAGE_KEYS},
}


def encode_png(array: np.ndarray) -> bytes:
    """Encodes an ``[H, W]`` or ``[H, W, 3]`` RGB uint8/uint16 array as PNG bytes."""
    if array.ndim == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", array)
    if not ok:
        raise ValueError(f"could not PNG-encode an array of shape {array.shape}")
    return buf.tobytes()


def _as_bytes(value: Any) -> bytes:
    if value is None:
        return b""
    if isinstance(value, bytes):
        return value
    return encode_png(np.asarray(value))


def serialize(example: dict[str, Any]) -> bytes:
    """Serialises one example dict (name + arrays or encoded bytes per IMAGE_KEYS)."""
    feats = {
        "name": tf.train.Feature(bytes_list=tf.train.BytesList(value=[example["name"].encode()]))
    }
    for k in IMAGE_KEYS:
        feats[k] = tf.train.Feature(
            bytes_list=tf.train.BytesList(value=[_as_bytes(example.get(k))])
        )
    example = tf.train.Example(features=tf.train.Features(feature=feats))
    return example.SerializeToString(deterministic=True)


def _shard_path(out_dir: pathlib.Path, split: str, i: int, n: int) -> pathlib.Path:
    return out_dir / f"{split}-{i:05d}-of-{n:05d}.tfrecord"


def write_split(
    examples: Iterable[dict[str, Any]],
    out_dir: str | os.PathLike,
    split: str,
    count: int,
    examples_per_shard: int = 256,
    progress: bool = True,
) -> dict[str, Any]:
    """Writes ``count`` examples as sharded TFRecords; a stopped run resumes at the missing shards.

    Shards are written under a temporary name and renamed when complete, so nothing half-written
    is ever read. ``examples`` must yield the same examples in the same order on every call.

    Returns:
      the split's info dict, also saved as ``<split>.json``.
    """
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    n_shards = max(1, -(-count // examples_per_shard))
    names, keys = [], set()
    it: Iterator[dict[str, Any]] = iter(examples)
    for s in range(n_shards):
        path = _shard_path(out, split, s, n_shards)
        lo, hi = s * examples_per_shard, min(count, (s + 1) * examples_per_shard)
        batch = [next(it) for _ in range(hi - lo)]
        names += [e["name"] for e in batch]
        keys |= {k for e in batch for k in IMAGE_KEYS if e.get(k) is not None}
        if path.exists():
            continue
        tmp = path.with_suffix(".tmp")
        with tf.io.TFRecordWriter(str(tmp)) as w:
            for e in batch:
                w.write(serialize(e))
        os.replace(tmp, path)
        if progress:
            print(f"[{split}] shard {s + 1}/{n_shards} ({hi}/{count} examples)", flush=True)
    info = {
        "split": split,
        "count": count,
        "shards": n_shards,
        "keys": sorted(keys),
        "names": names,
    }
    tmp = out / f"{split}.json.tmp"
    tmp.write_text(json.dumps(info))
    os.replace(tmp, out / f"{split}.json")
    return info


def split_info(data_dir: str | os.PathLike, split: str) -> dict[str, Any]:
    """Reads ``<split>.json``; a clear error when the split was never (completely) written."""
    path = pathlib.Path(data_dir) / f"{split}.json"
    if not path.exists():
        raise FileNotFoundError(
            f"{path}: no prepared split {split!r} in {data_dir} (run data_prep)"
        )
    return json.loads(path.read_text())


def read_split(data_dir: str | os.PathLike, split: str) -> np.ndarray:
    """All serialised records of a split, in order, as a 1-D object array of bytes."""
    info = split_info(data_dir, split)
    files = [
        str(_shard_path(pathlib.Path(data_dir), split, i, info["shards"]))
        for i in range(info["shards"])
    ]
    records = [r.numpy() for r in tf.data.TFRecordDataset(files)]
    if len(records) != info["count"]:
        raise ValueError(
            f"{data_dir}: split {split!r} has {len(records)} records, expected {info['count']}"
        )
    return np.array(records, dtype=object)


def _decode(data: tf.Tensor, channels: int, scale_to_unit: bool) -> tf.Tensor:
    img = tf.io.decode_image(data, channels=channels, dtype=tf.uint16, expand_animations=False)
    img = tf.cast(img, tf.float32) / 65535.0
    img.set_shape([None, None, channels])
    return img if scale_to_unit else tf.round(img * 255.0)


def parse(serialized: tf.Tensor, keys: Iterable[str]) -> dict[str, tf.Tensor]:
    """Parses and decodes one record into the pipeline convention (see ``preprocess``).

    image/fg/bg -> float32 [H, W, 3] in [0, 1]; alpha -> float32 [H, W, 1] in [0, 1]
    (8- and 16-bit PNGs alike); trimap -> float32 [H, W, 1] holding 0..255 codes.
    """
    ex = tf.io.parse_single_example(serialized, _FEATURES)
    out = {"name": ex["name"]}
    for k in keys:
        if k in ("image", "fg", "bg"):
            out[k] = _decode(ex[k], 3, True)
        elif k == "alpha":
            out[k] = _decode(ex[k], 1, True)
        elif k == "trimap":
            out[k] = _decode(ex[k], 1, False)
    return out

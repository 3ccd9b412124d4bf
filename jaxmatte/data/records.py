"""The one TFRecord schema of jaxmatte: writing splits (atomic, resumable) and parsing them.

A prepared dataset is a folder holding, per split, shards ``<split>-NNNNN-of-MMMMM.tfrecord`` and
``<split>.json`` (count, names, which keys are present). Every record holds, per image key:

  name:   bytes, the file stem
  image:  RGB                alpha: grey, 8 or 16 bit      trimap: grey, 0/128/255
  fg, bg: RGB                (each b"" when absent)
  <key>/shape: int64 [3] = (H, W, C) for a "raw" feature, (0, 0, 0) for an encoded one

Each feature describes itself, so one split may mix encodings and records written before the raw
encoding existed parse unchanged. An encoded feature is PNG or JPEG bytes; a raw feature is the
row-major samples, uint8 or little-endian uint16 (the byte count tells which).

Raw trades disk (and RAM: the pipeline holds a split in memory) for decoding time. On the
realmatte photos (800 px) raw RGB is 2.1x the PNG bytes and raw alpha 5.4x; decoding drops from
~8.5 ms (RGB PNG) / ~4.7 ms (alpha PNG) to a copy. Hence "raw" suits the small foreground sets
(AIM: 431 fg + alpha, ~2 GB raw), while backgrounds (COCO JPEGs) stay JPEG.
"""

from __future__ import annotations

import json
import os
import pathlib
from typing import Any, Iterable, Iterator

import cv2
import numpy as np
import tensorflow as tf

from jaxmatte import atomic

IMAGE_KEYS = ("image", "alpha", "trimap", "fg", "bg")
# How ``serialize`` stores arrays: "png" (lossless, compact) or "raw" (samples; JPEG bytes given
# as such stay JPEG under both). Trimaps stay PNG under "raw": they compress ~66x and decode fast.
ENCODINGS = ("png", "raw")
RAW_KEYS = ("image", "alpha", "fg", "bg")
_NO_SHAPE = (0, 0, 0)
_FEATURES = {
    "name": tf.io.FixedLenFeature([], tf.string),
    **{k: tf.io.FixedLenFeature([], tf.string, default_value=b"") for k in IMAGE_KEYS},
    **{
        f"{k}/shape": tf.io.FixedLenFeature([3], tf.int64, default_value=_NO_SHAPE)
        for k in IMAGE_KEYS
    },
}
_JPEG_MAGIC = b"\xff\xd8\xff"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def encode_png(array: np.ndarray) -> bytes:
    """Encodes an ``[H, W]`` or ``[H, W, 3]`` RGB uint8/uint16 array as PNG bytes."""
    if array.ndim == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", array)
    if not ok:
        raise ValueError(f"could not PNG-encode an array of shape {array.shape}")
    return buf.tobytes()


def decode_png(data: bytes) -> np.ndarray:
    """PNG bytes -> uint8/uint16 ``[H, W]`` (grey) or ``[H, W, 3]`` (RGB), samples as stored."""
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None or arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] != 3):
        raise ValueError("not a grey or RGB PNG")
    return cv2.cvtColor(arr, cv2.COLOR_BGR2RGB) if arr.ndim == 3 else arr


def encode_raw(array: np.ndarray) -> tuple[bytes, tuple[int, int, int]]:
    """An ``[H, W]`` or ``[H, W, C]`` uint8/uint16 array -> (little-endian samples, (H, W, C))."""
    a = np.asarray(array)
    if a.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"raw encoding takes uint8 or uint16 arrays, got {a.dtype}")
    a = a.reshape(a.shape[:2] + (-1,))
    return np.ascontiguousarray(a.astype(a.dtype.newbyteorder("<"))).tobytes(), a.shape


def _as_feature(value: Any, encoding: str) -> tuple[bytes, tuple[int, int, int]]:
    """(bytes, shape) of one image value: raw samples with their shape, or encoded bytes."""
    if value is None:
        return b"", _NO_SHAPE
    if isinstance(value, bytes):
        if encoding == "png" or not value.startswith(_PNG_MAGIC):
            return value, _NO_SHAPE  # PNG/JPEG as given; JPEG stays JPEG under "raw"
        value = decode_png(value)
    arr = np.asarray(value)
    return encode_raw(arr) if encoding == "raw" else (encode_png(arr), _NO_SHAPE)


def serialize(example: dict[str, Any], encoding: str = "png") -> bytes:
    """Serialises one example dict (name + arrays or encoded bytes per IMAGE_KEYS).

    Args:
      example: "name" (str) and, per IMAGE_KEYS, a uint8/uint16 array ([H, W] or [H, W, 3]),
        PNG/JPEG bytes, or None.
      encoding: "png" stores arrays as PNG and bytes as given; "raw" stores the arrays and PNG
        bytes of RAW_KEYS as raw samples, keeps JPEG bytes as JPEG (re-encoding would lose
        quality) and trimaps as PNG.
    """
    if encoding not in ENCODINGS:
        raise ValueError(f"encoding must be one of {ENCODINGS}, got {encoding!r}")

    def feature(**kw):
        return tf.train.Feature(**kw)

    feats = {"name": feature(bytes_list=tf.train.BytesList(value=[example["name"].encode()]))}
    for k in IMAGE_KEYS:
        data, shape = _as_feature(example.get(k), encoding if k in RAW_KEYS else "png")
        feats[k] = feature(bytes_list=tf.train.BytesList(value=[data]))
        if shape != _NO_SHAPE:
            feats[f"{k}/shape"] = feature(int64_list=tf.train.Int64List(value=list(shape)))
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
    encoding: str = "png",
) -> dict[str, Any]:
    """Writes ``count`` examples as sharded TFRecords; a stopped run resumes at the missing shards.

    ``encoding`` is ``serialize``'s ("png" or "raw").

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
                w.write(serialize(e, encoding))
        os.replace(tmp, path)
        if progress:
            print(f"[{split}] shard {s + 1}/{n_shards} ({hi}/{count} examples)", flush=True)
    info = {
        "split": split,
        "count": count,
        "shards": n_shards,
        "keys": sorted(keys),
        "encoding": encoding,
        "names": names,
    }
    atomic.write_text(out / f"{split}.json", json.dumps(info))
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


def _decode_encoded(data: tf.Tensor, channels: int) -> tf.Tensor:
    """PNG (8 or 16 bit) or JPEG bytes -> float32 [H, W, channels] in [0, 1]."""

    def jpeg():  # always 8 bit: decoding to uint8 skips decode_image's uint16 conversion pass
        return tf.cast(tf.io.decode_jpeg(data, channels=channels), tf.float32) / 255.0

    def other():
        img = tf.io.decode_image(data, channels=channels, dtype=tf.uint16, expand_animations=False)
        return tf.cast(img, tf.float32) / 65535.0

    return tf.cond(tf.strings.substr(data, 0, 3) == _JPEG_MAGIC, jpeg, other)


def _decode_raw(data: tf.Tensor, shape: tf.Tensor, channels: int) -> tf.Tensor:
    """Raw uint8 / little-endian uint16 samples of ``shape`` -> float32 [H, W, channels] in [0, 1].

    x / 255 for 8 bit equals the PNG path's (257 x) / 65535 bit for bit (both correctly rounded
    quotients of the same real number), so raw and PNG records parse to identical tensors.
    """
    shape = tf.cast(shape, tf.int32)
    tf.debugging.assert_equal(shape[2], channels, message="raw feature has other channels")
    n = tf.reduce_prod(shape)

    def u8():
        return tf.cast(tf.io.decode_raw(data, tf.uint8), tf.float32) / 255.0

    def u16():
        x = tf.io.decode_raw(data, tf.uint16, little_endian=True)
        return tf.cast(x, tf.float32) / 65535.0

    return tf.reshape(tf.cond(tf.strings.length(data) == n, u8, u16), shape)


def _decode(data: tf.Tensor, shape: tf.Tensor, channels: int, scale_to_unit: bool) -> tf.Tensor:
    img = tf.cond(
        shape[0] > 0,
        lambda: _decode_raw(data, shape, channels),
        lambda: _decode_encoded(data, channels),
    )
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
            out[k] = _decode(ex[k], ex[f"{k}/shape"], 3, True)
        elif k == "alpha":
            out[k] = _decode(ex[k], ex[f"{k}/shape"], 1, True)
        elif k == "trimap":
            out[k] = _decode(ex[k], ex[f"{k}/shape"], 1, False)
    return out

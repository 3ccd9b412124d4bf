"""The tf.data input pipeline: a resumable, seeded stream of process-local training batches.

The stream is a pure function of (seed, step): global example ``i`` of the run belongs to epoch
``i // n`` and is record ``index_shuffle(i % n, key(seed, epoch))``. Global batch ``s`` holds
examples ``[s*G, (s+1)*G)``, and process ``p`` of ``P`` takes its slice ``[p*G/P, (p+1)*G/P)``.
So a run resumed at step ``s`` sees exactly the batches an uninterrupted run sees, and P
processes together see the same global batches as one process does.
"""

from __future__ import annotations

import os
from typing import Any, Iterator

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
import tensorflow as tf  # noqa: E402

from jaxmatte.data import preprocess, records  # noqa: E402

# Keys that leave the pipeline for the model; everything else stays in tf.data.
MODEL_KEYS = ("image", "trimap", "alpha", "fg", "bg", "trimap_tcp", "softseg")
# Fold-in constants separating the background / second-foreground draws from the op seeds.
_BG_FOLD = 7919
_PAIR_FOLD = 7927
# Ops that read a second foreground of the same split as ``fg2`` / ``alpha2``.
_PAIR_OPS = ("fg_pair",)


def hide_gpus_from_tf() -> None:
    """TensorFlow serves data only: keep it off every accelerator before JAX allocates."""
    try:
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError:  # already initialised; it saw no GPU we could hide any more
        pass


def _global_index(k: tf.Tensor, local_batch: int, global_batch: int, process_index: int):
    return (k // local_batch) * global_batch + process_index * local_batch + k % local_batch


def train_dataset(
    data_dir: str,
    split: str,
    pp_spec: str,
    *,
    global_batch: int,
    seed: int,
    start_step: int = 0,
    process_index: int = 0,
    process_count: int = 1,
    shuffle: bool = True,
    bg_split: str = "",
    keys: tuple[str, ...] = ("image", "alpha", "trimap", "fg", "bg"),
) -> tf.data.Dataset:
    """Endless batches of this process's slice of every global batch, starting at ``start_step``.

    Args:
      data_dir: a prepared folder (``records.write_split`` layout).
      split: the split to train on.
      pp_spec: preprocessing ops, ``"op1(args)|op2"``; they must yield fixed-size tensors.
      global_batch: examples per step over all processes.
      seed: the run's seed; every shuffle and augmentation draw derives from it.
      start_step: the first step to produce (resume).
      process_index, process_count: this process and how many there are.
      shuffle: reshuffle the records every epoch (else the stored order, repeated).
      bg_split: optional split of background images drawn at random per example as ``bg``.
      keys: record keys to decode when the split has them.

    Returns:
      a dataset of dicts of batched tensors, local batch ``global_batch // process_count``.
    """
    if global_batch % process_count:
        raise ValueError(
            f"global batch {global_batch} is not divisible by {process_count} processes"
        )
    local = global_batch // process_count
    info = records.split_info(data_dir, split)
    present = tuple(k for k in keys if k in info["keys"])
    table = tf.constant(records.read_split(data_dir, split).tolist())
    n = tf.constant(info["count"], tf.int64)
    bg_table = tf.constant(records.read_split(data_dir, bg_split).tolist()) if bg_split else None
    pp = preprocess.build(pp_spec)
    wants_pair = any(name in _PAIR_OPS for name, _, _ in preprocess.parse_spec(pp_spec))

    def load(k):
        i = _global_index(k, local, global_batch, process_index)
        epoch, pos = i // n, i % n
        if shuffle:
            key = tf.stack([tf.constant(seed, tf.int64), epoch])
            rid = tf.random.experimental.index_shuffle(pos, key, n - 1)
        else:
            rid = pos
        ex = records.parse(tf.gather(table, rid), present)
        ex_seed = preprocess.example_seed(seed, rid, epoch)
        if bg_table is not None:
            bseed = tf.random.experimental.stateless_fold_in(ex_seed, _BG_FOLD)
            j = tf.random.stateless_uniform([], bseed, 0, tf.shape(bg_table, tf.int64)[0], tf.int64)
            ex["bg"] = records.parse(tf.gather(bg_table, j), ("image",))["image"]
        if wants_pair:
            pseed = tf.random.experimental.stateless_fold_in(ex_seed, _PAIR_FOLD)
            j = tf.random.stateless_uniform([], pseed, 0, n, tf.int64)
            second = records.parse(tf.gather(table, j), ("fg", "alpha"))
            ex["fg2"], ex["alpha2"] = second["fg"], second["alpha"]
        ex["id"], ex["epoch"] = rid, epoch
        ex = pp(ex, ex_seed)
        return {k: v for k, v in ex.items() if k in MODEL_KEYS}

    ds = tf.data.Dataset.range(start_step * local, np.iinfo(np.int64).max)
    ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(local, drop_remainder=True)
    opts = tf.data.Options()
    opts.deterministic = True
    opts.experimental_optimization.map_parallelization = True
    return ds.with_options(opts).prefetch(tf.data.AUTOTUNE)


def train_iterator(*args: Any, **kwargs: Any) -> Iterator[dict[str, np.ndarray]]:
    """``train_dataset`` as an iterator of numpy dicts."""
    return train_dataset(*args, **kwargs).as_numpy_iterator()


def eval_examples(data_dir: str, split: str) -> Iterator[dict[str, Any]]:
    """The examples of an evaluation split in order, decoded, as uint8 numpy arrays.

    Yields dicts with ``name`` (str), ``image`` uint8 [H, W, 3], and ``alpha`` uint8 [H, W] and
    ``trimap`` uint8 [H, W] where the split has them.
    """
    info = records.split_info(data_dir, split)
    keys = tuple(k for k in ("image", "alpha", "trimap") if k in info["keys"])
    for rec in records.read_split(data_dir, split):
        ex = records.parse(tf.constant(rec), keys)
        out = {"name": ex["name"].numpy().decode()}
        for k in keys:
            v = ex[k].numpy()
            v = np.round(v * 255.0) if k != "trimap" else v
            out[k] = v.astype(np.uint8) if k == "image" else v[..., 0].astype(np.uint8)
        yield out

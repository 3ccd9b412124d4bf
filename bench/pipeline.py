"""Pipeline throughput per recipe: samples/s of parse + augment over in-memory records.

Usage: python bench/pipeline.py [--n 96] [--size 800] [--recipes gca,ddc,...] [--encodings raw,png]

Synthetic records hold realistic-size images (fg, alpha, bg, image, trimap at size x size; a
second foreground for fg_pair is parsed from another record, as the training pipeline must),
either all PNG ("png") or as a training set is best stored ("raw": fg / alpha / trimap as raw
samples, the photos bg / image as JPEG, trimaps PNG).
Each recipe runs at its own crop size (512; LSA 640) with tf.data AUTOTUNE on all cores, and with
a 1-thread private pool (the per-core figure). The baseline is decode-only throughput in the
same run (records.parse of the recipe's keys), so the ratio says what the augmentation costs.
"per cpu-s" = samples per CPU-second of this process (all threads), i.e. samples/s per busy core;
it is robust to other load on a shared machine, unlike the wall-clock figures.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from jaxmatte.data import preprocess, recipes, records  # noqa: E402
from jaxmatte.registry import OPS  # noqa: E402

JPEG_QUALITY = 95  # COCO / AM-2K photos are JPEGs of about this quality


def make_records(n: int, size: int, encoding: str = "png", seed: int = 0) -> list[bytes]:
    """``n`` serialized examples with photo-like (smooth + mild noise) images.

    ``encoding="png"``: every image PNG (the old records). ``"raw"``: the realistic training
    setup, fg / alpha raw, the photos (bg, image) JPEG at quality ``JPEG_QUALITY``, trimap PNG.
    """
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:size, :size] / size
    out = []
    for i in range(n):
        f = rng.uniform(2, 8, 3)
        base = np.stack([np.sin(f[c] * x + c) * np.cos(f[c] * y - i) for c in range(3)], -1)
        img = lambda: np.clip(  # noqa: E731
            127 + 100 * base + rng.normal(0, 6, base.shape), 0, 255
        ).astype(np.uint8)
        r = np.hypot(y - rng.uniform(0.4, 0.6), x - rng.uniform(0.4, 0.6))
        alpha = np.clip((0.3 - r) / 0.05, 0, 1)
        alpha = np.round(alpha * 255).astype(np.uint8)
        tri = np.where(alpha == 255, 255, np.where(alpha == 0, 0, 128)).astype(np.uint8)
        tri = cv2.dilate((tri == 128).astype(np.uint8), np.ones((21, 21), np.uint8)) * 128
        tri = np.where(tri == 128, 128, np.where(alpha == 255, 255, 0)).astype(np.uint8)
        photo = jpeg if encoding == "raw" else (lambda x: x)
        ex = {"name": f"b{i}", "image": photo(img()), "fg": img(), "bg": photo(img())}
        out.append(records.serialize({**ex, "alpha": alpha, "trimap": tri}, encoding))
    return out


def jpeg(rgb: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    assert ok
    return buf.tobytes()


def dataset(recs: list[bytes], spec: str | None, keys, pair: bool, threads: int | None):
    table = tf.constant(recs)
    n = len(recs)
    pp = preprocess.build(spec) if spec else None

    def load(i):
        rid = i % n
        ex = records.parse(tf.gather(table, rid), keys)
        ex.pop("name")
        if pair:
            other = records.parse(tf.gather(table, (rid + 1) % n), ("fg", "alpha"))
            ex["fg2"], ex["alpha2"] = other["fg"], other["alpha"]
        if pp is not None:
            ex = pp(ex, preprocess.example_seed(0, rid, i // n))
        return ex

    ds = tf.data.Dataset.range(10**9).map(load, num_parallel_calls=tf.data.AUTOTUNE)
    opts = tf.data.Options()
    if threads:
        opts.threading.private_threadpool_size = threads
        opts.threading.max_intra_op_parallelism = 1
    return ds.with_options(opts).prefetch(tf.data.AUTOTUNE)


def rate(ds, n: int, warmup: int = 8) -> tuple[float, float]:
    """(samples per wall second, samples per CPU second of this process = per busy core)."""
    it = iter(ds)
    for _ in range(warmup):
        next(it)
    t, c = time.perf_counter(), time.process_time()
    for _ in range(n):
        next(it)
    return n / (time.perf_counter() - t), n / (time.process_time() - c)


def profile(recs: list[bytes], name: str, n: int) -> list[tuple[str, float]]:
    """Mean wall ms of parsing and of every op of recipe ``name`` on a 1-thread private pool.

    Each op's time runs from a timestamp its inputs wait on to one that waits on its outputs, so
    one pass attributes the whole map function; a 1-thread pool makes wall time = CPU time.
    """
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
    kw, keys, pair = SETUPS[name]
    parts = preprocess.parse_spec(recipes.get(name, **kw))
    ops = [OPS.get(op)(*a, **k) for op, a, k in parts]
    table = tf.constant(recs)

    def after(x, dep):
        with tf.control_dependencies([dep]):
            return tf.nest.map_structure(tf.identity, x)

    def stamp(deps):
        with tf.control_dependencies(tf.nest.flatten(deps)):
            return tf.timestamp()

    def load(i):
        t0 = tf.timestamp()
        rid = after(i % len(recs), t0)
        ex = records.parse(tf.gather(table, rid), keys)
        ex.pop("name")
        if pair:
            other = records.parse(tf.gather(table, (rid + 1) % len(recs)), ("fg", "alpha"))
            ex["fg2"], ex["alpha2"] = other["fg"], other["alpha"]
        seeds = tf.random.experimental.stateless_split(
            preprocess.example_seed(0, rid, i // len(recs)), len(ops)
        )
        times = []
        for j, op in enumerate(ops):
            t1 = stamp(ex)
            times.append(t1 - t0)
            ex, t0 = op(after(ex, t1), seeds[j]), t1
        times.append(stamp(ex) - t0)
        return tf.stack(times)

    opts = tf.data.Options()
    opts.threading.private_threadpool_size = 1
    opts.threading.max_intra_op_parallelism = 1
    ds = tf.data.Dataset.range(n + 8).map(load).with_options(opts)
    ms = np.mean([t for t in ds.as_numpy_iterator()][8:], 0) * 1000
    return list(zip(["parse"] + [p[0] for p in parts], ms))


SETUPS = {  # recipe -> (spec kwargs, record keys, second foreground)
    "ddc": ({}, ("image", "trimap"), False),
    "ddc_crop_only": ({}, ("image", "trimap"), False),
    "gca": ({}, ("fg", "alpha", "bg"), True),
    "tcp": ({}, ("fg", "alpha", "bg"), True),
    "sgm_m": ({}, ("fg", "alpha", "bg"), True),
    "sgm_t": ({}, ("fg", "alpha", "bg"), False),
    "dmp": ({}, ("fg", "alpha", "bg"), True),
    "lsa": ({}, ("fg", "alpha", "bg"), False),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=96, help="timed samples per measurement")
    ap.add_argument("--size", type=int, default=800, help="side of the synthetic PNGs")
    ap.add_argument("--records", type=int, default=16)
    ap.add_argument("--recipes", default=",".join(SETUPS))
    ap.add_argument(
        "--encodings",
        default="raw,png",
        help="record setups: raw (fg/alpha raw, photos JPEG, trimap PNG) and/or png (all PNG)",
    )
    ap.add_argument("--profile", action="store_true", help="per-op ms of each recipe instead")
    args = ap.parse_args()
    if args.profile:
        for enc in args.encodings.split(","):
            recs = make_records(args.records, args.size, enc)
            for name in args.recipes.split(","):
                rows = profile(recs, name, args.n)
                total = sum(ms for _, ms in rows)
                print(f"{name} ({enc} records): {total:.1f} ms = {1000 / total:.1f}/s per core")
                for op, ms in rows:
                    print(f"  {op:16s} {ms:6.2f} ms {100 * ms / total:5.1f}%")
        return
    cores = os.cpu_count()
    print(
        f"{args.records} records of {args.size}x{args.size}; JPEG quality {JPEG_QUALITY}; "
        f"{cores} cores; load average {os.getloadavg()[0]:.1f}"
    )
    print(
        f"{'recipe':14s} {'records':>7s} {'crop':>5s} {'decode/cpu-s':>13s} {'wall/s':>7s} "
        f"{'1thr wall/s':>11s} {'per cpu-s':>9s} {'ratio':>6s}"
    )
    for enc in args.encodings.split(","):
        recs = make_records(args.records, args.size, enc)
        for name in args.recipes.split(","):
            kw, keys, pair = SETUPS[name]
            spec = recipes.get(name, **kw)
            crop = 640 if name == "lsa" else 512
            _, base = rate(dataset(recs, None, keys, pair, None), args.n)
            wall, cpu = rate(dataset(recs, spec, keys, pair, None), args.n)
            one, _ = rate(dataset(recs, spec, keys, pair, 1), max(args.n // 2, 16))
            print(
                f"{name:14s} {enc:>7s} {crop:5d} {base:13.1f} {wall:7.1f} {one:11.1f} "
                f"{cpu:9.1f} {cpu / base:6.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()

"""``--mode predict``: alpha PNGs for an image file or a folder (with trimaps or masks as needed).

Every input pair is checked (readable, sizes match, trimap codes) before anything is written;
bad inputs stop the run with one message naming each (``config.predict.skip_bad=True``: predict
the others, list the bad ones at the end). Outputs that exist are kept (resumable) unless
``config.predict.overwrite=True``. Images of one size are batched (``config.predict.batch_size``);
reading and writing run in background threads while the device computes.
"""

from __future__ import annotations

import collections
import pathlib
import sys
import time
from concurrent import futures
from typing import Any

import jax
import numpy as np
from ml_collections import ConfigDict

from jaxmatte import atomic, images_out
from jaxmatte import conventions as cv
from jaxmatte.foreground import multilevel
from jaxmatte.inference import apply as apply_lib
from jaxmatte.metrics import evaluator
from jaxmatte.predict_inputs import (  # noqa: F401  (re-exported: the predict API)
    SIDE_INPUTS,
    PredictInputError,
    check_inputs,
    list_images,
    pair_inputs,
    read_inputs,
    refusal,
)

PREFETCH_BATCHES = 2  # batches read ahead of the device, and written behind it


class _Inline(futures.Executor):
    """An executor that runs each task at once in the caller (``io_threads=0``: no overlap)."""

    def submit(self, fn, /, *args, **kwargs):
        f = futures.Future()
        try:
            f.set_result(fn(*args, **kwargs))
        except BaseException as e:  # noqa: BLE001 - handed to the caller through the future
            f.set_exception(e)
        return f


def outputs_of(out_dir: pathlib.Path, stem: str, want_fg: bool) -> list[pathlib.Path]:
    """The files a finished prediction of ``stem`` leaves (alpha, and foreground if asked)."""
    return [out_dir / f"{stem}.png"] + ([out_dir / f"{stem}_fg.png"] if want_fg else [])


def batches_by_size(
    items: list[tuple[int, str, dict]], sizes: dict[str, tuple[int, int]], batch_size: int
) -> list[list[tuple[int, str, dict]]]:
    """Chunks of at most ``batch_size`` items of one size, sizes in order of first appearance."""
    groups: dict[tuple[int, int], list] = {}
    for item in items:
        groups.setdefault(tuple(sizes[item[1]]), []).append(item)
    return [g[i : i + batch_size] for g in groups.values() for i in range(0, len(g), batch_size)]


def _eta(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def predict_files(
    predict_fn: Any,
    variables: Any,
    config: ConfigDict,
    out_dir: pathlib.Path,
    keys: tuple[str, ...],
    needs_known: bool = False,
    io_threads: int = 2,
) -> list[pathlib.Path]:
    """Checks every input, then predicts the pending ones and writes ``<stem>.png``.

    ``<stem>_fg.png`` too when the procedure outputs a foreground, or with
    ``config.predict.foreground=True`` (LSA's foreground re-estimation of the photo under the
    predicted alpha, ``foreground.multilevel``), saved with ``multilevel.to_uint8``'s rule.

    Args:
      predict_fn: ``fn(variables, batch) -> outputs`` (an ``apply_lib.InferenceFn``).
      variables: the run's variables.
      config: the run config; reads ``config.predict`` and ``config.eval.quantize``.
      out_dir: output folder, created only after every input passed its check.
      keys: the batch keys the procedure reads ("trimap", "mask" select side inputs).
      needs_known: refuse trimaps without a known pixel (the model's ``needs_known_pixels``).
      io_threads: reader and writer threads each; 0 reads and writes in the calling thread.

    Returns:
      The alpha files written in this call (confirmed writes only).
    """
    pcfg = config.predict
    want_fg = bool(pcfg.get("foreground", False))
    overwrite, skip_bad = bool(pcfg.get("overwrite", False)), bool(pcfg.get("skip_bad", False))
    batch_size = int(pcfg.get("batch_size", 1))
    if batch_size < 1:
        raise ValueError(f"config.predict.batch_size={batch_size}: must be at least 1")
    pairs, bad = pair_inputs(pcfg, keys)
    atomic.check_folder(out_dir)  # a file in the way is named now, not after the predictions
    _refuse_input_folder(out_dir, pcfg, keys)
    pending = [
        (stem, entry)
        for stem, entry in pairs
        if overwrite or not all(p.is_file() for p in outputs_of(out_dir, stem, want_fg))
    ]
    total = len(pairs) + len(bad)
    checked = check_inputs(pending, bool(pcfg.get("snap_trimap", False)), needs_known, io_threads)
    for w in checked.warnings:
        print(f"warning: {w}", file=sys.stderr, flush=True)
    bad += checked.bad
    if bad and not skip_bad:
        raise refusal(bad, total)
    # User files hold no ground truth: the final encoding ops of every recipe, unless the config
    # names its own (``data.pp_predict``): ``pp_eval`` may need alpha (SGM soft segmentation).
    spec = (config.data.get("pp_predict", "") if "data" in config else "") or (
        apply_lib.DEFAULT_PP_EVAL
    )
    index = {stem: i for i, (stem, _) in enumerate(pairs)}  # the seed of each example
    items = [(index[stem], stem, entry) for stem, entry in checked.good]
    batches = batches_by_size(items, checked.sizes, batch_size)
    done_before = len(pairs) - len(pending)
    print(
        f"predict: {len(items)} image(s) in {len(batches)} batch(es) of up to {batch_size} "
        f"-> {out_dir}" + (f" ({done_before} done before, kept)" if done_before else ""),
        flush=True,
    )
    if items:
        out_dir.mkdir(parents=True, exist_ok=True)

    def read_batch(batch):
        snap = bool(pcfg.get("snap_trimap", False))
        exs = [checked.cache.pop(stem, None) or read_inputs(e, snap) for _, stem, e in batch]
        enc = [
            apply_lib.encode_example(ex, spec, seed=config.get("seed", 0), index=i)
            for ex, (i, _, _) in zip(exs, batch)
        ]
        enc += [enc[-1]] * (batch_size - len(enc))  # full batches: one compiled shape per size
        images = None  # the photos, for the foreground re-estimation only
        if want_fg:
            images = np.stack([ex["image"] for ex in exs + [exs[-1]] * (batch_size - len(exs))])
        return {k: np.concatenate([e[k] for e in enc]) for k in enc[0]}, images

    def write_batch(batch, outputs, fg):
        paths = []
        for j, (_, stem, entry) in enumerate(batch):
            paths.append(_write_one(out_dir, stem, entry, outputs, fg, j, config))
        return paths

    fg_fn = jax.jit(multilevel.estimate_foreground)  # LSA Alg. 2 on the photo and predicted alpha
    pool = (lambda: futures.ThreadPoolExecutor(io_threads)) if io_threads else _Inline
    written: list[pathlib.Path] = []
    start = time.perf_counter()
    with pool() as readers, pool() as writers:
        reads = collections.deque(readers.submit(read_batch, b) for b in batches[:PREFETCH_BATCHES])
        writes: collections.deque = collections.deque()
        try:
            for k, batch in enumerate(batches):
                inputs, images = reads.popleft().result()
                if k + PREFETCH_BATCHES < len(batches):
                    reads.append(readers.submit(read_batch, batches[k + PREFETCH_BATCHES]))
                outputs = predict_fn(variables, inputs)  # dispatched; the writer waits for it
                fg = outputs.get("foreground")
                if fg is None and want_fg and "alpha" in outputs:
                    fg = fg_fn(images.astype(np.float32) / cv.UINT8_MAX, outputs["alpha"])
                writes.append(writers.submit(write_batch, batch, outputs, fg))
                while writes and (writes[0].done() or len(writes) > PREFETCH_BATCHES):
                    _report(writes.popleft().result(), written, len(items), start)
            while writes:
                _report(writes.popleft().result(), written, len(items), start)
        except BaseException:
            for f in list(reads) + list(writes):
                f.cancel()
            raise
    _summary(written, out_dir, start, bad)
    return written


def _write_one(out_dir, stem, entry, outputs, fg, j, config) -> pathlib.Path:
    """Writes example ``j`` of a batch's outputs; the alpha file goes last (it marks done)."""
    if "alpha" in outputs:
        alpha = np.asarray(outputs["alpha"])[j, ..., 0]
        if not np.all(np.isfinite(alpha)):
            raise FloatingPointError(f"{entry['image']}: the prediction is not finite")
        png = evaluator.quantize(alpha, config.eval.quantize)
    else:  # a trimap model: the predicted trimap as 0 / 128 / 255 codes
        classes = np.argmax(np.asarray(outputs["trimap_logits"])[j], axis=-1)
        png = np.asarray(cv.TRIMAP_CODES, np.uint8)[classes]
    if fg is not None:
        images_out.write_png(out_dir / f"{stem}_fg.png", multilevel.to_uint8(np.asarray(fg)[j]))
    return images_out.write_png(out_dir / f"{stem}.png", png)


def _report(paths, written: list, total: int, start: float) -> None:
    """One progress line per confirmed write: count, images/s, ETA."""
    for path in paths:
        written.append(path)
        rate = len(written) / max(time.perf_counter() - start, 1e-9)
        eta = _eta((total - len(written)) / rate)
        print(f"[{len(written)}/{total}] {path}  {rate:.2f} img/s  ETA {eta}", flush=True)


def _summary(written, out_dir, start, bad) -> None:
    secs = time.perf_counter() - start
    rate = len(written) / secs if written and secs > 0 else 0.0
    print(f"predict: wrote {len(written)} file(s) to {out_dir} in {secs:.1f} s ({rate:.2f} img/s)")
    if bad:
        print(
            f"warning: skipped {len(bad)} bad input(s) (config.predict.skip_bad): "
            + "; ".join(bad),
            file=sys.stderr,
            flush=True,
        )


def _refuse_input_folder(out_dir: pathlib.Path, pcfg: ConfigDict, keys) -> None:
    """Outputs are ``<stem>.png``: writing them into an input folder would replace inputs."""
    for key in ("image",) + tuple(k for k in SIDE_INPUTS if k in keys):
        src = pathlib.Path(pcfg.get(key, ""))
        folder = src if src.is_dir() else src.parent
        if out_dir.resolve() == folder.resolve():
            raise ValueError(
                f"config.predict.out_dir={str(out_dir)!r} is the {key} folder: outputs would "
                "replace inputs; choose another folder"
            )


def run(config: ConfigDict, workdir: str) -> list[pathlib.Path]:
    """Restores the run's weights (none for parameter-free models) and predicts."""
    from jaxmatte import weights

    models, variables, _ = weights.load_runs(config, workdir)
    predict_fn = apply_lib.make_inference_fn(config, models)
    needs_known = bool(getattr(models[weights.MAIN], "needs_known_pixels", False))
    out = pathlib.Path(config.predict.get("out_dir", "") or pathlib.Path(workdir) / "predict")
    return predict_files(predict_fn, variables, config, out, predict_fn.inputs, needs_known)

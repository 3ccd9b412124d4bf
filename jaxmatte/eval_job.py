"""Evaluation of a model on an eval split: 8-bit prediction PNGs, per-image CSV, summary JSON.

Inputs are encoded by ``config.data.pp_eval`` (the ops that end the training recipe) and run
through the config's inference procedure. ``config.eval.kind`` picks the scores: "alpha" (the
matting metrics of ``config.eval.metrics``, with a constant-0.5 and a trimap baseline beside
them) or "trimap" (pixel accuracy and mean IoU over bg / unknown / fg).
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import shutil
from typing import Any, Callable

import numpy as np
from ml_collections import ConfigDict

from jaxmatte import atomic, images_out
from jaxmatte import conventions as cv
from jaxmatte.data import pipeline
from jaxmatte.inference import apply as apply_lib
from jaxmatte.metrics import evaluator
from jaxmatte.metrics import trimap as trimap_metrics

BASELINES_FILE = "baselines.json"


def pp_eval(config: ConfigDict) -> str:
    return config.data.get("pp_eval", "") or apply_lib.DEFAULT_PP_EVAL


def _trimap_baseline(trimap: np.ndarray, rule: str) -> np.ndarray:
    """The trimap as a prediction: 0 / 1 in the known regions, 0.5 in the unknown, quantised."""
    labels = np.asarray((cv.LABEL_BG, cv.LABEL_UNKNOWN, cv.LABEL_FG), np.float32)
    return evaluator.quantize(labels[trimap_metrics.classes_from_codes(trimap)], rule)


def baselines(config: ConfigDict, alphas, trimaps, names) -> dict[str, dict[str, float]]:
    """Scores of a constant 0.5 and (with trimaps) of the trimap with 0.5 in its unknown region."""
    rule, metrics = config.eval.quantize, config.eval.metrics
    half = [
        evaluator.quantize(np.full(a.shape, cv.LABEL_UNKNOWN, np.float32), rule) for a in alphas
    ]
    tri = [_trimap_baseline(t, rule) for t in trimaps]
    return {
        "constant_0.5": evaluator.evaluate_arrays(half, alphas, trimaps, names, metrics)[1],
        "trimap": evaluator.evaluate_arrays(tri, alphas, trimaps, names, metrics)[1],
    }


def evaluate(
    predict_fn: Callable,
    variables: Any,
    config: ConfigDict,
    data_dir: str,
    out_dir: str | os.PathLike,
) -> dict[str, Any]:
    """Predicts every example of ``config.data.eval_split`` and scores it.

    Alpha predictions are quantised as the reference pipelines save them
    (``config.eval.quantize``) and scored from those 8-bit values. A prediction with a
    non-finite value is never quantised to 0 and scored: its row holds NaN and the summary
    counts it in ``nonfinite_images`` (so the means are NaN too).

    Returns:
      the summary (means over images, ``num_images``, the quantisation rule and, for alpha
      models, ``baselines``).
    """
    out = pathlib.Path(out_dir)
    (out / "preds").mkdir(parents=True, exist_ok=True)
    kind = config.eval.get("kind", "alpha")
    spec = pp_eval(config)
    preds, targets, trimaps, names, bad = [], [], [], [], []
    for i, ex in enumerate(pipeline.eval_examples(data_dir, config.data.eval_split)):
        batch = apply_lib.encode_example(ex, spec, seed=config.get("seed", 0), index=i)
        outputs = predict_fn(variables, batch)
        name = ex["name"]
        if kind == "trimap":
            pred = np.argmax(np.asarray(outputs["trimap_logits"])[0], axis=-1)
            images_out.write_png(
                out / "preds" / f"{name}.png",
                np.asarray(cv.TRIMAP_CODES, np.uint8)[pred],
            )
            # The target is the trimap the eval ops made (e.g. SGM's 15-px erosion target).
            labels = np.asarray(batch["trimap"])[0, ..., 0]
            classes = np.round(labels * 2).astype(np.int64)  # labels {0, 0.5, 1} -> 0, 1, 2
            targets.append(np.asarray(cv.TRIMAP_CODES, np.uint8)[classes])
        else:
            alpha = np.asarray(outputs["alpha"])[0, ..., 0]
            if not np.all(np.isfinite(alpha)):
                bad.append(name)
            pred = evaluator.quantize(np.nan_to_num(alpha), config.eval.quantize)
            images_out.write_png(out / "preds" / f"{name}.png", pred)
            targets.append(ex["alpha"])
            trimaps.append(ex["trimap"])
        preds.append(pred)
        names.append(name)
    if kind == "trimap":
        rows, summary = trimap_metrics.evaluate(preds, targets, names)
    else:
        rows, summary = evaluator.evaluate_arrays(
            preds, targets, trimaps, names, config.eval.metrics
        )
        for row in rows:
            if row["image"] in bad:
                row.update({k: math.nan for k in row if k != "image"})
        if bad:
            summary = {k: math.nan for k in summary}
        cache = out.parent / BASELINES_FILE
        if cache.is_file():
            base = json.loads(cache.read_text())
        else:
            base = baselines(config, targets, trimaps, names)
            atomic.write_text(cache, json.dumps(base, indent=2))
        summary = dict(summary, baselines=base, nonfinite_images=len(bad))
    summary = dict(summary, num_images=len(names), quantize=config.eval.quantize, kind=kind)
    evaluator.write_results(rows, summary, str(out))
    return summary


def summary_line(summary: dict[str, Any]) -> str:
    """``k=v`` for every float of the summary."""
    return ", ".join(f"{k}={v:.5g}" for k, v in summary.items() if isinstance(v, float))


def publish(step_dir: str | os.PathLike, eval_dir: str | os.PathLike) -> dict[str, Any]:
    """Copies an evaluation to ``eval_dir`` and records the untrained (step 0) baseline in it.

    Returns:
      the published summary (with ``untrained`` when a step-0 evaluation exists).
    """
    src, dst = pathlib.Path(step_dir), pathlib.Path(eval_dir)
    summary = json.loads((src / "metrics.json").read_text())
    baseline = dst / "step_0" / "metrics.json"
    if baseline.exists() and src.name != "step_0":
        summary["untrained"] = json.loads(baseline.read_text())
    atomic.write_text(dst / "metrics.json", json.dumps(summary, indent=2))
    shutil.copyfile(src / "per_image.csv", dst / "per_image.csv")
    shutil.rmtree(dst / "preds", ignore_errors=True)
    shutil.copytree(src / "preds", dst / "preds")
    return summary


def compare_to_untrained(summary: dict[str, Any], names: tuple[str, ...]) -> str:
    """``untrained -> trained`` for each of ``names``, then the baselines' values of them."""
    base = summary.get("untrained", {})
    parts = [f"{n} {base[n]:.4g} -> {summary[n]:.4g}" for n in names if n in base and n in summary]
    if not parts:
        return ""
    line = "untrained -> trained: " + ", ".join(parts)
    for label, scores in summary.get("baselines", {}).items():
        vals = [f"{n} {scores[n]:.4g}" for n in names if n in scores]
        if vals:
            line += f" | baseline {label}: " + ", ".join(vals)
    return line


def run(config: ConfigDict, workdir: str) -> dict[str, Any]:
    """``--mode eval``: restores the newest (or ``config.eval.step``) checkpoint and evaluates it.

    Weights come from the checkpoint, or from ``config.init.weights`` when the workdir has none.
    Writes ``workdir/eval/step_N/`` and copies it to ``workdir/eval/`` (metrics.json,
    per_image.csv, preds/).
    """
    from jaxmatte import weights
    from jaxmatte.registry import DATASETS

    step = config.eval.get("step", -1)
    models, variables, step = weights.load_runs(config, workdir, None if step < 0 else step)
    data_dir = DATASETS.get(config.data.name)(config.data)
    predict_fn = apply_lib.make_inference_fn(config, models)
    eval_dir = pathlib.Path(workdir) / "eval"
    summary = evaluate(predict_fn, variables, config, data_dir, eval_dir / f"step_{step}")
    publish(eval_dir / f"step_{step}", eval_dir)
    print(f"eval of step {step}: {summary_line(summary)}", flush=True)
    return summary

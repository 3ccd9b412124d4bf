"""Evaluation of a model on an eval split: 8-bit prediction PNGs, per-image CSV, summary JSON."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
from typing import Any, Callable

import cv2
import numpy as np
from ml_collections import ConfigDict

from jaxmatte.data import pipeline
from jaxmatte.inference import apply as apply_lib
from jaxmatte.metrics import evaluator


def evaluate(
    predict_fn: Callable,
    variables: Any,
    config: ConfigDict,
    data_dir: str,
    out_dir: str | os.PathLike,
) -> dict[str, Any]:
    """Predicts every example of ``config.data.eval_split`` and scores it.

    The prediction is quantised as the reference pipelines save it (``config.eval.quantize``)
    and scored from those 8-bit values with ``config.eval.metrics``.

    Returns:
      the summary (means over images, plus ``num_images`` and the quantisation rule).
    """
    out = pathlib.Path(out_dir)
    (out / "preds").mkdir(parents=True, exist_ok=True)
    needs_trimap = config.model.get("needs_trimap", True)
    preds, alphas, trimaps, names = [], [], [], []
    for ex in pipeline.eval_examples(data_dir, config.data.eval_split):
        image = apply_lib.encode_image(ex["image"])[None]
        trimap = apply_lib.encode_trimap(ex["trimap"])[None] if needs_trimap else None
        alpha, _ = predict_fn(variables, image, trimap)
        pred = evaluator.quantize(np.asarray(alpha)[0, ..., 0], config.eval.quantize)
        cv2.imwrite(str(out / "preds" / f"{ex['name']}.png"), pred)
        preds.append(pred)
        alphas.append(ex["alpha"])
        trimaps.append(ex["trimap"])
        names.append(ex["name"])
    rows, summary = evaluator.evaluate_arrays(preds, alphas, trimaps, names, config.eval.metrics)
    summary = dict(summary, num_images=len(names), quantize=config.eval.quantize)
    evaluator.write_results(rows, summary, str(out))
    return summary


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
    tmp = dst / "metrics.json.tmp"
    tmp.write_text(json.dumps(summary, indent=2))
    os.replace(tmp, dst / "metrics.json")
    shutil.copyfile(src / "per_image.csv", dst / "per_image.csv")
    shutil.rmtree(dst / "preds", ignore_errors=True)
    shutil.copytree(src / "preds", dst / "preds")
    return summary


def compare_to_untrained(summary: dict[str, Any], names: tuple[str, ...]) -> str:
    """One line ``name: untrained -> trained`` for each of ``names`` present in both."""
    base = summary.get("untrained", {})
    parts = [f"{n} {base[n]:.4g} -> {summary[n]:.4g}" for n in names if n in base and n in summary]
    return "untrained -> trained: " + ", ".join(parts) if parts else ""


def run(config: ConfigDict, workdir: str) -> dict[str, Any]:
    """``--mode eval``: restores the newest (or ``config.eval.step``) checkpoint and evaluates it.

    Writes ``workdir/eval/step_N/`` and copies it to ``workdir/eval/`` (metrics.json,
    per_image.csv, preds/).
    """
    from jaxmatte import train  # train imports this module

    step = config.eval.get("step", -1)
    model, variables, step = train.restore_variables(config, workdir, None if step < 0 else step)
    data_dir = train.DATASETS.get(config.data.name)(config.data)
    predict_fn = apply_lib.make_predict_fn(model, config.model)
    eval_dir = pathlib.Path(workdir) / "eval"
    summary = evaluate(predict_fn, variables, config, data_dir, eval_dir / f"step_{step}")
    publish(eval_dir / f"step_{step}", eval_dir)
    print(
        f"eval of step {step}: "
        + ", ".join(f"{k}={v:.5g}" for k, v in summary.items() if isinstance(v, float)),
        flush=True,
    )
    return summary

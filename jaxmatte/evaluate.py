"""Scores folders of predicted alpha mattes like the DIM `evaluate.m` (files matched by stem).

Usage:
  python -m jaxmatte.evaluate --pred DIR --alpha DIR --trimap DIR \
      [--metrics sad,mse,grad,conn] [--out results.csv] [--snap-trimap]
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time
from typing import Iterator, Sequence

from jaxmatte import cli
from jaxmatte.metrics import catalog, evaluator, reading
from jaxmatte.metrics.reading import EvaluationInputError

_MAX_LISTED = 10


def _listing(stems: Sequence[str]) -> str:
    more = f" and {len(stems) - _MAX_LISTED} more" if len(stems) > _MAX_LISTED else ""
    return ", ".join(stems[:_MAX_LISTED]) + more


def pair_files(
    pred_dir: str, alpha_dir: str, trimap_dir: str
) -> list[tuple[str, pathlib.Path, pathlib.Path, pathlib.Path]]:
    """(stem, pred, alpha, trimap) for every ground-truth alpha, in stem order.

    Raises:
      EvaluationInputError: an alpha without prediction or trimap, or a prediction without alpha.
    """
    preds, alphas, trimaps = (reading.list_by_stem(d) for d in (pred_dir, alpha_dir, trimap_dir))
    if not alphas:
        raise EvaluationInputError(f"{alpha_dir}: no image files")
    for what, folder, found in (("prediction", pred_dir, preds), ("trimap", trimap_dir, trimaps)):
        missing = sorted(set(alphas) - set(found))
        if missing:
            raise EvaluationInputError(
                f"{folder}: no {what} for {len(missing)} ground truth(s) in {alpha_dir}: "
                f"{_listing([str(alphas[s]) for s in missing])}"
            )
    extra = sorted(set(preds) - set(alphas))
    if extra:
        raise EvaluationInputError(
            f"{alpha_dir}: no ground truth for {len(extra)} prediction(s): "
            f"{_listing([str(preds[s]) for s in extra])}"
        )
    return [(s, preds[s], alphas[s], trimaps[s]) for s in sorted(alphas)]


def load_samples(
    pairs: Sequence[tuple[str, pathlib.Path, pathlib.Path, pathlib.Path]], snap_trimap: bool
) -> Iterator[evaluator.Sample]:
    """Reads each (pred, alpha, trimap) triple and checks that the sizes agree."""
    for stem, p_path, a_path, t_path in pairs:
        pred, alpha = reading.read_matte(p_path), reading.read_matte(a_path)
        trimap = reading.read_trimap(t_path, snap=snap_trimap)
        sizes = {p_path: pred.shape, a_path: alpha.shape, t_path: trimap.shape}
        if len(set(sizes.values())) > 1:
            detail = ", ".join(f"{p} is {s[1]}x{s[0]}" for p, s in sizes.items())
            raise EvaluationInputError(f"size mismatch for {stem!r}: {detail}")
        yield stem, pred, alpha, trimap


def run(
    pred_dir: str,
    alpha_dir: str,
    trimap_dir: str,
    metrics: str | Sequence[str] = catalog.OFFICIAL,
    out: str | None = None,
    snap_trimap: bool = False,
    progress: bool = True,
) -> dict:
    """Evaluates a folder of predictions; writes `out` (CSV) and `out` with .json only on success.

    Returns:
      The summary dictionary (means over images, count, metric names, conventions).
    """
    names = catalog.parse_names(metrics)
    pairs = pair_files(pred_dir, alpha_dir, trimap_dir)
    wrap = None
    if progress:
        from tqdm import tqdm

        wrap = lambda it: tqdm(it, total=len(pairs), desc="evaluating", unit="img", file=sys.stderr)
    start = time.perf_counter()
    rows = evaluator.evaluate(load_samples(pairs, snap_trimap), names, progress=wrap)
    meta = {
        "pred": str(pred_dir),
        "alpha": str(alpha_dir),
        "trimap": str(trimap_dir),
        "quantisation": "as stored (8-bit files as is, 16-bit files / 257)",
        "forcing": "none (predictions are scored as given)",
        "trimap_snapped": snap_trimap,
        "seconds_per_image": (time.perf_counter() - start) / len(pairs),
    }
    json_path = None if out is None else pathlib.Path(out).with_suffix(".json")
    summary = evaluator.write_files(rows, names, out, json_path, meta)
    print(evaluator.format_table(rows, names, summary["mean"]))
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jaxmatte.evaluate", description=__doc__)
    parser.add_argument("--pred", required=True, help="folder of predicted alpha mattes")
    parser.add_argument("--alpha", required=True, help="folder of ground-truth alpha mattes")
    parser.add_argument("--trimap", required=True, help="folder of trimaps (0 / 128 / 255)")
    parser.add_argument(
        "--metrics",
        default=",".join(catalog.OFFICIAL),
        help=f"comma-separated metric names; known: {', '.join(catalog.METRICS.names())}",
    )
    parser.add_argument("--out", help="per-image CSV to write (a summary .json goes next to it)")
    parser.add_argument(
        "--snap-trimap",
        action="store_true",
        help="move trimap values other than 0/128/255 to the nearest code instead of failing",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    cli.add_verbosity(parser)
    args = parser.parse_args(argv)
    try:
        catalog.parse_names(args.metrics)
    except ValueError as e:
        parser.error(str(e))
    try:
        run(
            args.pred,
            args.alpha,
            args.trimap,
            args.metrics,
            args.out,
            args.snap_trimap,
            progress=not args.no_progress,
        )
    except EvaluationInputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    cli.run(main)

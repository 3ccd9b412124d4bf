"""Entry point: python -m jaxmatte.main --config configs/ddc.py[:quick] --workdir DIR [--mode]."""

from __future__ import annotations

import contextlib
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Config file, e.g. configs/ddc.py:quick", lock_config=True
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run folder: checkpoints, events, eval, predict.")
_MODE = flags.DEFINE_enum("mode", "train", ["train", "eval", "predict"], "Job to run.")
_COORD = flags.DEFINE_string("coordinator_address", "", "host:port of process 0 (multi-host).")
_NPROC = flags.DEFINE_integer("num_processes", 0, "Number of processes (multi-host).")
_PID = flags.DEFINE_integer("process_id", -1, "This process's index (multi-host).")
flags.mark_flags_as_required(["config", "workdir"])

_parsed = False


def main(argv: list[str]) -> None:
    global _parsed
    _parsed = True
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # library INFO chatter off; progress is printed
    import jax

    from jaxmatte import sharding
    from jaxmatte.data import pipeline

    pipeline.hide_gpus_from_tf()
    sharding.maybe_initialize_distributed(_COORD.value, _NPROC.value, _PID.value)
    from jaxmatte import config_lib

    config = _CONFIG.value
    # Solvers configured for float64 (closed-form matting) need x64 while they are traced and run.
    x64 = jax.enable_x64(True) if config.get("x64", False) else contextlib.nullcontext()
    try:
        with x64:
            _run_mode(config)
    except (config_lib.ConfigError, FileNotFoundError) as e:
        sys.exit(f"error: {e}")


def _run_mode(config) -> None:
    from jaxmatte import eval_job, predict, train

    if _MODE.value == "train":
        train.train_and_evaluate(config, _WORKDIR.value)
    elif _MODE.value == "eval":
        eval_job.run(config, _WORKDIR.value)
    else:
        predict.run(config, _WORKDIR.value)


def run() -> None:
    try:
        app.run(main)
    except AttributeError as e:
        if _parsed:
            raise
        # ml_collections reports an unknown override key as an AttributeError while parsing.
        keys = [a.split("=")[0] for a in sys.argv[1:] if a.startswith("--config.")]
        sys.exit(f"error: bad config override among {', '.join(keys)}: {e}")


if __name__ == "__main__":
    run()

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

    config = _CONFIG.value
    # Solvers configured for float64 (closed-form matting) need x64 while they are traced and run.
    x64 = jax.enable_x64(True) if config.get("x64", False) else contextlib.nullcontext()
    with x64:
        _run_mode(config)


def _run_mode(config) -> None:
    from jaxmatte import config_lib, eval_job, predict, train

    config_lib.validate_model(config)
    if _MODE.value == "train":
        train.train_and_evaluate(config, _WORKDIR.value)
    elif _MODE.value == "eval":
        eval_job.run(config, _WORKDIR.value)
    else:
        predict.run(config, _WORKDIR.value)


def _show_traceback() -> bool:
    """``--verbosity=1`` (or more) or ``JAXMATTE_TRACEBACK=1`` shows tracebacks for debugging."""
    if os.environ.get("JAXMATTE_TRACEBACK", "") not in ("", "0"):
        return True
    for a in sys.argv[1:]:
        if a.startswith(("--verbosity=", "-v=")):
            try:
                return int(a.split("=", 1)[1]) >= 1
            except ValueError:
                return False
    return False


def run() -> None:
    """``main`` under absl; any failure ends as one ``error: ...`` line and a non-zero status."""
    for i, a in enumerate(sys.argv[1:], 1):
        spec = a.split("=", 1)[1] if a.startswith("--config=") else None
        if a == "--config" and i + 1 < len(sys.argv):
            spec = sys.argv[i + 1]
        if spec is not None and not os.path.isfile(spec.partition(":")[0]):
            sys.exit(f"error: --config {spec}: no such config file")
    try:
        app.run(main)
    except SystemExit:
        raise
    except KeyboardInterrupt:
        sys.exit("error: interrupted; training resumes from its last checkpoint when run again")
    except Exception as e:  # noqa: BLE001 - the user sees one line; --verbosity=1 shows it all
        if _show_traceback():
            raise
        if isinstance(e, AttributeError) and not _parsed:
            # ml_collections reports an unknown override key as an AttributeError while parsing.
            keys = [a.split("=")[0] for a in sys.argv[1:] if a.startswith("--config.")]
            sys.exit(f"error: bad config override among {', '.join(keys)}: {e}")
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        kind = "" if isinstance(e, (ValueError, OSError, RuntimeError)) else f"{type(e).__name__}: "
        sys.exit(f"error: {kind}{msg} (--verbosity=1 shows the traceback)")


if __name__ == "__main__":
    run()

"""Entry point: python -m jaxmatte.main --config configs/ddc.py[:quick] --workdir DIR [--mode]."""

from __future__ import annotations

import contextlib
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from jaxmatte import cli  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Config file, e.g. configs/ddc.py:quick", lock_config=True
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run folder: checkpoints, events, eval, predict.")
_MODE = flags.DEFINE_enum("mode", "train", ["train", "eval", "predict", "export"], "Job to run.")
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

    from jaxmatte import runtime, sharding

    runtime.setup(_CONFIG.value)  # persistent compilation cache; TF kept off GPUs if it loads
    sharding.maybe_initialize_distributed(_COORD.value, _NPROC.value, _PID.value)

    config = _CONFIG.value
    # Solvers configured for float64 (closed-form matting) need x64 while they are traced and run.
    x64 = jax.enable_x64(True) if config.get("x64", False) else contextlib.nullcontext()
    with x64:
        _run_mode(config)


def _run_mode(config) -> None:
    from jaxmatte import config_lib

    config_lib.validate_model(config)
    # Each mode imports only its own job: predict and export need no tf.data pipeline.
    if _MODE.value == "train":
        from jaxmatte import train

        train.train_and_evaluate(config, _WORKDIR.value)
    elif _MODE.value == "eval":
        from jaxmatte import eval_job

        eval_job.run(config, _WORKDIR.value)
    elif _MODE.value == "export":
        from jaxmatte import export_job

        export_job.run(config, _WORKDIR.value)
    else:
        from jaxmatte import predict

        predict.run(config, _WORKDIR.value)


def _parse_flags(argv: list[str]) -> list[str]:
    """absl flag parsing with a failure as one line (ml_collections embeds the config's traceback).

    Raises:
      ValueError: the last line of the failure (``configs/x.py: unknown variant 'y'; known: ...``).
    """
    try:
        return flags.FLAGS(argv)
    except flags.Error as e:
        if cli.show_traceback():
            raise
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        last = lines[-1] if lines else type(e).__name__
        # "ValueError: configs/dmp.py: unknown variant ..." -> the message after the type.
        head, sep, rest = last.partition(": ")
        is_type = sep and head.isidentifier() and head.endswith(("Error", "Exception"))
        msg = rest if is_type else last
        raise ValueError(msg) from None


def run() -> None:
    """``main`` under absl; any failure ends as one ``error: ...`` line and a non-zero status."""
    for i, a in enumerate(sys.argv[1:], 1):
        spec = a.split("=", 1)[1] if a.startswith("--config=") else None
        if a == "--config" and i + 1 < len(sys.argv):
            spec = sys.argv[i + 1]
        if spec is not None and not os.path.isfile(spec.partition(":")[0]):
            sys.exit(f"error: --config {spec}: no such config file")
    try:
        app.run(main, flags_parser=_parse_flags)
    except SystemExit:
        raise
    except KeyboardInterrupt:
        sys.exit("error: interrupted; training resumes from its last checkpoint when run again")
    except Exception as e:  # noqa: BLE001 - the user sees one line; --verbosity=1 shows it all
        if cli.show_traceback():
            raise
        if isinstance(e, AttributeError) and not _parsed:
            # ml_collections reports an unknown override key as an AttributeError while parsing.
            keys = [a.split("=")[0] for a in sys.argv[1:] if a.startswith("--config.")]
            sys.exit(f"error: {', '.join(keys)}: no such config key among these ({e})")
        sys.exit(f"{cli.error_line(e)} (--verbosity=1 shows the traceback)")


if __name__ == "__main__":
    run()

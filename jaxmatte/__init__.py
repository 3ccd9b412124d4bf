"""jaxmatte: deep image matting in JAX/Flax."""

import os as _os

__version__ = "0.1.0"

# XLA:CPU's concurrency-optimised scheduler deadlocks two of our programs: with several fake CPU
# devices (--xla_force_host_platform_device_count) it ran one program's collectives in different
# orders on different devices (the ViTMatte train step), and on one device the multigrid V-cycle
# inside PCG's while loop hung with every worker idle (seen on realmatte GT02, intermittently).
# The flag only concerns the CPU backend and must be set before JAX starts it, so it is set on
# import unless the user chose a value.
_flags = _os.environ.get("XLA_FLAGS", "")
if "concurrency_optimized" not in _flags:
    _os.environ["XLA_FLAGS"] = (
        _flags + " --xla_cpu_enable_concurrency_optimized_scheduler=false"
    ).strip()

# TensorFlow (tf.data only) stays quiet unless asked, and without oneDNN's reordered float ops, so
# every command (training, data_prep) runs the same preprocessing numerics.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
_os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

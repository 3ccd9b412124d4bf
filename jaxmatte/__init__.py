"""jaxmatte: deep image matting in JAX/Flax."""

import os as _os

__version__ = "0.1.0"

# With several fake CPU devices (--xla_force_host_platform_device_count), XLA:CPU's
# concurrency-optimised scheduler can run one program's collectives in a different order on
# different devices, and the rendezvous then deadlocks (seen with the ViTMatte train step).
# The flag must be set before JAX starts its backend, so it is set on import.
_flags = _os.environ.get("XLA_FLAGS", "")
if "xla_force_host_platform_device_count" in _flags and "concurrency_optimized" not in _flags:
    _os.environ["XLA_FLAGS"] = _flags + " --xla_cpu_enable_concurrency_optimized_scheduler=false"

"""Test set-up: 8 fake CPU devices and a quiet TensorFlow, set before JAX is imported."""

import os
import pathlib
import tempfile

# XLA:CPU spends most of a test's time compiling small programs, and most of that in LLVM's
# optimisation passes; tests (this process and every JAX process they start) compile without
# them. The HLO passes still run, so results agree with optimised builds to the last bits of
# reductions; speed is measured by bench/, never by tests. Override with
# JAXMATTE_TEST_XLA_FLAGS (empty = XLA's defaults).
TEST_XLA_FLAGS = os.environ.get(
    "JAXMATTE_TEST_XLA_FLAGS",
    "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true",
)

# XLA's own defaults for the two options above, for a test that must compile as users do.
XLA_DEFAULT_COMPILER_OPTIONS = {
    "xla_backend_optimization_level": 3,
    "xla_llvm_disable_expensive_passes": False,
}


def xla_flags(devices: int = 8) -> str:
    """XLA_FLAGS of a test's JAX process: `devices` fake CPU devices and `TEST_XLA_FLAGS`."""
    return f"--xla_force_host_platform_device_count={devices} {TEST_XLA_FLAGS}".strip()


os.environ.setdefault("XLA_FLAGS", xla_flags(8))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Tests never write the user's compilation cache (~/.cache/jaxmatte/jax, jaxmatte/runtime.py):
# one folder per test session, inherited by the commands tests spawn unless a test names its own.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", tempfile.mkdtemp(prefix="jaxmatte-test-jax-"))

import pytest  # noqa: E402

import jaxmatte  # noqa: E402,F401  (adds the XLA:CPU flag that fake multi-device runs need)

REPO = pathlib.Path(__file__).resolve().parents[1]
REALMATTE = REPO.parent / "shared" / "data" / "realmatte"


@pytest.fixture(scope="session")
def realmatte_dir() -> pathlib.Path:
    """The shared alphamatting.com training set; skips the test when it is absent."""
    if not (REALMATTE / "image").is_dir():
        pytest.skip(f"shared data not found at {REALMATTE}")
    return REALMATTE


def torch_or_skip():
    """Imports torch for parity tests, or skips them when it is not installed."""
    return pytest.importorskip("torch")

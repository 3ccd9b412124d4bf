"""Test set-up: 8 fake CPU devices and a quiet TensorFlow, set before JAX is imported."""

import os
import pathlib
import tempfile

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
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

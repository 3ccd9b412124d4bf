"""Process-wide settings the entry point applies: persistent compilation cache, TF off GPUs."""

from __future__ import annotations

import importlib.abc
import importlib.util
import os
import pathlib
import sys

from ml_collections import ConfigDict

# Set to 0 (or false / no / off) to turn the persistent compilation cache off.
ENV_CACHE = "JAXMATTE_COMPILATION_CACHE"
# Compilations faster than this are not written to the cache (JAX's default is 1 s, which skips
# the sub-second programs of `propagation/buckets.py`).
MIN_CACHED_COMPILE_S = 0.1
_OFF = ("0", "false", "no", "off")


def cache_dir(config: ConfigDict | None = None, environ=os.environ) -> pathlib.Path | None:
    """Where compiled programs persist across runs, or None when the cache is off.

    Off with ``config.compilation_cache = False`` or ``JAXMATTE_COMPILATION_CACHE=0``. Else an
    existing ``JAX_COMPILATION_CACHE_DIR``, else ``$XDG_CACHE_HOME/jaxmatte/jax`` (default
    ``~/.cache/jaxmatte/jax``).
    """
    if config is not None and not config.get("compilation_cache", True):
        return None
    if environ.get(ENV_CACHE, "").strip().lower() in _OFF:
        return None
    if environ.get("JAX_COMPILATION_CACHE_DIR"):
        return pathlib.Path(environ["JAX_COMPILATION_CACHE_DIR"])
    base = environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache"
    return pathlib.Path(base) / "jaxmatte" / "jax"


def setup_compilation_cache(config: ConfigDict | None = None) -> pathlib.Path | None:
    """Points JAX's persistent compilation cache at `cache_dir` (or turns it off)."""
    import jax

    path = cache_dir(config)
    if path is None:
        jax.config.update("jax_enable_compilation_cache", False)
        return None
    jax.config.update("jax_enable_compilation_cache", True)
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_CACHED_COMPILE_S)
    return path


def _hide(tf) -> None:
    try:
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError:  # already initialised; it saw no GPU we could hide any more
        pass


class _HideOnImport(importlib.abc.MetaPathFinder):
    """Finds nothing itself: wraps TensorFlow's loader so that its import ends in `_hide`."""

    def find_spec(self, name, path, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)  # one shot; the real finders resolve the spec
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            exec_module = spec.loader.exec_module

            def exec_and_hide(module) -> None:
                exec_module(module)
                _hide(module)

            spec.loader.exec_module = exec_and_hide
        return spec


def hide_gpus_from_tf() -> None:
    """Keeps TensorFlow (a data library here) off accelerators, without importing it.

    Loaded already: hidden now. Else hidden right after whatever imports it first, so jobs that
    never use TF (closed-form predict) do not pay its ~3 s import.
    """
    if "tensorflow" in sys.modules:
        _hide(sys.modules["tensorflow"])
    elif not any(isinstance(f, _HideOnImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _HideOnImport())


def setup(config: ConfigDict | None = None) -> None:
    """All of the above, once per process before any JAX computation."""
    hide_gpus_from_tf()
    setup_compilation_cache(config)

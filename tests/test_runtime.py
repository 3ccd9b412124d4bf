"""Process settings: where the compilation cache lives, and TF hidden from GPUs without import."""

import pathlib
import subprocess
import sys

import ml_collections

from jaxmatte import runtime
from tests.conftest import REPO


def test_cache_dir_defaults_env_and_switches():
    home = pathlib.Path.home()
    assert runtime.cache_dir(None, {}) == home / ".cache" / "jaxmatte" / "jax"
    assert runtime.cache_dir(None, {"XDG_CACHE_HOME": "/x"}) == pathlib.Path("/x/jaxmatte/jax")
    env = {"JAX_COMPILATION_CACHE_DIR": "/mine", "XDG_CACHE_HOME": "/x"}
    assert runtime.cache_dir(None, env) == pathlib.Path("/mine")  # an existing choice wins
    assert runtime.cache_dir(None, {**env, runtime.ENV_CACHE: "0"}) is None
    assert runtime.cache_dir(None, {runtime.ENV_CACHE: "off"}) is None
    config = ml_collections.ConfigDict({"compilation_cache": False})
    assert runtime.cache_dir(config, env) is None
    config.compilation_cache = True
    assert runtime.cache_dir(config, {runtime.ENV_CACHE: "1"}) == home / ".cache/jaxmatte/jax"


def test_tensorflow_is_hidden_when_imported_later_and_not_imported_before():
    script = "\n".join(
        [
            "import sys",
            "from jaxmatte import runtime",
            "hidden = []",
            "runtime._hide = lambda tf: hidden.append(tf.__name__)",
            "runtime.hide_gpus_from_tf()",
            "assert 'tensorflow' not in sys.modules",
            "import tensorflow",
            "assert hidden == ['tensorflow'], hidden",
            "assert not any(isinstance(f, runtime._HideOnImport) for f in sys.meta_path)",
            "print('ok')",
        ]
    )
    r = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-2000:]

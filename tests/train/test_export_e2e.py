"""``python -m jaxmatte.main --mode export`` after a short training run; the export reloads."""

import json
import os
import subprocess
import sys

import numpy as np

from tests import paper_e2e
from tests.conftest import REPO

MAIN = [sys.executable, "-u", "-m", "jaxmatte.main", "--config", "configs/tcp.py:tiny"]


def _run(args, env):
    return subprocess.run(
        MAIN + args, cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )


def test_export_mode_writes_a_loadable_function(tmp_path):
    env = paper_e2e.env(tmp_path)
    work = str(tmp_path / "run")
    train = ["--workdir", work, "--config.train.num_steps=2", "--config.train.checkpoint_every=2"]
    r = _run(train, env)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    r = _run(["--workdir", work, "--mode", "export"], env)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]

    meta = json.loads((tmp_path / "run" / "export" / "export.json").read_text())
    assert meta["step"] == 2 and meta["inputs"] == {
        "image": {"channels": 3, "dtype": "float32"},
        "trimap": {"channels": 1, "dtype": "float32"},
    }
    assert meta["preprocessing"]["image"]["mean"] == [0.485, 0.456, 0.406]

    from jaxmatte.inference import exported

    fn = exported.load(tmp_path / "run" / "export")
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (40, 52, 3), dtype=np.uint8)
    trimap = rng.choice(np.uint8([0, 128, 255]), (40, 52))
    out = fn(fn.encode(image=image, trimap=trimap))
    assert out["alpha"].shape == (1, 40, 52, 1) and np.all(np.isfinite(out["alpha"]))
    # Known pixels are forced (tcp force_known): the export keeps the procedure's semantics.
    assert np.all(out["alpha"][0, ..., 0][trimap == 255] == 1.0)
    assert np.all(out["alpha"][0, ..., 0][trimap == 0] == 0.0)


def test_export_mode_names_the_failure(tmp_path):
    """A model that cannot be traced at symbolic sizes stops with one line saying so."""
    env = dict(os.environ, JAX_COMPILATION_CACHE_DIR=str(tmp_path / "jax_cache"))
    cmd = [sys.executable, "-m", "jaxmatte.main", "--config", "configs/closed_form.py:tiny"]
    # Closed-form exports, but not its coarse-to-fine guess (its levels compare h and w).
    cmd += ["--config.model.kwargs.levels=2"]
    r = subprocess.run(
        cmd + ["--workdir", str(tmp_path / "w"), "--mode", "export"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode != 0
    assert "export: the inference procedure cannot be traced at symbolic sizes" in r.stderr
    assert not (tmp_path / "w" / "export").exists()

"""Bad commands end in one ``error:`` line naming the file or key, without a traceback."""

import subprocess
import sys

import pytest

from tests.conftest import REPO

MAIN = [sys.executable, "-m", "jaxmatte.main"]


@pytest.mark.parametrize(
    "args, expect",
    [
        (
            ["--config", "configs/no_such.py", "--workdir", "{w}"],
            "configs/no_such.py: no such config",
        ),
        (["--config", "configs/closed_form.py", "--workdir", "{w}"], "--mode predict"),
        (
            [
                "--config",
                "configs/ddc.py:tiny",
                "--workdir",
                "{w}",
                "--mode",
                "predict",
                "--config.predict.image={w}",
            ],
            "--config.init.weights",
        ),
        (
            [
                "--config",
                "configs/ddc.py:tiny",
                "--workdir",
                "{w}",
                "--mode",
                "eval",
                "--config.init.weights={w}/none",
            ],
            "init.weights",
        ),
        (
            ["--config", "configs/ddc.py:tiny", "--workdir", "{w}", "--config.model.name=resnet50"],
            "model.name='resnet50': unknown model",
        ),
    ],
)
def test_one_line_error(args, expect, tmp_path):
    args = [a.format(w=tmp_path) for a in args]
    r = subprocess.run(MAIN + args, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode != 0
    assert "Traceback" not in r.stderr, r.stderr[-2000:]
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and expect in errors[0], r.stderr[-2000:]
    assert not (tmp_path / "checkpoints").exists()  # nothing half-made is left behind

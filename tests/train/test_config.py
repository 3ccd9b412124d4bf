"""Bad config values are rejected before any compile, with the key named."""

import subprocess
import sys

import pytest

from configs import ddc
from jaxmatte import config_lib
from tests.conftest import REPO


@pytest.mark.parametrize(
    "key, value, match",
    [
        ("data.crop_size", -8, r"config\.data\.crop_size=-8: must be a positive integer"),
        ("data.batch_size", 12, r"config\.data\.batch_size=12: must be divisible by the device"),
        ("model.name", "nosuchnet", r"config\.model\.name='nosuchnet': unknown model"),
        ("train.num_steps", 0, r"config\.train\.num_steps=0"),
        ("data.name", "imagenet", r"config\.data\.name='imagenet': unknown dataset"),
        ("optim.lr", -1.0, r"config\.optim\.lr=-1\.0"),
        ("data.pp_train", "nosuchop(3)", r"config\.data\.pp_train=.*unknown preprocessing op"),
        ("model.dtype", "float16", r"config\.model\.dtype='float16'"),
    ],
)
def test_bad_values_name_the_key(key, value, match):
    c = ddc.get_config("tiny")
    node = c
    *parents, leaf = key.split(".")
    for p in parents:
        node = node[p]
    node[leaf] = value
    with pytest.raises(config_lib.ConfigError, match=match):
        config_lib.validate(c, device_count=8)


def test_unknown_loss_and_metric():
    c = ddc.get_config("tiny")
    c.losses = {"known_l1": 1.0, "nosuchloss": 2.0}
    with pytest.raises(config_lib.ConfigError, match=r"config\.losses\.nosuchloss=2\.0"):
        config_lib.validate(c, device_count=8)
    c = ddc.get_config("tiny")
    c.eval.metrics = ("sad", "nosuchmetric")
    with pytest.raises(config_lib.ConfigError, match="nosuchmetric"):
        config_lib.validate(c, device_count=8)


def test_all_variants_validate():
    for arg in (None, "quick", "tiny"):
        config_lib.validate(ddc.get_config(arg), device_count=8)
    with pytest.raises(ValueError, match="unknown variant"):
        ddc.get_config("huge")


@pytest.mark.parametrize(
    "override, match",
    [
        ("--config.data.batch_size=-1", "config.data.batch_size=-1"),
        ("--config.data.nosuchkey=1", "nosuchkey"),
    ],
)
def test_main_rejects_bad_overrides(tmp_path, override, match):
    cmd = [
        sys.executable,
        "-m",
        "jaxmatte.main",
        "--config",
        "configs/ddc.py:tiny",
        "--workdir",
        str(tmp_path),
        override,
    ]
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode != 0
    assert match in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "checkpoints").exists()

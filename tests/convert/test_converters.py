"""Converters without torch: strict key checks, first-layer widening, and the CLI."""

import os
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest

from jaxmatte.convert import __main__ as cli
from jaxmatte.convert import common, io
from jaxmatte.models import layers
from jaxmatte.registry import CONVERTERS

REPO = pathlib.Path(__file__).resolve().parents[2]


def fake_torchvision_resnet34(seed=0):
    """A random state dict in torchvision's resnet34 layout (key names and OIHW shapes)."""
    rng = np.random.default_rng(seed)
    sd = {}

    def conv(key, cout, cin, k):
        std = np.sqrt(2.0 / (cin * k * k))
        sd[f"{key}.weight"] = rng.normal(0, std, (cout, cin, k, k)).astype(np.float32)

    def bn(key, c):
        sd[f"{key}.weight"] = rng.uniform(0.5, 1.0, c).astype(np.float32)
        sd[f"{key}.bias"] = rng.normal(0, 0.1, c).astype(np.float32)
        sd[f"{key}.running_mean"] = rng.normal(0, 0.1, c).astype(np.float32)
        sd[f"{key}.running_var"] = rng.uniform(0.5, 1.5, c).astype(np.float32)
        sd[f"{key}.num_batches_tracked"] = np.array(10)

    conv("conv1", 64, 3, 7)
    bn("bn1", 64)
    cin = 64
    for s, (n, width) in enumerate(zip((3, 4, 6, 3), (64, 128, 256, 512)), start=1):
        for b in range(n):
            p = f"layer{s}.{b}"
            conv(f"{p}.conv1", width, cin, 3)
            bn(f"{p}.bn1", width)
            conv(f"{p}.conv2", width, width, 3)
            bn(f"{p}.bn2", width)
            if b == 0 and s > 1:
                conv(f"{p}.downsample.0", width, cin, 1)
                bn(f"{p}.downsample.1", width)
            cin = width
    sd["fc.weight"] = rng.standard_normal((10, 512)).astype(np.float32)
    sd["fc.bias"] = np.zeros(10, np.float32)
    return sd


def test_mismatched_checkpoint_lists_every_bad_key():
    sd = fake_torchvision_resnet34()
    del sd["layer3.2.bn1.running_var"]
    sd["layer2.0.conv1.weight"] = sd["layer2.0.conv1.weight"][:, :32]
    sd["layer5.0.conv1.weight"] = np.zeros(1)
    with pytest.raises(common.ConversionError) as err:
        CONVERTERS.get("torchvision_resnet34")(sd)
    text = str(err.value)
    assert "missing keys (1):\n  layer3.2.bn1.running_var" in text
    assert "unexpected keys (1):\n  layer5.0.conv1.weight" in text
    assert (
        "mis-shaped keys (1):\n  layer2.0.conv1.weight -> params/layer2_0/conv1/conv/kernel" in text
    )


def _stem(variables, x):
    """The widened first conv + BN; the rest of the network does not see the widening."""
    stem = {k: v["stem"] for k, v in variables.items()}
    return layers.ConvBN(64, 7, 2).apply(stem, x)


def test_widening_zero_and_copy():
    sd = fake_torchvision_resnet34()
    convert = CONVERTERS.get("torchvision_resnet34")
    rgb = np.random.default_rng(1).standard_normal((1, 32, 32, 3)).astype(np.float32)
    extra = np.random.default_rng(2).standard_normal((1, 32, 32, 3)).astype(np.float32)
    want = _stem(convert(sd), rgb)
    # "zero" (TCP/LSA/DMP): the extra channels are ignored whatever they hold.
    zero = convert(sd, in_channels=6, widen="zero")
    np.testing.assert_allclose(_stem(zero, np.concatenate([rgb, extra], -1)), want, atol=1e-5)
    # "copy" (SGM): extra channel k repeats RGB kernel k mod 3; zero input there = RGB model.
    copy = convert(sd, in_channels=5, widen="copy")
    kernel = copy["params"]["stem"]["conv"]["kernel"]
    np.testing.assert_array_equal(kernel[:, :, 3:5], kernel[:, :, 0:2])
    np.testing.assert_array_equal(kernel[:, :, :3], sd["conv1.weight"].transpose(2, 3, 1, 0))
    x = np.concatenate([rgb, np.zeros_like(extra[..., :2])], -1)
    np.testing.assert_allclose(_stem(copy, x), want, atol=1e-5)
    assert not np.allclose(_stem(copy, np.concatenate([rgb, extra[..., :2]], -1)), want)
    with pytest.raises(ValueError, match="widen mode"):
        convert(sd, in_channels=4, widen="mean")


def test_cli_npz_in_process_and_safetensors_in_subprocess(tmp_path, capsys):
    from safetensors.numpy import save_file

    sd = fake_torchvision_resnet34()
    np.savez(tmp_path / "r34.npz", **sd)
    assert cli.main(["--arch", "torchvision_resnet34", "--src", str(tmp_path / "r34.npz"),
                     "--out", str(tmp_path / "a")]) == 0  # fmt: skip
    got, meta = io.load_variables(tmp_path / "a")
    want = CONVERTERS.get("torchvision_resnet34")(sd)
    jax.tree.map(np.testing.assert_array_equal, got, want)
    assert meta["arch"] == "torchvision_resnet34" and meta["src"] == "r34.npz"
    assert len(meta["src_sha256"]) == 64

    save_file(sd, str(tmp_path / "r34.safetensors"))
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    )
    args = ["--arch", "torchvision_resnet34", "--src", str(tmp_path / "r34.safetensors"),
            "--out", str(tmp_path / "b"), "--in-channels", "4"]  # fmt: skip
    run = subprocess.run(
        [sys.executable, "-m", "jaxmatte.convert", *args], env=env, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    got, meta = io.load_variables(tmp_path / "b")
    assert got["params"]["stem"]["conv"]["kernel"].shape == (7, 7, 4, 64)
    assert meta["converter_kwargs"] == {"in_channels": 4}

    del sd["bn1.bias"]
    np.savez(tmp_path / "bad.npz", **sd)
    capsys.readouterr()
    assert cli.main(["--arch", "torchvision_resnet34", "--src", str(tmp_path / "bad.npz"),
                     "--out", str(tmp_path / "c")]) == 1  # fmt: skip
    assert "bn1.bias" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()
    assert cli.main(["--list"]) == 0
    assert "mmcls_resnetv1d" in capsys.readouterr().out

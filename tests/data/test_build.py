"""data_prep.build: the CLI on a fake folder tree, its report, and resuming an interrupted build."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from data_prep import build
from jaxmatte.data import layouts_base, records

REPO = pathlib.Path(__file__).resolve().parents[2]
N_GOOD = 5


def _tree(root: pathlib.Path) -> pathlib.Path:
    rng = np.random.default_rng(0)
    for d in ("image", "alpha", "trimap"):
        (root / d).mkdir(parents=True)
    for i in range(N_GOOD):
        Image.fromarray(rng.integers(0, 256, (8, 6, 3), dtype=np.uint8)).save(
            root / f"image/e{i}.png"
        )
        Image.fromarray(rng.integers(0, 256, (8, 6), dtype=np.uint8)).save(root / f"alpha/e{i}.png")
        tri = rng.choice(np.array([0, 128, 255], np.uint8), (8, 6))
        Image.fromarray(tri).save(root / f"trimap/e{i}.png")
    (root / "image/bad.png").write_bytes(b"garbage")
    for d in ("alpha", "trimap"):
        Image.fromarray(np.zeros((8, 6), np.uint8)).save(root / f"{d}/bad.png")
    return root


def _shards(out: pathlib.Path) -> dict[str, list[dict[str, bytes]]]:
    """Every shard's records as {feature: bytes} (protobuf map order is not canonical)."""
    out_ = {}
    for p in sorted(out.glob("train-*.tfrecord")):
        recs = [tf.train.Example.FromString(r.numpy()) for r in tf.data.TFRecordDataset(str(p))]
        out_[p.name] = [
            {k: v.bytes_list.value[0] for k, v in r.features.feature.items()} for r in recs
        ]
    return out_


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One uninterrupted build through the CLI in a subprocess."""
    tmp = tmp_path_factory.mktemp("build")
    src, out = _tree(tmp / "src"), tmp / "out"
    cmd = [
        sys.executable,
        "-m",
        "data_prep.build",
        "--layout",
        "folder",
        "--src",
        str(src),
        "--out",
        str(out),
        "--examples-per-shard",
        "2",
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    return src, out, res


def test_cli_builds_and_reports(reference):
    src, out, res = reference
    assert f"train: {N_GOOD} examples written, 1 skipped" in res.stdout
    assert "bad.png" in res.stdout and "unreadable" in res.stdout
    assert "check" in res.stderr and "write" in res.stderr  # progress bars
    report = json.loads((out / "build_report.json").read_text())
    assert report["splits"]["train"]["skipped"][0]["path"].endswith("image/bad.png")
    info = records.split_info(out, "train")
    assert info["count"] == N_GOOD and info["shards"] == 3
    assert info["names"] == [f"e{i}" for i in range(N_GOOD)]  # sorted, deterministic
    assert not list(out.glob("*.tmp"))
    ex = records.parse(records.read_split(out, "train")[3], info["keys"])
    alpha = np.asarray(Image.open(src / "alpha/e3.png"), np.float32) / 255
    np.testing.assert_allclose(ex["alpha"].numpy()[..., 0], alpha, atol=1e-6)
    tri = np.asarray(Image.open(src / "trimap/e3.png"))
    np.testing.assert_array_equal(ex["trimap"].numpy()[..., 0], tri)


def test_resume_after_interruption(reference, tmp_path, monkeypatch):
    src, ref_out, _ = reference
    out = tmp_path / "out"
    argv = [
        "--layout",
        "folder",
        "--src",
        str(src),
        "--out",
        str(out),
        "--examples-per-shard",
        "2",
        "--no-progress",
    ]
    calls = {"n": 0}
    real_load = layouts_base.load_files

    def dying_load(*args, **kwargs):  # validation loads N_GOOD + 1; die at the 4th write
        calls["n"] += 1
        if calls["n"] == N_GOOD + 1 + 4:
            raise KeyboardInterrupt
        return real_load(*args, **kwargs)

    monkeypatch.setattr(layouts_base, "load_files", dying_load)
    with pytest.raises(KeyboardInterrupt):
        build.main(argv)
    assert list(_shards(out)) == ["train-00000-of-00003.tfrecord"]  # only complete shards exist
    assert not (out / "train.json").exists()
    first = (out / "train-00000-of-00003.tfrecord").stat().st_mtime_ns

    monkeypatch.setattr(layouts_base, "load_files", real_load)
    assert build.main(argv) == 0
    assert _shards(out) == _shards(ref_out)  # the same records as the uninterrupted build
    assert (out / "train-00000-of-00003.tfrecord").stat().st_mtime_ns == first  # not rewritten
    assert (
        json.loads((out / "build_report.json").read_text())["splits"]["train"]["resumed_shards"]
        == 1
    )

    (out / "train-00001-of-00003.tfrecord").unlink()  # a shard of another source is refused
    for d in ("image", "alpha", "trimap"):
        (src / d / "e0.png").rename(src / d / "e9.png")
    try:
        with pytest.raises(RuntimeError, match="other examples"):
            build.main(argv)
    finally:
        for d in ("image", "alpha", "trimap"):
            (src / d / "e9.png").rename(src / d / "e0.png")


def test_raw_encoding_parses_like_png(reference, tmp_path):
    src, ref_out, _ = reference
    report = build.build(
        "folder", str(src), str(tmp_path), per_shard=2, progress=False, encoding="raw"
    )
    assert report["encoding"] == "raw"
    info = records.split_info(tmp_path, "train")
    assert info["encoding"] == "raw"
    keys = info["keys"]
    for rec_raw, rec_png in zip(
        records.read_split(tmp_path, "train"), records.read_split(ref_out, "train")
    ):
        feats = tf.train.Example.FromString(rec_raw).features.feature
        assert list(feats["image/shape"].int64_list.value) == [8, 6, 3]
        assert "trimap/shape" not in feats  # trimaps stay PNG
        a, b = records.parse(rec_raw, keys), records.parse(rec_png, keys)
        for k in keys:
            np.testing.assert_array_equal(a[k].numpy(), b[k].numpy(), err_msg=k)
    with pytest.raises(ValueError, match="encoding"):
        build.build("folder", str(src), str(tmp_path / "x"), encoding="bmp", progress=False)

"""``--mode predict`` with the parameter-free closed-form config: files, folders, bad inputs."""

import os
import subprocess
import sys

import cv2
import jax
import numpy as np
import pytest
from PIL import Image

from configs import closed_form as cf_config
from jaxmatte import predict
from jaxmatte.data import synthetic
from jaxmatte.inference import apply as apply_lib
from jaxmatte.registry import MODELS
from tests.conftest import REPO


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("cf")
    (root / "img").mkdir()
    (root / "tri").mkdir()
    spec = synthetic.SyntheticSpec(height=40, width=52, trimap_band=3)
    for i in range(2):
        ex = synthetic.make_example(7, i, spec)
        cv2.imwrite(str(root / "img" / f"x{i}.png"), cv2.cvtColor(ex["image"], cv2.COLOR_RGB2BGR))
        # palette trimaps, as alphamatting.com ships them
        pal = Image.fromarray(ex["trimap"]).convert("P", palette=Image.Palette.ADAPTIVE)
        pal.save(root / "tri" / f"x{i}.png")
    return root


@pytest.mark.parametrize("variant", ["tiny", "fp64"])  # fp64 runs under config.x64
def test_folder_prediction_equals_the_model(inputs, tmp_path, variant):
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "jaxmatte.main",
        "--config",
        f"configs/closed_form.py:{variant}",
        "--mode",
        "predict",
        f"--config.predict.image={inputs / 'img'}",
        f"--config.predict.trimap={inputs / 'tri'}",
        f"--config.predict.out_dir={out}",
        "--workdir",
        str(tmp_path / "w"),
    ]
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    c = cf_config.get_config(variant)
    assert c.x64 == (variant == "fp64")
    model = MODELS.get("closed_form")(**c.model.kwargs)
    for i in range(2):
        image = cv2.cvtColor(cv2.imread(str(inputs / "img" / f"x{i}.png")), cv2.COLOR_BGR2RGB)
        trimap = np.array(Image.open(inputs / "tri" / f"x{i}.png").convert("L"))
        with jax.enable_x64(c.x64):
            alpha = model.apply(
                {},
                {
                    "image": apply_lib.encode_image(image)[None],
                    "trimap": apply_lib.encode_trimap(trimap)[None],
                },
                train=False,
            )["alpha"]
        want = np.round(np.clip(np.asarray(alpha)[0, ..., 0], 0, 1) * 255)
        got = cv2.imread(str(out / f"x{i}.png"), cv2.IMREAD_UNCHANGED)
        assert got.shape == (40, 52)
        assert np.abs(got.astype(int) - want).max() <= 1
        assert np.all(got[trimap == 255] > 200) and np.all(got[trimap == 0] < 55)


def _cf_fn(c):
    return apply_lib.make_inference_fn(c, {"main": MODELS.get("closed_form")(**c.model.kwargs)})


def _echo_fn():
    """A cheap procedure: alpha = the trimap label (compiles in well under a second)."""
    fn = apply_lib.InferenceFn(lambda v, b: {"alpha": b["trimap"]}, ("image", "trimap"))
    return fn


def _folder(root, n=3, size=(30, 40), seed=0):
    """``n`` random photos with valid trimaps (bg | unknown | fg columns) under root/img, tri."""
    rng = np.random.default_rng(seed)
    (root / "img").mkdir(parents=True, exist_ok=True)
    (root / "tri").mkdir(parents=True, exist_ok=True)
    h, w = size
    for i in range(n):
        cv2.imwrite(str(root / "img" / f"a{i}.png"), rng.integers(0, 256, (h, w, 3), np.uint8))
        t = np.zeros((h, w), np.uint8)
        t[:, w // 3 : 2 * w // 3] = 128
        t[:, 2 * w // 3 :] = 255
        t[rng.integers(0, h), rng.integers(0, w // 3)] = 128  # differ per image
        cv2.imwrite(str(root / "tri" / f"a{i}.png"), t)
    return root


def _config(root, **predict):
    c = cf_config.get_config("tiny")
    c.predict.image, c.predict.trimap = str(root / "img"), str(root / "tri")
    c.predict.update(predict)
    return c


def _read(paths):
    return {p.name: cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in paths}


def test_missing_trimap_and_size_mismatch_are_named(inputs, tmp_path):
    c = cf_config.get_config("tiny")
    c.predict.image = str(inputs / "img")
    c.predict.trimap = str(tmp_path)  # holds no trimap of the images' stems
    (tmp_path / "y.png").write_bytes((inputs / "tri" / "x0.png").read_bytes())
    pairs, bad = predict.pair_inputs(c.predict, ("image", "trimap"))
    assert pairs == [] and len(bad) == 2
    assert bad[0].startswith(str(inputs / "img" / "x0.png")) and "no trimap" in bad[0]
    sub = tmp_path / "bad"
    sub.mkdir()
    cv2.imwrite(str(sub / "x0.png"), np.zeros((10, 10), np.uint8))
    c.predict.image, c.predict.trimap = str(inputs / "img" / "x0.png"), str(sub / "x0.png")
    fn = _echo_fn()
    with pytest.raises(ValueError, match=r"x0\.png: trimap is 10x10 but .*x0\.png is 52x40"):
        predict.predict_files(fn, {"main": {}}, c, tmp_path / "o", fn.inputs)
    assert not (tmp_path / "o").exists()  # every input is checked before anything is written


def test_every_bad_input_is_listed_then_skip_bad_predicts_the_rest(tmp_path, capsys):
    root = _folder(tmp_path / "in", n=2)
    img = cv2.imread(str(root / "img" / "a0.png"))
    good_tri = cv2.imread(str(root / "tri" / "a0.png"), cv2.IMREAD_UNCHANGED)
    bad = {
        "b_trunc": ("img", (root / "img" / "a0.png").read_bytes()[:60]),  # truncated PNG
        "b_text": ("img", b"not an image"),
    }
    for stem, (where, data) in bad.items():
        (root / where / f"{stem}.png").write_bytes(data)
        cv2.imwrite(str(root / "tri" / f"{stem}.png"), good_tri)
    for stem, tri in {
        "b_size": np.zeros((10, 12), np.uint8),
        "b_vals": np.where(good_tri == 128, 100, good_tri).astype(np.uint8),
        "b_allu": np.full_like(good_tri, 128),
    }.items():
        cv2.imwrite(str(root / "img" / f"{stem}.png"), img)
        cv2.imwrite(str(root / "tri" / f"{stem}.png"), tri)
    cv2.imwrite(str(root / "img" / "b_notri.png"), img)
    fn, out = _echo_fn(), tmp_path / "out"
    with pytest.raises(predict.PredictInputError) as e:
        predict.predict_files(fn, {"main": {}}, _config(root), out, fn.inputs, needs_known=True)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("config.predict.image: 6 of 8 input(s) are bad")
    for stem, why in [
        ("img/b_trunc", "unreadable"),
        ("img/b_text", "unreadable"),
        ("tri/b_size", "trimap is 12x10 but"),
        ("tri/b_vals", "values other than 0/128/255"),
        ("tri/b_allu", "no known pixel"),
        ("img/b_notri", "no trimap"),
    ]:
        assert f"{root / stem}.png: " in msg and why in msg.split(f"{root / stem}.png: ")[1]
    assert "snap_trimap=True" in msg and "e.g. 100" in msg
    assert not out.exists()
    # skip_bad: the good ones are written and the bad ones listed at the end; a model without
    # needs_known_pixels only gets a warning for the all-unknown trimap.
    c = _config(root, skip_bad=True)
    written = predict.predict_files(fn, {"main": {}}, c, out, fn.inputs)
    assert sorted(p.name for p in written) == ["a0.png", "a1.png", "b_allu.png"]
    assert sorted(p.name for p in out.iterdir()) == ["a0.png", "a1.png", "b_allu.png"]
    err = capsys.readouterr().err
    assert f"warning: {root / 'tri' / 'b_allu.png'}: the trimap has no known pixel" in err
    assert "warning: skipped 5 bad input(s)" in err and str(root / "img" / "b_text.png") in err


def test_snap_trimap_and_no_unknown_warning(tmp_path, capsys):
    root = _folder(tmp_path / "in", n=1)
    tri = cv2.imread(str(root / "tri" / "a0.png"), cv2.IMREAD_UNCHANGED)
    cv2.imwrite(str(root / "tri" / "a0.png"), np.where(tri == 128, 120, tri).astype(np.uint8))
    fn, out = _echo_fn(), tmp_path / "out"
    with pytest.raises(predict.PredictInputError, match=r"a0\.png: trimap values .* e\.g\. 120"):
        predict.predict_files(fn, {"main": {}}, _config(root), out, fn.inputs)
    (written,) = predict.predict_files(
        fn, {"main": {}}, _config(root, snap_trimap=True), out, fn.inputs
    )
    got = cv2.imread(str(written), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(got, np.where(tri == 128, 128, tri))  # 120 -> 128 -> 0.5
    cv2.imwrite(str(root / "tri" / "a0.png"), np.where(tri == 128, 255, tri).astype(np.uint8))
    predict.predict_files(fn, {"main": {}}, _config(root, overwrite=True), out, fn.inputs)
    assert f"{root / 'tri' / 'a0.png'}: the trimap has no unknown pixel" in capsys.readouterr().err


def test_resume_overwrite_and_progress(tmp_path, capsys):
    root = _folder(tmp_path / "in", n=3)
    fn, out = _echo_fn(), tmp_path / "out"
    out.mkdir()
    marker = np.full((30, 40), 7, np.uint8)
    cv2.imwrite(str(out / "a1.png"), marker)  # "predicted before"
    written = predict.predict_files(fn, {"main": {}}, _config(root), out, fn.inputs)
    assert [p.name for p in written] == ["a0.png", "a2.png"]
    np.testing.assert_array_equal(_read([out / "a1.png"])["a1.png"], marker)  # kept
    lines = capsys.readouterr().out.splitlines()
    assert "(1 done before, kept)" in lines[0]
    progress = [ln for ln in lines if ln.startswith("[")]
    assert len(progress) == 2 and progress[1].startswith(f"[2/2] {out / 'a2.png'}  ")
    assert " img/s  ETA 0:00:00" in progress[1]
    assert predict.predict_files(fn, {"main": {}}, _config(root), out, fn.inputs) == []
    written = predict.predict_files(fn, {"main": {}}, _config(root, overwrite=True), out, fn.inputs)
    assert len(written) == 3 and _read([out / "a1.png"])["a1.png"].max() == 255
    # The foreground is part of a finished prediction: asking for it redoes those without it.
    c = _config(root, foreground=True)
    written = predict.predict_files(fn, {"main": {}}, c, out, fn.inputs)
    assert len(written) == 3 and len(list(out.glob("*_fg.png"))) == 3


def test_batches_are_bit_identical_to_batch_one(tmp_path):
    """Closed-form on 3 images of one size: batch 1 (threaded I/O) = batch 2 (padded, inline)."""
    root = _folder(tmp_path / "in", n=3)
    c = _config(root)
    fn = _cf_fn(c)
    results = []
    for batch, threads in ((1, 2), (2, 0)):
        c.predict.batch_size = batch
        out = tmp_path / f"out{batch}"
        written = predict.predict_files(fn, {"main": {}}, c, out, fn.inputs, True, threads)
        assert sorted(p.name for p in written) == ["a0.png", "a1.png", "a2.png"]
        results.append(_read(written))
    for name, want in results[0].items():
        assert 0 < want.mean() < 255
        np.testing.assert_array_equal(results[1][name], want)


def test_images_are_batched_by_size(tmp_path, capsys):
    root = _folder(tmp_path / "in", n=3)
    _folder(tmp_path / "in2", n=2, size=(24, 32), seed=1)
    for sub in ("img", "tri"):
        for i in range(2):
            (tmp_path / "in2" / sub / f"a{i}.png").rename(root / sub / f"z{i}.png")
    assert predict.batches_by_size(
        [(0, "a", {}), (1, "b", {}), (2, "c", {})], {"a": (2, 3), "b": (4, 5), "c": (2, 3)}, 2
    ) == [[(0, "a", {}), (2, "c", {})], [(1, "b", {})]]
    fn = _echo_fn()
    c = _config(root, batch_size=2)
    written = predict.predict_files(fn, {"main": {}}, c, tmp_path / "out", fn.inputs)
    assert "5 image(s) in 3 batch(es) of up to 2" in capsys.readouterr().out
    for path in written:
        tri = cv2.imread(str(root / "tri" / path.name), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(_read([path])[path.name], tri)  # echo: alpha = trimap


def test_failed_write_is_not_reported(tmp_path, capsys):
    root = _folder(tmp_path / "in", n=2)
    out = tmp_path / "out"
    (out / "a1.png").mkdir(parents=True)  # a folder where an output file should go
    fn = _echo_fn()
    c = _config(root, overwrite=True)
    with pytest.raises(IsADirectoryError, match=r"a1\.png: a folder stands"):
        predict.predict_files(fn, {"main": {}}, c, out, fn.inputs)
    stdout = capsys.readouterr().out
    assert str(out / "a0.png") in stdout and str(out / "a1.png") not in stdout
    assert not list(out.glob(".*.tmp"))  # no temp file is left behind


def test_output_folder_must_not_be_an_input_folder(tmp_path):
    root = _folder(tmp_path / "in", n=1)
    fn = _echo_fn()
    with pytest.raises(ValueError, match=r"config\.predict\.out_dir=.* is the image folder"):
        predict.predict_files(fn, {"main": {}}, _config(root), root / "img", fn.inputs)
    (tmp_path / "file").write_text("")
    with pytest.raises(NotADirectoryError, match=r"file: a file stands where the output folder"):
        predict.predict_files(fn, {"main": {}}, _config(root), tmp_path / "file", fn.inputs)


def test_duplicate_stems_are_refused(tmp_path):
    root = _folder(tmp_path / "in", n=1)
    (root / "img" / "a0.jpg").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=r"several files share the stem 'a0'"):
        predict.pair_inputs(_config(root).predict, ("image", "trimap"))


def test_write_png_is_atomic_and_checked(tmp_path, monkeypatch):
    from jaxmatte import images_out

    path = images_out.write_png(tmp_path / "a.png", np.full((3, 4), 9, np.uint8))
    assert cv2.imread(str(path), cv2.IMREAD_UNCHANGED).tolist() == [[9] * 4] * 3
    with pytest.raises(OSError, match=r"b\.png"):
        images_out.write_png(tmp_path / "b.png", np.zeros((3, 4, 7), np.uint8))
    (tmp_path / "d.png").mkdir()
    with pytest.raises(IsADirectoryError, match=r"d\.png: a folder stands"):
        images_out.write_png(tmp_path / "d.png", np.zeros((3, 4), np.uint8))

    def full_disk(*_):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(OSError, match=r"e\.png: could not be written \(No space left"):
        images_out.write_png(tmp_path / "e.png", np.zeros((3, 4), np.uint8))
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "d.png"]  # no temp file

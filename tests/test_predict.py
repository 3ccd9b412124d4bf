"""``--mode predict`` with the parameter-free closed-form config: files, folders, bad inputs."""

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


def test_missing_trimap_and_size_mismatch_are_named(inputs, tmp_path):
    c = cf_config.get_config("tiny")
    c.predict.image = str(inputs / "img")
    c.predict.trimap = str(tmp_path)  # holds no trimaps
    (tmp_path / "y.png").write_bytes((inputs / "tri" / "x0.png").read_bytes())
    with pytest.raises(FileNotFoundError, match=r"no trimap for image x0\.png"):
        predict.pair_inputs(c.predict, ("image", "trimap"))
    bad = tmp_path / "bad"
    bad.mkdir()
    cv2.imwrite(str(bad / "x0.png"), np.zeros((10, 10), np.uint8))
    c.predict.image, c.predict.trimap = str(inputs / "img" / "x0.png"), str(bad / "x0.png")
    fn = apply_lib.make_inference_fn(c, {"main": MODELS.get("closed_form")(**c.model.kwargs)})
    with pytest.raises(ValueError, match=r"x0\.png: trimap is 10x10 but .*x0\.png is 52x40"):
        predict.predict_files(fn, {"main": {}}, c, tmp_path / "o", fn.inputs)
    assert not (tmp_path / "o").exists()  # every input is checked before anything is written

"""Every dataset layout read from a fake folder tree (and alphamatting.com from realmatte)."""

import math
import pathlib
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from jaxmatte.data import images, layouts, layouts_aim, ops_trimap, records

RNG = np.random.default_rng(1)


def _save(path: pathlib.Path, arr: np.ndarray) -> pathlib.Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


def _img(h=10, w=12):
    return RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)


def _alpha(h=10, w=12):
    a = RNG.integers(0, 256, (h, w), dtype=np.uint8)
    a[:, :3], a[:, -3:] = 0, 255
    return a


def _as_array(value, kind):
    return images.decode_image(value, kind) if isinstance(value, bytes) else value


def _roundtrip(source, out: pathlib.Path) -> list[dict]:
    """Writes the split with records.write_split and parses every record back (as TF would)."""
    source.validate()
    info = records.write_split(source.examples(), out, source.split, len(source.entries), 2, False)
    parsed = [records.parse(r, info["keys"]) for r in records.read_split(out, source.split)]
    assert [p["name"].numpy().decode() for p in parsed] == source.names
    for p in parsed:
        assert len({tuple(v.shape[:2]) for k, v in p.items() if k != "name"}) == 1
    return parsed


def _by_path(source):
    """Skip reasons by "<folder>/<file>" (or by example name when no single file is to blame)."""
    return {"/".join(pathlib.Path(s.path).parts[-2:]): s.reason for s in source.skipped}


def test_folder_layout_bad_inputs(tmp_path):
    root = tmp_path / "train"
    img, a = _img(), _alpha()
    _save(root / "image/good.jpg", img)  # jpg image + png alpha: paired by stem
    _save(root / "alpha/good.png", a)
    _save(root / "image/grey.png", img[..., 1])
    _save(root / "alpha/grey.png", np.stack([a] * 3, -1))  # alpha stored as RGB
    _save(root / "image/lonely.png", img)  # missing alpha counterpart
    _save(root / "alpha/orphan.png", a)  # alpha without image
    _save(root / "image/small.png", img)
    _save(root / "alpha/small.png", a[:-1])  # size mismatch
    (root / "image/broken.png").write_bytes(b"\x89PNG broken")
    _save(root / "alpha/broken.png", a)
    _save(root / "image/twice.png", img)
    _save(root / "image/twice.jpg", img)  # ambiguous stem
    _save(root / "alpha/twice.png", a)
    (root / "image/notes.txt").write_text("hi")
    src = layouts.open_split("folder", tmp_path, "train")
    src.validate()
    assert src.names == ["good", "grey"]  # sorted stems; nothing else got in
    why = _by_path(src)
    assert "missing counterpart" in why["image/lonely.png"]
    assert "no image file" in why["alpha/orphan.png"]
    assert "sizes differ" in why["small"] and "12x9" in why["small"]
    assert "unreadable" in why["image/broken.png"]
    assert "ambiguous" in why["image/twice.png"] and "ambiguous" in why["image/twice.jpg"]
    assert "no image file" in why["alpha/twice.png"]
    assert "not an image" in why["image/notes.txt"]
    assert len(src.skipped) == 8  # each bad file once, none dropped silently
    good, grey = list(src.examples())
    assert good.get("trimap") is None and good.get("fg") is None
    np.testing.assert_array_equal(_as_array(good["alpha"], "alpha"), a)
    np.testing.assert_array_equal(_as_array(grey["image"], "rgb"), np.stack([img[..., 1]] * 3, -1))
    np.testing.assert_array_equal(_as_array(grey["alpha"], "alpha"), a)


def _official_composite(fg_path, a_path, bg_path):
    """Adobe's composite_test.py loop, transcribed pixel by pixel with Pillow."""
    im, a = Image.open(fg_path), Image.open(a_path).convert("RGB")
    w, h = im.size
    im = im if im.mode in ("RGB", "RGBA") else im.convert("RGB")
    bg = Image.open(bg_path)
    bg = bg if bg.mode == "RGB" else bg.convert("RGB")
    bw, bh = bg.size
    ratio = w / bw if w / bw > h / bh else h / bh
    if ratio > 1:
        bg = bg.resize((math.ceil(bw * ratio), math.ceil(bh * ratio)), Image.BICUBIC)
    bg = bg.crop((0, 0, w, h))
    fl, bl, al = im.load(), bg.load(), a.load()
    for y in range(h):
        for x in range(w):
            alpha = al[x, y][0] / 255
            if alpha >= 1:
                bl[x, y] = tuple(int(v) for v in fl[x, y][:3])
            elif alpha > 0:
                bl[x, y] = tuple(
                    int(alpha * fl[x, y][c] + (1 - alpha) * bl[x, y][c]) for c in range(3)
                )
    return np.asarray(bg)


def _aim_tree(root: pathlib.Path, folders=layouts_aim.AimFolders()):
    for i, ext in enumerate(("jpg", "png")):
        _save(root / f"{folders.fg_dir}/fg{i}.{ext}", _img())
        _save(root / f"{folders.alpha_dir}/fg{i}.png", _alpha())
    bgs = ["c.jpg", "a.jpg", "b.png"]
    for n in bgs:
        _save(root / folders.bg_dir / n, _img(7, 9))
    (root / folders.bg_list).write_text("\n".join(bgs + ["gone.jpg"]) + "\n")
    # test: fg0 RGBA (5x4 needs an upscaled bg), fg1 grey; fg2 listed but missing
    rgba = np.concatenate([_img(), np.full((10, 12, 1), 77, np.uint8)], -1)
    _save(root / f"{folders.test_fg_dir}/t0.png", rgba)
    _save(root / f"{folders.test_fg_dir}/t1.png", _img()[..., 0])
    for t in ("t0", "t1"):
        _save(root / f"{folders.test_alpha_dir}/{t}.png", np.stack([_alpha()] * 3, -1))
    tri = np.full((10, 12), 128, np.uint8)
    _save(root / f"{folders.test_trimap_dir}/t0.png", tri)  # one per foreground
    _save(root / f"{folders.test_trimap_dir}/t1_0.png", tri // 2)  # one per composite
    _save(root / f"{folders.test_trimap_dir}/t1_1.png", tri // 2)
    sizes = [(5, 4), (30, 20), (15, 40), (8, 8), (9, 9), (12, 10)]
    voc = [f"v{k}.jpg" for k in range(len(sizes))]
    for n, (h, w) in zip(voc, sizes):
        _save(root / folders.test_bg_dir / n, _img(h, w)[..., 0] if n == "v3.jpg" else _img(h, w))
    (root / folders.test_fg_list).write_text("t0.png\nt2.png\nt1.png\n")
    (root / folders.test_bg_list).write_text("\n".join(voc) + "\n")
    return voc


@pytest.mark.parametrize("layout", ["aim", "d646"])
def test_aim_style_layouts(tmp_path, layout):
    folders = layouts_aim.D646_FOLDERS if layout == "d646" else layouts_aim.AimFolders()
    voc = _aim_tree(tmp_path, folders)
    opts = {"bgs_per_fg": "2"}
    train = layouts.open_split(layout, tmp_path, "train", **opts)
    train.validate()
    assert train.names == ["fg0", "fg1"] and not train.skipped
    ex = next(train.examples())
    assert set(k for k in ex if ex[k] is not None) == {"name", "fg", "alpha"}

    bg = layouts.open_split(layout, tmp_path, "bg", **opts)
    assert bg.names == ["c", "a", "b"]  # the list order, not sorted
    assert "gone.jpg" in bg.skipped[0].path and "not found" in bg.skipped[0].reason
    assert sorted(_roundtrip(bg, tmp_path / "out")[0]) == ["image", "name"]
    assert sorted(_roundtrip(train, tmp_path / "out")[0]) == ["alpha", "fg", "name"]

    test = layouts.open_split(layout, tmp_path, "test", **opts)
    test.validate()
    assert test.names == ["t0_0", "t0_1", "t1_0", "t1_1"]
    assert "t2" in test.skipped[0].path  # its two backgrounds are consumed all the same
    exs = list(test.examples())
    used = {"t0_0": voc[0], "t0_1": voc[1], "t1_0": voc[4], "t1_1": voc[5]}
    for ex in exs:
        t = ex["name"][:2]
        want = _official_composite(
            tmp_path / f"{folders.test_fg_dir}/{t}.png",
            tmp_path / f"{folders.test_alpha_dir}/{t}.png",
            tmp_path / folders.test_bg_dir / used[ex["name"]],
        )
        np.testing.assert_array_equal(ex["image"], want)
        assert ex["trimap"].max() == (128 if t == "t0" else 64)
    parsed = _roundtrip(test, tmp_path / "out")
    np.testing.assert_allclose(parsed[-1]["image"].numpy() * 255, exs[-1]["image"], atol=1e-3)


def test_am2k_p3m_layouts(tmp_path):
    for split in ("train", "validation"):
        for i in range(2):
            _save(tmp_path / f"am2k/{split}/original/m{i}.jpg", _img())
            _save(tmp_path / f"am2k/{split}/mask/m{i}.png", _alpha())
    _save(tmp_path / "am2k/validation/trimap/m0.png", np.full((10, 12), 128, np.uint8))
    train = layouts.open_split("am2k", tmp_path / "am2k", "train", seed=3)
    ex = list(train.examples())
    a = images.read_image(tmp_path / "am2k/train/mask/m1.png", "alpha").astype(np.float32) / 255
    want = ops_trimap.sample_ddc_offline_trimap(a, np.random.default_rng([3, zlib.crc32(b"m1")]))
    np.testing.assert_array_equal(ex[1]["trimap"], want)
    again = list(layouts.open_split("am2k", tmp_path / "am2k", "train", seed=3).examples())
    assert all(np.array_equal(x["trimap"], y["trimap"]) for x, y in zip(ex, again))
    assert sorted(_roundtrip(train, tmp_path / "out")[0]) == ["alpha", "image", "name", "trimap"]
    val = layouts.open_split("am2k", tmp_path / "am2k", "validation")
    assert val.names == ["m0"] and "missing counterpart" in val.skipped[0].reason

    for d in ("train/blurred_image", "P3M-500-NP/original_image"):
        _save(tmp_path / f"p3m/{d}/p0.jpg", _img())
        _save(tmp_path / f"p3m/{d.split('/')[0]}/mask/p0.png", _alpha())
    _save(tmp_path / "p3m/train/fg/p0.jpg", _img())
    _save(tmp_path / "p3m/train/bg/p0.jpg", _img())
    _save(tmp_path / "p3m/P3M-500-NP/trimap/p0.png", np.zeros((10, 12), np.uint8))
    p3m_train = layouts.open_split("p3m", tmp_path / "p3m", "train")
    assert len(_roundtrip(p3m_train, tmp_path / "p3m_out")[0]) == 6  # name + 5 image keys
    (ex,) = p3m_train.examples()
    assert all(ex[k] is not None for k in ("image", "alpha", "trimap", "fg", "bg"))
    assert set(np.unique(ex["trimap"])) <= {0, 128, 255}
    (ex,) = layouts.open_split("p3m", tmp_path / "p3m", "test_np").examples()
    assert _as_array(ex["trimap"], "trimap").max() == 0


def test_alphamatting_from_realmatte(realmatte_dir, tmp_path):
    src = layouts.open_split("alphamatting", realmatte_dir, "test")
    assert src.names == [f"GT{i:02d}" for i in range(1, 28)] and not src.skipped
    src.entries = src.entries[:2]  # keep the test fast: two images end to end
    src.validate()
    info = records.write_split(src.examples(), tmp_path, "test", 2, progress=False)
    assert info["keys"] == ["alpha", "image", "trimap"]
    rec = records.read_split(tmp_path, "test")[1]
    parsed = records.parse(rec, info["keys"])
    rgb_alpha = np.asarray(Image.open(realmatte_dir / "alpha/GT02.png"))
    assert rgb_alpha.ndim == 3  # stored as RGB: the reader takes channel 0
    np.testing.assert_allclose(parsed["alpha"].numpy()[..., 0] * 255, rgb_alpha[..., 0], atol=1e-3)
    tri = parsed["trimap"].numpy()[..., 0]
    assert set(np.unique(tri)) == {0, 128, 255}  # palette PNG -> grey values
    img = cv2.cvtColor(cv2.imread(str(realmatte_dir / "image/GT02.png")), cv2.COLOR_BGR2RGB)
    np.testing.assert_allclose(parsed["image"].numpy() * 255, img, atol=1e-3)

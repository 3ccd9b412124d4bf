"""Tests of the robust image reader: every documented conversion and every per-file error."""

import cv2
import numpy as np
import pytest
from PIL import Image

from jaxmatte.data import images

RNG = np.random.default_rng(0)


def _rgb(h=6, w=5):
    return RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_rgb_conversions(tmp_path):
    rgb = _rgb()
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    arr, raw = images.read_image_and_bytes(tmp_path / "rgb.png", "rgb")
    np.testing.assert_array_equal(arr, rgb)
    assert raw == (tmp_path / "rgb.png").read_bytes()  # stored as is

    grey = rgb[..., 0]
    Image.fromarray(grey).save(tmp_path / "grey.png")
    np.testing.assert_array_equal(
        images.read_image(tmp_path / "grey.png"), np.stack([grey] * 3, -1)
    )

    rgba = np.concatenate([rgb, RNG.integers(0, 256, rgb.shape[:2] + (1,), dtype=np.uint8)], -1)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    arr, raw = images.read_image_and_bytes(tmp_path / "rgba.png", "rgb")
    np.testing.assert_array_equal(arr, rgb)  # A dropped, colours not premultiplied
    assert raw is None  # needs re-encoding

    rgb16 = RNG.integers(0, 65536, rgb.shape, dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "rgb16.png"), rgb16[..., ::-1])
    want = np.round(rgb16 / 65535 * 255).astype(np.uint8)
    np.testing.assert_array_equal(images.read_image(tmp_path / "rgb16.png"), want)

    palette = Image.new("P", (3, 1))
    palette.putpalette([10, 20, 30, 200, 100, 0, 255, 255, 255] + [0] * (256 * 3 - 9))
    palette.putdata([2, 0, 1])
    palette.save(tmp_path / "pal.png")
    want = np.array([[[255, 255, 255], [10, 20, 30], [200, 100, 0]]], np.uint8)
    np.testing.assert_array_equal(images.read_image(tmp_path / "pal.png"), want)


def test_alpha_and_trimap_conversions(tmp_path):
    a16 = RNG.integers(0, 65536, (4, 7), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "a16.png"), a16)
    got = images.read_image(tmp_path / "a16.png", "alpha")
    assert got.dtype == np.uint16
    np.testing.assert_array_equal(got, a16)  # precision kept
    tri16 = images.read_image(tmp_path / "a16.png", "trimap")
    np.testing.assert_array_equal(tri16, np.round(a16 / 257).astype(np.uint8))

    a = RNG.integers(0, 256, (4, 7), dtype=np.uint8)
    Image.fromarray(np.stack([a] * 3, -1)).save(tmp_path / "a_rgb.png")
    np.testing.assert_array_equal(images.read_image(tmp_path / "a_rgb.png", "alpha"), a)

    # a palette trimap whose indices are NOT the grey values: values come through the palette
    pal = Image.new("P", (3, 2))
    pal.putpalette([0, 0, 0, 128, 128, 128, 255, 255, 255] + [0] * (256 * 3 - 9))
    pal.putdata([0, 1, 2, 2, 1, 0])
    pal.save(tmp_path / "tri_pal.png")
    want = np.array([[0, 128, 255], [255, 128, 0]], np.uint8)
    np.testing.assert_array_equal(images.read_image(tmp_path / "tri_pal.png", "trimap"), want)

    Image.fromarray(_rgb()).save(tmp_path / "photo.png")
    with pytest.raises(images.ImageError, match="photo.png.*equal channels"):
        images.read_image(tmp_path / "photo.png", "alpha")


def test_unreadable_files_name_the_file(tmp_path):
    (tmp_path / "junk.png").write_bytes(b"not an image at all")
    ok, buf = cv2.imencode(".jpg", _rgb(64, 64))
    (tmp_path / "cut.jpg").write_bytes(buf.tobytes()[: len(buf) // 2])
    ok, buf = cv2.imencode(".png", _rgb(64, 64))
    (tmp_path / "cut.png").write_bytes(buf.tobytes()[: len(buf) // 2])
    for name in ("junk.png", "cut.jpg", "cut.png", "missing.png"):
        with pytest.raises(images.ImageError, match=name):
            images.read_image(tmp_path / name)
    with pytest.raises(ValueError, match="kind"):
        images.decode_image(buf.tobytes(), "depth")

"""Records: the raw encoding parses to exactly what PNG gives, old records parse, JPEG scale."""

import cv2
import numpy as np
import pytest
import tensorflow as tf

from jaxmatte.data import records

RNG = np.random.default_rng(0)


def _example():
    return {
        "name": "e0",
        "image": RNG.integers(0, 256, (9, 7, 3), dtype=np.uint8),
        "fg": RNG.integers(0, 256, (9, 7, 3), dtype=np.uint8),
        "alpha": RNG.integers(0, 65536, (9, 7), dtype=np.uint16),  # a 16-bit matte
        "trimap": RNG.choice(np.array([0, 128, 255], np.uint8), (9, 7)),
    }


def _features(serialized):
    return tf.train.Example.FromString(serialized).features.feature


def test_raw_parses_like_png_bit_for_bit():
    ex = _example()
    png, raw = records.serialize(ex, "png"), records.serialize(ex, "raw")
    keys = ("image", "fg", "alpha", "trimap")
    a, b = records.parse(tf.constant(png), keys), records.parse(tf.constant(raw), keys)
    for k in keys:
        np.testing.assert_array_equal(a[k].numpy(), b[k].numpy(), err_msg=k)
    np.testing.assert_array_equal(b["fg"].numpy(), ex["fg"] / np.float32(255))
    np.testing.assert_array_equal(b["alpha"].numpy()[..., 0], ex["alpha"] / np.float32(65535))
    f = _features(raw)
    assert list(f["fg/shape"].int64_list.value) == [9, 7, 3]
    assert list(f["alpha/shape"].int64_list.value) == [9, 7, 1]
    assert len(f["alpha"].bytes_list.value[0]) == 9 * 7 * 2  # uint16 samples
    assert "trimap/shape" not in f  # trimaps stay PNG
    assert "fg/shape" not in _features(png)


def test_raw_converts_png_bytes_and_keeps_jpeg():
    ex = _example()
    png_bytes = records.encode_png(ex["fg"])
    ok, jpg = cv2.imencode(".jpg", ex["image"])
    out = records.serialize({"name": "e", "fg": png_bytes, "image": jpg.tobytes()}, "raw")
    f = _features(out)
    assert f["image"].bytes_list.value[0] == jpg.tobytes()  # JPEG kept as is
    assert f["fg"].bytes_list.value[0] == ex["fg"].tobytes()  # PNG bytes -> raw samples
    with pytest.raises(ValueError, match="encoding"):
        records.serialize(ex, "webp")


def test_old_records_without_shape_features_parse():
    ex = _example()
    feats = {"name": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"old"]))}
    for k in ("fg", "alpha"):
        data = records.encode_png(ex[k])
        feats[k] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[data]))
    old = tf.train.Example(features=tf.train.Features(feature=feats)).SerializeToString()
    out = records.parse(tf.constant(old), ("fg", "alpha"))
    np.testing.assert_array_equal(out["fg"].numpy(), ex["fg"] / np.float32(255))
    assert out["name"].numpy() == b"old"


def test_jpeg_decodes_to_unit_range():
    # decode_image(dtype=uint16) scales 8-bit JPEG samples by 256, so white was 65280 / 65535.
    white = np.full((16, 16, 3), 255, np.uint8)
    img = RNG.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    for arr in (white, img):
        ok, jpg = cv2.imencode(".jpg", arr, [cv2.IMWRITE_JPEG_QUALITY, 95])
        out = records.parse(
            tf.constant(records.serialize({"name": "j", "bg": jpg.tobytes()})), ("bg",)
        )
        ref = tf.io.decode_jpeg(jpg.tobytes(), channels=3).numpy() / np.float32(255)
        np.testing.assert_array_equal(out["bg"].numpy(), ref)
    assert out["bg"].shape == (16, 16, 3)
    white_out = records.parse(
        tf.constant(
            records.serialize({"name": "w", "bg": cv2.imencode(".jpg", white)[1].tobytes()})
        ),
        ("bg",),
    )
    assert white_out["bg"].numpy().max() == 1.0


def test_parse_inside_tf_data_mixes_encodings():
    ex = _example()
    recs = [records.serialize(ex, "png"), records.serialize(ex, "raw")]
    ds = tf.data.Dataset.from_tensor_slices(recs).map(lambda r: records.parse(r, ("fg", "alpha")))
    a, b = list(ds)
    np.testing.assert_array_equal(a["fg"].numpy(), b["fg"].numpy())
    np.testing.assert_array_equal(a["alpha"].numpy(), b["alpha"].numpy())

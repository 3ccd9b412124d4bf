"""Every recipe yields model-ready, correctly shaped, seeded and reproducible batches in tf.data."""

import numpy as np
import pytest
import tensorflow as tf

from jaxmatte.data import preprocess, recipes, records
from jaxmatte.data.ops_trimap import erode_trimap

RNG = np.random.default_rng(2)
H, W = 84, 100


def _alpha8(k):
    y, x = np.mgrid[:H, :W]
    a = np.clip((28 + 3 * k - np.hypot(y - H / 2, x - W / 2 - k)) / 8, 0, 1)
    return np.round(a * 255).astype(np.uint8)


def _records():
    out = []
    for k in range(3):
        a = _alpha8(k)
        out.append(
            records.serialize(
                {
                    "name": f"ex{k}",
                    "image": RNG.integers(0, 256, (H, W, 3), np.uint8),
                    "fg": RNG.integers(0, 256, (H, W, 3), np.uint8),
                    "bg": RNG.integers(0, 256, (H + 10, W - 10, 3), np.uint8),
                    "alpha": a,
                    "trimap": erode_trimap(a / 255.0, 5, 5),
                }
            )
        )
    return out


RECORDS = _records()
SMALL = {
    "ddc": dict(size=64),
    "ddc_crop_only": dict(size=64),
    "gca": dict(size=64, pair_resize=96),
    "tcp": dict(size=64, pair_resize=96),
    "sgm_m": dict(size=64, pair_resize=96, keep_fg_bg=True),
    "dmp": dict(size=64, fg_pair=False),
    "sgm_t": dict(size=32, sides=(32, 48)),
    "lsa": dict(size=64),
}
EXPECT = {
    "ddc": {"image": 3, "trimap": 1},
    "ddc_crop_only": {"image": 3, "trimap": 1},
    "gca": {"image": 3, "trimap": 1, "alpha": 1},
    "tcp": {"image": 3, "trimap": 1, "alpha": 1, "trimap_tcp": 1},
    "sgm_m": {"image": 3, "trimap": 1, "alpha": 1, "fg": 3, "bg": 3},
    "dmp": {"image": 3, "trimap": 1, "alpha": 1},
    "sgm_t": {"image": 3, "trimap": 1, "alpha": 1, "softseg": 2},
    "lsa": {"image": 3, "trimap": 1, "alpha": 1},
}


def dataset(name, **kw):
    """Batches of 3 from parsed PNG records, as the training pipeline makes them: run seed 1 for
    batches 0-1 (epochs 0 and 1), run seed 2 for batches 2-3."""
    spec = recipes.get(name, **dict(SMALL[name], **kw))
    pp = preprocess.build(spec)
    table = tf.constant(RECORDS)
    keys = ("image", "trimap") if name.startswith("ddc") else ("fg", "alpha", "bg")

    def load(i):
        seed, j = 1 + i // 6, i % 6
        rid, epoch = j % 3, j // 3
        ex = records.parse(tf.gather(table, rid), keys)
        if "fg_pair" in spec:
            other = records.parse(tf.gather(table, (rid + 1) % 3), ("fg", "alpha"))
            ex["fg2"], ex["alpha2"] = other["fg"], other["alpha"]
        ex.pop("name")
        return pp(ex, preprocess.example_seed(seed, rid, epoch))

    return tf.data.Dataset.range(12).map(load, num_parallel_calls=tf.data.AUTOTUNE).batch(3)


def as_numpy(ds):
    return [{k: v.numpy() for k, v in b.items()} for b in ds]


@pytest.mark.parametrize("name", sorted(SMALL))
def test_recipe_batches(name):
    ds = dataset(name)
    a = as_numpy(ds)
    size = SMALL[name]["size"]
    for b in a:
        assert {k: v.shape for k, v in b.items()} == {
            k: (3, size, size, c) for k, c in EXPECT[name].items()
        }
        assert all(v.dtype == np.float32 for v in b.values())
        for k in ("trimap", "trimap_tcp"):
            if k in b:
                assert set(np.unique(b[k])) <= {0.0, 0.5, 1.0}
        x = b["image"] * np.array([0.229, 0.224, 0.225]) + np.array([0.485, 0.456, 0.406])
        assert x.min() > -1e-4 and x.max() < 1 + 1e-4  # normalised RGB in [0, 1]
        if "alpha" in b:
            assert b["alpha"].min() >= 0 and b["alpha"].max() <= 1
    for x, y in zip(a, as_numpy(ds)):  # a second pass draws exactly the same
        for k in x:
            np.testing.assert_array_equal(x[k], y[k])
    assert not np.array_equal(a[0]["image"], a[1]["image"])  # a new epoch draws anew
    assert not np.array_equal(a[0]["image"], a[2]["image"])  # so does another run seed


def test_ddc_online_trimap_from_composited_alpha():
    spec = recipes.ddc(size=64, online_trimap="gca_erode", compose=True)
    ex = records.parse(tf.constant(RECORDS[0]), ("fg", "alpha", "bg"))
    ex.pop("name")
    out = preprocess.build(spec)(ex, tf.constant([0, 1]))
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "image": (64, 64, 3),
        "trimap": (64, 64, 1),
        "alpha": (64, 64, 1),
    }


def test_unknown_recipe_and_bad_options():
    with pytest.raises(KeyError):
        recipes.get("nope")
    with pytest.raises(ValueError):
        recipes.ddc(augment="wild")
    with pytest.raises(ValueError):
        recipes.lsa(trimap="fuzzy")


def test_recipe_options_of_the_new_ops():
    assert "tcp_noisy(relabel='nearest_known')" in recipes.tcp(relabel="nearest_known")
    assert "tcp_noisy(relabel='alpha_threshold')" in recipes.tcp()
    assert "method='bicubic'" in recipes.lsa()  # LSA rotates with cv2's INTER_CUBIC


def test_pixel_scale_shrinks_every_trimap_kernel():
    # At 1 the ops keep their paper defaults (the spec reads as the paper's).
    assert "gca_erode()" in recipes.gca() and "lsa_dilate()" in recipes.lsa()
    assert (
        recipes.sgm_t_inputs()
        == "gca_erode(key='trimap_rand')|sgm_softseg(src='trimap_rand')|sgm_target()"
    )
    small = recipes.sgm_t_inputs(0.1)
    assert "kmax=3" in small and "blur_sizes=(3, 3, 5)" in small and "sgm_target(k=2)" in small
    assert [recipes.px(s, 0.1, odd=True) for s in (5, 21, 30)] == [1, 3, 3]
    # On the same records, the scaled recipes leave known regions the paper-sized ones erode away.
    for name in ("tcp", "sgm_t", "lsa", "dmp"):
        unknown = {}
        for scale in (1.0, 0.1):
            batches = as_numpy(dataset(name, pixel_scale=scale).take(2))
            unknown[scale] = np.mean([np.mean(b["trimap"] == 0.5) for b in batches])
        assert unknown[0.1] < 0.7 * unknown[1.0], (name, unknown)

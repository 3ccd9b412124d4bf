"""The synthetic set is deterministic and has the matting structures it promises."""

import numpy as np

from jaxmatte.data import synthetic


def test_deterministic_per_seed_and_index():
    a, b = synthetic.make_example(1, 4), synthetic.make_example(1, 4)
    for k in ("image", "fg", "bg", "alpha", "trimap"):
        np.testing.assert_array_equal(a[k], b[k])
    assert not np.array_equal(a["alpha"], synthetic.make_example(1, 5)["alpha"])
    assert not np.array_equal(a["alpha"], synthetic.make_example(2, 4)["alpha"])


def test_structures_and_composition():
    ex = synthetic.make_example(0, 0)
    alpha = ex["alpha"].astype(np.float32) / 255
    partial = (alpha > 0.05) & (alpha < 0.95)
    assert (alpha == 1).mean() > 0.05 and (alpha == 0).mean() > 0.2
    assert partial.mean() > 0.03  # strands, soft edges and the veil
    # Hair: many isolated thin partial pixels whose 3x3 neighbourhood is mostly background.
    from scipy import ndimage

    thin = partial & (ndimage.uniform_filter((alpha > 0).astype(float), 3) < 0.6)
    assert thin.sum() > 50
    # Holes: background pixels enclosed by the foreground body.
    filled = ndimage.binary_fill_holes(alpha > 0.5)
    assert (filled & (alpha < 0.5)).sum() > 5
    # The image is the composite of fg and bg by alpha (up to 8-bit rounding).
    a = alpha[..., None]
    comp = ex["fg"] / 255 * a + ex["bg"] / 255 * (1 - a)
    assert np.abs(comp - ex["image"] / 255).max() < 3 / 255
    assert set(np.unique(ex["trimap"])) == {0, 128, 255}
    assert np.all(ex["trimap"][partial] == 128)


def _synthetic_cfg(**spec):
    from ml_collections import ConfigDict

    cfg = {"seed": 0, "size": 48, "num_train": 2, "num_eval": 1}
    return ConfigDict({**cfg, "spec": spec} if spec else cfg)


def test_config_spec_overrides_shape_the_examples():
    from jaxmatte import config_lib
    from jaxmatte.data.builders import sources

    assert sources.synthetic_spec(_synthetic_cfg()) == synthetic.SyntheticSpec(48, 48)
    tiny = config_lib.TINY_SYNTHETIC
    spec = sources.synthetic_spec(_synthetic_cfg(**tiny["spec"]))
    assert (spec.height, spec.strands, spec.trimap_band) == (48, 4, 2)
    assert spec.soft_blur_sigma == (0.7, 1.5)  # a tuple again after the ConfigDict round trip
    # The :tiny shapes keep known regions in the eval trimap; the default ones barely do.
    unknown = lambda s: np.mean(
        [synthetic.make_example(0, i, s)["trimap"] == 128 for i in (16, 17)]
    )
    assert unknown(spec) < 0.5 < 0.9 < unknown(synthetic.SyntheticSpec(48, 48))


def test_config_spec_unknown_key_is_a_config_error():
    import pytest

    from jaxmatte import config_lib

    c = config_lib.load("configs/tcp.py:tiny")
    c.data.synthetic.spec.strand = 3
    with pytest.raises(config_lib.ConfigError, match=r"config.data.synthetic.spec.strand:"):
        config_lib.validate(c, device_count=1)


def test_spec_overrides_get_their_own_cache_folder(tmp_path):
    from jaxmatte.data.builders import sources

    cfg = lambda **spec: {
        "dir": str(tmp_path),
        "train_split": "train",
        "eval_split": "test",
        "synthetic": _synthetic_cfg(**spec),
    }
    from ml_collections import ConfigDict

    a = sources.synthetic_source(ConfigDict(cfg()))
    b = sources.synthetic_source(ConfigDict(cfg(trimap_band=2)))
    assert a != b and a.endswith("synthetic_seed0_48px_2_1")

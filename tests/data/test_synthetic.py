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

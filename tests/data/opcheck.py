"""Test helper for preprocessing ops: run a spec eagerly and inside tf.data and compare."""

import numpy as np
import tensorflow as tf

from jaxmatte.data import preprocess


def run(spec, ex, seed=(1, 2), graph=True):
    """Applies ``spec`` eagerly and (if ``graph``) inside tf.data with unknown H, W; both agree."""
    fn = preprocess.build(spec)
    sd = tf.constant(seed, tf.int32)
    tex = {k: tf.constant(v) for k, v in ex.items()}
    eager = {k: v.numpy() for k, v in fn(dict(tex), sd).items()}
    if not graph:
        return eager
    sig = {k: tf.TensorSpec([None, None, v.shape[-1]], tf.float32) for k, v in ex.items()}
    ds = tf.data.Dataset.from_generator(lambda: [tex], output_signature=sig)
    out = next(iter(ds.map(lambda e: fn(e, sd))))
    assert set(out) == set(eager)
    for k in eager:
        np.testing.assert_allclose(out[k].numpy(), eager[k], atol=1e-6, err_msg=k)
    return eager


def smooth(h, w, c=3):
    """A smooth [h, w, c] float32 test image in [0.1, 0.9]."""
    y, x = np.mgrid[:h, :w] / max(h, w)
    chans = [np.sin(3 * x + k) * np.cos(2 * y - k) for k in range(c)]
    return (0.5 + 0.4 * np.stack(chans, -1)).astype(np.float32)


def trimap(h, w):
    """A [h, w, 1] trimap: BG border, unknown ring, FG centre (codes 0/128/255)."""
    t = np.zeros((h, w, 1), np.float32)
    t[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4] = 128
    t[3 * h // 8 : 5 * h // 8, 3 * w // 8 : 5 * w // 8] = 255
    return t

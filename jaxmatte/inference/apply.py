"""Model inference on whole images: encode uint8 inputs as training does, run the procedure.

Evaluation, prediction and in-training evaluation all go through ``make_inference_fn`` (the
procedure ``config.inference`` names) and ``encode_example`` (the ops ``config.data.pp_eval``
names, the same preprocessing ops that end every training recipe).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import jax
import numpy as np
from ml_collections import ConfigDict

from jaxmatte import conventions as cv
from jaxmatte.registry import INFERENCE

# The encoding every training recipe ends with (recipes.pack): ImageNet-normalised RGB and
# {0, 0.5, 1} trimap labels.
DEFAULT_PP_EVAL = "normalize(('image',))|trimap_to_label(('trimap', 'trimap_tcp'))"


def to_pipeline(ex: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """uint8 arrays -> the pipeline's float conventions (``data/preprocess.py``).

    image/fg/bg [H, W, 3] -> RGB in [0, 1]; alpha/mask [H, W] -> [H, W, 1] in [0, 1];
    trimap [H, W] -> [H, W, 1] float codes 0..255.
    """
    out = {}
    for k, v in ex.items():
        if not isinstance(v, np.ndarray):
            continue
        v = v.astype(np.float32)
        if v.ndim == 2:
            v = v[..., None]
        out[k] = v if k.startswith("trimap") else v / cv.UINT8_MAX
    return out


def encode_example(
    ex: Mapping[str, np.ndarray], spec: str = DEFAULT_PP_EVAL, seed: int = 0, index: int = 0
) -> dict[str, np.ndarray]:
    """One uint8 example -> a float32 batch of one, through the preprocessing ops of ``spec``.

    Args:
      ex: "image" uint8 [H, W, 3] and optionally "trimap", "alpha", "mask" uint8 [H, W].
      spec: preprocessing ops (``config.data.pp_eval``); randomised ops draw from
        (seed, index), so an evaluation is reproducible.
      seed, index: the stateless seed of this example.

    Returns:
      dict of float32 [1, H, W, C].
    """
    import tensorflow as tf

    from jaxmatte.data import preprocess

    pp = preprocess.build(spec)
    tensors = {k: tf.constant(v) for k, v in to_pipeline(ex).items()}
    out = pp(tensors, tf.constant([seed, index], tf.int32))
    return {k: np.asarray(v, np.float32)[None] for k, v in out.items()}


def encode_image(image: np.ndarray) -> np.ndarray:
    """uint8 RGB [..., H, W, 3] -> ImageNet-normalised float32 (numpy twin of ``normalize``)."""
    x = image.astype(np.float32) / cv.UINT8_MAX
    return (x - np.asarray(cv.IMAGENET_MEAN, np.float32)) / np.asarray(cv.IMAGENET_STD, np.float32)


def encode_trimap(trimap: np.ndarray) -> np.ndarray:
    """uint8 trimap codes [..., H, W] -> labels {0, 0.5, 1} float32 [..., H, W, 1]."""
    t = np.full(trimap.shape, cv.LABEL_UNKNOWN, np.float32)
    t[trimap < cv.TRIMAP_BG_BELOW] = cv.LABEL_BG
    t[trimap >= cv.TRIMAP_FG_FROM] = cv.LABEL_FG
    return t[..., None]


def inference_config(config: ConfigDict) -> tuple[str, dict[str, Any]]:
    """``(name, kwargs)`` of ``config.inference`` (default: ``pad_apply`` with multiple 1)."""
    inf = config.get("inference", None)
    if inf is None:
        return "pad_apply", {}
    kwargs = inf.get("kwargs", {})
    return inf.get("name", "pad_apply"), dict(
        kwargs.to_dict() if hasattr(kwargs, "to_dict") else kwargs
    )


class InferenceFn:
    """A jitted procedure ``fn(variables, batch) -> outputs`` and the batch keys it reads.

    A procedure may carry ``compiler_options`` (a dict attribute): its executables are then
    compiled with them, once per argument shapes (the tiled procedure under a memory budget does,
    so that the program that runs is the one whose memory was predicted).
    """

    def __init__(self, fn: Callable, inputs: tuple[str, ...] | None):
        # A ``host_side`` procedure reads input values on the host (e.g. to pick shape buckets)
        # and jits its own parts.
        host = getattr(fn, "host_side", False)
        self._jit = fn if host else jax.jit(fn)
        self._options = {} if host else dict(getattr(fn, "compiler_options", None) or {})
        self._compiled = {}
        self.inputs = inputs

    def compile(self, variables: Mapping[str, Any], batch: Mapping[str, Any]) -> Any:
        """The executable for these arguments' shapes, compiled with the procedure's options."""
        leaves, tree = jax.tree.flatten((variables, batch))
        key = (tree, tuple((np.shape(x), np.result_type(x)) for x in leaves))
        if key not in self._compiled:
            lowered = self._jit.lower(variables, batch)
            self._compiled[key] = lowered.compile(compiler_options=self._options)
        return self._compiled[key]

    def __call__(self, variables: Mapping[str, Any], batch: Mapping[str, Any]) -> dict:
        if not self._options:
            return self._jit(variables, batch)
        return self.compile(variables, batch)(variables, batch)


def make_inference_fn(config: ConfigDict, models: Mapping[str, Any]) -> InferenceFn:
    """The jitted procedure of ``config.inference`` over ``models`` (run name -> module).

    ``inputs`` is the procedure's own declaration (a function attribute), else the main model's.
    """
    from jaxmatte.models import base

    name, kwargs = inference_config(config)
    fn = INFERENCE.get(name)(models, **kwargs)
    inputs = getattr(fn, "inputs", None) or base.input_keys(models["main"])
    return InferenceFn(fn, tuple(inputs))

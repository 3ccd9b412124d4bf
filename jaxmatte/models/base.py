"""The model contract: a model reads the batch keys it declares and returns named outputs.

A matting model is a Flax module registered in ``MODELS`` with

- ``inputs``: the batch keys it reads (a class attribute or property), each a float32
  ``[B, H, W, C]`` array with ``C = conventions.BATCH_CHANNELS[key]``;
- ``__call__(batch, train=False) -> dict``: at least ``"alpha"`` ``[B, H, W, 1]`` in [0, 1] for
  alpha models, or ``"trimap_logits"`` ``[B, H, W, 3]`` for trimap models, plus named extras.

It encodes its inputs itself (``models/encode.py``). These helpers build what init and shape
inference need from the declaration, so nothing else assumes a fixed set of inputs.
"""

from __future__ import annotations

from typing import Any, Mapping

import jax
import jax.numpy as jnp
from ml_collections import ConfigDict

from jaxmatte import conventions as cv
from jaxmatte.registry import MODELS

DEFAULT_INIT_SIZE = 32  # init side for configs without a training crop (parameter-free models)


def build_model(config: ConfigDict) -> Any:
    """The registered model named by ``config.model.name`` with its kwargs and ``model.dtype``."""
    kwargs = dict(config.model.get("kwargs", {}))
    dtype = config.model.get("dtype", None)
    if dtype is not None:
        kwargs["dtype"] = dtype
    return MODELS.get(config.model.name)(**kwargs)


def input_keys(model: Any) -> tuple[str, ...]:
    """The batch keys ``model`` declares it reads."""
    keys = getattr(model, "inputs", None)
    if keys is None:
        raise TypeError(f"{type(model).__name__} declares no `inputs` (the batch keys it reads)")
    unknown = [k for k in keys if k not in cv.BATCH_CHANNELS]
    if unknown:
        raise ValueError(
            f"{type(model).__name__}.inputs names unknown batch keys {unknown}; "
            f"known: {', '.join(cv.BATCH_CHANNELS)}"
        )
    return tuple(keys)


def abstract_batch(
    model: Any, size: int | tuple[int, int], batch: int = 1
) -> dict[str, jax.ShapeDtypeStruct]:
    """Shapes of the model's declared inputs at ``size`` (a side or (H, W))."""
    h, w = (size, size) if isinstance(size, int) else size
    return {
        k: jax.ShapeDtypeStruct((batch, h, w, cv.BATCH_CHANNELS[k]), jnp.float32)
        for k in input_keys(model)
    }


def zero_batch(model: Any, size: int | tuple[int, int], batch: int = 1) -> dict[str, jax.Array]:
    """Zeros of the model's declared inputs (init only: values never matter there)."""
    return {k: jnp.zeros(s.shape, s.dtype) for k, s in abstract_batch(model, size, batch).items()}


def select_inputs(model: Any, batch: Mapping[str, Any]) -> dict[str, Any]:
    """The declared inputs plus any optional keys the model may read, with a clear error."""
    keys = input_keys(model)
    missing = [k for k in keys if k not in batch]
    if missing:
        raise KeyError(
            f"model {type(model).__name__} reads {list(keys)} but the batch lacks {missing} "
            f"(it has {sorted(batch)})"
        )
    optional = tuple(getattr(model, "optional_inputs", ()))
    return {k: batch[k] for k in keys + optional if k in batch}


def init_size(config: ConfigDict) -> int:
    """The side used for init: the training crop, or ``DEFAULT_INIT_SIZE`` without data."""
    return int(config.data.crop_size) if "data" in config else DEFAULT_INIT_SIZE


def init_variables(model: Any, rng: jax.Array, size: int | tuple[int, int]) -> dict[str, Any]:
    """``model.init`` on zeros of the declared inputs at ``size`` (eval mode)."""
    return model.init({"params": rng, "dropout": rng}, zero_batch(model, size), train=False)


def output_kind(outputs: Mapping[str, Any]) -> str:
    """``"alpha"`` or ``"trimap"``: what a model's outputs hold."""
    if "alpha" in outputs:
        return "alpha"
    if "trimap_logits" in outputs:
        return "trimap"
    raise ValueError(f"model outputs hold neither 'alpha' nor 'trimap_logits': {sorted(outputs)}")

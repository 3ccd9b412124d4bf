"""The default inference procedure: pad the inputs to the model's multiple, apply, crop back.

An inference procedure is ``INFERENCE[name](models, **kwargs) -> fn`` with
``fn(variables, batch) -> outputs``: ``models`` / ``variables`` map run names to modules and
their variables (``"main"`` is the config's own model), ``batch`` holds encoded inputs
``[B, H, W, C]`` at the image's size, and the outputs come back at that size. Padding happens in
procedures and nowhere else. Other procedures: ``tiled``-style or paper ones (LSA refinement and
TTA, SGM joint inference) in this package.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp

from jaxmatte.inference import pad as pad_lib
from jaxmatte.models import base
from jaxmatte.registry import INFERENCE

PredictFn = Callable[[Mapping[str, Any], Mapping[str, jax.Array]], dict[str, jax.Array]]


def crop_outputs(outputs: Mapping[str, jax.Array], padded_hw, hw) -> dict[str, jax.Array]:
    """Crops every output at the padded size back to ``hw``; casts floating outputs to float32."""

    def crop(x):
        x = jnp.asarray(x)
        if jnp.issubdtype(x.dtype, jnp.floating):
            x = x.astype(jnp.float32)
        if x.ndim == 4 and tuple(x.shape[1:3]) == tuple(padded_hw):
            x = pad_lib.crop_to(x, hw)
        return x

    return {k: crop(v) for k, v in outputs.items()}


def padded_apply(
    model: Any, variables: Any, batch: Mapping[str, jax.Array], multiple: int, mode: str
) -> dict[str, jax.Array]:
    """``model`` in eval mode on its inputs padded bottom/right with zeros; outputs cropped back."""
    inputs = base.select_inputs(model, batch)
    first = next(iter(inputs.values()))
    hw = tuple(first.shape[1:3])
    padded = {k: pad_lib.pad_to_multiple(v, multiple, mode)[0] for k, v in inputs.items()}
    padded_hw = tuple(next(iter(padded.values())).shape[1:3])
    outputs = model.apply(variables, padded, train=False)
    return crop_outputs(outputs, padded_hw, hw)


@INFERENCE.register("pad_apply")
def pad_apply(models: Mapping[str, Any], *, multiple: int = 1, mode: str = "minimal") -> PredictFn:
    """Pads every input to ``multiple`` (``pad.padded_size`` ``mode``), applies, crops back."""
    model = models["main"]

    def fn(variables: Mapping[str, Any], batch: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
        return padded_apply(model, variables["main"], batch, multiple, mode)

    return fn

"""Preprocessing-op mechanism: parse "op1(args)|op2" specs and apply seeded dict -> dict ops.

An op is registered as a factory: ``@OPS.register("name") def make(**kwargs) -> Op``, where an
``Op`` maps ``(example, seed) -> example``. ``example`` is a dict of tf tensors; ``seed`` is a
``[2]`` int32 tensor for ``tf.random.stateless_*`` that is unique to (run seed, example id,
epoch, op position), so every random draw is reproducible and a resumed run draws the same.

Tensor conventions inside the pipeline (before the final encoding ops):
  image, fg, bg: float32 [H, W, 3], RGB in [0, 1]
  alpha:         float32 [H, W, 1] in [0, 1]
  trimap:        float32 [H, W, 1] holding the 8-bit codes 0 / 128 / 255
  id, epoch:     int64 scalars
"""

from __future__ import annotations

import ast
from typing import Any, Callable

import tensorflow as tf

from jaxmatte.registry import OPS

Example = dict[str, tf.Tensor]
Op = Callable[[Example, tf.Tensor], Example]


def parse_spec(spec: str) -> list[tuple[str, tuple[Any, ...], dict[str, Any]]]:
    """Parses ``"name(1, k=2)|other"`` into ``[(name, args, kwargs), ...]``."""
    out = []
    for part in filter(None, (p.strip() for p in spec.split("|"))):
        try:
            call = ast.parse(part if "(" in part else part + "()", mode="eval").body
            if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Name):
                raise ValueError("not a call")
            args = tuple(ast.literal_eval(a) for a in call.args)
            kwargs = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
        except (SyntaxError, ValueError) as e:
            raise ValueError(f"bad preprocessing op {part!r} in spec {spec!r}: {e}") from None
        out.append((call.func.id, args, kwargs))
    return out


def build(spec: str) -> Callable[[Example, tf.Tensor], Example]:
    """Builds one function applying every op of ``spec`` with its own derived seed.

    Args:
      spec: ops separated by ``|``, e.g. ``"ddc_random_scale(0.8, 1.25)|unknown_crop(512)"``.

    Returns:
      ``fn(example, seed)`` where ``seed`` is a ``[2]`` int32 tensor for the example.
    """
    ops: list[Op] = []
    for name, args, kwargs in parse_spec(spec):
        factory = OPS.get(name)
        try:
            ops.append(factory(*args, **kwargs))
        except TypeError as e:
            raise ValueError(f"preprocessing op {name!r}: {e}") from None

    def apply(example: Example, seed: tf.Tensor) -> Example:
        seeds = tf.random.experimental.stateless_split(seed, num=max(len(ops), 1))
        for i, op in enumerate(ops):
            example = op(dict(example), seeds[i])
        return example

    return apply


def example_seed(run_seed: int, example_id: tf.Tensor, epoch: tf.Tensor) -> tf.Tensor:
    """The ``[2]`` int32 stateless seed of one example in one epoch."""
    base = tf.stack([tf.cast(run_seed, tf.int64), tf.cast(example_id, tf.int64)])
    s = tf.random.experimental.stateless_fold_in(tf.cast(base, tf.int32), tf.cast(epoch, tf.int32))
    return tf.cast(s, tf.int32)

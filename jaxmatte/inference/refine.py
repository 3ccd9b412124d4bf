"""LSA backpropagating refinement (BR): gradient descent on the decoder's BRM tensors A, B."""

from __future__ import annotations

import functools
from typing import Any, Callable, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxmatte.inference import pad as pad_lib
from jaxmatte.registry import INFERENCE

Array = jax.Array
BOUNDARY_MODES = ("paper4", "code8_unknown_side")
# Scalar trimap labels: > 0.75 foreground, < 0.25 background (the code's t > 0.75 / t < 0.25).
_FG_ABOVE, _BG_BELOW = 0.75, 0.25


# --- boundary sets and costs (spec lsa.md §5.3) ---


def trimap_regions(trimap: Array) -> tuple[Array, Array, Array]:
    """Labels [B, H, W] (or [B, H, W, 1]) -> bool (fg, bg, unknown) masks [B, H, W]."""
    t = trimap[..., 0] if trimap.ndim == 4 else trimap
    fg, bg = t > _FG_ABOVE, t < _BG_BELOW
    return fg, bg, ~(fg | bg)


def _any_neighbour(r: Array, eight: bool) -> Array:
    """[B, H, W] bool: some 4- (or 8-) neighbour inside the image lies in `r` (centre excluded)."""
    p = jnp.pad(r, ((0, 0), (1, 1), (1, 1)))
    h, w = r.shape[1:]
    offsets = [(-1, 0), (1, 0), (0, -1), (0, 1)]
    if eight:
        offsets += [(-1, -1), (-1, 1), (1, -1), (1, 1)]
    out = jnp.zeros_like(r)
    for dy, dx in offsets:
        out = out | p[:, 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]
    return out


def boundary_4(region: Array) -> Array:
    """∂R: pixels i whose {i} ∪ N4(i) (inside the image) meets both R and its complement.

    Args: region: bool [B, H, W]. Returns: bool [B, H, W].
    References: paper Sec. 4 (definition of ∂R); spec lsa.md §5.3.
    """
    meets_r = region | _any_neighbour(region, eight=False)
    meets_c = ~region | _any_neighbour(~region, eight=False)
    return meets_r & meets_c


def boundary_sets(trimap: Array, mode: str = "paper4") -> tuple[Array, Array]:
    """(E_pos, E_neg) bool [B, H, W] of a label trimap.

    "paper4": E_pos = ∂{T = 1}, E_neg = ∂{T = 0} (4-neighbourhood, both sides of the boundary).
    "code8_unknown_side" (code): E_pos = unknown pixels with some 8-neighbour in T = 1 (zero
    padding outside the image); E_neg likewise with T = 0.

    References: spec lsa.md §5.3 and §2 ("BR boundary sets").
    """
    fg, bg, unk = trimap_regions(trimap)
    if mode == "paper4":
        return boundary_4(fg), boundary_4(bg)
    if mode == "code8_unknown_side":
        return unk & _any_neighbour(fg, eight=True), unk & _any_neighbour(bg, eight=True)
    raise ValueError(f"boundary mode must be one of {BOUNDARY_MODES}, got {mode!r}")


def clamp01(x: Array) -> Array:
    """clip(x, 0, 1) whose gradient is 1 on [0, 1] inclusive and 0 outside (torch.clamp)."""
    inside = (x >= 0.0) & (x <= 1.0)
    return jnp.where(inside, x, jax.lax.stop_gradient(jnp.clip(x, 0.0, 1.0)))


def _safe_div(num: Array, den: Array) -> Array:
    return jnp.where(den > 0, num / jnp.where(den > 0, den, 1.0), 0.0)


def br_costs(
    alpha: Array,
    alpha_init: Array,
    e_pos: Array,
    e_neg: Array,
    unknown: Array,
    count_offset: float = 0.0,
) -> tuple[Array, Array]:
    """Per-image (C1, C2), each [B].

    C1 = [Σ_{E_pos}(1 − α̂)² + Σ_{E_neg} α̂²] / (|E_pos| + |E_neg| + 2·count_offset) (0 when
    empty); C2 = (Σ_U |α̂ − α̂_init| / |U|)², the square of a mean.

    Args:
      alpha: [B, H, W] clamped prediction α̂.
      alpha_init: [B, H, W] unclamped prediction at A = B = 0 (a constant).
      e_pos, e_neg, unknown: bool [B, H, W].
      count_offset: added to each of |E_pos| and |E_neg| (code: 0.1; paper: 0).

    References: paper Sec. 4.3 (C1, C2); spec lsa.md §5.3.
    """
    f = lambda m: m.astype(alpha.dtype)
    num = jnp.sum(f(e_pos) * (1.0 - alpha) ** 2 + f(e_neg) * alpha**2, axis=(1, 2))
    den = jnp.sum(f(e_pos) + f(e_neg), axis=(1, 2)) + 2.0 * count_offset
    c1 = _safe_div(num, den)
    mean_dev = _safe_div(
        jnp.sum(f(unknown) * jnp.abs(alpha - alpha_init), axis=(1, 2)),
        jnp.sum(f(unknown), axis=(1, 2)),
    )
    return c1, mean_dev**2


# --- the refinement ---


def refine(
    model: nn.Module,
    variables: Mapping[str, Any],
    batch: Mapping[str, Array],
    steps: int = 100,
    lr: float = 20.0,
    *,
    c2_weight: float = 0.1,
    boundary: str = "paper4",
    count_offset: float = 0.0,
) -> dict[str, Array]:
    """Backpropagating refinement of one (padded) batch; each image has its own A, B.

    Runs `model.encode` once, then `steps` plain gradient-descent updates
    A ← A − lr·∇_A C, B ← B − lr·∇_B C with C = C1 + c2_weight·C2 (summed over images, which
    keeps the per-image problems independent in eval mode), differentiating the decoder only, and
    a final decoder pass. Network variables are never updated.

    Args:
      model: an `LSA` module (needs `encode`, `decode`, `brm_zeros`, `canonical_conv_grad`).
      variables: its variables.
      batch: model inputs at a size the model accepts ("trimap" labels {0, 0.5, 1}).
      steps: number of updates (paper: 100; the code's returned matte reflects 99).
      lr: gradient-descent step (paper: 20).
      c2_weight: weight of C2 (paper: 0.1).
      boundary: "paper4" or "code8_unknown_side" (see `boundary_sets`).
      count_offset: see `br_costs`.

    Returns:
      The decoder outputs at the refined A, B ("alpha" clipped, "alpha_raw") plus
      "alpha_init" (clip of the A = B = 0 output), "br_c1_init" / "br_c1" ([B], C1 before/after).

    References: paper Sec. 4.3; spec lsa.md §5.3.
    """
    inputs = {k: batch[k] for k in model.inputs}
    features = jax.lax.stop_gradient(model.apply(variables, inputs, method="encode"))
    # Same values; keeps the decoder's input-gradient convolutions in the form XLA:CPU runs fast
    # inside the loop (see `jaxmatte.models.canonical_conv`).
    decoder = model.clone(canonical_conv_grad=True)

    def decode(brm):
        return decoder.apply(variables, features, brm, method="decode")

    raw_of = lambda brm: decode(brm)["alpha_raw"][..., 0]
    brm0 = model.brm_zeros(inputs["trimap"].shape[0])
    init = jax.lax.stop_gradient(raw_of(brm0))
    e_pos, e_neg = boundary_sets(inputs["trimap"], boundary)
    unknown = trimap_regions(inputs["trimap"])[2]
    costs = functools.partial(
        br_costs, e_pos=e_pos, e_neg=e_neg, unknown=unknown, count_offset=count_offset
    )

    def cost(brm):
        c1, c2 = costs(clamp01(raw_of(brm)), init)
        return jnp.sum(c1 + c2_weight * c2)

    grad = jax.grad(cost)

    def step(_, brm):
        return jax.tree.map(lambda p, g: p - lr * g, brm, grad(brm))

    brm = jax.lax.fori_loop(0, steps, step, brm0)
    out = decode(brm)
    return {
        **out,
        "alpha_init": jnp.clip(init, 0.0, 1.0)[..., None],
        "br_c1_init": costs(jnp.clip(init, 0.0, 1.0), init)[0],
        "br_c1": costs(out["alpha"][..., 0], init)[0],
    }


# --- single-view inference (spec lsa.md §8) ---


def pad_view(x: Array, multiple: int = 64, reflect: int = 16, zero: int = 16) -> Array:
    """LSA test padding of [B, H, W, C]: reflect bottom/right to a multiple, then on every side
    `reflect` px of reflection and `zero` px of constant 0 (in the model's input space).

    Reflection is reflect-101 (torch "reflect"). The output is ceil_m(H) + 2(reflect + zero) by
    ceil_m(W) + 2(reflect + zero).
    """
    h, w = x.shape[1:3]
    ph, pw = -(-h // multiple) * multiple - h, -(-w // multiple) * multiple - w
    x = pad_lib.pad_bottom_right(x, ph, pw, "reflect")  # symbolic sizes too (jax.export)
    r, z = ((0, 0), (reflect, reflect), (reflect, reflect), (0, 0)), zero
    x = jnp.pad(x, r, mode="reflect") if reflect else x
    return jnp.pad(x, ((0, 0), (z, z), (z, z), (0, 0))) if zero else x


def force_known(alpha: Array, trimap: Array) -> Array:
    """α = 1 on T = 1 and 0 on T = 0 ([B, H, W, 1] each)."""
    alpha = jnp.where(trimap > _FG_ABOVE, 1.0, alpha)
    return jnp.where(trimap < _BG_BELOW, 0.0, alpha)


def single_view(
    forward: Callable[[Mapping[str, Array]], Mapping[str, Array]],
    batch: Mapping[str, Array],
    *,
    multiple: int = 64,
    reflect: int = 16,
    zero: int = 16,
    force: bool = True,
    keys: tuple[str, ...] = ("alpha",),
) -> dict[str, Array]:
    """Pads `batch` (spec §8), runs `forward`, clips, crops back and forces the known regions.

    Args:
      forward: padded batch -> outputs with [B, H', W', 1] entries named in `keys`.
      batch: [B, H, W, C] arrays ("trimap" is used for forcing).
      multiple, reflect, zero: see `pad_view` (code: 64, 16, 16).
      force: set α to the trimap on its known regions.
      keys: outputs to return (clipped to [0, 1]).

    Returns:
      {key: float32 [B, H, W, 1]}.
    """
    h, w = batch["trimap"].shape[1:3]
    m = reflect + zero
    out = forward({k: pad_view(v, multiple, reflect, zero) for k, v in batch.items()})
    result = {}
    for key in keys:
        a = jnp.clip(out[key][:, m : m + h, m : m + w].astype(jnp.float32), 0.0, 1.0)
        result[key] = force_known(a, batch["trimap"]) if force else a
    return result


@INFERENCE.register("lsa_refine")
def make_lsa_refine(
    models: Mapping[str, nn.Module],
    *,
    steps: int = 100,
    lr: float = 20.0,
    c2_weight: float = 0.1,
    boundary: str = "paper4",
    count_offset: float = 0.0,
    multiple: int = 64,
    reflect: int = 16,
    zero: int = 16,
    force: bool = True,
) -> Callable[[Mapping[str, Any], Mapping[str, Array]], dict[str, Array]]:
    """Single view with BR: pad (spec §8), refine, clip, crop, force known regions.

    Returns fn(variables, batch) -> {"alpha", "alpha_init"} float32 [B, H, W, 1]. The zero band
    of the padding acts as T = 0 during BR (a code side effect, spec §5.3); it is cropped away.
    """
    if boundary not in BOUNDARY_MODES:
        raise ValueError(f"boundary must be one of {BOUNDARY_MODES}, got {boundary!r}")
    model = models["main"]
    kw = dict(c2_weight=c2_weight, boundary=boundary, count_offset=count_offset)

    def fn(variables, batch):
        inputs = {k: batch[k] for k in model.inputs}
        forward = lambda b: refine(model, variables["main"], b, steps, lr, **kw)
        return single_view(
            forward,
            inputs,
            multiple=multiple,
            reflect=reflect,
            zero=zero,
            force=force,
            keys=("alpha", "alpha_init"),
        )

    return fn

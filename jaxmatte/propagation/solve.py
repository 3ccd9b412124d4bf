"""Differentiable propagation: solve (L + C) x = C alpha* by batched Jacobi-preconditioned CG."""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array, lax

from jaxmatte import conventions
from jaxmatte.propagation.multigrid import multigrid_preconditioner
from jaxmatte.propagation.stencil import add_diagonal, probe_stencil

Matvec = Callable[[Array], Array]
_AXES = (1, 2)


class SolveInfo(NamedTuple):
    """Per-image diagnostics of one propagation solve; every field is [B]."""

    iterations: Array  # int32 CG iterations until this image converged (or maxiter)
    residual: Array  # relative recursive residual ||r|| / ||b|| at exit
    converged: Array  # bool, residual <= tol
    singular: Array  # bool, the image had no known pixel (ridge added or error raised)


def _dot(a: Array, b: Array) -> Array:
    """Per-image inner products of [B, ...] arrays."""
    return jnp.sum(a * b, axis=tuple(range(1, a.ndim)))


def _div(num: Array, den: Array) -> Array:
    """num / den, and 0 where den == 0 (no NaN from converged or empty systems)."""
    ok = den != 0
    return jnp.where(ok, num / jnp.where(ok, den, 1), 0)


def _bc(v: Array, ndim: int = 3) -> Array:
    """[B] -> [B, 1, ..., 1] with `ndim` axes."""
    return v.reshape(v.shape + (1,) * (ndim - 1))


def pcg(
    matvec: Matvec,
    b: Array,
    precond: Matvec,
    guess: Array,
    *,
    tol: float,
    maxiter: int,
) -> tuple[Array, SolveInfo]:
    """Batched preconditioned conjugate gradient in a `lax.while_loop`.

    Each image has its own step sizes and stops (freezes) once ||r|| <= tol ||b||; the loop runs
    until all images converged or `maxiter`. The initial guess is rescaled by the energy-optimal
    factor <g, b> / <g, A g>, so a guess never starts worse than zero in the A-norm (and a guess
    unrelated to b, e.g. in a tangent solve, costs nothing).

    Vectors are [B, ...]: a [B, H, W] grid, or any per-image layout such as the [B, S, T, T]
    active tiles of `tiles.py`; inner products sum over all axes but the first.

    Args:
      matvec: SPD operator [B, ...] -> [B, ...], independent per image.
      b: [B, ...] right-hand side.
      precond: r -> z ~ A^-1 r, symmetric positive definite, independent per image (e.g.
        Jacobi `inv_diag * r` or a multigrid V-cycle).
      guess: [B, ...] initial guess direction.
      tol: relative residual tolerance.
      maxiter: iteration cap.

    Returns:
      (x [B, ...], SolveInfo).

    References:
      Saad, Iterative Methods for Sparse Linear Systems, 2003, Alg. 9.1 (preconditioned CG).
    """
    ag = matvec(guess)
    gamma = _bc(_div(_dot(guess, b), _dot(guess, ag)), b.ndim)
    x = gamma * guess
    r = b - gamma * ag
    z = precond(r)
    bnorm = jnp.sqrt(_dot(b, b))
    thresh = tol * bnorm
    done = jnp.sqrt(_dot(r, r)) <= thresh
    iters = jnp.zeros(b.shape[0], jnp.int32)
    state = (0, x, r, z, _dot(r, z), done, iters)

    def cond(s):
        return (s[0] < maxiter) & ~jnp.all(s[5])

    def body(s):
        it, x, r, p, rz, done, iters = s
        ap = matvec(p)
        step = jnp.where(done, 0, _div(rz, _dot(p, ap)))
        x = x + _bc(step, p.ndim) * p
        r = r - _bc(step, p.ndim) * ap
        z = precond(r)
        rz_new = _dot(r, z)
        beta = jnp.where(done, 0, _div(rz_new, rz))
        iters = iters + (~done).astype(jnp.int32)
        done = done | (jnp.sqrt(_dot(r, r)) <= thresh)
        return it + 1, x, r, z + _bc(beta, p.ndim) * p, rz_new, done, iters

    _, x, r, _, _, done, iters = lax.while_loop(cond, body, state)
    res = _div(jnp.sqrt(_dot(r, r)), bnorm)
    return x, SolveInfo(iters, res, done, jnp.zeros_like(done))


def solve_spd(
    operator: Matvec,
    rhs: Array,
    precond: Matvec,
    guess: Array,
    *,
    tol: float,
    maxiter: int,
) -> tuple[Array, SolveInfo]:
    """x = A^-1 rhs by PCG, differentiable by implicit differentiation (both modes).

    `lax.custom_linear_solve` makes the backward (and tangent) pass one more PCG solve with the
    same operator, so memory does not grow with the iteration count. Gradients reach every array
    `operator` closes over and `rhs`; `precond` and `guess` only change the speed.

    Args:
      operator: SPD x -> A x, [B, ...] -> [B, ...] (any layout `pcg` takes), per image.
      rhs: [B, ...].
      precond: r -> z ~ A^-1 r (no gradient flows through it).
      guess: [B, ...] initial guess direction (see `pcg`).
      tol, maxiter: as in `pcg`.

    Returns:
      (x [B, ...], SolveInfo with singular all False).
    """

    def solve(op: Matvec, b: Array) -> tuple[Array, SolveInfo]:
        return pcg(op, b, precond, guess, tol=tol, maxiter=maxiter)

    return lax.custom_linear_solve(operator, rhs, solve, symmetric=True, has_aux=True)


def _raise_singular(singular: np.ndarray) -> None:
    idx = np.flatnonzero(np.asarray(singular))
    if idx.size:
        raise ValueError(
            f"propagate: images {idx.tolist()} of the batch have no known pixel (confidence all "
            "zero), so L + C is singular; pass on_singular='ridge' or reject these samples."
        )


def propagate(
    matvec: Matvec,
    diag: Array,
    confidence: Array,
    alpha_known: Array,
    *,
    tol: float = conventions.CG_TOL,
    maxiter: int = conventions.CG_MAXITER,
    x0: Array | None = None,
    ridge: float = 0.0,
    on_singular: str = "ridge",
    preconditioner: str = "jacobi",
    stencil: Array | None = None,
    stencil_radius: int = 1,
    basis: Array | None = None,
    return_info: bool = False,
) -> Array | tuple[Array, SolveInfo]:
    """Propagates known alpha: solves (L + C + rho I) x = C alpha* with C = diag(confidence).

    Differentiable in both modes (`jax.grad`, `jax.jvp`) by implicit differentiation through
    `lax.custom_linear_solve`: the backward pass is one more CG solve with the same operator, so
    memory does not grow with the iteration count. Gradients reach `confidence`, `alpha_known`
    and every array the `matvec` closes over (edge weights, the image). `diag`, `x0`, `stencil`
    and `basis` only speed up the solve and receive no gradient.

    Singular systems: an image with no known pixel (all confidence zero) makes L + C singular.
    With on_singular="ridge" (default) a ridge rho = SINGULAR_RIDGE * mean(diag(A)) is added to
    that image only (its answer is then 0, since C alpha* = 0) and `info.singular` flags it; with
    "error" a ValueError names the images (at trace time when inputs are concrete, else from a
    runtime callback). Graph components without a known pixel (zero edge weights) are not
    detected; use `ridge > 0` for them. No path returns NaN.

    Args:
      matvec: x -> L x, [B, H, W] -> [B, H, W], symmetric positive semi-definite per image.
      diag: [B, H, W] diagonal of L (Jacobi preconditioner).
      confidence: [B, H, W] c >= 0, the diagonal of C (0 on unknown pixels).
      alpha_known: [B, H, W] alpha* (used where confidence > 0).
      tol: CG tolerance on ||b - A x||, relative to the residual of the base guess (alpha* on
        known pixels, 0.5 elsewhere; dmp.md Sec. 4.2), so it does not loosen as c grows.
      maxiter: CG iteration cap; `info.converged` reports whether tol was reached.
      x0: optional [B, H, W] initial guess (e.g. coarse-to-fine); default the base guess.
      ridge: relative ridge rho added to every image, rho * mean(diag(A)) I; 0 keeps the exact
        system.
      on_singular: "ridge" or "error", see above.
      preconditioner: "jacobi" (diag only) or "multigrid" (an aggregation V-cycle, see
        `multigrid.multigrid_preconditioner`; needs L as a stencil).
      stencil: optional [B, K, H, W] stencil of L (`stencil.py`) for "multigrid"; default: probed
        from `matvec` with (2 stencil_radius + 1)^2 products.
      stencil_radius: radius of L's stencil when it is probed (1 for 4/8-neighbour grids).
      basis: optional [B, nb, H, W] coarse basis for "multigrid" (default constants, L's null
        space for a graph Laplacian).
      return_info: also return a SolveInfo.

    Returns:
      x [B, H, W] (and SolveInfo when return_info), in the dtype of alpha_known / confidence.

    References:
      Wang et al., Deep Propagation Based Image Matting, IJCAI 2018, Sec. 3.3 (alpha =
      (L + C)^-1 C alpha*); Levin, Lischinski, Weiss, TPAMI 2008, Sec. 3.1 (L + lambda D_S);
      dmp.md Sec. 3-4.
    """
    if on_singular not in ("ridge", "error"):
        raise ValueError(f"on_singular must be 'ridge' or 'error', got {on_singular!r}")
    if preconditioner not in ("jacobi", "multigrid"):
        raise ValueError(f"preconditioner must be 'jacobi' or 'multigrid', got {preconditioner!r}")
    dtype = jnp.result_type(confidence, alpha_known, jnp.float32)
    confidence = confidence.astype(dtype)
    alpha_known = alpha_known.astype(dtype)
    known = confidence > 0
    singular = ~jnp.any(known, axis=_AXES)
    if on_singular == "error":
        if isinstance(singular, jax.core.Tracer):
            jax.debug.callback(_raise_singular, singular)
        else:
            _raise_singular(singular)

    d = lax.stop_gradient(diag.astype(dtype) + confidence)
    rho = ridge + jnp.where(singular, conventions.SINGULAR_RIDGE, 0.0)
    ridge_diag = _bc(rho * jnp.mean(d, axis=_AXES)).astype(dtype)
    if preconditioner == "jacobi":
        inv_diag = _div(jnp.ones_like(d), d + ridge_diag)

        def precond(r: Array) -> Array:
            return inv_diag * r
    else:
        if stencil is None:
            stencil = probe_stencil(matvec, confidence.shape, stencil_radius, dtype)
        shift_diag = lax.stop_gradient(confidence) + ridge_diag
        coeffs = add_diagonal(lax.stop_gradient(stencil).astype(dtype), shift_diag)
        if basis is None:
            basis = jnp.ones_like(confidence)[:, None]
        precond = multigrid_preconditioner(coeffs, basis)
    # Solve for the correction to a base guess: the tolerance is then relative to the base
    # residual, which does not scale with large confidences. The base has no gradient, so
    # x = base + A^-1 (b - A base) keeps the exact implicit derivative A^-1 (db - dA x).
    base = lax.stop_gradient(jnp.where(known, alpha_known, conventions.LABEL_UNKNOWN))
    guess = jnp.zeros_like(base) if x0 is None else lax.stop_gradient(x0.astype(dtype)) - base

    def operator(x: Array) -> Array:
        return matvec(x) + confidence * x + ridge_diag * x

    rhs = confidence * alpha_known - operator(base)
    dx, info = solve_spd(operator, rhs, precond, guess, tol=tol, maxiter=maxiter)
    x = base + dx
    if not return_info:
        return x
    info = jax.tree.map(lax.stop_gradient, info._replace(singular=singular))
    return x, info

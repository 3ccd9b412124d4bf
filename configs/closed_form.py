"""Closed-form matting (Levin et al. 2008): predict-only config, no training or checkpoint."""

import ml_collections

from jaxmatte import conventions

KNOWN_VARIANTS = ("fp64", "multigrid", "tiny")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """Returns the closed-form config.

    Default: pymatting's formulation (hard trimap constraints, eps 1e-7) in float32 with
    Jacobi-PCG on the 8 x 8 tiles that hold unknown pixels, which reproduces
    `pymatting.estimate_alpha_cf` (SAD within 0.5% on all 27 realmatte images).
    `arg` "fp64": the same in float64 (x64). "multigrid": the aggregation V-cycle preconditioner
    (10-15x fewer iterations, slower per iteration on CPU). "tiny": loose solver for tests
    (Jacobi alone in predict too).
    """
    config = ml_collections.ConfigDict()
    config.model = ml_collections.ConfigDict()
    config.model.name = "closed_form"
    config.model.kwargs = ml_collections.ConfigDict(
        {
            "eps": conventions.MATTING_EPS,
            "lam": conventions.MATTING_LAMBDA,
            "constraints": "hard",
            "preconditioner": "jacobi",
            "dtype": "float32",
            "tol": conventions.CG_TOL_CLOSED_FORM,
            "maxiter": conventions.CG_MAXITER_CLOSED_FORM,
            "levels": 0,
            "tiled": True,
        }
    )
    config.x64 = False  # True: main.py traces and runs under jax.enable_x64
    # Host-side shape buckets (jaxmatte/propagation/buckets.py): each image's active tiles are
    # rounded up to slot_steps buckets per octave, so a few compiled programs serve every image
    # ("pad_apply" compiles one per image size). aggregate: the two-level preconditioner's
    # coarse space on 4 x 4 pixel aggregates; its system is built on the active tiles only.
    # aggregate 0: Jacobi alone, on a system built for the image padded to a square whose side
    # is a multiple of size_multiple (the padding in no matting window: same answer).
    config.inference = ml_collections.ConfigDict(
        {
            "name": "closed_form_buckets",
            "kwargs": {"size_multiple": 64, "square": True, "slot_steps": 4, "aggregate": 4},
            "runs": {},
        }
    )
    # Persistent XLA compilation cache in $XDG_CACHE_HOME/jaxmatte/jax (jaxmatte/runtime.py);
    # False (or JAXMATTE_COMPILATION_CACHE=0) turns it off.
    config.compilation_cache = True

    # 8-bit output: round(alpha * 255) (closed-form has no reference saving rule to copy).
    config.eval = ml_collections.ConfigDict({"quantize": "round"})

    config.predict = ml_collections.ConfigDict()
    config.predict.image = ""  # image file or folder
    config.predict.trimap = ""  # trimap file or folder (0/128/255 grey or palette PNGs)
    config.predict.out_dir = ""
    config.predict.batch_size = 1  # images of one size per device call
    config.predict.overwrite = False  # False: keep existing outputs (resume)
    config.predict.skip_bad = False  # True: predict the good inputs, list the bad at the end
    config.predict.snap_trimap = False  # True: move non-0/128/255 values to the nearest code
    config.predict.foreground = False  # True: also <stem>_fg.png

    if arg not in (None, "") + KNOWN_VARIANTS:
        raise ValueError(
            f"configs/closed_form.py: unknown variant {arg!r}; known: "
            f"{', '.join(KNOWN_VARIANTS)} or none"
        )
    if arg == "fp64":
        config.x64 = True
        config.model.kwargs.dtype = "float64"
    if arg == "multigrid":
        config.model.kwargs.preconditioner = "multigrid"
    if arg == "tiny":
        config.model.kwargs.tol = 1e-3
        config.model.kwargs.maxiter = 50
        # Jacobi alone: at this loose tolerance the answer depends on the preconditioner, and
        # tests compare predict's output with the in-graph model (Jacobi) pixel for pixel.
        config.inference.kwargs.aggregate = 0
    return config

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
    (10-15x fewer iterations, slower per iteration on CPU). "tiny": loose solver for tests.
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
    # Whole images, no padding: the solve works at any size.
    config.inference = ml_collections.ConfigDict(
        {"name": "pad_apply", "kwargs": {"multiple": 1, "mode": "minimal"}, "runs": {}}
    )

    # 8-bit output: round(alpha * 255) (closed-form has no reference saving rule to copy).
    config.eval = ml_collections.ConfigDict({"quantize": "round"})

    config.predict = ml_collections.ConfigDict()
    config.predict.image = ""  # image file or folder
    config.predict.trimap = ""  # trimap file or folder (0/128/255 grey or palette PNGs)
    config.predict.out_dir = ""

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
    return config

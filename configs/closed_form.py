"""Closed-form matting (Levin et al. 2008): predict-only config, no training or checkpoint."""

import ml_collections

from jaxmatte import conventions


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """Returns the closed-form config; `arg` "tiny" loosens the solver for tests."""
    config = ml_collections.ConfigDict()
    config.model = ml_collections.ConfigDict()
    config.model.name = "closed_form"
    config.model.kwargs = ml_collections.ConfigDict(
        {
            "eps": conventions.MATTING_EPS,
            "lam": conventions.MATTING_LAMBDA,
            "tol": conventions.CG_TOL,
            "maxiter": conventions.CG_MAXITER,
            "levels": 0,
        }
    )
    config.model.pad_multiple = 1
    config.model.needs_trimap = True

    # 8-bit output: round(alpha * 255) (closed-form has no reference saving rule to copy).
    config.eval = ml_collections.ConfigDict({"quantize": "round"})

    config.predict = ml_collections.ConfigDict()
    config.predict.image = ""  # image file or folder
    config.predict.trimap = ""  # trimap file or folder (0/128/255 grey or palette PNGs)
    config.predict.out_dir = ""

    if arg == "tiny":
        config.model.kwargs.tol = 1e-3
        config.model.kwargs.maxiter = 50
    return config

"""DMP (Wang et al., IJCAI 2018): SegNet + low-level features -> learned affinities -> propagation.

Variants: no arg = the paper recipe (end-to-end SGD, fixed lr 0.1, momentum 0.9, ~20 epochs);
``:quick`` = a CPU run on the built-in synthetic set (< 10 min on 2 cores, shows learning);
``:tiny`` = a seconds-long configuration for tests. Spec: dmp.md.
"""

from ml_collections import ConfigDict

from jaxmatte import config_lib
from jaxmatte import conventions as cv

VARIANTS = ("quick", "tiny")


def get_config(arg: str | None = None) -> ConfigDict:
    if arg and arg not in VARIANTS:
        raise ValueError(f"configs/dmp.py: unknown variant {arg!r}; known: {', '.join(VARIANTS)}")
    c = ConfigDict()
    c.seed = 0
    # Every "(our choice)" of dmp.md is a model kwarg; see jaxmatte/models/dmp.py.
    c.model = ConfigDict(
        {
            "name": "dmp",
            "kwargs": {
                "ts": 64,  # §2.4
                "tl": 64,
                "low_widths": (64, 64),  # §2.3
                "confidence": 0.8,  # paper §2.6
                "logit_clip": 10.0,  # §2.5
                "pair_features": "concat",  # paper; "absdiff" is our option
                "trimap_encoding": "scalar",  # §2.1
                "pad_multiple": 32,  # SegNet input, reflect-padded and cropped back (§2.2)
                "pad_mode": "reflect",
                "tol": cv.CG_TOL,  # §4.2
                "maxiter": cv.CG_MAXITER,
                "preconditioner": "jacobi",  # or "multigrid" (§4.2, same answer)
                "on_singular": "ridge",  # §4.3
                "hard_known_at_eval": True,  # §2.6
                "solver_stats": True,
                "bn_mode": "train",
            },
            "dtype": "float32",
        }
    )
    # The model pads its SegNet input itself and solves at the input size, so the procedure must
    # not pad (padded pixels would become known background seeds of the propagation).
    c.inference = ConfigDict(
        {"name": "pad_apply", "kwargs": {"multiple": 1, "mode": "minimal"}, "runs": {}}
    )
    # Paper Eq. (5): the average of DIM's alpha and composition losses over unknown pixels (§6).
    c.losses = ConfigDict({"dmp_alpha": 0.5, "dmp_composition": 0.5})
    c.loss_kwargs = ConfigDict(
        {
            "dmp_alpha": {"eps": 1e-12, "region": "unknown"},
            "dmp_composition": {"eps": 1e-12, "region": "unknown", "comp_norm": "rgb_norm"},
        }
    )
    # The paper's own 81-image set is not public; jaxmatte trains on Composition-1k with the GCA
    # pipeline (§7.2). The paper resizes whole images to 600 x 800; the pipeline takes square
    # crops, so 512 crops here (the 600 x 800 cost is measured by bench/dmp.py).
    c.data = ConfigDict(
        {
            "name": "synthetic",
            "dir": "",
            "train_split": "train",
            "eval_split": "test",
            "bg_split": "",
            "batch_size": 8,
            "crop_size": 512,
            "shuffle": True,
            "recipe": "dmp",
            "recipe_kwargs": {"keep_fg_bg": True},  # fg / bg for the composition loss
            "pp_train": "",
            "synthetic": {"seed": 0, "size": 640, "num_train": 1800, "num_eval": 50},
        }
    )
    # SGD, fixed lr 0.1, momentum 0.9 (paper); weight decay 5e-4 and clipping at 1.0 (§7.2).
    c.optim = ConfigDict(
        {
            "name": "sgd",
            "lr": 0.1,
            "b1": 0.9,
            "b2": 0.999,
            "eps": 1e-8,
            "momentum": 0.9,
            "nesterov": False,
            "weight_decay": 5e-4,
            "clip_norm": 1.0,
            "schedule": {
                "name": "constant",
                "warmup_steps": 0,
                "warmup_factor": 1.0,
                "milestones": (),
                "factors": (),
                "step_size": 0,
                "total_steps": 0,
                "end_factor": 0.0,
                "power": 1.0,
            },
            "no_decay": (),
            "lr_mult": (),
            "frozen": (),
            "layer_decay": 1.0,
            "num_layers": 0,
            "layer_id_rules": (),
        }
    )
    # ~20 epochs of Composition-1k's 43,100 composites at batch 8 (§7.2).
    c.train = ConfigDict(
        {
            "num_steps": 20 * 43100 // 8,
            "log_every": 100,
            "checkpoint_every": 5000,
            "keep_checkpoints": 3,
            "eval_every": 0,
            "eval_at_start": True,
            "image_every": 2000,
            "num_images": 4,
            "max_nonfinite": 10,
        }
    )
    c.eval = ConfigDict(
        {
            "kind": "alpha",
            "metrics": ("sad", "mse", "grad", "conn"),
            "quantize": "round",
            "headline": ("sad", "mse"),
            "step": -1,
        }
    )
    c.predict = ConfigDict({"image": "", "trimap": "", "out_dir": "", "foreground": False})
    c.predict.update(batch_size=1, overwrite=False, skip_bad=False, snap_trimap=False)
    c.init = ConfigDict({"weights": "", "prefix": ""})

    if arg == "quick":
        c.model.kwargs.update(ts=8, tl=8, low_widths=(8, 8), maxiter=500)
        c.model.kwargs.widths = (8, 16, 16, 32, 32)
        c.data.update(batch_size=8, crop_size=64)
        c.data.synthetic.update(size=96, num_train=256, num_eval=8)
        c.optim.lr = 0.01  # the paper lr 0.1 is not yet tried at these widths (from scratch)
        c.train.update(num_steps=900, log_every=50, checkpoint_every=300, image_every=300)
    elif arg == "tiny":
        c.model.kwargs.update(ts=4, tl=4, low_widths=(4, 4), maxiter=100)
        c.model.kwargs.blocks = (1, 1, 1, 1, 1)
        c.model.kwargs.widths = (4, 4, 8, 8, 8)
        config_lib.make_tiny(c)
        c.data.recipe_kwargs.pixel_scale = config_lib.TINY_PIXEL_SCALE
        # The affinity gradients are small (grad norm ~1e-2): a step of 1 learns within
        # TINY_LEARN_STEPS (0.1, the paper's, gains ~1% there).
        c.optim.lr = 1.0
        c.eval.metrics = ("sad", "mse")
    return c

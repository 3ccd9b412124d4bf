"""TCP (Liu et al., WACV 2021): GCA res_shortcut U-Net + Textural Compensate Path, Composition-1k.

Variants (comma-separated): no arg = the paper recipe (Baseline+TCP+IMRP, 512 crops, global batch
24, 300k steps); ``quick`` = a CPU run on the built-in synthetic set; ``tiny`` = a seconds-long
test configuration; ``baseline`` / ``tcp`` / ``imrp`` = the Table 1 ablation row (default imrp),
e.g. ``configs/tcp.py:quick,baseline``.

Spec choices (tcp.md §2) and where they live: model.kwargs tcp_width, tcp_res_post_act,
tcp_spectral_norm, ffu_source, ffu_mode, ffu_weight, ffu_init, output_act, force_known,
sp_spectral_norm, gca_attention; loss_kwargs eps, region, theta; data.recipe_kwargs.relabel
(tcp_trimap.relabel); init.weights (sp.pretrained, empty = random init); optim.clip_norm.
The SP trimap's erosion range (sem_trimap.max_kernel, 1..29) is the gca_erode op's default.
"""

from ml_collections import ConfigDict

from jaxmatte import config_lib

ABLATIONS = ("baseline", "tcp", "imrp")
SIZES = ("quick", "tiny")
VARIANTS = SIZES + ABLATIONS


def _ablation(c: ConfigDict, row: str) -> None:
    """Table 1 (tcp.md §11): model.tcp, train.tcp_trimap and loss.w_bg in one switch.

    baseline: SP alone, one trimap, L_α only. tcp: + TCP, both paths see the SP trimap, L_α only.
    imrp: + the noisy TCP trimap (recipe "tcp") and L = 0.9 L_α + 0.1 L_bg.
    """
    c.model.kwargs.ablation = row
    if row == "imrp":
        return
    c.data.recipe = "gca"
    c.data.recipe_kwargs = ConfigDict({})
    # Without IMRP the loss is GCA's alpha loss alone (our choice: weight 1, not w1 = 0.9).
    c.losses = ConfigDict({"tcp_alpha": 1.0})
    c.loss_kwargs = ConfigDict({"tcp_alpha": {"eps": 1e-6, "region": "sem"}})


def get_config(arg: str | None = None) -> ConfigDict:
    parts = [p for p in (arg or "").split(",") if p]
    unknown = [p for p in parts if p not in VARIANTS]
    if unknown or sum(p in SIZES for p in parts) > 1 or sum(p in ABLATIONS for p in parts) > 1:
        raise ValueError(
            f"configs/tcp.py: unknown variant {arg!r}; known: {', '.join(VARIANTS)} "
            "(at most one of quick/tiny, optionally with one ablation, comma-separated)"
        )
    c = ConfigDict()
    c.seed = 0
    c.model = ConfigDict(
        {
            "name": "tcp",
            "kwargs": {
                # Semantic path = GCA res_shortcut_encoder_29 / decoder_22 (tcp.md §4).
                "widths": (32, 64, 128, 256, 512),
                "enc_blocks": (3, 4, 4, 2),
                "dec_blocks": (2, 3, 3, 2),
                "sp_spectral_norm": True,
                "gca_attention": False,
                # TCP and FFU (tcp.md §2, §5).
                "tcp_width": 32,
                "tcp_res_post_act": False,
                "tcp_spectral_norm": False,
                "ffu_source": "enc_x1",
                "ffu_mode": "add",
                "ffu_weight": "scalar",
                "ffu_init": 1.0,
                "output_act": "tanh",
                "force_known": True,
                "ablation": "imrp",
                # Synced BN: one jit over the global mesh, so "train" BN statistics are global.
                "bn_mode": "train",
            },
            "dtype": "float32",
        }
    )
    # Reflect padding (tcp.md §11) is not a pad_apply mode yet; "minimal" pads with zeros.
    c.inference = ConfigDict(
        {"name": "pad_apply", "kwargs": {"multiple": 32, "mode": "minimal"}, "runs": {}}
    )
    # L = 0.9 L_α + 0.1 L_bg, θ = 0.1 (tcp.md §7).
    c.losses = ConfigDict({"tcp_alpha": 0.9, "tcp_bg": 0.1})
    c.loss_kwargs = ConfigDict(
        {
            "tcp_alpha": {"eps": 1e-6, "region": "sem"},
            "tcp_bg": {"eps": 1e-6, "region": "sem", "theta": 0.1},
        }
    )
    c.data = ConfigDict(
        {
            "name": "synthetic",
            "dir": "",
            "train_split": "train",
            "eval_split": "test",
            "bg_split": "",
            "batch_size": 24,
            "crop_size": 512,
            "shuffle": True,
            # GCA pipeline with two trimaps, "trimap" (SP) and "trimap_tcp" (tcp.md §8, §9).
            "recipe": "tcp",
            "recipe_kwargs": {"relabel": "alpha_threshold"},
            "pp_train": "",
            "synthetic": {"seed": 0, "size": 640, "num_train": 1800, "num_eval": 50},
        }
    )
    # Adam(0.5, 0.999), linear warm-up 7.5k to 4e-4, cosine to 0 at 300k, no decay (§10).
    c.optim = ConfigDict(
        {
            "name": "adam",
            "lr": 4e-4,
            "b1": 0.5,
            "b2": 0.999,
            "eps": 1e-8,
            "momentum": 0.0,
            "nesterov": False,
            "weight_decay": 0.0,
            "clip_norm": 0.0,
            "schedule": {
                "name": "cosine",
                "warmup_steps": 7500,
                "warmup_factor": 0.0,
                "milestones": (),
                "factors": (),
                "step_size": 0,
                "total_steps": 300_000,
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
    c.train = ConfigDict(
        {
            "num_steps": 300_000,
            "log_every": 100,
            "checkpoint_every": 5000,
            "keep_checkpoints": 3,
            "eval_every": 0,
            "eval_at_start": False,
            "image_every": 2000,
            "num_images": 4,
            "max_nonfinite": 10,
        }
    )
    c.eval = ConfigDict(
        {
            "kind": "alpha",
            # Composition-1k, DIM metrics over the unknown region (tcp.md §11).
            "metrics": ("sad", "mse", "grad", "conn"),
            "quantize": "round",
            "headline": ("sad", "mse", "grad", "conn"),
            "step": -1,
        }
    )
    c.predict = ConfigDict({"image": "", "trimap": "", "out_dir": "", "foreground": False})
    c.predict.update(batch_size=1, overwrite=False, skip_bad=False, snap_trimap=False)
    # sp.pretrained: GCA's ImageNet encoder weights from a local file when given.
    c.init = ConfigDict({"weights": "", "prefix": ""})

    if "quick" in parts:
        c.model.kwargs.update(
            widths=(16, 32, 64, 64, 128), enc_blocks=(1, 1, 1, 1), dec_blocks=(1, 1, 1, 1)
        )
        c.model.kwargs.tcp_width = 16
        c.data.update(batch_size=8, crop_size=64)
        c.data.synthetic.update(size=96, num_train=256, num_eval=8)
        c.train.update(num_steps=400, log_every=20, checkpoint_every=100, image_every=100)
        c.train.eval_at_start = True
        c.optim.lr = 1e-3
        c.optim.schedule.update(warmup_steps=20, total_steps=400)
    elif "tiny" in parts:
        c.model.kwargs.update(
            widths=(8, 8, 16, 16, 16), enc_blocks=(1, 1, 1, 1), dec_blocks=(1, 1, 1, 1)
        )
        c.model.kwargs.tcp_width = 8
        config_lib.make_tiny(c)
        c.data.recipe_kwargs.pixel_scale = config_lib.TINY_PIXEL_SCALE
        # Tiny spectral-normalised nets need a larger step to learn in TINY_LEARN_STEPS.
        c.optim.lr = 1e-2
        c.optim.schedule.update(warmup_steps=2, total_steps=config_lib.TINY_LEARN_STEPS)
        c.eval.metrics = ("sad", "mse")
        c.eval.headline = ("sad", "mse")
    for row in ABLATIONS:
        if row in parts:
            _ablation(c, row)
    return c

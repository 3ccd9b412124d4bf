"""DDC (Liu et al., AAAI 2025): ViTMatte-S on RGB, trained from trimap labels only.

Variants: no arg = the paper recipe (AM-2K, 512 crops, global batch 32, 5625 steps);
``:quick`` = the README run on the built-in synthetic set (< 10 min on a 2-core CPU);
``:tiny`` = a few-second configuration for tests; ``:bf16`` = the model in bfloat16;
``:tiled`` = predict/eval over overlapping tiles within a memory budget. Combine with commas,
e.g. ``:tiny,tiled``.
"""

from ml_collections import ConfigDict

from jaxmatte import config_lib, optim

KNOWN_VARIANTS = ("quick", "tiny", "bf16", "tiled")


def optim_config() -> ConfigDict:
    """The DDC / ViTMatte recipe (spec ddc_vitmatte.md §6; detectron2 AdamW defaults).

    Paths are "/"-joined Flax parameter paths such as "backbone/blocks_3/attn/qkv/kernel".
    """
    return optim.optim_config(
        "adamw",
        lr=5e-4,
        b1=0.9,
        b2=0.999,
        eps=1e-8,
        weight_decay=0.1,
        # re.search patterns; a match means no weight decay: torch LayerNorms of the ViT blocks
        # (not the residual blocks' channel-LNs), every BatchNorm, the position embedding.
        no_decay=(
            r"(^|/)backbone/blocks_\d+/norm[12]/",
            r"(^|/)bn/",
            r"(^|/)backbone/pos_embed$",
        ),
        layer_decay=0.65,
        num_layers=12,
        # (pattern, id) rules, first match wins; id None = num_layers + 1 (factor 1); a named
        # group "block" adds int(block) to id. Unmatched parameters get num_layers + 1.
        layer_id_rules=(
            (r"(^|/)backbone/blocks_\d+/residual/", None),
            (r"(^|/)backbone/(patch_embed|pos_embed)(/|$)", 0),
            (r"(^|/)backbone/blocks_(?P<block>\d+)/", 1),
        ),
        clip_norm=0.0,  # DDC: no clipping
        # 250-step warm-up from 0.001, then x0.1 at step 3375 and x0.05 at 5062 (absolute).
        schedule={
            "name": "multistep",
            "warmup_steps": 250,
            "warmup_factor": 0.001,
            "milestones": (3375, 5062),
            "factors": (0.1, 0.05),
        },
    )


def get_config(arg: str | None = None) -> ConfigDict:
    c = ConfigDict()
    c.seed = 0
    c.model = ConfigDict(
        {
            "name": "vitmatte_s",
            # in_channels 3: DDC is trimap-free, trimaps are labels, not inputs.
            "kwargs": {"in_channels": 3},
            "dtype": "float32",  # compute dtype; "bfloat16" keeps params/optimiser/loss in fp32
        }
    )
    # Whole images are zero-padded to a multiple of 32 with ViTMatte's quirk (spec 4.1).
    c.inference = ConfigDict(
        {"name": "pad_apply", "kwargs": {"multiple": 32, "mode": "vitmatte_quirk"}, "runs": {}}
    )
    # L = L_known + 10 L_DDC (ddc_vitmatte.md 3.4).
    c.losses = ConfigDict({"known_l1": 1.0, "ddc": 10.0})
    c.loss_kwargs = ConfigDict({"ddc": {"window": 11, "topk": 11, "mode": "ddc", "border": "zero"}})

    c.data = ConfigDict(
        {
            "name": "synthetic",
            "dir": "",
            "train_split": "train",
            "eval_split": "test",
            "bg_split": "",
            "batch_size": 32,
            "crop_size": 512,
            "shuffle": True,
            # DDC online pipeline (ddc_vitmatte.md 5.2), built at crop_size by data/recipes.py;
            # augment="crop_only" reproduces the released code. A non-empty pp_train replaces it.
            "recipe": "ddc",
            "recipe_kwargs": {"augment": "paper", "scale": (0.8, 1.25)},
            "pp_train": "",
            # Eval/predict inputs go through the same encoding ops that end the recipe.
            "pp_eval": "normalize(('image',))|trimap_to_label(('trimap',))",
            "synthetic": {"seed": 0, "size": 640, "num_train": 1800, "num_eval": 50},
        }
    )
    c.optim = optim_config()
    c.train = ConfigDict(
        {
            "num_steps": 5625,
            "log_every": 50,
            "checkpoint_every": 562,
            "keep_checkpoints": 3,
            "eval_every": 0,
            "eval_at_start": True,
            "image_every": 500,
            "num_images": 4,
            "max_nonfinite": 10,  # consecutive skipped non-finite steps before the run stops
        }
    )
    c.eval = ConfigDict(
        {
            "kind": "alpha",
            "metrics": (
                "sad",
                "mse",
                "grad",
                "conn",
                "sad_whole",
                "mad_whole",
                "mse_whole",
                "grad_whole_dim",
                "conn_whole",
                "sad_t",
                "mse_t",
            ),
            "quantize": "floor",  # PNG = floor(alpha * 255), as the DDC/ViTMatte code saves it
            # Printed against the untrained model at the end: DDC reports whole-image metrics.
            "headline": ("sad_whole", "mad_whole", "sad"),
            "step": -1,
        }
    )
    c.predict = ConfigDict({"image": "", "trimap": "", "out_dir": "", "foreground": False})
    c.predict.update(batch_size=1, overwrite=False, skip_bad=False, snap_trimap=False)
    # Converted weights (a `jaxmatte.convert` folder) merged at `prefix` of a fresh model.
    c.init = ConfigDict({"weights": "", "prefix": ""})

    parts = [p for p in (arg or "").split(",") if p]
    unknown = [p for p in parts if p not in KNOWN_VARIANTS]
    if unknown:
        raise ValueError(
            f"configs/ddc.py: unknown variant {unknown[0]!r}; known: {', '.join(KNOWN_VARIANTS)} "
            "or none, comma-separated to combine (e.g. tiny,tiled)"
        )
    for part in parts:
        if part == "quick":
            c.data.update(batch_size=8, crop_size=128)
            c.data.synthetic.update(size=160, num_train=256, num_eval=8)
            c.train.update(num_steps=200, log_every=20, checkpoint_every=50, image_every=50)
            c.optim.schedule.update(warmup_steps=20, milestones=(140, 180))
        elif part == "tiny":
            c.model.kwargs.update(
                dim=32,
                depth=2,
                num_heads=2,
                window_blocks=(0,),
                residual_blocks=(1,),
                convstream_out=(4, 8, 16),
                fusion_out=(16, 8, 8, 8),
                head_mid=4,
            )
            config_lib.make_tiny(c)
            c.optim.update(num_layers=2)
            c.optim.schedule.update(warmup_steps=2, milestones=(4, 5))
            c.eval.metrics = ("sad", "mse", "sad_whole", "mad_whole")
        elif part == "bf16":
            c.model.dtype = "bfloat16"
        elif part == "tiled":
            # Whole images of any size: overlapping tiles, the largest that fits 2 GB of XLA buffers
            # (jaxmatte/inference/tiled.py; global attention then sees one tile).
            c.inference = ConfigDict(
                {
                    "name": "tiled",
                    "kwargs": {
                        "tile": 0,
                        "overlap": 64,
                        "memory_budget_mb": 2048.0,
                        "multiple": 32,
                        # run the program compiled as the budget measured it (XLA:CPU: YNNPACK
                        # fusions off, their scratch is not in memory_analysis)
                        "accounted_compile": True,
                        # malloc blocks >= 1 MiB by mmap, returned when freed (glibc; 0 = its
                        # dynamic default, which keeps ~20% more resident at 2048²)
                        "mmap_threshold_kib": 1024,
                    },
                    "runs": {},
                }
            )
    return c

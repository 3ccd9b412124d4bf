"""SGM Net-M (Zhou et al., arXiv 2103.17020): non-local matting + refinement, joint inference.

Variants: no arg = the paper recipe (GCA pipeline, 512 crops, batch 20, 400k Adam steps, lr 4e-4
with warm-up + cosine, sgm.md §3.7); ``:quick`` = a CPU run on the built-in synthetic set
(< 10 min on 2 cores); ``:tiny`` = a seconds-long test configuration. ``joint``, alone or after a
size (``:joint``, ``:quick,joint``, ``:tiny,joint``), adds the trimap-free joint inference
(sgm.md §4): its procedure "sgm_joint" runs the trained Net-T named in
``inference.runs.trimap_net`` (the matching ``configs/sgm_trimap.py`` variant; its workdir is
given on the command line) and takes an image and a coarse mask (``predict.mask``), no trimap.
"""

from ml_collections import ConfigDict

from jaxmatte import config_lib
from jaxmatte.data import recipes

VARIANTS = ("quick", "tiny", "joint")
TINY_MODEL = {
    "width": 8,
    "encoder_blocks": (1, 1, 1, 1),
    "decoder_blocks": (1, 1, 1, 1),
    "refine_width": 8,
}


def get_config(arg: str | None = None) -> ConfigDict:
    parts = [p for p in (arg or "").split(",") if p]
    joint = "joint" in parts
    sizes = [p for p in parts if p != "joint"]
    if any(p not in VARIANTS for p in parts) or len(sizes) > 1:
        raise ValueError(
            f"configs/sgm_matting.py: unknown variant {arg!r}; known: quick, tiny, joint, "
            "quick,joint, tiny,joint or none"
        )
    arg = sizes[0] if sizes else None
    c = ConfigDict()
    c.seed = 0
    c.model = ConfigDict(
        {
            "name": "sgm_matting",
            "kwargs": {
                # Every "(our choice)" / "(GCA)" of sgm.md §3.3-3.5 is a key here.
                "stem_relu": True,
                "final": "paper",  # "gca" = plain conv with bias
                "refine": True,  # False = the NLM ablation
                "refine_in": "alpha",  # "alpha+rgb"
                "lna": {
                    "region_scale_on": "query",  # "key" = GCA's code
                    "dropout_rate": 0.1,
                    "w_bn_init": 1e-3,
                    "phi_depthwise": True,
                    "region_eps": 1.0,
                },
            },
            "dtype": "float32",
        }
    )
    c.inference = ConfigDict(
        {"name": "pad_apply", "kwargs": {"multiple": 32, "mode": "minimal"}, "runs": {}}
    )
    # L = L_coarse + L_refined, each L_alpha + L_hard (top 50 % of the unknown region).
    c.losses = ConfigDict({"sgm_matting": 1.0})
    c.loss_kwargs = ConfigDict(
        {"sgm_matting": {"p": 0.5, "hard_weight": 1.0, "refined_weight": 1.0, "region": "unknown"}}
    )
    c.data = ConfigDict(
        {
            "name": "synthetic",
            "dir": "",
            "train_split": "train",
            "eval_split": "test",
            "bg_split": "",
            "batch_size": 20,
            "crop_size": 512,
            "shuffle": True,
            "recipe": "sgm_m",  # GCA's pipeline (data_and_metrics.md §3.2)
            "recipe_kwargs": {},
            "pp_train": "",
            "pp_eval": "normalize(('image',))|trimap_to_label(('trimap',))",
            "synthetic": {"seed": 0, "size": 640, "num_train": 1800, "num_eval": 50},
        }
    )
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
                "warmup_steps": 5000,  # GCA's warm-up (our choice; the paper gives no length)
                "warmup_factor": 0.0,
                "milestones": (),
                "factors": (),
                "step_size": 0,
                "total_steps": 400_000,
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
            "num_steps": 400_000,
            "log_every": 100,
            "checkpoint_every": 10_000,
            "keep_checkpoints": 3,
            "eval_every": 0,
            "eval_at_start": False,
            "image_every": 10_000,
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
        c.model.kwargs.update(
            width=16, encoder_blocks=(1, 2, 2, 1), decoder_blocks=(1, 1, 1, 1), refine_width=16
        )
        c.data.update(batch_size=8, crop_size=64)
        c.data.synthetic.update(size=160, num_train=256, num_eval=8)
        c.optim.update(lr=1e-3)
        c.optim.schedule.update(warmup_steps=20, total_steps=300)
        c.train.update(num_steps=300, log_every=20, checkpoint_every=100, image_every=100)
        c.train.eval_at_start = True
    elif arg == "tiny":
        c.model.kwargs.update(TINY_MODEL)
        config_lib.make_tiny(c)
        c.data.recipe_kwargs.pixel_scale = config_lib.TINY_PIXEL_SCALE
        c.data.synthetic.num_train = 8
        c.optim.lr = 3e-3  # learns within TINY_LEARN_STEPS
        c.optim.schedule.update(warmup_steps=2, total_steps=config_lib.TINY_LEARN_STEPS)
        c.eval.metrics = ("sad", "mse")
    if joint:
        # Pixel sizes at the recipe's scale (``:tiny`` works on 48-px images).
        scale = c.data.recipe_kwargs.get("pixel_scale", 1.0)
        net_t = "configs/sgm_trimap.py" + (f":{arg}" if arg else "")
        c.inference = ConfigDict(
            {
                "name": "sgm_joint",
                "kwargs": {
                    "fusion": "soft",  # "hard" = JIH
                    "fusion_alpha": "refined",  # "coarse" = the "-c" variants
                    "ji_trimap": "hard",  # one-hot argmax (our choice); "soft" = P
                    "seg_erosion": recipes.px(20, scale),
                    "seg_blur": recipes.px(31, scale, odd=True),
                    "mask_threshold": 0.5,
                    "multiple": 32,
                    # "softseg" = no Net-T: Net-M on the trimap read off the raw soft
                    # segmentation (our ablation baseline; band = its unknown P_fg range).
                    "trimap_source": "net_t",
                    "softseg_band": 0.05,
                },
                "runs": {"trimap_net": {"config": net_t, "workdir": ""}},
            }
        )
        # Trimap-free results (†) are computed on the whole image (sgm.md §5).
        c.eval.metrics = ("sad_whole", "mse_whole")
        c.eval.headline = ("sad_whole", "mse_whole")
        c.predict = ConfigDict({"image": "", "mask": "", "out_dir": "", "foreground": False})
        c.predict.update(batch_size=1, overwrite=False, skip_bad=False, snap_trimap=False)
        # Evaluation gives Net-T the soft segmentation of a random erosion trimap (training ops).
        c.data.pp_eval = (
            recipes.sgm_t_inputs(scale, target=False)
            + "|normalize(('image',))|trimap_to_label(('trimap',))"
        )
    return c

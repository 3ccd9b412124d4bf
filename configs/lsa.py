"""LSA-Matting (Wang et al., arXiv 2112.13809): ResNet-50-D + eSE U-Net, multi-scale loss, BR, TTA.

Variants (comma-separated): no arg = the paper recipe with the Composition-1k protocol (RF + CA,
single view, no BR/TTA; spec lsa.md §1, §8); ``comp1k_tta`` = the same with the 24-view TTA row;
``alphamatting`` = the alphamatting.com protocol (200 epochs, blur augmentation, 24-view TTA with
BR in every view); ``code`` = every reference-code option of spec §2 instead of the paper's;
``quick`` = a CPU run on the built-in synthetic set; ``tiny`` = a seconds-long test
configuration. E.g. ``configs/lsa.py:tiny,code``.

Spec choices (lsa.md §2) and where they live: loss_kwargs.lsa_multiscale.overshoot_forgiveness,
eps2, denominator_offset; data.recipe_kwargs gamma_mode, ca_per_channel, trimap, p;
model.kwargs trimap_code, head_upsample, use_brm; inference.kwargs.refine_kwargs boundary,
steps (100 paper, 99 the code's effective count), count_offset; optim.weight_decay_rules (code:
1e-5 on BN parameters; not read by jaxmatte.optim yet). RF (foreground re-estimation) is
offline: data.dir must hold the re-estimated AIM foregrounds (`data_prep`).
"""

from ml_collections import ConfigDict

from jaxmatte import config_lib
from jaxmatte.optim import optim_config, schedule_config

PROTOCOLS = ("comp1k_tta", "alphamatting")
SIZES = ("quick", "tiny")
VARIANTS = SIZES + PROTOCOLS + ("code",)

# spec §6: one sample per COCO background (43,100) per epoch at batch 16 -> ceil = 2,694 steps
# (torch DataLoader, drop_last=False); lr halved every 20 epochs, stepped per iteration (§7).
AIM_BACKGROUNDS = 43_100
BATCH = 16
STEPS_PER_EPOCH = -(-AIM_BACKGROUNDS // BATCH)


def _single_view() -> dict:
    """Composition-1k inference (spec §8): pad 64 + 16 reflect + 16 zero, clip, crop, force
    known; sides above 2176 resized (tools/test.py)."""
    return {
        "scales": (1.0,),
        "dihedral": False,
        "refine": False,
        "refine_kwargs": {
            "steps": 100,
            "lr": 20.0,
            "c2_weight": 0.1,
            "boundary": "paper4",
            "count_offset": 0.0,
        },
        "multiple": 64,
        "reflect": 16,
        "zero": 16,
        "force": True,
        "max_size": 2176,
    }


def get_config(arg: str | None = None) -> ConfigDict:
    parts = [p for p in (arg or "").split(",") if p]
    unknown = [p for p in parts if p not in VARIANTS]
    if unknown or sum(p in SIZES for p in parts) > 1 or sum(p in PROTOCOLS for p in parts) > 1:
        raise ValueError(
            f"configs/lsa.py: unknown variant {arg!r}; known: {', '.join(VARIANTS)} "
            "(at most one of quick/tiny and one protocol, plus optionally code; comma-separated)"
        )
    epochs = 200 if "alphamatting" in parts else 100
    c = ConfigDict()
    c.seed = 0
    c.model = ConfigDict(
        {
            "name": "lsa",
            "kwargs": {
                "decoder_widths": (512, 256, 128, 64, 64),
                "head_width": 32,
                "head_upsample": "bilinear",
                "encoder_blocks": (3, 4, 6, 3),
                "encoder_block": "bottleneck",
                "stem_width": 64,
                "trimap_code": "code",  # T/255 (§3.3)
                "use_brm": True,
                "brm_grids": (8, 16, 32, 64),
                "bn_mode": "train",  # BN not frozen (§3.1)
            },
            "dtype": "float32",
        }
    )
    c.inference = ConfigDict({"name": "lsa_tta", "kwargs": _single_view(), "runs": {}})
    # L = Σ_l 2^-l L_l (§4), paper target (no overshoot forgiveness), code's ε² and +1.
    c.losses = ConfigDict({"lsa_multiscale": 1.0})
    c.loss_kwargs = ConfigDict(
        {
            "lsa_multiscale": {
                "levels": 5,
                "eps2": 1e-6,
                "denominator_offset": 1.0,
                "overshoot_forgiveness": False,
            }
        }
    )
    c.data = ConfigDict(
        {
            "name": "aim",  # data.dir: AIM with re-estimated foregrounds (RF, §5.1) + COCO bgs
            "dir": "",
            "train_split": "train",
            "eval_split": "test",
            "bg_split": "bg",
            "batch_size": BATCH,
            "crop_size": 640,
            "shuffle": True,
            "recipe": "lsa",
            "recipe_kwargs": {
                "trimap": "dilate",
                "gamma_mode": "paper",
                "ca_per_channel": False,
                "blur": False,
                "p": 0.3,
            },
            "pp_train": "",
            "synthetic": {"seed": 0, "size": 640, "num_train": 1800, "num_eval": 50},
        }
    )
    # Adam 5e-5 with coupled L2 1e-4 (torch Adam), halved every 20 epochs (§7).
    c.optim = optim_config(
        "adam_l2",
        5e-5,
        weight_decay=1e-4,
        schedule=schedule_config("step_halving", step_size=20 * STEPS_PER_EPOCH, gamma=0.5),
    )
    c.train = ConfigDict(
        {
            "num_steps": epochs * STEPS_PER_EPOCH,
            "log_every": 100,
            "checkpoint_every": 10 * STEPS_PER_EPOCH,  # checkpoint + Comp-1k eval every 10 epochs
            "keep_checkpoints": 3,
            "eval_every": 10 * STEPS_PER_EPOCH,
            "eval_at_start": False,
            "image_every": 2000,
            "num_images": 4,
            "max_nonfinite": 10,
        }
    )
    c.eval = ConfigDict(
        {
            "kind": "alpha",
            "metrics": ("sad", "mse", "grad", "conn"),  # official DIM conventions (§9)
            "quantize": "round",  # our choice: the spec does not fix the 8-bit rule
            "headline": ("sad", "mse", "grad", "conn"),
            "step": -1,
        }
    )
    # predict also writes <stem>_fg.png: LSA Alg. 2 on the photo under the predicted alpha.
    c.predict = ConfigDict({"image": "", "trimap": "", "out_dir": "", "foreground": True})
    c.predict.update(batch_size=1, overwrite=False, skip_bad=False, snap_trimap=False)
    # ImageNet ResNet-50-D (mmcls or timm via jaxmatte.convert; trimap input channel zero).
    c.init = ConfigDict({"weights": "", "prefix": "encoder"})

    if "comp1k_tta" in parts:
        c.inference.kwargs.update(scales=(0.8, 1.0, 1.25), dihedral=True)
    if "alphamatting" in parts:
        c.inference.kwargs.update(scales=(0.8, 1.0, 1.25), dihedral=True, refine=True)
        c.inference.kwargs.max_size = 0
        c.data.recipe_kwargs.blur = True  # fg/bg Gaussian blur, p = 0.3 (§6 step 12)
    if "code" in parts:
        c.loss_kwargs.lsa_multiscale.overshoot_forgiveness = True
        c.data.recipe_kwargs.update(trimap="distance_band", gamma_mode="code", ca_per_channel=True)
        c.inference.kwargs.refine_kwargs.update(
            boundary="code8_unknown_side", steps=99, count_offset=0.1
        )
        # The code decays BN scales/biases by 1e-5 instead of 1e-4, except the shortcut
        # "downsample" BNs. jaxmatte.optim has no per-pattern decay value yet: the rules
        # ((pattern, weight_decay), ...; first match wins) are recorded here for it.
        c.optim.weight_decay_rules = ((r"/downsample/bn/", 1e-4), (r"(^|/)bn/", 1e-5))
    if "quick" in parts:
        c.model.kwargs.update(
            decoder_widths=(64, 32, 32, 16, 16),
            head_width=16,
            encoder_blocks=(1, 1, 1, 1),
            encoder_block="basic",
            stem_width=16,
        )
        c.data.update(name="synthetic", dir="", bg_split="", batch_size=8, crop_size=64)
        c.data.recipe_kwargs.update(p=0.3)
        c.data.synthetic.update(size=96, num_train=256, num_eval=8)
        c.optim.lr = 5e-4
        c.optim.schedule.step_size = 150
        c.train.update(
            num_steps=400, log_every=20, checkpoint_every=100, eval_every=0, image_every=100
        )
        c.train.eval_at_start = True
        c.inference.kwargs.update(multiple=32, reflect=8, zero=8, max_size=0)
        c.inference.kwargs.refine_kwargs.steps = 10
    elif "tiny" in parts:
        c.model.kwargs.update(
            decoder_widths=(16, 16, 8, 8, 8),
            head_width=8,
            encoder_blocks=(1, 1, 1, 1),
            encoder_block="basic",
            stem_width=8,
        )
        config_lib.make_tiny(c, name="synthetic", dir="", bg_split="")
        c.data.recipe_kwargs.pixel_scale = config_lib.TINY_PIXEL_SCALE
        c.optim.lr = 5e-3  # learns within TINY_LEARN_STEPS (halved once)
        c.optim.schedule.step_size = config_lib.TINY_LEARN_STEPS // 2
        c.train.update(
            num_steps=6,
            log_every=2,
            checkpoint_every=2,
            eval_every=0,
            image_every=3,
            num_images=2,
        )
        # Smallest LSA-style padding that keeps a multiple of 32: ceil32 + 2·(8 + 8).
        c.inference.kwargs.update(multiple=32, reflect=8, zero=8, max_size=0)
        c.inference.kwargs.refine_kwargs.steps = 2
        c.eval.metrics = ("sad", "mse")
        c.eval.headline = ("sad", "mse")
    return c

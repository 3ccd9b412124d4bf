"""SGM Net-T (Zhou et al., arXiv 2103.17020): trimap generation from RGB + soft segmentation.

Variants: no arg = the paper recipe (AIM composites, 512 patches, batch 10, 129,300 SGD steps,
lr 1e-3 with poly decay, sgm.md §2.4); ``:quick`` = a CPU run on the built-in synthetic set
(< 10 min on 2 cores); ``:tiny`` = a seconds-long test configuration. Net-T's eval is a trimap
eval (pixel accuracy, mean IoU over bg/unknown/fg).

The paper initialises the backbone from torchvision's ``resnet50-19c8e357.pth`` with the first
conv widened to 5 channels (channels 3-4 = copies of the pretrained channels 0-1, sgm.md §2.2);
set ``init.weights`` to the converted checkpoint for that.
"""

from ml_collections import ConfigDict

from jaxmatte import config_lib
from jaxmatte.data import recipes

VARIANTS = ("quick", "tiny")


def eval_ops(pixel_scale: float = 1.0) -> str:
    """Evaluation makes Net-T's inputs and target with the training ops, seeded per image."""
    return recipes.sgm_t_inputs(pixel_scale) + "|normalize(('image',))|trimap_to_label(('trimap',))"


def get_config(arg: str | None = None) -> ConfigDict:
    c = ConfigDict()
    c.seed = 0
    c.model = ConfigDict(
        {
            "name": "sgm_trimap",
            "kwargs": {
                # Every "(our choice)" / "(code lineage)" of sgm.md §2.2 is a key here.
                "aspp_rates": (6, 12, 18),  # (1, 1, 1) = the fully literal table
                "aspp_dropout": 0.5,
                "decoder_dropout": (0.5, 0.1),
                "align_corners": True,
                "bn_mode": "train",
            },
            "dtype": "float32",
        }
    )
    # Predict reads an image and a coarse mask and makes the soft segmentation (sgm.md §4).
    c.inference = ConfigDict(
        {"name": "sgm_trimap_from_mask", "kwargs": {"multiple": 32}, "runs": {}}
    )
    c.losses = ConfigDict({"sgm_trimap_ce": 1.0})
    c.loss_kwargs = ConfigDict({})
    c.data = ConfigDict(
        {
            "name": "synthetic",
            "dir": "",
            "train_split": "train",
            "eval_split": "test",
            "bg_split": "",
            "batch_size": 10,
            "crop_size": 512,
            "shuffle": True,
            # Random 1..29 erosion trimap -> soft segmentation (erode/dilate 1..59, blur from
            # {21, 31, 41}) -> 15-px target "trimap" -> unknown-centred patch (sgm.md §2.3).
            "recipe": "sgm_t",
            "recipe_kwargs": {"sides": (512, 768, 1024), "flip": 0.5},
            "pp_train": "",
            # Evaluation makes Net-T's inputs and target with the training ops, seeded per image:
            # a random erosion trimap -> soft segmentation, and the 15-px erosion target.
            "pp_eval": eval_ops(),
            "synthetic": {"seed": 0, "size": 640, "num_train": 1800, "num_eval": 50},
        }
    )
    c.optim = ConfigDict(
        {
            # SGD momentum 0.9, poly 0.9, no weight decay: DeepLab lineage (our choice, §2.4).
            "name": "sgd",
            "lr": 1e-3,
            "b1": 0.9,
            "b2": 0.999,
            "eps": 1e-8,
            "momentum": 0.9,
            "nesterov": False,
            "weight_decay": 0.0,
            "clip_norm": 0.0,
            "schedule": {
                "name": "poly",
                "warmup_steps": 0,
                "warmup_factor": 1.0,
                "milestones": (),
                "factors": (),
                "step_size": 0,
                "total_steps": 129_300,
                "end_factor": 0.0,
                "power": 0.9,
            },
            "no_decay": (),
            # The lineage's head_lr_mult x10 on non-backbone params would be
            # (("^(?!backbone/).*", 10.0),); the paper does not state it.
            "lr_mult": (),
            "frozen": (),
            "layer_decay": 1.0,
            "num_layers": 0,
            "layer_id_rules": (),
        }
    )
    c.train = ConfigDict(
        {
            "num_steps": 129_300,
            "log_every": 100,
            "checkpoint_every": 5000,
            "keep_checkpoints": 3,
            "eval_every": 0,
            "eval_at_start": False,
            "image_every": 5000,
            "num_images": 4,
            "max_nonfinite": 10,
        }
    )
    c.eval = ConfigDict(
        {
            "kind": "trimap",
            "metrics": ("pixel_accuracy", "mean_iou"),
            "quantize": "round",
            "headline": ("pixel_accuracy", "mean_iou"),
            "step": -1,
        }
    )
    c.predict = ConfigDict({"image": "", "mask": "", "out_dir": ""})  # coarse masks, no trimap
    c.predict.update(batch_size=1, overwrite=False, skip_bad=False, snap_trimap=False)
    c.init = ConfigDict({"weights": "", "prefix": ""})

    if arg == "quick":
        c.model.kwargs.update(
            stage_sizes=(1, 1, 1, 1),
            block="basic",
            multi_grid=(1,),
            stem_width=16,
            aspp_features=32,
            shortcut_features=16,
        )
        c.data.update(batch_size=8, crop_size=64, recipe_kwargs={"sides": (64, 96, 128)})
        c.data.synthetic.update(size=160, num_train=256, num_eval=8)
        c.optim.update(lr=1e-2)
        c.optim.schedule.update(total_steps=1200)
        c.train.update(num_steps=1200, log_every=50, checkpoint_every=300, image_every=300)
        c.train.eval_at_start = True
    elif arg == "tiny":
        c.model.kwargs.update(
            stage_sizes=(1, 1, 1, 1),
            block="basic",
            multi_grid=(1,),
            stem_width=8,
            aspp_features=16,
            shortcut_features=8,
            # Dropout 0.5 on a 16-channel ASPP output keeps a short run from learning (16 steps,
            # 1 device: eval pixel accuracy 0.49 with it at lr 3e-3; 0.56 without, 0.62 at 3e-2).
            aspp_dropout=0.0,
            decoder_dropout=(0.0, 0.0),
        )
        scale = config_lib.TINY_PIXEL_SCALE
        config_lib.make_tiny(c, recipe_kwargs={"sides": (32, 48), "pixel_scale": scale})
        c.data.pp_eval = eval_ops(scale)
        c.data.synthetic.num_train = 8
        c.optim.lr = 3e-2
        c.optim.schedule.update(total_steps=config_lib.TINY_LEARN_STEPS)
    elif arg:
        raise ValueError(
            f"configs/sgm_trimap.py: unknown variant {arg!r}; known: {', '.join(VARIANTS)} or none"
        )
    return c

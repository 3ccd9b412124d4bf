"""Config of the toy paper (tests only): a 6-channel two-head model scored by trimap metrics."""

from ml_collections import ConfigDict

from jaxmatte import optim


def get_config(arg: str | None = None) -> ConfigDict:
    c = ConfigDict()
    c.seed = 0
    c.model = ConfigDict({"name": "toy_two_heads", "kwargs": {"width": 8, "dropout": 0.0}})
    c.model.dtype = "float32"
    c.inference = ConfigDict({"name": "pad_apply", "kwargs": {"multiple": 1}, "runs": {}})
    c.losses = ConfigDict({"toy_trimap_ce": 1.0, "toy_alpha_l1": 0.5})
    c.data = ConfigDict(
        {
            "name": "synthetic",
            "dir": "",
            "train_split": "train",
            "eval_split": "test",
            "bg_split": "",
            "batch_size": 8,
            "crop_size": 32,
            "shuffle": True,
            "recipe": "tcp",
            "recipe_kwargs": {"fg_pair": False},
            "pp_train": "",
            "pp_eval": "normalize(('image',))|trimap_to_label(('trimap',))",
            "synthetic": {"seed": 0, "size": 48, "num_train": 16, "num_eval": 2},
        }
    )
    c.optim = optim.optim_config(
        "sgd", lr=0.05, momentum=0.9, schedule={"name": "poly", "total_steps": 8}
    )
    c.train = ConfigDict(
        {
            "num_steps": 8,
            "log_every": 2,
            "checkpoint_every": 4,
            "keep_checkpoints": 2,
            "eval_every": 0,
            "eval_at_start": False,
            "image_every": 4,
            "num_images": 2,
            "max_nonfinite": 3,
        }
    )
    c.eval = ConfigDict(
        {
            "kind": "trimap",
            "metrics": ("pixel_accuracy", "mean_iou"),
            "quantize": "round",
            "headline": (),
            "step": -1,
        }
    )
    c.predict = ConfigDict({"image": "", "trimap": "", "out_dir": ""})
    c.init = ConfigDict({"weights": "", "prefix": ""})
    if arg == "dropout":
        c.model.kwargs.dropout = 0.5
    elif arg:
        raise ValueError(f"unknown variant {arg!r}; known: dropout")
    return c

"""The preprocessing-op spec of every training recipe (DDC, GCA, TCP, SGM Net-T/Net-M, DMP, LSA).

Each function returns a ``"op1(...)|op2(...)"`` string for ``preprocess.build``. Every recipe ends
with the same pack: ``normalize`` (ImageNet) -> ``trimap_to_label`` -> ``keep``, so the output is
model-ready: "image" float32 [S, S, 3] normalised, "trimap" [S, S, 1] in {0, 0.5, 1}, "alpha"
[S, S, 1] in [0, 1] when the input had alpha (DDC's real data has none), plus "trimap_tcp" (TCP),
"softseg" [S, S, 2] (SGM Net-T) and normalised "fg" / "bg" (GCA family, ``keep_fg_bg``).

Input keys: DDC reads image + trimap (+ alpha); the composition recipes read fg, alpha and a
background bg of any size; GCA/TCP/SGM-M/DMP with ``fg_pair`` also need a second foreground
fg2 / alpha2 (the pipeline zips one in).
"""

from __future__ import annotations

from jaxmatte import conventions as C
from jaxmatte.registry import RECIPES

MODEL_KEYS = ("image", "trimap", "alpha")


def pack(extra_labels: tuple[str, ...] = (), extra: tuple[str, ...] = (), rgb=("image",)) -> str:
    """The final ops: normalise ``rgb`` keys, trimap codes -> labels, keep the model keys."""
    labels = ("trimap",) + tuple(extra_labels)
    keep = MODEL_KEYS + tuple(extra_labels) + tuple(extra)
    return f"normalize({tuple(rgb)!r})|trimap_to_label({labels!r})|keep({keep!r})"


def px(size: float, pixel_scale: float, odd: bool = False) -> int:
    """A recipe's pixel size (kernel side, radius, resize side) at ``pixel_scale``: at least 1,
    and odd when ``odd`` (blur kernels)."""
    k = max(1, round(size * pixel_scale))
    return k + 1 - k % 2 if odd else k


def _args(pixel_scale: float, **sizes: tuple[float, ...] | float) -> str:
    """Keyword arguments giving an op its pixel sizes at ``pixel_scale``; "" at 1 (the op's
    defaults are the paper's sizes, so the paper specs stay as they read)."""
    if pixel_scale == 1.0:
        return ""
    scaled = {
        k: tuple(px(x, pixel_scale, odd=k.startswith("blur")) for x in v)
        if isinstance(v, tuple)
        else px(v, pixel_scale)
        for k, v in sizes.items()
    }
    return ", ".join(f"{k}={v!r}" for k, v in scaled.items())


def _range(prefix: str, bounds: tuple[int, int]) -> dict[str, int]:
    return {f"{prefix}min": bounds[0], f"{prefix}max": bounds[1]}


def _op(name: str, fixed: str, pixel_scale: float, **sizes) -> str:
    return f"{name}({', '.join(a for a in (fixed, _args(pixel_scale, **sizes)) if a)})"


def sgm_t_inputs(pixel_scale: float = 1.0, target: bool = True) -> str:
    """SGM Net-T's inputs (and target) from alpha: random erosion trimap -> soft segmentation
    "softseg" [-> 15-px erosion target "trimap"]. Also its evaluation ops (seeded per image).

    References: sgm.md §2.3.
    """
    ops = [
        _op("gca_erode", "key='trimap_rand'", pixel_scale, **_range("k", C.GCA_ERODE_K)),
        _op(
            "sgm_softseg",
            "src='trimap_rand'",
            pixel_scale,
            **_range("k", C.SGM_SOFTSEG_K),
            blur_sizes=C.SGM_SOFTSEG_BLUR,
        ),
    ]
    if target:
        ops.append(_op("sgm_target", "", pixel_scale, k=C.SGM_TARGET_K))
    return "|".join(ops)


def ddc(
    size: int = 512,
    augment: str = "paper",
    scale: tuple[float, float] = (0.8, 1.25),
    flip: float = 0.5,
    online_trimap: str | None = None,
    compose: bool = False,
) -> str:
    """DDC / alpha-free: [scale] -> small-image enlarge -> unknown-centred crop -> [hflip] -> pack.

    Args:
      augment: "paper" (isotropic rescale U[0.8, 1.25] and hflip p = 0.5) or "crop_only" (code).
      online_trimap: None (the stored label trimap), "gca_erode" or "ddc_offline" to make the
        label trimap from alpha on the fly (e.g. for synthetic data).
      compose: first composite fg / alpha over bg into the image.

    References: ddc_vitmatte.md §2, §5.2.
    """
    if augment not in ("paper", "crop_only"):
        raise ValueError(f"ddc augment must be 'paper' or 'crop_only', got {augment!r}")
    ops = []
    if compose:
        ops += [
            "resize_like('alpha', ('bg',), 'bicubic')",
            "composite()",
            "keep(('image', 'alpha'))",
        ]
    if online_trimap is not None:
        if online_trimap not in ("gca_erode", "ddc_offline"):
            raise ValueError(f"unknown online_trimap {online_trimap!r}")
        ops.append(f"{online_trimap}()")
    if augment == "paper":
        ops.append(f"random_scale({scale[0]}, {scale[1]})")
    ops += [f"enlarge({size}, method='random')", f"unknown_crop({size}, methods={{}})"]
    if augment == "paper":
        ops.append(f"hflip({flip})")
    return "|".join(ops + [pack()])


def gca(
    size: int = 512,
    fg_pair: bool = True,
    pair_resize: int = C.GCA_PAIR_RESIZE,
    keep_fg_bg: bool = False,
    tcp: bool = False,
    tcp_relabel: str = "alpha_threshold",
    pixel_scale: float = 1.0,
) -> str:
    """GCA pipeline: fg pair -> 640 resize (p .25) -> affine -> erosion trimap(s) -> bg fit ->
    enlarge -> unknown-centred crop -> HSV jitter -> composite -> pack.

    Args:
      fg_pair: merge a second foreground (fg2 / alpha2 keys) with p = 0.5.
      keep_fg_bg: also return normalised fg and bg (optional composition loss).
      tcp: add TCP's noisy second trimap "trimap_tcp" (tcp.md §8).
      tcp_relabel: how pixels leaving its unknown region are labelled, "alpha_threshold" or
        "nearest_known" (tcp.md §2 ``tcp_trimap.relabel``).
      pixel_scale: multiplies the pipeline's pixel sizes (the 640 pair resize, the 1..29 erosion
        kernels, TCP's noise kernels), for images far smaller than the paper's (``:tiny``).

    References: data_and_metrics.md §3.2.
    """
    fa = "('fg', 'alpha')"
    ops = ["fg_pair(0.5)"] if fg_pair else []
    ops += [
        f"random_resize({px(pair_resize, pixel_scale)}, 0.25, 'nearest', {fa})",
        f"random_affine(keys={fa})",
        _op("gca_erode", "", pixel_scale, **_range("k", C.GCA_ERODE_K)),
    ]
    if tcp:
        noise = dict(erode_k=C.TCP_NOISE_ERODE_K, dilate_k=C.TCP_NOISE_DILATE_K)
        ops.append(_op("tcp_noisy", f"relabel={tcp_relabel!r}", pixel_scale, **noise))
    ops += [
        "resize_like('alpha', ('bg',), 'bicubic')",
        f"enlarge({size}, methods={{'bg': 'bicubic'}})",
        f"unknown_crop({size})",
        "hsv_jitter()",
        "composite()",
    ]
    extra = ("fg", "bg") if keep_fg_bg else ()
    labels = ("trimap_tcp",) if tcp else ()
    return "|".join(ops + [pack(labels, extra, ("image",) + extra)])


def tcp(size: int = 512, relabel: str = "alpha_threshold", **kw) -> str:
    """TCP: the GCA pipeline with two trimaps, "trimap" (semantic path) and "trimap_tcp";
    ``relabel`` is tcp.md §2's ``tcp_trimap.relabel``."""
    return gca(size, tcp=True, tcp_relabel=relabel, **kw)


def sgm_m(size: int = 512, **kw) -> str:
    """SGM Net-M: the GCA pipeline (sgm.md §3.7)."""
    return gca(size, **kw)


def dmp(size: int = 512, **kw) -> str:
    """DMP in jaxmatte: the GCA pipeline (dmp.md §7.2)."""
    return gca(size, **kw)


def sgm_t(
    size: int = 512,
    sides: tuple[int, ...] = (512, 768, 1024),
    flip: float = 0.5,
    pixel_scale: float = 1.0,
) -> str:
    """SGM Net-T: composite -> random erosion trimap -> soft segmentation "softseg" -> 15-px target
    "trimap" -> unknown-centred patch of side in ``sides`` resized to size -> hflip -> pack.

    ``pixel_scale`` multiplies the kernel sizes of `sgm_t_inputs` (not ``sides``).

    References: sgm.md §2.3.
    """
    ops = [
        "resize_like('alpha', ('bg',), 'bicubic')",
        "composite()",
        sgm_t_inputs(pixel_scale),
        "keep(('image', 'alpha', 'trimap', 'softseg'))",
        f"sgm_crop({tuple(sides)!r}, {size})",
        f"hflip({flip})",
    ]
    return "|".join(ops + [pack(extra=("softseg",))])


def lsa(
    size: int = 640,
    trimap: str = "dilate",
    gamma_mode: str = "paper",
    ca_per_channel: bool = False,
    blur: bool = False,
    p: float = 0.3,
    rotate_method: str = "bicubic",
    pixel_scale: float = 1.0,
) -> str:
    """LSA: pad -> bg fit -> rotation -> crop k in [3h/4, 5h/4] -> flips -> gamma -> colour aug ->
    invert -> channel permutation -> trimap -> [blur] -> composite -> pack.

    Args:
      trimap: "dilate" (paper) or "distance_band" (code).
      blur: the alphamatting.com protocol's fg/bg Gaussian blur (p = 0.3).
      rotate_method: "bicubic" (LSA's cv2 INTER_CUBIC, exact; ~120 ms per 800^2 RGB warp on
        one CPU core) or "bilinear" (TF's kernel, several times faster).
      pixel_scale: multiplies the trimap's 1..24 px radii (``:tiny``'s small images).

    References: lsa.md §6.
    """
    if trimap not in ("dilate", "distance_band"):
        raise ValueError(f"lsa trimap must be 'dilate' or 'distance_band', got {trimap!r}")
    fab = "('fg', 'alpha', 'bg')"
    ops = [
        f"lsa_pad({size})",
        "resize_like('alpha', ('bg',), 'bicubic')",
        f"rotate(0.5, 180, 10, method={rotate_method!r}, keys={fab})",
        f"lsa_crop({size}, {3 * size // 4}, {5 * size // 4}, keys={fab})",
        "hflip(keys=('fg', 'alpha'))",
        "hflip(keys=('bg',))",
        f"alpha_gamma({p}, {gamma_mode!r})",
        f"color_mix({p}, {ca_per_channel!r})",
        f"invert({p})",
        f"channel_shuffle({p})",
        _op(f"lsa_{trimap}", "", pixel_scale, **_range("r", C.LSA_TRIMAP_R)),
    ]
    if blur:
        ops.append(f"gaussian_blur({p}, 3, ('fg', 'bg'))")
    ops.append("composite()")
    return "|".join(ops + [pack()])


def _ddc_crop_only(**kw) -> str:
    """DDC's released-code augmentation (crop only)."""
    return ddc(augment="crop_only", **kw)


for _name, _fn in (
    ("ddc", ddc),
    ("ddc_crop_only", _ddc_crop_only),
    ("gca", gca),
    ("tcp", tcp),
    ("sgm_m", sgm_m),
    ("sgm_t", sgm_t),
    ("dmp", dmp),
    ("lsa", lsa),
):
    RECIPES.register(_name)(_fn)


def get(name: str, **kwargs) -> str:
    """The op spec of recipe ``name`` (see RECIPES) with its keyword options."""
    return RECIPES.get(name)(**kwargs)

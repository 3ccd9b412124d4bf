"""GCA-Matting res_shortcut generator (encoder_29 + decoder_22) -> TCP's `SemanticPath`."""

from __future__ import annotations

import re
from typing import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from jaxmatte.convert import common
from jaxmatte.models import tcp
from jaxmatte.registry import CONVERTERS

TRACE_HW = 32  # the semantic path's total stride; only variable shapes are traced
GCA_WIDTHS = (32, 64, 128, 256, 512)  # fixed in GCA's ResNet_D / ResNet_D_Dec
ENC_LAYERS = ("layer1", "layer2", "layer3", "layer_bottleneck")
DEC_LAYERS = ("layer1", "layer2", "layer3", "layer4")


def spectral_sigma(u: np.ndarray, v: np.ndarray, w_bar: np.ndarray) -> np.ndarray:
    """GCA `SpectralNorm._noupdate_u_v`: σ = u · (W v), W = w_bar viewed as [w.shape[0], -1].

    Args: u [h], v [w], w_bar [h, ...] with prod(...) = w. Returns a float32 scalar.
    """
    mat = np.asarray(w_bar, np.float64).reshape(w_bar.shape[0], -1)
    return np.float32(np.dot(np.asarray(u, np.float64), mat @ np.asarray(v, np.float64)))


def sn_conv_entries(
    state_dict: Mapping[str, np.ndarray], target: common.Path, source: str
) -> list[common.Entry]:
    """Rows for a `tcp.SNConv` at <target> from GCA `SpectralNorm(conv)` at `<source>`.

    `<source>.module.weight_bar` -> the kernel (Conv2d [O, I, k, k] and ConvTranspose2d
    [I, O, 4, 4] both transpose (2, 3, 1, 0): the Flax ConvTranspose keeps [4, 4, O, I]);
    `weight_u` -> "u" [1, h]; `weight_v` -> "sigma", GCA's evaluation σ with u and w_bar.
    """
    src = f"{source}.module.weight"
    sn = ("batch_stats",) + target + ("sn",)

    def sigma(v: np.ndarray) -> np.ndarray:
        u, w = state_dict.get(f"{src}_u"), state_dict.get(f"{src}_bar")
        if u is None or w is None:  # reported as missing by the rows that read them
            return np.float32(np.nan)
        return spectral_sigma(u, v, w)

    return [
        common.Entry(("params",) + target + ("conv", "kernel"), f"{src}_bar", common.oihw_to_hwio),
        common.Entry(sn + ("conv/kernel/u",), f"{src}_u", lambda u: np.reshape(u, (1, -1))),
        common.Entry(sn + ("conv/kernel/sigma",), f"{src}_v", sigma),
    ]


def _count_blocks(state_dict: Mapping[str, np.ndarray], prefix: str) -> tuple[int, ...]:
    """Residual blocks per layer, read from `<prefix><layer>.<i>.conv1` keys (0 when absent)."""
    counts = []
    layers = ENC_LAYERS if prefix.endswith("encoder.") else DEC_LAYERS
    for layer in layers:
        pattern = re.compile(re.escape(f"{prefix}{layer}.") + r"(\d+)\.conv1\.")
        found = {int(m.group(1)) for k in state_dict if (m := pattern.match(k))}
        counts.append(max(found) + 1 if found else 0)
    return tuple(counts)


def semantic_path_table(
    state_dict: Mapping[str, np.ndarray], module: tcp.SemanticPath, prefix: str
) -> list[common.Entry]:
    """The full table: GCA generator keys (under `prefix`) -> `SemanticPath` variables."""
    sd = {k[len(prefix) :]: v for k, v in state_dict.items() if k.startswith(prefix)}

    def conv(target, source):
        return sn_conv_entries(sd, target, source)

    def bn(target, source):
        return common.bn_entries(target, source)

    def block(name, src, resample):
        """A BasicBlock: conv1/bn1, conv2/bn2, and the 1x1 resampling shortcut ("down"/"up":
        GCA's `downsample`/`upsample` Sequential, the pooling or upsampling at index 0)."""
        rows = []
        for k in (1, 2):
            rows += conv((name, f"conv{k}"), f"{src}.conv{k}")
            rows += bn((name, f"bn{k}"), f"{src}.bn{k}")
        if resample is not None:
            rows += conv((name, f"{resample}_conv"), f"{src}.{resample}sample.1")
            rows += bn((name, f"{resample}_bn"), f"{src}.{resample}sample.2")
        return rows

    rows = []
    for i in range(3):  # stem: conv{1,2,3} + bn{1,2,3}
        rows += conv((f"stem{i + 1}_conv",), f"encoder.conv{i + 1}")
        rows += bn((f"stem{i + 1}_bn",), f"encoder.bn{i + 1}")
    for s, n in enumerate(module.enc_blocks):
        for b in range(n):
            resample = "down" if b == 0 and s > 0 else None  # AvgPool -> SN conv 1x1 -> BN
            rows += block(f"enc{s + 1}_{b}", f"encoder.{ENC_LAYERS[s]}.{b}", resample)
    for i in range(5):  # shortcut: SN conv, ReLU, BN, SN conv, ReLU, BN
        for j, (c, n) in enumerate(((0, 2), (3, 5))):
            rows += conv((f"sc{i}", f"conv{j}"), f"encoder.shortcut.{i}.{c}")
            rows += bn((f"sc{i}", f"bn{j}"), f"encoder.shortcut.{i}.{n}")
    for s, n in enumerate(module.dec_blocks):
        for b in range(n):
            resample = "up" if b == 0 else None  # UpsamplingNearest2d -> SN conv 1x1 -> BN
            rows += block(f"dec{s + 1}_{b}", f"decoder.layer{s + 1}.{b}", resample)
    rows += conv(("head1_conv",), "decoder.conv1") + bn(("head1_bn",), "decoder.bn1")
    rows += common.conv_entries(("head2",), "decoder.conv2", bias=True)
    return rows


def _expected(module: tcp.SemanticPath, in_channels: int) -> dict[common.Path, tuple]:
    x = jnp.zeros((1, TRACE_HW, TRACE_HW, in_channels), jnp.float32)
    abstract = jax.eval_shape(lambda: module.init(jax.random.key(0), x, train=False))
    return {
        tuple(str(getattr(k, "key", k)) for k in path): tuple(leaf.shape)
        for path, leaf in jax.tree_util.tree_flatten_with_path(abstract)[0]
    }


@CONVERTERS.register("gca_res_shortcut")
def convert_gca_res_shortcut(
    state_dict: Mapping[str, np.ndarray], *, in_channels: int = 6, prefix: str = ""
) -> dict:
    """GCA `Generator(res_shortcut_encoder_29, res_shortcut_decoder_22)` -> `tcp.SemanticPath`.

    Keys are GCA's: `encoder.*` and `decoder.*` under `prefix` (e.g. "module." for a
    DataParallel checkpoint); block counts are read from the keys (GCA: [3, 4, 4, 2] and
    [2, 3, 3, 2]). Spectral norm: `weight_bar` -> kernel, `weight_u` -> u, and σ = u·(W v)
    from `weight_u`, `weight_v`, `weight_bar`, the value GCA divides by in evaluation, so the
    converted model's evaluation equals GCA's. Load into TCP with `config.init.prefix="sp"`.

    Raises:
        ConversionError listing every missing, unexpected or mis-shaped key.
    """
    enc_blocks = _count_blocks(state_dict, f"{prefix}encoder.")
    dec_blocks = _count_blocks(state_dict, f"{prefix}decoder.")
    if not all(enc_blocks) or not all(dec_blocks):  # fall back to GCA's; rows report the rest
        enc_blocks, dec_blocks = (3, 4, 4, 2), (2, 3, 3, 2)
    module = tcp.SemanticPath(GCA_WIDTHS, enc_blocks, dec_blocks, spectral_norm=True)
    table = semantic_path_table(state_dict, module, prefix)
    return common.apply_table(state_dict, table, _expected(module, in_channels), prefix=prefix)

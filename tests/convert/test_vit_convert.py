"""ViTMatte-S / alpha-free-matting / DINO converters: PyTorch parity and strict key checking.

The PyTorch ViTMatte-S below is a minimal reference written from the spec
(`shared/specs/ddc_vitmatte.md` 4.1-4.3, 4.5: ViTDet ViT with windowed/global attention,
decomposed relative position, residual conv blocks, Detail Capture decoder, checkpoint key names),
independently of the Flax code; it shares nothing with jaxmatte but the key names.
"""

import math

import jax
import numpy as np
import pytest

from jaxmatte.convert import io
from jaxmatte.inference import procedures
from jaxmatte.models.vit import ViT
from jaxmatte.models.vitmatte import ViTMatte
from jaxmatte.registry import CONVERTERS
from tests.conftest import torch_or_skip

DIM, HEADS, DEPTH, WINDOW = 384, 6, 12, 14
GLOBAL_BLOCKS = (2, 5, 8, 11)
HEAD_GAIN = 30.0


def build_reference(torch, in_chans: int):
    """A PyTorch ViTMatte-S (eval mode) with random weights, non-zero tables and BN statistics."""
    nn, F = torch.nn, torch.nn.functional

    def rel_table(table, size):  # [2S'-1, C] -> linear resize to 2*size-1 -> R[i, j]
        n = 2 * size - 1
        if table.shape[0] != n:
            table = F.interpolate(table.t()[None], size=n, mode="linear")[0].t()
        idx = torch.arange(size)[:, None] - torch.arange(size)[None, :] + size - 1
        return table[idx]

    class Attention(nn.Module):
        def __init__(self, table_size):
            super().__init__()
            self.qkv, self.proj = nn.Linear(DIM, 3 * DIM), nn.Linear(DIM, DIM)
            self.rel_pos_h = nn.Parameter(0.3 * torch.randn(2 * table_size - 1, DIM // HEADS))
            self.rel_pos_w = nn.Parameter(0.3 * torch.randn(2 * table_size - 1, DIM // HEADS))

        def forward(self, x):  # [B, H, W, C]
            b, h, w, c = x.shape
            hd = c // HEADS
            q, k, v = self.qkv(x).reshape(b, h * w, 3, HEADS, hd).permute(2, 0, 3, 1, 4)
            logits = (q / math.sqrt(hd)) @ k.transpose(-1, -2)  # [B, heads, N, N]
            qg = q.reshape(b, HEADS, h, w, hd)
            lh = torch.einsum("bnyxc,ykc->bnyxk", qg, rel_table(self.rel_pos_h, h))
            lw = torch.einsum("bnyxc,xkc->bnyxk", qg, rel_table(self.rel_pos_w, w))
            logits = logits.view(b, HEADS, h, w, h, w) + lh[..., :, None] + lw[..., None, :]
            out = logits.view(b, HEADS, h * w, h * w).softmax(-1) @ v
            return self.proj(out.permute(0, 2, 1, 3).reshape(b, h, w, c))

    class ChannelNorm(nn.Module):  # LN over channels of an NCHW map
        def __init__(self, c):
            super().__init__()
            self.weight, self.bias = nn.Parameter(1 + torch.randn(c)), nn.Parameter(torch.randn(c))

        def forward(self, x):
            y = F.layer_norm(x.permute(0, 2, 3, 1), (x.shape[1],), self.weight, self.bias, 1e-6)
            return y.permute(0, 3, 1, 2)

    class Residual(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.norm1 = nn.Conv2d(DIM, DIM // 2, 1, bias=False), ChannelNorm(DIM // 2)
            self.conv2 = nn.Conv2d(DIM // 2, DIM // 2, 3, padding=1, bias=False)
            self.norm2 = ChannelNorm(DIM // 2)
            self.conv3, self.norm3 = nn.Conv2d(DIM // 2, DIM, 1, bias=False), ChannelNorm(DIM)

        def forward(self, x):  # NCHW
            y = F.gelu(self.norm1(self.conv1(x)))
            y = F.gelu(self.norm2(self.conv2(y)))
            return x + self.norm3(self.conv3(y))

    class Mlp(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(DIM, 4 * DIM), nn.Linear(4 * DIM, DIM)

        def forward(self, x):
            return self.fc2(F.gelu(self.fc1(x)))

    class Block(nn.Module):
        def __init__(self, i):
            super().__init__()
            self.window = 0 if i in GLOBAL_BLOCKS else WINDOW
            self.norm1, self.norm2 = nn.LayerNorm(DIM, eps=1e-6), nn.LayerNorm(DIM, eps=1e-6)
            self.attn = Attention(WINDOW if self.window else 512 // 16)
            self.mlp = Mlp()
            if i in GLOBAL_BLOCKS:
                self.residual = Residual()

        def forward(self, x):  # [B, H, W, C]
            y = self.norm1(x)
            if self.window:
                b, h, w, c = y.shape
                s = self.window
                ph, pw = -h % s, -w % s
                y = F.pad(y, (0, 0, 0, pw, 0, ph))
                hp, wp = h + ph, w + pw
                y = y.view(b, hp // s, s, wp // s, s, c).permute(0, 1, 3, 2, 4, 5)
                y = self.attn(y.reshape(-1, s, s, c))
                y = y.view(b, hp // s, wp // s, s, s, c).permute(0, 1, 3, 2, 4, 5)
                y = y.reshape(b, hp, wp, c)[:, :h, :w]
            else:
                y = self.attn(y)
            x = x + y
            x = x + self.mlp(self.norm2(x))
            if hasattr(self, "residual"):
                x = self.residual(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
            return x

    class PatchEmbed(nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = nn.Conv2d(in_chans, DIM, 16, stride=16)

    class Backbone(nn.Module):
        def __init__(self):
            super().__init__()
            self.patch_embed = PatchEmbed()
            self.pos_embed = nn.Parameter(0.5 * torch.randn(1, 197, DIM))
            self.blocks = nn.ModuleList([Block(i) for i in range(DEPTH)])

        def forward(self, x):  # NCHW -> NHWC tokens
            x = self.patch_embed.proj(x).permute(0, 2, 3, 1)
            grid = self.pos_embed[:, 1:].reshape(1, 14, 14, DIM).permute(0, 3, 1, 2)
            pos = F.interpolate(grid, size=x.shape[1:3], mode="bicubic", align_corners=False)
            x = x + pos.permute(0, 2, 3, 1)
            for blk in self.blocks:
                x = blk(x)
            return x.permute(0, 3, 1, 2)

    class ConvBN(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn = nn.BatchNorm2d(cout)

        def forward(self, x):
            return F.relu(self.bn(self.conv(x)))

    class ConvStream(nn.Module):
        def __init__(self):
            super().__init__()
            chans = [in_chans, 48, 96, 192]
            self.convs = nn.ModuleList([ConvBN(chans[i], chans[i + 1], 2) for i in range(3)])

    class Fusion(nn.Module):
        def __init__(self, cin, cout):
            super().__init__()
            self.conv = ConvBN(cin, cout, 1)

    class Head(nn.Module):
        def __init__(self):
            super().__init__()
            self.matting_convs = nn.Sequential(
                nn.Conv2d(32, 16, 3, 1, 1), nn.BatchNorm2d(16), nn.ReLU(), nn.Conv2d(16, 1, 1)
            )

    class Decoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.convstream = ConvStream()
            ins = [192 + 384, 96 + 256, 48 + 128, in_chans + 64]
            outs = [256, 128, 64, 32]
            self.fusion_blks = nn.ModuleList([Fusion(i, o) for i, o in zip(ins, outs)])
            self.matting_head = Head()

        def forward(self, feats, x):
            details = [x]
            for conv in self.convstream.convs:
                details.append(conv(details[-1]))
            for k, fus in enumerate(self.fusion_blks):
                up = F.interpolate(feats, scale_factor=2, mode="bilinear", align_corners=False)
                feats = fus.conv(torch.cat([details[3 - k], up], 1))
            return torch.sigmoid(self.matting_head.matting_convs(feats))

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone, self.decoder = Backbone(), Decoder()

        def forward(self, x):  # normalised NCHW input (+ trimap channel), ViTMatte padding quirk
            h, w = x.shape[2:]
            if h % 32 or w % 32:
                x = F.pad(x, (0, 32 - w % 32, 0, 32 - h % 32))
            return self.decoder(self.backbone(x), x)[:, :, :h, :w]

    model = Model()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.LayerNorm):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.2)
                m.running_mean.normal_(0, 0.3)
                m.running_var.uniform_(0.5, 2.0)
                m.num_batches_tracked.fill_(7)
        model.decoder.matting_head.matting_convs[3].weight.mul_(HEAD_GAIN)  # a non-flat alpha
        model.decoder.matting_head.matting_convs[3].bias.zero_()
    return model.eval()


@pytest.fixture(scope="module")
def torch_models():
    torch = torch_or_skip()
    torch.manual_seed(0)
    return torch, {c: build_reference(torch, c) for c in (3, 4)}


def _state_dict(model):
    return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}


def _parity(torch, model, variables, in_chans, hw, seed):
    rng = np.random.default_rng(seed)
    image = rng.normal(size=(2,) + hw + (3,)).astype(np.float32)
    trimap = rng.choice([0.0, 0.5, 1.0], size=(2,) + hw + (1,)).astype(np.float32)
    x = np.concatenate([image, trimap], -1) if in_chans == 4 else image
    with torch.no_grad():
        want = model(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
    net = ViTMatte(in_channels=in_chans)
    batch = {"image": image, "trimap": trimap}
    fn = procedures.pad_apply({"main": net}, multiple=32, mode="vitmatte_quirk")
    alpha = jax.jit(lambda v, b: fn({"main": v}, b))(variables, batch)["alpha"]
    want = want.transpose(0, 2, 3, 1)
    assert alpha.shape == want.shape == (2,) + hw + (1,)
    assert want.std() > 0.02  # a non-flat output (the tolerance is 1e-4)
    np.testing.assert_allclose(np.asarray(alpha), want, atol=1e-4, rtol=0)


def test_vitmatte_s_parity_4ch(torch_models):
    torch, models = torch_models
    variables = CONVERTERS.get("vitmatte_s")(_state_dict(models[4]), in_channels=4)
    assert set(variables) == {"params", "batch_stats"}
    _parity(torch, models[4], variables, 4, (72, 56), seed=1)  # padded to 96 x 64


def test_alpha_free_matting_parity_3ch(torch_models):
    torch, models = torch_models
    variables = CONVERTERS.get("alpha_free_matting")(_state_dict(models[3]))
    _parity(torch, models[3], variables, 3, (64, 48), seed=2)  # quirk: 64 -> 96, 48 -> 64


def _dino_state_dict(models):
    """DINO key names: the backbone without rel-pos / residual, 3-channel, plus DINO extras."""
    sd = {
        k[len("backbone.") :]: v
        for k, v in _state_dict(models[3]).items()
        if k.startswith("backbone.") and "rel_pos" not in k and ".residual." not in k
    }
    sd["cls_token"] = np.zeros((1, 1, DIM), np.float32)
    sd["norm.weight"], sd["norm.bias"] = np.ones(DIM, np.float32), np.zeros(DIM, np.float32)
    return sd


@pytest.mark.parametrize("in_chans", [3, 4, 6])
def test_dino_key_set_and_patch_widening(torch_models, in_chans):
    _, models = torch_models
    sd = _dino_state_dict(models)
    out = CONVERTERS.get("dino_vits16")(sd, in_channels=in_chans)
    # the complete variables of the backbone module (vit_s16) ...
    want = jax.eval_shape(
        ViT(in_channels=in_chans).init, jax.random.PRNGKey(0), np.zeros((1, 32, 32, in_chans))
    )
    got_shapes = jax.tree.map(lambda a: a.shape, out["params"])
    assert got_shapes == jax.tree.map(lambda a: a.shape, want["params"])
    assert not jax.tree.leaves(out["batch_stats"])
    # ... with the DINO weights in place, the RGB patch weights widened with zeros ...
    kernel = out["params"]["patch_embed"]["kernel"]
    hwio = sd["patch_embed.proj.weight"].transpose(2, 3, 1, 0)
    np.testing.assert_array_equal(kernel[:, :, :3], hwio)
    assert kernel.shape == (16, 16, in_chans, DIM) and not np.any(kernel[:, :, 3:])
    block = out["params"]["blocks_4"]
    np.testing.assert_array_equal(block["attn"]["qkv"]["kernel"], sd["blocks.4.attn.qkv.weight"].T)
    np.testing.assert_array_equal(block["norm2"]["scale"], sd["blocks.4.norm2.weight"])
    np.testing.assert_array_equal(out["params"]["pos_embed"], sd["pos_embed"])
    # ... and the spec 4.4 init for what DINO lacks (zero tables, identity residual blocks).
    assert not np.any(block["attn"]["rel_pos_h"]) and not np.any(block["attn"]["rel_pos_w"])
    res = out["params"]["blocks_5"]["residual"]
    assert not np.any(res["norm3"]["scale"]) and not np.any(res["norm3"]["bias"])
    assert abs(res["conv2"]["kernel"].std() / np.sqrt(2.0 / (9 * DIM // 2)) - 1) < 0.05


def test_dino_loads_as_the_vitmatte_backbone(torch_models):
    _, models = torch_models
    prefixed = {"backbone." + k: v for k, v in _dino_state_dict(models).items()}
    dino = CONVERTERS.get("dino_vits16")(prefixed, in_channels=4)  # ViTMatte's preprocessed file
    full = CONVERTERS.get("vitmatte_s")(_state_dict(models[4]), in_channels=4)
    merged = io.merge_variables(full, dino, ("backbone",))
    bb, dec = merged["params"]["backbone"], merged["params"]["decoder"]
    np.testing.assert_array_equal(
        bb["blocks_0"]["mlp"]["fc1"]["kernel"], dino["params"]["blocks_0"]["mlp"]["fc1"]["kernel"]
    )
    assert not np.any(bb["blocks_0"]["attn"]["rel_pos_h"])
    np.testing.assert_array_equal(
        dec["head"]["conv1"]["kernel"], full["params"]["decoder"]["head"]["conv1"]["kernel"]
    )
    with pytest.raises(ValueError, match="mis-shaped"):  # a 3-channel model cannot take it
        three = CONVERTERS.get("vitmatte_s")(_state_dict(models[3]), in_channels=3)
        io.merge_variables(three, dino, ("backbone",))


def test_errors_list_missing_unexpected_and_misshaped_keys(torch_models):
    _, models = torch_models
    sd = _state_dict(models[4])
    convert = CONVERTERS.get("vitmatte_s")
    broken = dict(sd)
    del (
        broken["backbone.blocks.3.attn.rel_pos_w"],
        broken["decoder.fusion_blks.1.conv.bn.running_var"],
    )
    broken["backbone.cls_token"] = np.zeros((1, 1, DIM), np.float32)
    broken["decoder.matting_head.matting_convs.3.bias"] = np.zeros(2, np.float32)
    with pytest.raises(ValueError) as err:
        convert(broken, in_channels=4)
    msg = str(err.value)
    for key in (
        "backbone.blocks.3.attn.rel_pos_w",
        "decoder.fusion_blks.1.conv.bn.running_var",
        "backbone.cls_token",
        "decoder.matting_head.matting_convs.3.bias",
    ):
        assert key in msg
    with pytest.raises(ValueError, match="patch_embed.proj.weight"):
        convert(sd, in_channels=3)  # a 4-channel checkpoint is not widened or cut silently
    with pytest.raises(ValueError, match="3 input channels"):
        CONVERTERS.get("alpha_free_matting")(_state_dict(models[3]), in_channels=4)
    dino = _dino_state_dict(models)
    del dino["blocks.11.mlp.fc2.bias"]
    dino["blocks.0.attn.extra"] = np.zeros(3, np.float32)
    with pytest.raises(ValueError) as err:
        CONVERTERS.get("dino_vits16")(dino, in_channels=4)
    assert "missing keys" in str(err.value) and "blocks.11.mlp.fc2.bias" in str(err.value)
    assert "unexpected keys" in str(err.value) and "blocks.0.attn.extra" in str(err.value)

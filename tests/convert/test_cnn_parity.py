"""PyTorch -> Flax parity of the CNN backbones: torch eval output == Flax output to 1e-4 (fp32)."""

import sys

import numpy as np
import pytest

from jaxmatte.models import aspp, resnet, vgg
from jaxmatte.registry import CONVERTERS

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional
# Two threads on a shared 2-core box spin-wait: 100x slower small convs than one thread.
torch.set_num_threads(1)

ATOL = 1e-4
# Odd sizes deeper down (40 -> 20 -> 10 -> 5 -> 3 -> 2) exercise ceil-mode avg-pool shortcuts.
HW = 40
BATCH = 2


def _import_torchvision():
    """torchvision 0.28 here imports only once its `nms`/`qnms` op schemas exist."""
    try:
        import torchvision
    except RuntimeError as e:
        if "torchvision::" not in str(e):
            raise
        for name in [m for m in sys.modules if m.startswith("torchvision")]:
            del sys.modules[name]
        lib = torch.library.Library("torchvision", "DEF")
        lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        _import_torchvision.lib = lib  # keep the definitions alive
        import torchvision
    except ImportError:
        pytest.skip("torchvision not installed")
    return torchvision


def _randomise_bn(model, forward, in_channels=3):
    """Non-trivial BN: random affine, running stats from a forward on other data, perturbed.

    The last BN of each residual block gets a small scale so activations stay O(1), which
    keeps the 1e-4 absolute tolerance meaningful at every depth.
    """
    gen = torch.Generator().manual_seed(1)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for m in bns:
        m.momentum = None  # cumulative average over the calibration batch
        m.weight.data.uniform_(0.5, 1.0, generator=gen)
        m.bias.data.normal_(0.0, 0.1, generator=gen)
    for m in model.modules():
        if hasattr(m, "downsample") and hasattr(m, "bn2"):
            getattr(m, "bn3", m.bn2).weight.data.uniform_(0.1, 0.3, generator=gen)
    model.train()
    with torch.no_grad():
        forward(torch.randn(4, in_channels, HW, HW, generator=gen))
    for m in bns:
        m.running_mean.add_(0.1 * torch.randn(m.running_mean.shape, generator=gen))
        m.running_var.mul_(torch.empty(m.running_var.shape).uniform_(0.8, 1.25, generator=gen))
    model.eval()


def _state_dict(model):
    return {k: v.detach().numpy() for k, v in model.state_dict().items()}


def _input(in_channels=3, seed=0):
    return np.random.default_rng(seed).standard_normal((BATCH, HW, HW, in_channels), np.float32)


def _nchw(x):
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def _assert_features(ours: dict, theirs: dict):
    for name, ref in theirs.items():
        got = np.asarray(ours[name])
        ref = ref.detach().numpy().transpose(0, 2, 3, 1)
        assert got.shape == ref.shape, name
        err = np.abs(got - ref).max()
        assert err < ATOL, f"{name}: max abs err {err}"


def _torch_resnet_features(stem, model, x):
    with torch.no_grad():
        out = {"stem": stem(x)}
        y = model.maxpool(out["stem"])
        for i in range(1, 5):
            y = out[f"layer{i}"] = getattr(model, f"layer{i}")(y)
    return out


def _torchvision_stem(m):
    return lambda x: m.relu(m.bn1(m.conv1(x)))


@pytest.mark.parametrize(
    "arch, output_stride",
    [("resnet34", 32), ("resnet50", 32), ("resnet50", 16), ("resnet50", 8)],
)
def test_torchvision_resnet(arch, output_stride):
    tv = _import_torchvision()
    torch.manual_seed(0)
    dilate = {32: None, 16: [False, False, True], 8: [False, True, True]}[output_stride]
    kwargs = {"replace_stride_with_dilation": dilate} if dilate else {}
    model = getattr(tv.models, arch)(**kwargs)
    _randomise_bn(model, model)
    variables = CONVERTERS.get(f"torchvision_{arch}")(_state_dict(model))
    x = _input()
    ours = {"resnet34": resnet.ResNet34, "resnet50": resnet.ResNet50}[arch](
        output_stride=output_stride
    ).apply(variables, x)
    _assert_features(ours, _torch_resnet_features(_torchvision_stem(model), model, _nchw(x)))


def test_timm_resnet50d():
    _import_torchvision()
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    model = timm.create_model("resnet50d", pretrained=False)
    _randomise_bn(model, model)
    variables = CONVERTERS.get("timm_resnet50d")(_state_dict(model))
    x = _input()
    ours = resnet.ResNet50D().apply(variables, x)
    stem = lambda t: model.act1(model.bn1(model.conv1(t)))
    _assert_features(ours, _torch_resnet_features(stem, model, _nchw(x)))


class _ConvModule(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class _Bottleneck(nn.Module):
    def __init__(self, cin, mid, stride, downsample):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3, self.bn3 = nn.Conv2d(mid, 4 * mid, 1, bias=False), nn.BatchNorm2d(4 * mid)
        self.downsample = downsample

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class _ResNetV1d(nn.Module):
    def __init__(self, in_channels):
        super().__init__()
        self.stem = nn.Sequential(
            _ConvModule(in_channels, 32, 2), _ConvModule(32, 32, 1), _ConvModule(32, 64, 1)
        )
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = 64
        for s, (n, stride) in enumerate(zip((3, 4, 6, 3), (1, 2, 2, 2))):
            mid = 64 * 2**s
            pool = [nn.AvgPool2d(stride, stride, ceil_mode=True, count_include_pad=False)]
            down = (pool if stride != 1 else []) + [
                nn.Conv2d(cin, 4 * mid, 1, bias=False),
                nn.BatchNorm2d(4 * mid),
            ]
            blocks = [_Bottleneck(cin, mid, stride, nn.Sequential(*down))]
            blocks += [_Bottleneck(4 * mid, mid, 1, None) for _ in range(n - 1)]
            setattr(self, f"layer{s + 1}", nn.Sequential(*blocks))
            cin = 4 * mid

    def forward(self, x):
        x = self.stem(x)
        x = self.maxpool(x)
        for i in range(1, 5):
            x = getattr(self, f"layer{i}")(x)
        return x


class _Classifier(nn.Module):
    def __init__(self, in_channels):
        super().__init__()
        self.backbone = _ResNetV1d(in_channels)
        self.head = nn.Module()
        self.head.fc = nn.Linear(2048, 10)


@pytest.mark.parametrize("in_channels", [3, 4])
def test_mmcls_resnetv1d(in_channels):
    """Reference: a minimal mmcls ResNetV1d-50 written here from spec lsa.md Sec. 3.1 (mmcls is
    not a pip dependency): deep stem `stem.i.conv/bn`, avg-pool (ceil, padding excluded) before
    the 1x1 shortcut conv in stages 2-4, hence the shifted `downsample` indices; wrapped with the
    `backbone.` prefix and a `head.fc` classifier as in the mmcls checkpoint. in_channels=4 is
    LSA's own 4-channel checkpoint (converted as is, no widening)."""
    torch.manual_seed(0)
    model = _Classifier(in_channels)
    _randomise_bn(model, model.backbone, in_channels)
    state = _state_dict(model)
    assert "backbone.layer1.0.downsample.0.weight" in state
    assert "backbone.layer2.0.downsample.1.weight" in state
    variables = CONVERTERS.get("mmcls_resnetv1d")(state, in_channels=in_channels)
    x = _input(in_channels)
    ours = resnet.ResNet50D(in_channels=in_channels).apply(variables, x)
    b = model.backbone
    _assert_features(ours, _torch_resnet_features(b.stem, b, _nchw(x)))


def test_mmcls_widened_trimap_channel_is_zero():
    """LSA: a 3-channel ImageNet stem widened to RGB + trimap ignores the trimap channel."""
    torch.manual_seed(0)
    model = _Classifier(3)
    _randomise_bn(model, model.backbone)
    variables = CONVERTERS.get("mmcls_resnetv1d")(_state_dict(model), in_channels=4)
    x = _input(4)
    ours = resnet.ResNet50D(in_channels=4).apply(variables, x)
    with torch.no_grad():
        ref = model.backbone(_nchw(x[..., :3]))
    _assert_features({"layer4": ours["layer4"]}, {"layer4": ref})


def test_torchvision_vgg16_bn_and_pool_indices():
    tv = _import_torchvision()
    torch.manual_seed(0)
    # vgg16_bn's own feature layers; its 138M-parameter classifier is slow to build, so a small
    # stand-in checks that "classifier.*" keys are ignored.
    model = nn.Module()
    model.features = tv.models.vgg.make_layers(tv.models.vgg.cfgs["D"], batch_norm=True)
    model.classifier = nn.Sequential(nn.Linear(8, 2))
    _randomise_bn(model, model.features)
    variables = CONVERTERS.get("torchvision_vgg16_bn")(_state_dict(model))
    x = _input()[:, :32, :32]  # multiple of 32, as DMP pads
    ours = vgg.VGG16BN().apply(variables, x)
    theirs, indices, y, block = {}, {}, _nchw(x), 1
    with torch.no_grad():
        for layer in model.features:
            if isinstance(layer, nn.MaxPool2d):
                theirs[f"block{block}"] = y
                y, idx = F.max_pool2d(y, 2, 2, return_indices=True)
                theirs[f"pool{block}"], indices[block] = y, idx
                block += 1
            else:
                y = layer(y)
    _assert_features(ours, theirs)
    for i, idx in indices.items():
        w = theirs[f"block{i}"].shape[-1]
        row, col = idx // w, idx % w  # flat index in the unpooled plane -> in-window position
        local = ((row % 2) * 2 + col % 2).numpy().transpose(0, 2, 3, 1)
        np.testing.assert_array_equal(np.asarray(ours[f"indices{i}"]), local)
        unpooled = F.max_unpool2d(theirs[f"pool{i}"], idx, 2, 2).numpy().transpose(0, 2, 3, 1)
        got = vgg.max_unpool(ours[f"pool{i}"], ours[f"indices{i}"])
        np.testing.assert_allclose(np.asarray(got), unpooled, atol=ATOL)


def test_torchvision_aspp():
    _import_torchvision()
    from torchvision.models.segmentation.deeplabv3 import ASPP

    torch.manual_seed(0)
    rates, cin = (2, 3, 5), 64
    model = ASPP(cin, list(rates), 256)
    _randomise_bn(model, model, cin)
    variables = CONVERTERS.get("torchvision_aspp")(_state_dict(model), in_channels=cin)
    x = _input(cin)[:, :9, :11]
    ours = aspp.ASPP(rates=rates, use_bias=False).apply(variables, x)
    with torch.no_grad():
        ref = model(_nchw(x))
    _assert_features({"out": ours}, {"out": ref})

"""PyTorch parity of the GCA-Matting res_shortcut U-Net (TCP's semantic path) and its converter.

The PyTorch side is written here in GCA's layout and key names (Yaoyi-Li/GCA-Matting @ 5a999be:
networks/ops.py SpectralNorm, encoders/res_shortcut_enc.py, decoders/res_shortcut_dec.py).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmatte.convert import common
from jaxmatte.convert.gca import sn_conv_entries, spectral_sigma
from jaxmatte.models import tcp
from jaxmatte.registry import CONVERTERS

torch = pytest.importorskip("torch")
nn = torch.nn
torch.set_num_threads(1)  # two threads spin-wait on the shared 2-core box

ATOL = 1e-4


def _unit(x):
    return x / (x.norm() + 1e-12)


class SpectralNorm(nn.Module):
    """GCA `SpectralNorm`: parameters `module.weight_{u,v,bar}`; power step in train only."""

    def __init__(self, module):
        super().__init__()
        self.module = module
        w = module.weight.data
        h = w.shape[0]
        del module._parameters["weight"]
        module.register_parameter("weight_u", nn.Parameter(_unit(torch.randn(h)), False))
        module.register_parameter("weight_v", nn.Parameter(_unit(torch.randn(w[0].numel())), False))
        module.register_parameter("weight_bar", nn.Parameter(w.clone()))

    def forward(self, x):
        m = self.module
        mat = m.weight_bar.view(m.weight_bar.shape[0], -1)
        if self.training:
            m.weight_v.data = _unit(mat.data.t() @ m.weight_u.data)
            m.weight_u.data = _unit(mat.data @ m.weight_v.data)
        sigma = m.weight_u @ (mat @ m.weight_v)
        m.weight = m.weight_bar / sigma
        return m(x)


def sn_conv(cin, cout, k=3, stride=1):
    return SpectralNorm(nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, bias=False))


def sn_deconv(cin, cout):
    return SpectralNorm(nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False))


class EncBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1, self.bn1 = sn_conv(cin, cout, 3, stride), nn.BatchNorm2d(cout)
        self.conv2, self.bn2 = sn_conv(cout, cout), nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1:
            self.downsample = nn.Sequential(
                nn.AvgPool2d(2, 2), sn_conv(cin, cout, 1), nn.BatchNorm2d(cout)
            )

    def forward(self, x):
        out = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        return torch.relu(out + (x if self.downsample is None else self.downsample(x)))


class DecBlock(nn.Module):
    def __init__(self, cin, cout, up):
        super().__init__()
        self.conv1 = sn_deconv(cin, cin) if up else sn_conv(cin, cin)
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv2, self.bn2 = sn_conv(cin, cout), nn.BatchNorm2d(cout)
        self.upsample = None
        if up:
            self.upsample = nn.Sequential(
                nn.UpsamplingNearest2d(scale_factor=2), sn_conv(cin, cout, 1), nn.BatchNorm2d(cout)
            )

    def forward(self, x):
        lrelu = nn.functional.leaky_relu
        out = self.bn2(self.conv2(lrelu(self.bn1(self.conv1(x)), 0.2)))
        return lrelu(out + (x if self.upsample is None else self.upsample(x)), 0.2)


def _shortcut(cin, c):
    return nn.Sequential(
        sn_conv(cin, c), nn.ReLU(), nn.BatchNorm2d(c), sn_conv(c, c), nn.ReLU(), nn.BatchNorm2d(c)
    )


class Encoder(nn.Module):
    def __init__(self, blocks=(3, 4, 4, 2)):
        super().__init__()
        self.conv1, self.bn1 = sn_conv(6, 32, 3, 2), nn.BatchNorm2d(32)
        self.conv2, self.bn2 = sn_conv(32, 32), nn.BatchNorm2d(32)
        self.conv3, self.bn3 = sn_conv(32, 64, 3, 2), nn.BatchNorm2d(64)
        widths, cin = (64, 128, 256, 512), 64
        for name, c, n, first in zip(
            ("layer1", "layer2", "layer3", "layer_bottleneck"), widths, blocks, (1, 2, 2, 2)
        ):
            seq = [EncBlock(cin if i == 0 else c, c, first if i == 0 else 1) for i in range(n)]
            setattr(self, name, nn.Sequential(*seq))
            cin = c
        self.shortcut = nn.ModuleList(
            _shortcut(i, o) for i, o in zip((6, 32, 64, 128, 256), (32, 32, 64, 128, 256))
        )

    def forward(self, x):
        x1 = torch.relu(self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))))
        x2 = self.layer1(torch.relu(self.bn3(self.conv3(x1))))
        x3 = self.layer2(x2)
        x4 = self.layer3(x3)
        out = self.layer_bottleneck(x4)
        return out, [sc(f) for sc, f in zip(self.shortcut, (x, x1, x2, x3, x4))]


class Decoder(nn.Module):
    def __init__(self, blocks=(2, 3, 3, 2)):
        super().__init__()
        cin = 512
        for s, (c, n) in enumerate(zip((256, 128, 64, 32), blocks)):
            seq = [DecBlock(cin if i == 0 else c, c, i == 0) for i in range(n)]
            setattr(self, f"layer{s + 1}", nn.Sequential(*seq))
            cin = c
        self.conv1, self.bn1 = sn_deconv(32, 32), nn.BatchNorm2d(32)
        self.conv2 = nn.Conv2d(32, 1, 3, 1, 1)

    def forward(self, x, fea):
        for s in range(4):
            x = getattr(self, f"layer{s + 1}")(x) + fea[4 - s]
        x = nn.functional.leaky_relu(self.bn1(self.conv1(x)), 0.2) + fea[0]
        return self.conv2(x)  # the logit; GCA returns (tanh + 1) / 2 of it


class Generator(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder, self.decoder = Encoder(), Decoder()

    def forward(self, x):
        return self.decoder(*self.encoder(x))


def _randomise(model, hw=64):
    """Random BN affine + running stats, live residual branches, non-converged u/v.

    One train-mode forward on calibration data sets the running statistics (momentum None =
    plain average) and takes GCA's single power step from random u (so u, v are far from the
    singular vectors and the eval σ = u·Wv differs from a further power step).
    """
    gen = torch.Generator().manual_seed(1)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for m in bns:
        m.momentum = None
        m.weight.data.uniform_(0.5, 1.0, generator=gen)
        m.bias.data.normal_(0.0, 0.1, generator=gen)
    for m in model.modules():
        if isinstance(m, (EncBlock, DecBlock)):
            m.bn2.weight.data.uniform_(0.2, 0.4, generator=gen)
    model.train()
    with torch.no_grad():
        model(torch.randn(4, 6, hw, hw, generator=gen))
    for m in bns:
        m.running_var.data *= torch.empty_like(m.running_var).uniform_(0.8, 1.2, generator=gen)
    model.eval()
    return model


def _state_dict(model):
    return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}


@pytest.fixture(scope="module")
def gca():
    torch.manual_seed(0)
    model = _randomise(Generator())
    variables = CONVERTERS.get("gca_res_shortcut")(_state_dict(model))
    return model, variables


@pytest.mark.parametrize("hw", [(32, 64), (64, 96)])
def test_semantic_path_matches_gca_in_eval(gca, hw):
    model, variables = gca
    x = torch.randn(2, 6, *hw, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        want = model(x).numpy().transpose(0, 2, 3, 1)
    sp = tcp.SemanticPath(spectral_norm=True)
    got, _ = sp.apply(variables, jnp.asarray(x.numpy().transpose(0, 2, 3, 1)), train=False)
    assert got.shape == want.shape == (2, *hw, 1)
    assert np.abs(want).max() > 0.1  # a non-trivial output
    np.testing.assert_allclose(np.asarray(got), want, rtol=0, atol=ATOL)


def test_flax_power_step_at_eval_would_differ(gca):
    """The test above is sensitive to the eval σ: a power step at eval (flax's SpectralNorm)
    changes σ of the GCA first conv by more than the tolerance."""
    model, _ = gca
    m = model.encoder.conv1.module
    u, v, w = (m.weight_u.detach().numpy(), m.weight_v.detach().numpy(), m.weight_bar.detach())
    mat = w.numpy().reshape(w.shape[0], -1)
    v1 = mat.T @ u / np.linalg.norm(mat.T @ u)
    stepped = np.linalg.norm(mat @ v1)
    assert abs(stepped - spectral_sigma(u, v, mat)) > 1e-3 * stepped


@pytest.mark.parametrize("cin,cout,hw", [(5, 3, (7, 9)), (4, 4, (8, 8))])
def test_conv_transpose_matches_torch(cin, cout, hw):
    torch.manual_seed(3)
    ref = nn.ConvTranspose2d(cin, cout, 4, 2, padding=1, bias=False)
    x = torch.randn(2, cin, *hw)
    with torch.no_grad():
        want = ref(x).numpy().transpose(0, 2, 3, 1)
    layer = tcp.SNConv(cout, transpose=True, spectral_norm=False)
    kernel = common.oihw_to_hwio(ref.weight.detach().numpy())
    got = layer.apply(
        {"params": {"conv": {"kernel": kernel}}},
        jnp.asarray(x.numpy().transpose(0, 2, 3, 1)),
        train=False,
    )
    assert got.shape == want.shape == (2, 2 * hw[0], 2 * hw[1], cout)
    np.testing.assert_allclose(np.asarray(got), want, rtol=0, atol=1e-5)


@pytest.mark.parametrize("transpose", [False, True])
def test_spectral_norm_matches_gca_in_eval_and_in_a_train_step(transpose):
    """Eval: σ = u·Wv from the stored u, v. Train: one power step from u, then the same new u."""
    torch.manual_seed(4)
    cin, cout = 5, 3
    ref = sn_deconv(cin, cout) if transpose else sn_conv(cin, cout)
    x = torch.randn(2, cin, 6, 6)
    sd = {f"c.{k}": v.detach().numpy().copy() for k, v in ref.state_dict().items()}
    rows = sn_conv_entries(sd, ("c",), "c")
    variables = common.unflatten(
        {r.target: np.asarray(r.transform(sd[r.source]), np.float32) for r in rows}
    )
    layer = tcp.SNConv(cout, transpose=transpose)
    xj = jnp.asarray(x.numpy().transpose(0, 2, 3, 1))
    conv = {c: variables[c]["c"] for c in variables}
    ref.eval()
    with torch.no_grad():
        want = ref(x).numpy().transpose(0, 2, 3, 1)
    got = layer.apply(conv, xj, train=False)
    # Random u, v give a small eval σ, so outputs reach ~30: float32 rounding is relative.
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-5)

    ref.train()
    with torch.no_grad():
        want = ref(x).numpy().transpose(0, 2, 3, 1)
    got, new = layer.apply(conv, xj, train=True, mutable=["batch_stats"])
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-5)
    u = np.asarray(new["batch_stats"]["sn"]["conv/kernel/u"])[0]
    np.testing.assert_allclose(u, ref.module.weight_u.detach().numpy(), atol=1e-6)


def test_fresh_sn_conv_is_normalised_in_eval():
    """Init stores σ of the init kernel, so eval at init divides by a real σ (not 1)."""
    layer = tcp.SNConv(8)
    v = layer.init(jax.random.key(0), jnp.zeros((1, 8, 8, 6)), train=False)
    sigma = float(v["batch_stats"]["sn"]["conv/kernel/sigma"])
    kernel = np.asarray(v["params"]["conv"]["kernel"])
    top = np.linalg.svd(kernel.reshape(-1, 8), compute_uv=False)[0]
    assert 0.3 * top < sigma <= top * (1 + 1e-5)
    x = jax.random.normal(jax.random.key(1), (1, 8, 8, 6))
    want = jax.lax.conv_general_dilated(
        x, kernel / sigma, (1, 1), ((1, 1), (1, 1)), dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
    np.testing.assert_allclose(np.asarray(layer.apply(v, x, train=False)), want, atol=1e-5)


def test_converter_names_missing_and_unexpected_keys(gca):
    model, _ = gca
    sd = _state_dict(model)
    del sd["decoder.layer2.1.conv2.module.weight_v"]
    sd["encoder.extra.weight"] = np.zeros(3, np.float32)
    with pytest.raises(common.ConversionError) as err:
        CONVERTERS.get("gca_res_shortcut")(sd)
    assert "decoder.layer2.1.conv2.module.weight_v" in str(err.value)
    assert "encoder.extra.weight" in str(err.value)


def test_converter_reads_a_prefixed_checkpoint(gca):
    model, variables = gca
    sd = {f"module.{k}": v for k, v in _state_dict(model).items()}
    got = CONVERTERS.get("gca_res_shortcut")(sd, prefix="module.")
    flat = jax.tree_util.tree_leaves(
        jax.tree.map(lambda a, b: np.array_equal(a, b), got, variables)
    )
    assert all(flat)


@pytest.mark.parametrize("up", [False, True])
def test_sgm_net_m_resblocks_are_gca_blocks_in_a_train_step(up):
    """SGM Net-M's ResBlocks (S6 down, S7 up) = GCA's BasicBlocks, in training (batch-stat BN,
    one power step). Net-M has no public code, so whole-model parity is not possible; its eval
    still runs flax's power step, unlike GCA (see the converter README)."""
    sgm = pytest.importorskip("jaxmatte.models.sgm_matting")
    torch.manual_seed(5)
    cin, cout = (8, 4) if up else (4, 8)
    ref = DecBlock(cin, cout, True) if up else EncBlock(cin, cout, 2)
    short = "upsample" if up else "downsample"
    sd = {k: v.detach().numpy().copy() for k, v in ref.state_dict().items()}
    rows = []
    for name, src in (("conv1", "conv1"), ("conv2", "conv2"), ("proj", f"{short}.1")):
        rows += sn_conv_entries(sd, (name,), src)
    for name, src in (("bn1", "bn1"), ("bn2", "bn2"), ("proj_bn", f"{short}.2")):
        rows += common.bn_entries((name,), src)
    variables = common.unflatten(
        {r.target: np.asarray(r.transform(sd[r.source]), np.float32) for r in rows}
    )
    x = torch.randn(2, cin, 8, 8)
    ref.train()
    with torch.no_grad():
        want = ref(x).numpy().transpose(0, 2, 3, 1)
    block = sgm.ResBlock(cout, 2, "up" if up else "down")
    xj = jnp.asarray(x.numpy().transpose(0, 2, 3, 1))
    got, _ = block.apply(variables, xj, train=True, mutable=["batch_stats"])
    assert got.shape == want.shape
    np.testing.assert_allclose(np.asarray(got), want, rtol=0, atol=ATOL)

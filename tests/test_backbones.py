"""The arms: build, train step, parameter matching, attention maps, and user errors.

Generic tests take the arms from the registry (`list_arms()`), so a newly registered arm goes
through all of them; the others check what is particular to one arm.
"""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import hydra
import pytest
import torch
import torch.nn.functional as F
from helpers.runs import compose_config
from timm.layers import Attention, use_fused_attn
from timm.layers.cbam import (
    CbamModule,
    ChannelAttn,
    LightCbamModule,
    LightChannelAttn,
    LightSpatialAttn,
    SpatialAttn,
)

from convattn.backbones import Backbone, create_backbone, list_arms, list_presets
from convattn.backbones.cnn import create_timm_cnn
from convattn.errors import ConvattnError

ARMS = list_arms()
ARM_SIZES = [(arm, size) for arm in ARMS for size in list_presets(arm)]
CONF = Path(__file__).resolve().parents[1] / "conf" / "model"
SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


pytestmark = pytest.mark.usefixtures("one_thread")


def build(arm: str, size: str = "tiny", chans: int = 1, classes: int = 10, img: int = 32, **kw):
    torch.manual_seed(0)
    return create_backbone(arm, in_chans=chans, num_classes=classes, img_size=img, size=size, **kw)


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_every_arm_has_a_config_and_every_config_an_arm():
    """One registered arm, one conf/model/<arm>.yaml: neither exists without the other."""
    assert sorted(p.stem for p in CONF.glob("*.yaml") if not p.stem.startswith("_")) == ARMS
    assert {"cnn", "cbam", "vit", "hybrid"} <= set(ARMS)  # the ablation's four


def check_train_step(model: Backbone, chans: int, img: int, classes: int) -> None:
    x = torch.randn(2, chans, img, img)
    logits = model(x)
    assert logits.shape == (2, classes)
    feats = model.forward_features(x)
    torch.testing.assert_close(model.forward_head(feats), logits)
    assert model.model.forward_head(feats, pre_logits=True).shape == (2, model.num_features)
    F.cross_entropy(logits, torch.tensor([0, classes - 1])).backward()
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None, f"{name} got no gradient"
            assert torch.isfinite(p.grad).all(), f"{name} has a non-finite gradient"


# 3 channels at 32x32, 1 elsewhere: every arm x preset sees both without the full product.
@pytest.mark.parametrize(("img", "chans"), [(28, 1), (32, 3), (64, 1)])
@pytest.mark.parametrize(("arm", "size"), ARM_SIZES)
def test_forward_backward(arm, size, img, chans):
    check_train_step(build(arm, size, chans, classes=7, img=img), chans, img, classes=7)


@pytest.mark.parametrize("arm", ARMS)
def test_forward_backward_224(arm):
    check_train_step(build(arm, "tiny", chans=3, classes=5, img=224), 3, 224, classes=5)


@pytest.mark.parametrize("chans", [1, 3])
@pytest.mark.parametrize(("arm", "size"), [(a, s) for a, s in ARM_SIZES if a != "cnn"])
def test_params_match_cnn(arm, size, chans):
    ratio = n_params(build(arm, size, chans)) / n_params(build("cnn", size, chans))
    assert 0.85 <= ratio <= 1.15, f"{arm}/{size}: {ratio:.3f} x the cnn arm's parameters"


@pytest.mark.parametrize("global_pool", ["token", "avg"])
@pytest.mark.parametrize("arm", ["vit", "hybrid"])
def test_transformer_attention_maps(arm, global_pool):
    model = build(arm, "tiny", img=28, global_pool=global_pool)
    tokens = (28 // 4) ** 2 + (global_pool == "token")
    maps = model.attention_maps(torch.randn(2, 1, 28, 28))
    assert list(maps) == [f"blocks.{i}.attn" for i in range(6)]
    for a in maps.values():
        assert a.shape == (2, 3, tokens, tokens)
        assert (a >= 0).all()
        torch.testing.assert_close(a.sum(-1), torch.ones(2, 3, tokens), atol=1e-5, rtol=0)


def test_vit_attention_map_is_softmax_of_scores():
    """blocks.1 map = softmax(q k^T / sqrt(d)) recomputed from that block's qkv weights."""
    model = build("vit", "tiny").eval()
    attn = model.model.blocks[1].attn
    seen = {}
    handle = attn.register_forward_pre_hook(lambda m, args: seen.update(x=args[0]))
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        model(x)
    handle.remove()
    qkv = F.linear(seen["x"], attn.qkv.weight, attn.qkv.bias).unflatten(-1, (3, 3, 32))
    q, k = qkv[:, :, 0].transpose(1, 2), qkv[:, :, 1].transpose(1, 2)  # B x heads x T x d
    expected = torch.softmax(q @ k.transpose(-1, -2) / 32**0.5, dim=-1)
    torch.testing.assert_close(model.attention_maps(x)["blocks.1.attn"], expected)


@pytest.mark.parametrize(
    ("pool", "names"), [("token", {"cls_token", "pos_embed"}), ("avg", {"pos_embed"})]
)
@pytest.mark.parametrize("arm", ["vit", "hybrid"])
def test_no_weight_decay_names_are_parameters(arm, pool, names):
    model = build(arm, global_pool=pool)
    assert model.no_weight_decay() == {f"model.{n}" for n in names}


@pytest.mark.parametrize("img", [28, 32, 64])
@pytest.mark.parametrize("size", list_presets("vit"))
def test_hybrid_and_vit_see_same_tokens(size, img):
    vit, hyb = build("vit", size, img=img), build("hybrid", size, img=img)
    assert vit.num_tokens == hyb.num_tokens == (img // 4) ** 2 + 1
    x = torch.randn(1, 1, img, img)
    assert vit.forward_features(x).shape == hyb.forward_features(x).shape


def randomize_bn(model: torch.nn.Module) -> None:
    """Non-trivial BN statistics and affine, so that the BN term in the formulas matters."""
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(torch.randn(c, generator=g, dtype=torch.float64))
            m.running_var.copy_(torch.rand(c, generator=g, dtype=torch.float64) + 0.5)
            m.weight.data.copy_(torch.randn(c, generator=g, dtype=torch.float64))
            m.bias.data.copy_(torch.randn(c, generator=g, dtype=torch.float64))


def bn_affine(bn: torch.nn.BatchNorm2d, z: torch.Tensor) -> torch.Tensor:
    shape = (1, -1, 1, 1)
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return (z - bn.running_mean.view(shape)) * scale.view(shape) + bn.bias.view(shape)


def channel_gate(attn, x: torch.Tensor, light: bool) -> torch.Tensor:
    """σ(MLP(avg) + MLP(max)) for CBAM; σ(MLP((avg + max) / 2)) for timm's light variant."""
    w1, w2 = attn.fc1.weight[:, :, 0, 0], attn.fc2.weight[:, :, 0, 0]

    def mlp(v):
        return torch.relu(v @ w1.T) @ w2.T

    avg, mx = x.mean((2, 3)), x.amax((2, 3))
    logits = mlp(0.5 * avg + 0.5 * mx) if light else mlp(avg) + mlp(mx)
    return torch.sigmoid(logits)[:, :, None, None]


def spatial_gate(attn, x: torch.Tensor, light: bool) -> torch.Tensor:
    """σ(BN(conv7x7([mean_c x; max_c x]))) (light variant: the average of the two maps)."""
    avg, mx = x.mean(1, keepdim=True), x.amax(1, keepdim=True)
    s = 0.5 * avg + 0.5 * mx if light else torch.cat([avg, mx], 1)
    conv = attn.conv.conv
    z = F.conv2d(s, conv.weight, padding=conv.kernel_size[0] // 2)
    return torch.sigmoid(bn_affine(attn.conv.bn, z))


@pytest.mark.parametrize("attn_layer", ["cbam", "lcbam"])
def test_cbam_gates_match_formula(attn_layer):
    light = attn_layer == "lcbam"
    model = build("cbam", "tiny", attn_layer=attn_layer).double().eval()
    randomize_bn(model)
    cls = LightCbamModule if light else CbamModule
    modules = {n: m for n, m in model.model.named_modules() if isinstance(m, cls)}
    assert len(modules) == 8
    seen, handles = {}, []  # clones: timm's ResNet adds the shortcut to the output in place
    for name, m in modules.items():
        handles += [
            m.register_forward_pre_hook(
                lambda _, a, n=name: seen.__setitem__((n, "in"), a[0].clone())
            ),
            m.spatial.register_forward_pre_hook(
                lambda _, a, n=name: seen.__setitem__((n, "sp_in"), a[0].clone())
            ),
            m.spatial.register_forward_hook(
                lambda _, a, o, n=name: seen.__setitem__((n, "out"), o.clone())
            ),
        ]
    x = torch.randn(3, 1, 32, 32, dtype=torch.float64)
    with torch.no_grad():
        model(x)
        maps = model.attention_maps(x)
    for h in handles:
        h.remove()
    for name, m in modules.items():
        inp, sp_in = seen[(name, "in")], seen[(name, "sp_in")]
        cg = channel_gate(m.channel, inp, light)
        torch.testing.assert_close(sp_in, inp * cg, atol=1e-6, rtol=0)
        sg = spatial_gate(m.spatial, sp_in, light)
        torch.testing.assert_close(seen[(name, "out")], sp_in * sg, atol=1e-6, rtol=0)
        torch.testing.assert_close(maps[f"{name}.spatial"], sg[:, 0], atol=1e-6, rtol=0)
    assert len(maps) == len(modules)


@pytest.mark.parametrize("attn_layer", ["cbam", "lcbam"])
def test_lean_cbam_is_timms_cbam(attn_layer):
    """The lean forwards give timm's outputs and gradients, on timm's state_dict keys."""
    lean = build("cbam", "tiny", attn_layer=attn_layer).double().train()
    timm_model = copy.deepcopy(lean)
    timm_classes = (ChannelAttn, LightChannelAttn, SpatialAttn, LightSpatialAttn)
    swapped = 0
    for m in timm_model.modules():
        if isinstance(m, timm_classes) and type(m) not in timm_classes:  # back to timm's class
            m.__class__, swapped = type(m).__mro__[1], swapped + 1
            assert m.__class__ in timm_classes
    assert swapped == 16  # a channel and a spatial gate in each of the 8 blocks
    kwargs = {"in_chans": 1, "num_classes": 10, "img_size": 32, "channels": (16, 32, 64, 128)}
    plain = create_timm_cnn("resnet18", block_args={"attn_layer": attn_layer}, **kwargs)
    assert list(lean.model.state_dict()) == list(plain.state_dict())
    x = torch.randn(4, 1, 32, 32, dtype=torch.float64)
    outs = []
    for model in (lean, timm_model):
        out = model(x)
        (out * torch.arange(10, dtype=torch.float64)).sum().backward()
        outs.append((out, {n: p.grad for n, p in model.named_parameters()}))
    torch.testing.assert_close(outs[0][0], outs[1][0], atol=1e-10, rtol=0)
    for name, grad in outs[0][1].items():
        torch.testing.assert_close(grad, outs[1][1][name], atol=1e-9, rtol=1e-7, msg=name)


def test_bench_arms_quick(tmp_path):
    """scripts/bench_arms.py --quick: one timed step per arm, a row per arm with its ratio."""
    args = ["--quick", "--arms", "cbam,cnn", "--markdown"]
    cmd = [sys.executable, str(SCRIPTS / "bench_arms.py"), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = [line.split(" | ") for line in proc.stdout.splitlines() if line.startswith("| c")]
    assert [r[0] for r in rows] == ["| cnn", "| cbam"]
    assert rows[0][3] == "1.00" and float(rows[1][3]) > 0


@pytest.mark.parametrize("attn_layer", ["cbam", "lcbam", "se", "eca", "none"])
def test_cbam_attention_maps_in_unit_range(attn_layer):
    maps = build("cbam", "tiny", attn_layer=attn_layer).attention_maps(torch.randn(2, 1, 32, 32))
    if attn_layer in ("se", "eca", "none"):
        assert maps == {}
        return
    assert len(maps) == 8
    for name, a in maps.items():
        side = {"1": 32, "2": 16, "3": 8, "4": 4}[name[len("layer")]]
        assert a.shape == (2, side, side)
        assert torch.isfinite(a).all() and (a >= 0).all() and (a <= 1).all()


def test_cnn_has_no_attention_maps():
    assert build("cnn").attention_maps(torch.randn(2, 1, 32, 32)) == {}


@pytest.mark.parametrize("arm", ARMS)
def test_attention_maps_leave_no_state(arm):
    model = build(arm, "tiny").train()
    x = torch.randn(2, 1, 32, 32)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    model.attention_maps(x)
    assert all(m.training for m in model.modules()), "train/eval flags not restored"
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), f"{k} changed (BN statistics updated?)"
    model.eval()
    with torch.no_grad():
        before = model(x)
        model.attention_maps(x)
        after = model(x)
    assert torch.equal(before, after)
    for m in model.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks, f"hook left on {m}"
        if isinstance(m, Attention):
            assert m.fused_attn == use_fused_attn(), "fused attention not restored"


@pytest.mark.parametrize(
    ("arm", "kwargs", "img", "bad"),
    [
        ("vit", {"patch_size": 6}, 32, "patch_size=6"),
        ("vit", {"patch_size": 8}, 28, "patch_size=8"),
        ("vit", {"global_pool": "max"}, 32, "'max'"),
        ("vit", {"num_heads": 5}, 32, "num_heads=5"),
        ("hybrid", {"patch_size": 6}, 32, "patch_size=6"),
        ("hybrid", {"patch_size": 8}, 28, "patch_size=8"),
        ("hybrid", {"size": "huge"}, 32, "'huge'"),
        ("cbam", {"attn_layer": "sk"}, 32, "'sk'"),
        ("cbam", {"attn_stages": [0, 5]}, 32, "[0, 5]"),
        ("cbam", {"size": "large"}, 32, "'large'"),
        ("vit", {"size": "xl"}, 32, "'xl'"),
    ],
)
def test_bad_input_is_a_user_error(arm, kwargs, img, bad):
    kwargs = {"size": "tiny", **kwargs}
    with pytest.raises(ConvattnError) as err:
        create_backbone(arm, in_chans=1, num_classes=10, img_size=img, **kwargs)
    assert bad in str(err.value)


def test_attn_stages_limits_attention_modules():
    model = build("cbam", "tiny", attn_stages=[3, 4]).model
    for stage in (1, 2, 3, 4):
        for block in getattr(model, f"layer{stage}"):
            assert isinstance(block.se, CbamModule) == (stage in (3, 4))
    full = build("cbam", "tiny").model
    assert n_params(build("cnn")) < n_params(model) < n_params(full)
    maps = build("cbam", "tiny", attn_stages=[3, 4]).attention_maps(torch.randn(1, 1, 32, 32))
    assert sorted({k.split(".")[0] for k in maps}) == ["layer3", "layer4"]


def test_attn_layer_none_is_the_cnn_arm():
    assert n_params(build("cbam", "small", attn_layer="none")) == n_params(build("cnn", "small"))


@pytest.mark.parametrize("arm", ARMS)
def test_hydra_config_instantiates(arm, tmp_path):
    cfg = compose_config("train", [f"model={arm}"], tmp_path).model
    model = hydra.utils.instantiate(cfg, in_chans=3, num_classes=10, img_size=32)
    assert isinstance(model, Backbone) and model.arm == arm
    assert n_params(model) == n_params(build(arm, cfg.size, chans=3))

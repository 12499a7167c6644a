"""Explainers: rollout, Grad-CAM, every arm's maps, the deletion metric, CLI and W&B callback."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from types import SimpleNamespace

import matplotlib.image
import pytest
import torch
import torch.nn.functional as F
from helpers.runs import compose_config, run_cli, wandb_records
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf, open_dict
from PIL import Image
from torch import nn
from torch.overrides import TorchFunctionMode

from convattn.backbones import Backbone, create_backbone, list_arms
from convattn.backbones.capture import eval_mode
from convattn.data.digits import DigitsDataModule
from convattn.errors import ConvattnError
from convattn.explain import (
    attention_rollout,
    deletion_auc_for_run,
    deletion_curve,
    explain_maps,
    get_map_method,
    grad_cam,
    list_map_methods,
    main_map_names,
)
from convattn.explain import deletion as deletion_module
from convattn.explain.cli import explain_run
from convattn.explain.cli import main as explain_main
from convattn.explain.deletion import (
    area_under,
    deletion_for,
    deletion_maps,
    fill_values,
    pixel_ranks,
    random_maps,
)
from convattn.explain.device import resolve_device
from convattn.explain.methods import deletion_method, method_of
from convattn.explain.plot import explanation_figure, map_title
from convattn.explain.rollout import rollout_token_map
from convattn.train import train

pytestmark = pytest.mark.usefixtures("one_thread")


# ---------------------------------------------------------------- attention rollout


def identity_attention(batch: int, heads: int, tokens: int, depth: int) -> list[torch.Tensor]:
    eye = torch.eye(tokens).expand(batch, heads, tokens, tokens)
    return [eye.clone() for _ in range(depth)]


def sink_attention(batch: int, tokens: int, sink: int, depth: int) -> list[torch.Tensor]:
    """Head 0: every token attends only to token `sink`; head 1: each token to itself."""
    attn = torch.zeros(batch, 2, tokens, tokens)
    attn[:, 0, :, sink] = 1.0
    attn[:, 1] = torch.eye(tokens)
    return [attn.clone() for _ in range(depth)]


def test_rollout_of_identity_attention_keeps_each_token_on_itself():
    prefix, grid = 1, 4
    tokens = prefix + grid * grid
    rollout = attention_rollout(identity_attention(2, 3, tokens, depth=4))
    torch.testing.assert_close(rollout, torch.eye(tokens).expand(2, tokens, tokens))
    for k in range(grid * grid):  # patch token k's row, over the patch grid: a peak at k
        row = rollout[:, prefix + k, prefix:].reshape(2, grid, grid)
        assert (row.flatten(1).argmax(dim=1) == k).all()
        torch.testing.assert_close(row.flatten(1)[:, k], torch.ones(2))


def test_rollout_rows_stay_distributions():
    attns = [torch.rand(2, 3, 10, 10).softmax(dim=-1) for _ in range(5)]
    rollout = attention_rollout(attns)
    torch.testing.assert_close(rollout.sum(dim=-1), torch.ones(2, 10))
    assert (rollout >= 0).all()


@pytest.mark.parametrize("prefix, cls_row", [(1, True), (0, False)])  # token vs avg pooling
def test_rollout_finds_the_token_everyone_attends_to(prefix: int, cls_row: bool):
    grid, sink_patch = 4, 9
    attns = sink_attention(2, prefix + grid * grid, prefix + sink_patch, depth=3)
    token_map = rollout_token_map(attns, prefix, cls_row)
    assert token_map.shape == (2, grid * grid)
    assert (token_map.argmax(dim=1) == sink_patch).all()
    # Per block: heads averaged (S + I) / 2, plus the residual I, rows re-normalised:
    # 0.25 S + 0.75 I. A token other than the sink keeps 0.75^depth on itself.
    reached = 1 - 0.75**3
    if not cls_row:  # the mean over the 16 patch rows, one of them the sink's own row (1.0)
        reached = (15 * reached + 1) / 16
    torch.testing.assert_close(token_map[:, sink_patch], torch.full((2,), reached))


def build(arm: str, **kw) -> nn.Module:
    torch.manual_seed(0)
    return create_backbone(arm, in_chans=1, num_classes=10, img_size=32, size="tiny", **kw)


def test_avg_pool_vit_rollout_reads_the_mean_over_patch_rows():
    model = build("vit", global_pool="avg")
    assert model.model.num_prefix_tokens == 0
    x = torch.randn(2, 1, 32, 32)
    rollout = attention_rollout(list(model.attention_maps(x).values()))  # (B, 64, 64)
    expected = F.interpolate(
        rollout.mean(dim=1).reshape(2, 1, 8, 8), size=(32, 32), mode="bilinear"
    )[:, 0]
    lo = expected.flatten(1).min(1).values[:, None, None]
    hi = expected.flatten(1).max(1).values[:, None, None]
    torch.testing.assert_close(explain_maps(model, x)["rollout"], (expected - lo) / (hi - lo))


# ---------------------------------------------------------------- Grad-CAM


class QuadrantModel(nn.Module):
    """Logit 1 = evidence in the top-left quadrant minus evidence elsewhere; logit 0 = reverse.

    The feature map has two channels, the conv features inside / outside the quadrant, so
    Grad-CAM must weight the channels by their gradient to find the quadrant.
    """

    def __init__(self, size: int = 32) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 3, padding=1, bias=False)
        nn.init.dirac_(self.conv.weight)  # passes the image through
        mask = torch.zeros(size, size)
        mask[: size // 2, : size // 2] = 1
        self.register_buffer("mask", mask)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        f = F.relu(self.conv(x))
        return torch.cat([f * self.mask, f * (1 - self.mask)], dim=1)

    def forward_head(self, feats: torch.Tensor) -> torch.Tensor:
        inside, outside = feats.sum(dim=(2, 3)).unbind(dim=1)
        score = (inside - outside) / 50
        return torch.stack([-score, score], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


class QuadrantNet(Backbone):
    """`QuadrantModel` as a Backbone: explainers only ever see the Backbone interface."""

    arm = "quadrant"

    def __init__(self, size: int = 32) -> None:
        super().__init__(QuadrantModel(size))


def quadrant_fraction(maps: torch.Tensor) -> torch.Tensor:
    return maps[:, :16, :16].sum(dim=(1, 2)) / maps.sum(dim=(1, 2))


def test_gradcam_peaks_on_the_region_that_drives_the_logit():
    torch.manual_seed(0)
    model = QuadrantNet().train()
    x = torch.rand(3, 1, 32, 32) + 0.5  # evidence everywhere: only the gradient tells apart
    cam, logits = grad_cam(model, x, torch.ones(3, dtype=torch.long))
    assert cam.shape == (3, 32, 32) and logits.shape == (3, 2)
    assert (quadrant_fraction(cam) > 0.99).all()
    cam0, _ = grad_cam(model, x, torch.zeros(3, dtype=torch.long))  # the other class: elsewhere
    assert (quadrant_fraction(cam0) < 0.01).all()
    # Left as found: train mode, no parameter gradients, no hooks.
    assert model.training and model.model.conv.weight.grad is None
    assert not model.model.conv._forward_hooks


def test_gradcam_works_inside_inference_mode():
    """Lightning runs validation hooks under inference_mode; Grad-CAM must still get gradients."""
    model = QuadrantNet()
    with torch.inference_mode():
        x = torch.rand(2, 1, 32, 32) + 0.5
        maps = explain_maps(model, x, torch.ones(2, dtype=torch.long))
    assert (quadrant_fraction(maps["gradcam"]) > 0.99).all()


# ---------------------------------------------------------------- every arm

# What each known arm gives, in order (behaviour pinned); an arm registered later is checked
# against the method table instead (see `test_map_method_applies_where_explain_maps_gives_it`).
HEADS = ["head_0", "head_1", "head_2"]
ARM_MAPS = {
    "cnn": ["gradcam"],
    "cbam": ["gradcam", "cbam_layer1", "cbam_layer2", "cbam_layer3", "cbam_layer4"],
    "vit": ["gradcam", "rollout", *HEADS],
    "hybrid": ["gradcam", "rollout", *HEADS],
}
MAIN_MAPS = {
    "cnn": ["gradcam"],
    "cbam": ["gradcam", "cbam_layer4"],
    "vit": ["gradcam", "rollout"],
    "hybrid": ["gradcam", "rollout"],
}
# Every registered arm (a fifth one is covered without editing this file), ViT's mean pool, and
# the cbam arm with channel-only gates (no spatial gates, so no stage maps).
CASES = [(arm, arm, {}) for arm in list_arms()]
CASES += [("vit-avg", "vit", {"global_pool": "avg"}), ("cbam-se", "cbam", {"attn_layer": "se"})]
ARM_MAPS |= {"vit-avg": ARM_MAPS["vit"], "cbam-se": ["gradcam"]}
MAIN_MAPS |= {"vit-avg": MAIN_MAPS["vit"], "cbam-se": ["gradcam"]}


@pytest.mark.parametrize("case, arm, kw", CASES, ids=[c[0] for c in CASES])
def test_every_arm_gives_image_sized_unit_maps_and_leaves_no_state(case: str, arm: str, kw: dict):
    model = build(arm, **kw).train()
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        before = model.eval()(x)
    model.train()
    flags = [m.training for m in model.modules()]
    maps = explain_maps(model, x)
    if case in ARM_MAPS:  # known arms: exactly these maps, in this order
        assert list(maps) == ARM_MAPS[case]
        assert main_map_names(list(maps)) == MAIN_MAPS[case]
    assert "gradcam" in maps and ("rollout" in maps) == (model.token_layout is not None)
    for name, m in maps.items():
        assert m.shape == (2, 32, 32), name
        assert torch.isfinite(m).all(), name
        assert m.min() >= 0 and m.max() <= 1, name
        torch.testing.assert_close(m.flatten(1).max(dim=1).values, torch.ones(2), msg=name)
    # Grad-CAM carries information for every arm (a degenerate map would be all ones).
    assert (maps["gradcam"].flatten(1).min(dim=1).values < 1).all()
    assert [m.training for m in model.modules()] == flags
    assert all(p.grad is None for p in model.parameters())
    assert not any(m._forward_hooks for m in model.modules())
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), before)


# ---------------------------------------------------------------- the map-method table


@pytest.fixture(scope="module")
def arm_maps() -> dict[str, tuple[Backbone, dict[str, torch.Tensor]]]:
    """Every registered arm (tiny preset) and the maps `explain_maps` gives it."""
    out = {}
    for arm in list_arms():
        model = build(arm)
        out[arm] = (model, explain_maps(model, torch.randn(2, 1, 32, 32)))
    return out


@pytest.mark.parametrize("name", list_map_methods())
def test_map_method_applies_where_explain_maps_gives_it(name: str, arm_maps):
    method = get_map_method(name)
    for arm, (model, maps) in arm_maps.items():
        owned = [n for n in maps if method.owns(n)]
        assert method.applies_to(model) == bool(owned), arm
        assert method.family or owned in ([], [name]), arm


def test_every_map_comes_from_exactly_one_method(arm_maps):
    for arm, (_, maps) in arm_maps.items():
        for map_name in maps:
            owners = [m for m in list_map_methods() if get_map_method(m).owns(map_name)]
            assert len(owners) == 1, (arm, map_name, owners)
            assert method_of(map_name) is get_map_method(owners[0])


@pytest.mark.parametrize("name", list_map_methods())
def test_map_method_titles_its_panels(name: str, arm_maps):
    method = get_map_method(name)
    shown = {n: m[0].numpy() for _, maps in arm_maps.values() for n, m in maps.items()}
    shown = {n: m for n, m in shown.items() if method.owns(n)}
    assert shown, f"no registered arm gives a {name} map: a dead row in the table"
    titles = [method.panel_title(n) for n in shown]
    assert all(titles) and len(set(titles)) == len(titles)  # one distinct title per panel
    assert [map_title(n) for n in shown] == titles
    fig = explanation_figure(next(iter(shown.values())), shown, "1", "2")
    assert [ax.get_title() for ax in fig.axes] == ["input", *titles]


def test_known_maps_keep_their_panel_titles():
    expected = {
        "gradcam": "Grad-CAM",
        "rollout": "rollout",
        "head_2": "head 2 (last block)",
        "cbam_layer3": "CBAM layer3",
        "mystery": "mystery",  # a map no method makes keeps its name
    }
    assert {n: map_title(n) for n in expected} == expected


def test_an_unknown_map_method_is_refused_naming_the_valid_ones():
    with pytest.raises(ConvattnError) as err:
        get_map_method("saliency")
    message = str(err.value)
    assert "map='saliency'" in message and "\n" not in message
    assert all(name in message for name in list_map_methods())


def test_the_deletion_map_is_a_class_specific_map_every_arm_has(arm_maps):
    method = deletion_method()
    assert [m for m in list_map_methods() if get_map_method(m).deletion] == [method.name]
    assert not method.family
    assert all(method.applies_to(model) for model, _ in arm_maps.values())
    # It explains the class it is given (the true class, in the deletion metric).
    model, x = QuadrantNet(), torch.rand(3, 1, 32, 32) + 0.5
    for target, inside in ((1, True), (0, False)):
        maps = deletion_maps(model, x, torch.full((3,), target), batch_size=2)
        assert ((quadrant_fraction(maps) > 0.99) == inside).all()


# ---------------------------------------------------------------- deletion metric


def test_deleting_by_the_relevant_map_hurts_faster_than_random():
    torch.manual_seed(0)
    model = QuadrantNet()
    images = 0.2 + 0.1 * torch.rand(16, 1, 32, 32)
    images[:, :, :16, :16] += 0.8  # the evidence for class 1 sits in the quadrant
    labels = torch.ones(16, dtype=torch.long)
    truth = torch.zeros(16, 32, 32)
    truth[:, :16, :16] = 1
    noise = random_maps(16, (32, 32), seed=0)
    gradcam = explain_maps(model, images, labels)["gradcam"]

    by_truth = deletion_curve(model, images, labels, truth, steps=10)
    by_gradcam = deletion_curve(model, images, labels, gradcam, steps=10)
    by_random = deletion_curve(model, images, labels, noise, steps=10)
    assert by_truth["fractions"] == [k / 10 for k in range(11)]
    assert by_truth["acc"][0] == by_random["acc"][0] == 1.0  # nothing deleted yet
    assert by_truth["acc"][1] == 0.0 and by_random["acc"][1] == 1.0
    for curve in (by_truth, by_gradcam):
        assert curve["auc_acc"] < by_random["auc_acc"] - 0.5
        assert curve["auc_prob"] < by_random["auc_prob"] - 0.1
    assert 0 <= by_truth["auc_prob"] <= 1


@torch.no_grad()
def whole_split_deletion_curve(backbone, images, labels, maps, steps, fill, batch_size):
    """The deletion metric as it was before it went batch by batch: int64 ranks of the whole
    split at once, then the steps, each over every batch. The reference the streaming must
    match number for number."""
    flat = maps.flatten(1)
    order = torch.argsort(flat, dim=1, descending=True, stable=True)
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(flat.shape[1]).expand_as(order))
    ranks = ranks.view(maps.shape)
    fills = fill_values(images, fill)
    num_pixels = maps[0].numel()
    fractions = [k / steps for k in range(steps + 1)]
    acc, prob = [], []
    with eval_mode(backbone):
        for frac in fractions:
            deleted = (ranks < round(frac * num_pixels))[:, None]
            correct, p_true = 0.0, 0.0
            for start in range(0, len(images), batch_size):
                sl = slice(start, start + batch_size)
                x = torch.where(deleted[sl], fills[sl], images[sl])
                probs = backbone(x).float().softmax(dim=1)
                correct += (probs.argmax(dim=1) == labels[sl]).sum().item()
                p_true += probs.gather(1, labels[sl][:, None]).sum().item()
            acc.append(correct / len(images))
            prob.append(p_true / len(images))
    return {
        "fractions": fractions,
        "acc": acc,
        "prob": prob,
        "auc_acc": area_under(fractions, acc),
        "auc_prob": area_under(fractions, prob),
        "num_images": len(images),
        "fill": fill,
    }


@pytest.mark.parametrize("fill", ["zero", "mean"])
def test_batched_deletion_curve_equals_the_whole_split_formulation(fill: str):
    model = build("cnn")
    torch.manual_seed(1)
    images, labels = torch.randn(13, 1, 32, 32), torch.randint(0, 10, (13,))
    for maps in (random_maps(13, (32, 32), seed=3), explain_maps(model, images)["gradcam"]):
        expected = whole_split_deletion_curve(model, images, labels, maps, 5, fill, 4)
        assert deletion_curve(model, images, labels, maps, 5, fill, batch_size=4) == expected


def test_pixel_ranks_use_the_smallest_integer_dtype_that_holds_them():
    maps = torch.rand(2, 8, 8)
    ranks = pixel_ranks(maps)
    assert ranks.dtype == torch.int8
    assert torch.equal(ranks.sort(dim=1).values, torch.arange(64).expand(2, 64).to(torch.int8))
    assert (ranks.gather(1, maps.flatten(1).argmax(dim=1, keepdim=True)) == 0).all()
    assert pixel_ranks(torch.rand(1, 32, 32)).dtype == torch.int16
    assert pixel_ranks(torch.rand(1, 224, 224)).dtype == torch.int32  # not int64


def test_random_maps_drawn_batch_by_batch_equal_one_draw():
    generator = torch.Generator().manual_seed(5)
    parts = [random_maps(n, (20, 20), generator=generator) for n in (3, 7, 1, 9)]
    assert torch.equal(torch.cat(parts), random_maps(20, (20, 20), seed=5))


class TinyModel(nn.Module):
    """Two feature channels and ten classes: so small that a tensor of the whole split's pixels
    would be the largest the deletion metric makes."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)
        self.fc = nn.Linear(2, 10)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv(x))

    def forward_head(self, feats: torch.Tensor) -> torch.Tensor:
        return self.fc(feats.mean(dim=(2, 3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


class TinyNet(Backbone):
    arm = "tiny"

    def __init__(self) -> None:
        torch.manual_seed(0)
        super().__init__(TinyModel())


def fake_run(backbone: nn.Module, eval_batch_size: int) -> SimpleNamespace:
    """What `deletion_for` reads of a Run: the model's backbone, its arm, checkpoint and data
    (digits, loaded here so that its in-memory splits are not counted as the metric's own)."""
    dm = DigitsDataModule(eval_batch_size=eval_batch_size)
    dm.setup("test")
    model = nn.ModuleDict({"backbone": backbone})
    return SimpleNamespace(model=model, arm="tiny", ckpt=Path("tiny.ckpt"), datamodule=lambda: dm)


def test_streamed_deletion_for_equals_the_whole_split_formulation():
    backbone, n, batch = TinyNet(), 30, 8  # loader batches of 7, regrouped into 8, 8, 8, 6
    run = fake_run(backbone, eval_batch_size=7)
    result = deletion_for(run, n, steps=4, fill="mean", batch_size=batch, device="cpu")

    dm = run.datamodule()
    xs, ys = zip(*(dm.model_ready(b) for b in dm.loader("test")), strict=True)
    images, labels = torch.cat(xs)[:n], torch.cat(ys)[:n]
    maps = deletion_maps(backbone, images, labels, batch)
    noise = random_maps(n, (32, 32), seed=0)
    expected = whole_split_deletion_curve(backbone, images, labels, maps, 4, "mean", batch)
    expected |= {"arm": "tiny", "ckpt": "tiny.ckpt", "map": "gradcam"}
    expected["random"] = whole_split_deletion_curve(
        backbone, images, labels, noise, 4, "mean", batch
    )
    assert result == expected


def test_deletion_refuses_an_arm_its_map_does_not_apply_to(monkeypatch):
    unfit = dataclasses.replace(deletion_method(), applies_to=lambda backbone: False)
    monkeypatch.setattr(deletion_module, "deletion_method", lambda: unfit)
    with pytest.raises(ConvattnError) as err:
        deletion_for(fake_run(TinyNet(), eval_batch_size=7), 4, steps=2)
    message = str(err.value)
    assert "'tiny' arm" in message and unfit.title in message and "\n" not in message


class LargestTensors(TorchFunctionMode):
    """Records the most elements of any tensor a torch function returns, and of argsort's input."""

    def __init__(self) -> None:
        super().__init__()
        self.largest = self.argsorted = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func in (torch.argsort, torch.Tensor.argsort):
            self.argsorted = max(self.argsorted, args[0].numel())
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


def test_deletion_memory_does_not_grow_with_the_split():
    batch, pixels = 4, 32 * 32
    seen = {}
    for n in (12, 60):
        backbone = TinyNet()
        batch_sizes = []
        backbone.model.conv.register_forward_pre_hook(
            lambda module, args, sizes=batch_sizes: sizes.append(args[0].shape[0])
        )
        run = fake_run(backbone, eval_batch_size=5)
        with LargestTensors() as sizes:
            result = deletion_for(run, n, steps=3, batch_size=batch)
        assert result["num_images"] == result["random"]["num_images"] == n
        assert max(batch_sizes) == batch  # every forward pass, Grad-CAM's included
        assert sizes.argsorted == batch * pixels  # pixel ranks: one batch at a time
        seen[n] = sizes.largest
    # No tensor of the whole split's pixels (60 x 32 x 32), and nothing grows with N.
    assert seen[60] == seen[12] < 12 * pixels


# ---------------------------------------------------------------- CLI and callback

SHORT = [
    "trainer.max_epochs=1",
    "+trainer.limit_train_batches=2",
    "+trainer.limit_val_batches=1",
    "callbacks.progress_bar=null",
    "callbacks.model_summary=null",
    "profile=false",
    "logger=csv",
    "print_config=false",
]


@pytest.fixture(scope="module")
def arm_runs(tmp_path_factory) -> dict[str, Path]:
    """One briefly trained run dir per arm."""
    root = tmp_path_factory.mktemp("runs")
    runs = {}
    for arm in list_arms():
        cfg = compose_config("train", [f"model={arm}", *SHORT], root / arm)
        train(cfg)
        # What Hydra's own run writes and convattn-explain reads the data config from.
        with open_dict(cfg):
            del cfg["hydra"]
        (root / arm / ".hydra").mkdir()
        OmegaConf.save(cfg, root / arm / ".hydra" / "config.yaml")
        runs[arm] = root / arm
    GlobalHydra.instance().clear()
    return runs


def png_panels(path: Path) -> int:
    """The panel count save_png wrote into the PNG's metadata."""
    with Image.open(path) as img:
        return int(img.text["Description"].removeprefix("panels="))


@pytest.mark.slow
def test_cli_writes_grids_comparison_and_deletion(arm_runs: dict[str, Path], tmp_path: Path):
    assert not (arm_runs["cnn"] / "wandb").exists()  # the callback is a no-op without W&B
    out = tmp_path / "explain"
    dirs = [str(arm_runs[a]) for a in list_arms()]
    args = ["-n", "2", "-o", str(out), "--deletion", "--deletion-images", "24", "--steps", "4"]
    args += ["--device", "cpu"]  # the AUC is compared with a CPU run below, on any machine
    run_cli("convattn-explain", *dirs, *args, cwd=tmp_path, env={"OMP_NUM_THREADS": "1"})
    index = json.loads((out / "index.json").read_text())
    columns = 1  # the comparison: the input, then each arm's main maps
    for arm in list_arms():
        entries = index["runs"][arm]["images"]
        assert len(entries) == 2
        for entry in entries:
            assert entry["maps"] == ARM_MAPS.get(arm, entry["maps"])
            image = matplotlib.image.imread(entry["path"])
            assert image.ndim == 3 and image.shape[0] > 100
            assert png_panels(Path(entry["path"])) == entry["panels"] == 1 + len(entry["maps"])
            assert entry["true"] in map(str, range(10)) and entry["pred"] in map(str, range(10))
        columns += len(MAIN_MAPS.get(arm) or main_map_names(entries[0]["maps"]))
    comparison = index["comparison"]
    assert (comparison["rows"], comparison["columns"]) == (2, columns)
    assert png_panels(Path(comparison["path"])) == comparison["panels"] == 2 * columns
    assert matplotlib.image.imread(comparison["path"]).shape[1] > 800

    deletion = json.loads((out / "deletion.json").read_text())
    assert set(deletion) == set(list_arms())
    for arm, d in deletion.items():
        assert d["num_images"] == 24 and len(d["acc"]) == 5 and len(d["random"]["prob"]) == 5
        assert d["auc_acc"] == pytest.approx(area_under(d["fractions"], d["acc"]), abs=1e-6)
        # the CLI's AUC is the one the report computes for the same run
        auc = deletion_auc_for_run(arm_runs[arm], num_images=24, steps=4)
        assert auc == pytest.approx(d["auc_acc"], abs=1e-6), arm


@pytest.mark.slow
def test_cli_explains_image_files_and_reports_bad_inputs(arm_runs, tmp_path: Path, capsys):
    good = tmp_path / "digit.png"
    Image.new("RGB", (20, 14), (200, 30, 30)).save(good)
    out = tmp_path / "files"
    ckpt = arm_runs["vit"] / "checkpoints" / "best.ckpt"
    assert explain_main([str(ckpt), "--images", str(good), "-o", str(out), "--device", "cpu"]) == 0
    (entry,) = json.loads((out / "index.json").read_text())["runs"]["vit"]["images"]
    assert entry["true"] == "?" and png_panels(Path(entry["path"])) == 6

    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    assert explain_main([str(ckpt), "--images", str(bad), "-o", str(out)]) == 2
    assert "Cannot read the image file" in capsys.readouterr().err
    assert explain_main([str(tmp_path / "missing.ckpt"), "-o", str(out)]) == 2
    assert "no checkpoint file at" in capsys.readouterr().err


def test_resolve_device_takes_auto_cpu_and_cuda():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(" CPU ") == torch.device("cpu")
    auto = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("auto") == resolve_device(None) == auto
    if torch.cuda.is_available():
        assert resolve_device("cuda:0") == torch.device("cuda:0")
        with pytest.raises(ConvattnError, match="names GPU 99"):
            resolve_device("cuda:99")
    else:
        with pytest.raises(ConvattnError, match=r"device='cuda:0' asks for a CUDA GPU"):
            resolve_device("cuda:0")


@pytest.mark.parametrize("value", ["tpu", "gpu", "cuda:x", "cuda:-1", "cuda0", ""])
def test_resolve_device_refuses_other_values_naming_the_valid_ones(value: str):
    with pytest.raises(ConvattnError) as err:
        resolve_device(value)
    message = str(err.value)
    assert f"device={value!r}" in message and "\n" not in message
    for form in ("auto", "cpu", "cuda", "cuda:N"):
        assert form in message


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_explain_and_deletion_run_on_cuda_and_return_cpu_results():
    on_cpu = deletion_for(fake_run(TinyNet(), 7), 20, steps=3, batch_size=8, device="cpu")
    run = fake_run(TinyNet(), 7)
    on_gpu = deletion_for(run, 20, steps=3, batch_size=8, device="cuda")
    assert next(run.model.parameters()).is_cuda
    json.dumps(on_gpu)  # plain numbers, nothing left on the GPU
    assert on_gpu["num_images"] == 20 and on_gpu["fractions"] == on_cpu["fractions"]
    for key in ("auc_prob", "auc_acc"):  # kernels differ, so near-ties may rank differently
        assert on_gpu[key] == pytest.approx(on_cpu[key], abs=0.1)
    images, labels = torch.randn(3, 1, 32, 32, device="cuda"), torch.arange(3, device="cuda")
    result = explain_run(run, images, labels)
    assert result["maps"]["gradcam"].shape == (3, 32, 32) and result["labels"] == [0, 1, 2]
    assert len(result["preds"]) == 3 and result["shown"].shape == (3, 32, 32)


def test_cli_refuses_a_bad_device_before_loading_anything(tmp_path: Path):
    proc = run_cli("convattn-explain", "missing.ckpt", "--device", "tpu", cwd=tmp_path, check=False)
    assert proc.returncode == 2, proc.stderr
    (line,) = proc.stderr.strip().splitlines()  # one paragraph, no traceback
    assert line.startswith("convattn-explain: device='tpu' is not a device")
    assert "auto" in line and "cuda:N" in line and "missing.ckpt" not in line
    assert not (tmp_path / "explain").exists()


@pytest.mark.slow
def test_callback_logs_overlays_to_wandb(train_cfg, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    cfg = [*SHORT, "model=vit", "logger=wandb"]
    cfg += ["callbacks.attention_maps.num_images=2", "callbacks.attention_maps.every_n_epochs=1"]
    train(train_cfg(cfg))
    (offline,) = (tmp_path / "wandb").glob("offline-run-*")
    media = offline / "files" / "media" / "images" / "attention_maps"
    for split in ("val", "test"):
        pngs = sorted(media.glob(f"{split}_*.png"))
        assert len(pngs) == 2, list(media.iterdir())
        for png in pngs:  # input + Grad-CAM + rollout + 3 heads, side by side
            image = matplotlib.image.imread(png)
            assert image.shape[1] > 4 * image.shape[0]
    summaries = [r for r in wandb_records(offline) if "summary" in r]
    logged = {}
    for record in summaries:
        logged |= record.get("summary", {}).get("update", {})
    assert logged["attention_maps/val.count"] == 2 and logged["attention_maps/test.count"] == 2
    assert logged["attention_maps/val._type"] == "images/separated"

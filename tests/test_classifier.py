"""ImageClassifier: any channels and classes, its loss options and its schedule."""

from __future__ import annotations

import re
from itertools import pairwise

import pytest
import torch
from lightning.pytorch import Trainer
from torch.utils.data import DataLoader, TensorDataset

from convattn.backbones import list_arms
from convattn.classifier import ImageClassifier
from convattn.errors import ConvattnError
from convattn.metrics import eval_metrics
from convattn.schedule import warmup_cosine

RECIPE = {
    "optimizer": {
        "_target_": "torch.optim.AdamW",
        "_partial_": True,
        "lr": 1e-2,
        "weight_decay": 0.05,
    },
    "scheduler": {"warmup_epochs": 1.0, "warmup_start_factor": 0.01, "min_lr": 1e-5},
}
CNN = {"_target_": "convattn.backbones.create_backbone", "arm": "cnn", "size": "tiny"}


def make(in_chans: int = 1, num_classes: int = 10, **kw) -> ImageClassifier:
    return ImageClassifier(CNN, in_chans, num_classes, 32, **{**RECIPE, **kw})


@pytest.mark.parametrize(("in_chans", "num_classes"), [(1, 2), (3, 7), (3, 100)])
def test_any_channels_and_classes(in_chans: int, num_classes: int) -> None:
    model = make(in_chans, num_classes)
    assert model(torch.randn(2, in_chans, 32, 32)).shape == (2, num_classes)


def test_top5_only_with_more_than_five_classes() -> None:
    assert "acc_top5" in eval_metrics(10)
    assert "acc_top5" not in eval_metrics(5)


def test_class_weights_change_the_loss() -> None:
    logits, y = torch.randn(16, 3), torch.randint(0, 3, (16,))
    plain = make(num_classes=3).loss(logits, y)
    weighted = make(num_classes=3, class_weights=[1.0, 5.0, 0.1]).loss(logits, y)
    expected = torch.nn.functional.cross_entropy(logits, y, weight=torch.tensor([1.0, 5.0, 0.1]))
    assert torch.allclose(weighted, expected) and not torch.allclose(plain, weighted)


def test_label_smoothing_is_applied() -> None:
    logits, y = torch.randn(16, 10), torch.randint(0, 10, (16,))
    smoothed = make(label_smoothing=0.1).loss(logits, y)
    assert torch.allclose(
        smoothed, torch.nn.functional.cross_entropy(logits, y, label_smoothing=0.1)
    )


def test_bad_class_weights_are_named() -> None:
    with pytest.raises(ConvattnError, match=re.escape("recipe.class_weights='heavy'")):
        make(class_weights="heavy")


def test_warmup_then_cosine_schedule() -> None:
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-2)
    sched = warmup_cosine(opt, total_steps=40, warmup_steps=10, start_factor=0.01, min_lr=1e-5)
    lrs = []
    for _ in range(40):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(1e-4)  # lr * start_factor
    assert max(lrs) == pytest.approx(1e-2) and lrs.index(max(lrs)) == 10
    assert all(a < b for a, b in pairwise(lrs[:11]))  # rising warmup
    assert all(a > b for a, b in pairwise(lrs[10:]))  # falling cosine
    assert lrs[-1] < 1e-4


@pytest.mark.parametrize("arm", list_arms())
def test_optimizer_groups_skip_decay_on_norms_biases_and_tokens(arm: str) -> None:
    """The optimizer `configure_optimizers` hands Lightning: decay only on weight matrices."""
    backbone = {**CNN, "arm": arm}
    model = ImageClassifier(backbone, 1, 10, 32, **RECIPE)
    data = TensorDataset(torch.randn(4, 1, 32, 32), torch.arange(4))
    trainer = Trainer(
        max_steps=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, accelerator="cpu",
    )  # fmt: skip
    trainer.fit(model, DataLoader(data, batch_size=4))
    names = {id(p): n for n, p in model.backbone.named_parameters()}
    decay = {
        g["weight_decay"]: [names[id(p)] for p in g["params"]]
        for g in trainer.optimizers[0].param_groups
    }
    assert set(decay) == {0.0, 0.05}
    assert sum(map(len, decay.values())) == len(names)  # every parameter is optimised once
    for name in decay[0.05]:
        assert name.endswith("weight") and "norm" not in name and ".bn" not in name, name
    params = dict(model.backbone.named_parameters())
    for name in decay[0.0]:
        assert params[name].ndim <= 1 or name.split(".")[-1] in {"pos_embed", "cls_token"}, name
    skipped = {n.split(".")[-1] for n in decay[0.0]}
    assert "bias" in skipped
    if arm in {"vit", "hybrid"}:
        assert {"pos_embed", "cls_token"} <= skipped

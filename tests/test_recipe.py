"""Recipe options: mixup/cutmix, EMA, channels_last, bf16, compile, per-class accuracy."""

from __future__ import annotations

import pytest
import torch
from timm.data import Mixup

from convattn.classifier import ImageClassifier
from convattn.errors import ConvattnError
from convattn.train import train
from convattn.utils.run_record import read_record

SHORT = [
    "trainer.max_epochs=1",
    "+trainer.limit_train_batches=4",
    "+trainer.limit_val_batches=1",
    "profile=false",
]
RECIPE = {
    "optimizer": {"_target_": "torch.optim.AdamW", "_partial_": True, "lr": 1e-3},
    "scheduler": {"warmup_epochs": 1.0, "warmup_start_factor": 0.01, "min_lr": 1e-5},
}
CNN = {"_target_": "convattn.backbones.create_backbone", "arm": "cnn", "size": "tiny"}


def test_per_class_accuracy_matches_confusion_matrix(train_cfg, tmp_path) -> None:
    train(train_cfg(SHORT))
    record = read_record(tmp_path)
    cm = torch.tensor(record["confusion_matrix"], dtype=torch.float64)
    per_class = torch.tensor(record["per_class_acc"], dtype=torch.float64)
    assert per_class.shape == (10,)
    assert torch.allclose(per_class, cm.diag() / cm.sum(1), atol=1e-6)
    assert record["metrics"]["test/acc_worst_class"] == pytest.approx(per_class.min().item())


def test_mixup_and_cutmix_train_with_soft_targets(train_cfg, tmp_path) -> None:
    cfg = train_cfg([*SHORT, "recipe.mixup.mixup_alpha=0.8", "recipe.mixup.cutmix_alpha=1.0"])
    metrics = train(cfg)
    assert torch.isfinite(torch.tensor(metrics["test/loss"]))
    model = ImageClassifier(CNN, 1, 10, 32, **RECIPE, mixup={"mixup_alpha": 0.8})
    assert isinstance(model.mixup, Mixup)
    x, y = torch.randn(4, 1, 32, 32), torch.arange(4)
    mixed, soft = model.mixup(x.clone(), y)  # timm mixes in place
    assert soft.shape == (4, 10) and torch.allclose(soft.sum(1), torch.ones(4))
    assert not torch.equal(mixed, x)


def test_mixup_with_class_weights_is_refused() -> None:
    with pytest.raises(ConvattnError, match="cannot be combined with mixup"):
        ImageClassifier(
            CNN, 1, 10, 32, **RECIPE, class_weights="balanced", mixup={"cutmix_alpha": 1.0}
        )


def test_channels_last_gives_the_same_logits() -> None:
    torch.manual_seed(0)
    plain = ImageClassifier(CNN, 3, 10, 32, **RECIPE).eval()
    nhwc = ImageClassifier(CNN, 3, 10, 32, **RECIPE, channels_last=True).eval()
    nhwc.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 32, 32)
    assert torch.allclose(plain(x), nhwc(x), atol=1e-5)
    weight = nhwc.backbone.model.conv1.weight
    assert weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()


def test_ema_weights_are_what_gets_tested(train_cfg, tmp_path) -> None:
    train(train_cfg([*SHORT, "callbacks=ema", "callbacks.ema.decay=0.5"]))
    ckpt = torch.load(tmp_path / "checkpoints" / "best.ckpt", weights_only=False)
    # Lightning's EMA callback checkpoints the averaged weights as `state_dict` (what eval loads)
    # and keeps the raw ones aside.
    averaged, raw = ckpt["state_dict"], ckpt["current_model_state"]
    key = "backbone.model.fc.weight"
    assert not torch.equal(averaged[key], raw[key])


def test_bf16_autocast_trains_on_cpu(train_cfg) -> None:
    metrics = train(train_cfg([*SHORT, "trainer.precision=bf16-mixed"]))
    assert 0.0 <= metrics["test/acc"] <= 1.0


@pytest.mark.slow
def test_compiled_backbone_trains(train_cfg) -> None:
    metrics = train(train_cfg([*SHORT, "recipe.compile=true", "+trainer.limit_test_batches=1"]))
    assert 0.0 <= metrics["test/acc"] <= 1.0

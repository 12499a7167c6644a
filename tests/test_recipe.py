"""Recipe options: mixup/cutmix, EMA, channels_last, bf16, compile, per-class accuracy."""

from __future__ import annotations

import json
import math

import pytest
import torch
from helpers.runs import only_run_dir, run_cli

from convattn.classifier import ImageClassifier
from convattn.cluster.hardware import tensor_core_precision
from convattn.errors import ConvattnError
from convattn.run.record import RunRecord
from convattn.train import train

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
    record = RunRecord.read(tmp_path).to_dict()
    cm = torch.tensor(record["confusion_matrix"], dtype=torch.float64)
    per_class = torch.tensor(record["per_class_acc"], dtype=torch.float64)
    assert per_class.shape == (10,)
    assert torch.allclose(per_class, cm.diag() / cm.sum(1), atol=1e-6)
    assert record["metrics"]["test/acc_worst_class"] == pytest.approx(per_class.min().item())


def test_mixup_and_cutmix_train_with_soft_targets(train_cfg, tmp_path) -> None:
    probe = tmp_path / "mixed.json"
    metrics = train(train_cfg([*SHORT, "recipe.mixup.mixup_alpha=0.8",
                               "recipe.mixup.cutmix_alpha=1.0",
                               "+callbacks.probe._target_=helpers.probes.MixedBatches",
                               f"+callbacks.probe.out={probe}"]))  # fmt: skip
    assert math.isfinite(metrics["test/loss"])
    batches = json.loads(probe.read_text())  # what the run's own mixup did, batch by batch
    assert len(batches) == 4
    for batch in batches:
        assert batch == {"targets_shape": [64, 10], "rows_sum_to_one": True, "soft": True,
                         "images_changed": True}, batch  # fmt: skip


def test_mixup_with_class_weights_is_refused() -> None:
    with pytest.raises(ConvattnError, match="cannot be combined with mixup"):
        ImageClassifier(
            CNN, 1, 10, 32, **RECIPE, class_weights=[1.0] * 10, mixup={"cutmix_alpha": 1.0}
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


@pytest.mark.parametrize("class_weights", ["null", "balanced"])
def test_ema_weights_are_what_gets_tested(train_cfg, tmp_path, class_weights) -> None:
    probe = tmp_path / "tested.json"
    # balanced: the class-weight buffer must exist before the EMA copy pairs up the buffers.
    train(train_cfg([*SHORT, "callbacks=ema", "callbacks.ema.decay=0.5",
                     f"recipe.class_weights={class_weights}",
                     "+callbacks.probe._target_=helpers.probes.TestedWeights",
                     f"+callbacks.probe.out={probe}"]))  # fmt: skip
    ckpt = torch.load(tmp_path / "checkpoints" / "best.ckpt", weights_only=True)
    # Lightning's EMA callback checkpoints the averaged weights as `state_dict` (what eval loads)
    # and keeps the raw ones aside; the test split must be scored with the averaged ones.
    averaged, raw = ckpt["state_dict"], ckpt["current_model_state"]
    key = "backbone.model.fc.weight"
    assert not torch.equal(averaged[key], raw[key])
    tested = json.loads(probe.read_text())
    assert tested[key] == pytest.approx(float(averaged[key].double().sum()), rel=1e-9)
    assert tested[key] != pytest.approx(float(raw[key].double().sum()), rel=1e-9)


def test_compile_happens_once_for_fit_and_test() -> None:
    model = ImageClassifier(CNN, 1, 10, 32, **RECIPE, compile=True)
    model.configure_model()
    compiled = model.backbone._compiled_call_impl
    assert compiled is not None
    model.configure_model()  # Lightning calls it again for trainer.test
    assert model.backbone._compiled_call_impl is compiled


def test_tf32_tensor_cores_only_for_full_precision_on_cuda() -> None:
    assert tensor_core_precision(on_cuda=True, precision="32-true") == "high"
    assert tensor_core_precision(on_cuda=True, precision="bf16-mixed") is None
    assert tensor_core_precision(on_cuda=False, precision="32-true") is None


@pytest.mark.parametrize(
    ("precision", "dtype"), [("bf16-mixed", "bfloat16"), ("32-true", "float32")]
)
def test_bf16_autocast_runs_the_backbone_in_bf16(train_cfg, tmp_path, precision, dtype) -> None:
    probe = tmp_path / "dtypes.json"
    metrics = train(train_cfg([*SHORT, f"trainer.precision={precision}",
                               "+callbacks.probe._target_=helpers.probes.ActivationDtypes",
                               f"+callbacks.probe.out={probe}"]))  # fmt: skip
    assert json.loads(probe.read_text()) == [f"torch.{dtype}"]
    assert math.isfinite(metrics["test/loss"])


@pytest.mark.slow
def test_compiled_run_ends_and_its_checkpoint_loads_in_eval(tmp_path) -> None:
    """recipe.compile=true in fresh processes: inductor leaves an idle thread pool, and both
    commands still end (the timeout fails the test if either hangs at exit)."""
    run_dir = tmp_path / "run"
    run_cli("convattn-train", *SHORT, "recipe.compile=true", "+trainer.limit_test_batches=1",
            "logger=csv", f"hydra.run.dir={run_dir}", cwd=tmp_path, fresh=True,
            timeout=300)  # fmt: skip
    trained = RunRecord.read(run_dir)
    assert trained.status == "completed"
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert not any("_orig_mod" in k for k in ckpt["state_dict"])  # plain keys: loads uncompiled
    out = tmp_path / "eval"
    out.mkdir()
    run_cli("convattn-eval", f"ckpt_path={run_dir / 'checkpoints' / 'best.ckpt'}",
            "logger=csv", "+trainer.limit_test_batches=1", cwd=out, fresh=True,
            timeout=300)  # fmt: skip
    record = RunRecord.read(only_run_dir(out, "eval"))
    assert record.status == "completed"
    assert record.metrics["test/acc"] == pytest.approx(trained.metrics["test/acc"], abs=1e-6)

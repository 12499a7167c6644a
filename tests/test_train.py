"""Training and evaluation end to end, in-process and through the console scripts."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from helpers.runs import compose_config, only_run_dir, read_json, run_cli, wandb_summary

from convattn.backbones import list_arms
from convattn.run.record import RunRecord
from convattn.train import train


def test_fast_dev_run_trains_and_tests(train_cfg, tmp_path: Path) -> None:
    metrics = train(train_cfg(["debug=fast_dev_run"]))
    record = RunRecord.read(tmp_path).to_dict()
    assert record["status"] == "completed"
    assert record["global_step"] == 1
    cm = torch.tensor(record["confusion_matrix"], dtype=torch.float64)
    assert cm.sum() == 1 * 256  # one test batch
    # the accuracy is the one the confusion matrix of that batch gives
    assert metrics["test/acc"] == pytest.approx(float(cm.trace() / cm.sum()), abs=1e-6)
    assert record["metrics"]["test/acc"] == metrics["test/acc"]


SHORT = ["trainer.max_epochs=1", "+trainer.limit_train_batches=2", "+trainer.limit_val_batches=1"]


def test_record_has_the_key_facts(train_cfg, tmp_path: Path) -> None:
    train(train_cfg([*SHORT, "seed=7"]))
    record = RunRecord.read(tmp_path).to_dict()
    assert record["arm"] == "cnn" and record["dataset"] == "digits" and record["seed"] == 7
    assert record["params"] > 100_000 and record["wall_time_s"] > 0
    # CSV metrics are always written: the validation accuracy the record holds, at step 2
    rows = list(csv.DictReader((tmp_path / "csv" / "version_0" / "metrics.csv").open()))
    (val,) = [row for row in rows if row.get("val/acc")]
    assert int(val["step"]) == record["global_step"] - 1 == 1
    assert float(val["val/acc"]) == pytest.approx(record["metrics"]["val/acc"], abs=1e-6)


def test_profiling_leaves_the_run_unchanged(tmp_path: Path) -> None:
    """The cost profile times training steps on random batches before fit; it draws nothing
    from the run's random streams (dropout here), so a seed trains to the same numbers with or
    without it."""
    metrics, records = {}, {}
    for profile in ("true", "false"):
        out = tmp_path / f"profile_{profile}"
        overrides = [
            "logger=csv",
            "print_config=false",
            *SHORT,
            "model.drop_rate=0.2",
            f"profile={profile}",
        ]
        metrics[profile] = train(compose_config("train", [*overrides, "callbacks=none"], out))
        records[profile] = RunRecord.read(out)
    assert records["true"].profile["train_images_per_s"] > 0 and not records["false"].profile
    assert metrics["true"] == metrics["false"]


def test_short_training_beats_chance(train_cfg, tmp_path: Path) -> None:
    metrics = train(train_cfg(["trainer.max_epochs=2", "callbacks=none"]))
    assert metrics["test/acc"] > 0.5, metrics  # chance is 0.1
    rows = list(csv.DictReader((tmp_path / "csv" / "version_0" / "metrics.csv").open()))
    val = [float(row["val/acc"]) for row in rows if row.get("val/acc")]
    assert len(val) == 2 and metrics["val/acc_best"] == pytest.approx(max(val), abs=1e-6)
    # macro-F1 from the run's own confusion matrix (rows: true class, columns: predicted)
    cm = torch.tensor(RunRecord.read(tmp_path).confusion_matrix, dtype=torch.float64)
    tp = cm.diag()
    f1 = (2 * tp / (2 * tp + (cm.sum(0) - tp) + (cm.sum(1) - tp))).mean()
    assert metrics["test/f1_macro"] == pytest.approx(float(f1), abs=1e-5)
    assert metrics["test/acc_top5"] >= metrics["test/acc"] and 0 < metrics["test/ece"] < 1


@pytest.mark.slow
def test_cli_train_then_eval_reproduces_and_wandb_agrees(tmp_path: Path) -> None:
    """The one end-to-end pair in fresh processes: the console scripts as installed."""
    proc = run_cli("convattn-train", "trainer.max_epochs=2", cwd=tmp_path, fresh=True)
    assert "test/acc" in proc.stdout
    run_dir = only_run_dir(tmp_path)
    record = read_json(run_dir / "metrics.json")
    test_acc = record["metrics"]["test/acc"]
    assert test_acc > 0.5

    summary = wandb_summary(run_dir)
    assert summary["state"] == "finished" and summary["exit_code"] == 0
    assert summary["summary"]["test/acc"] == pytest.approx(test_acc, abs=1e-7)
    assert summary["config"]["model.arm"] == "cnn"  # the flattened config
    assert summary["summary"]["profile/gflops"] == pytest.approx(record["profile"]["gflops"])

    run_cli("convattn-eval", f"ckpt_path={record['best_ckpt']}", cwd=tmp_path, fresh=True)
    eval_record = read_json(only_run_dir(tmp_path, "eval") / "metrics.json")
    assert eval_record["metrics"]["test/acc"] == pytest.approx(test_acc, abs=1e-7)
    assert eval_record["confusion_matrix"] == record["confusion_matrix"]


CTRL_C_AT = 9  # mid-way through the second epoch of 6 steps, after epoch 1's last.ckpt


@pytest.mark.slow
def test_ctrl_c_keeps_checkpoint_and_logs(tmp_path: Path) -> None:
    """SIGINT at a known step (the process sends it to itself, as a terminal would): Lightning's
    graceful shutdown, a checkpoint ahead of last.ckpt, an "interrupted" record, W&B closed."""
    run = run_cli(
        "convattn-train", "trainer.max_epochs=3", "+trainer.limit_train_batches=6",
        "+trainer.limit_val_batches=2", "test=false", "profile=false", "logger=wandb",
        "+callbacks.ctrl_c._target_=helpers.signals.SignalAtStep",
        f"+callbacks.ctrl_c.step={CTRL_C_AT}", "+callbacks.ctrl_c.signal_name=SIGINT",
        cwd=tmp_path, check=False, timeout=300,
    )  # fmt: skip
    output = run.stdout + run.stderr
    assert run.returncode == 1, output[-3000:]  # Lightning's exit after a KeyboardInterrupt
    assert "Detected KeyboardInterrupt, attempting graceful shutdown" in output, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    run_dir = only_run_dir(tmp_path)
    steps = {
        name: torch.load(run_dir / "checkpoints" / f"{name}.ckpt", weights_only=True)["global_step"]
        for name in ("last", "on_exception")
    }
    assert steps == {"last": 6, "on_exception": CTRL_C_AT}, steps
    assert (run_dir / "csv" / "version_0" / "metrics.csv").is_file()
    record = read_json(run_dir / "metrics.json")
    assert (record["status"], record["global_step"]) == ("interrupted", CTRL_C_AT), record
    summary = wandb_summary(run_dir)  # the W&B run was closed, not left running
    assert (summary["state"], summary["exit_code"]) == ("failed", 1), summary


# A short budget keeps CI fast; the full-budget figures are in the README. Every registered arm
# must beat 2x chance (0.20 on 10 classes); the four measured arms are held to what they reach.
# The conv stem starts slowest on this tiny budget (26 % at 5 epochs, seed 0).
ARM_BOUNDS = {"cnn": 0.80, "cbam": 0.80, "vit": 0.40, "hybrid": 0.20}
TWICE_CHANCE = 0.20
# Warmup scaled to the short budget (the default 3 of 15 epochs).
ARM_BUDGET = ["trainer.max_epochs=5", "recipe.scheduler.warmup_epochs=1", "seed=0"]


@pytest.mark.slow
@pytest.mark.parametrize("arm", list_arms())
def test_each_arm_learns_digits(train_cfg, arm: str) -> None:
    overrides = [f"model={arm}", *ARM_BUDGET, "callbacks=none", "profile=false"]
    metrics = train(train_cfg(overrides))
    assert metrics["test/acc"] > ARM_BOUNDS.get(arm, TWICE_CHANCE), metrics

"""Mistakes found while running: one clear paragraph, exit 2, never a traceback.

The command-line mistakes (options, values, missing or unreadable checkpoints) are the table in
test_cli_mistakes.py; these are the ones that need a run to find."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from helpers.runs import only_run_dir, read_json, run_cli

from convattn.errors import ConvattnError
from convattn.train import train


def test_img_size_too_small_fails_before_training(train_cfg) -> None:
    with pytest.raises(ConvattnError, match=re.escape("data.img_size=4")):
        train(train_cfg(["data.img_size=4"]))


def test_wrong_class_weights_fail_before_training(train_cfg) -> None:
    with pytest.raises(ConvattnError, match=r"recipe.class_weights=\[1.0, 2.0\]"):
        train(train_cfg(["recipe.class_weights=[1.0,2.0]"]))


def test_nonfinite_loss_names_step_and_leaves_checkpoint(tmp_path: Path) -> None:
    proc = run_cli(
        "convattn-train", "recipe.optimizer.lr=1e30", "logger=csv", "profile=false",
        "+trainer.limit_val_batches=1", cwd=tmp_path, check=False,
    )  # fmt: skip
    text = proc.stdout + proc.stderr
    assert proc.returncode == 2 and "Traceback" not in text, text[-3000:]
    step = int(re.search(r"The training loss became \S+ at step (\d+)", proc.stderr).group(1))
    run_dir = only_run_dir(tmp_path)
    saved = torch.load(run_dir / "checkpoints" / "on_exception.ckpt", weights_only=True)
    assert saved["global_step"] == step  # the state at the failing step, not an older one
    record = read_json(run_dir / "metrics.json")
    assert (record["status"], record["global_step"]) == ("failed", step), record
    assert (run_dir / "train.log").read_text().count("training loss became") == 1

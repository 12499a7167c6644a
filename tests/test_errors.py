"""User mistakes get one clear paragraph (exit 2, or Hydra's own listing), never a traceback."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from helpers.runs import only_run_dir, read_json, run_cli

from convattn.errors import ConvattnError
from convattn.train import train


def assert_clean_error(proc, *fragments: str) -> None:
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "Traceback" not in text, text
    for fragment in fragments:
        assert fragment in text, text


def test_unknown_option_lists_valid_choices(tmp_path: Path) -> None:
    proc = run_cli("convattn-train", "model=transformerz", cwd=tmp_path, check=False)
    assert_clean_error(proc, "model/transformerz", "Available options", "cnn")


def test_missing_checkpoint_is_one_line(tmp_path: Path) -> None:
    proc = run_cli("convattn-eval", "ckpt_path=nowhere/best.ckpt", cwd=tmp_path, check=False)
    assert proc.returncode == 2
    assert_clean_error(proc, "ckpt_path='nowhere/best.ckpt'", "no checkpoint file")


def test_unreadable_checkpoint_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "broken.ckpt"
    bad.write_bytes(b"not a checkpoint at all")
    proc = run_cli("convattn-eval", f"ckpt_path={bad}", cwd=tmp_path, check=False)
    assert proc.returncode == 2
    assert_clean_error(proc, "could not be read as a convattn checkpoint")


def test_img_size_too_small_fails_before_training(train_cfg) -> None:
    with pytest.raises(ConvattnError, match=re.escape("data.img_size=4")):
        train(train_cfg(["data.img_size=4"]))


def test_wrong_class_weights_fail_before_training(train_cfg) -> None:
    with pytest.raises(ConvattnError, match=r"recipe.class_weights=\[1.0, 2.0\]"):
        train(train_cfg(["recipe.class_weights=[1.0,2.0]"]))


def test_nonfinite_loss_names_step_and_leaves_checkpoint(tmp_path: Path) -> None:
    proc = run_cli(
        "convattn-train", "recipe.optimizer.lr=1e30", "logger=csv", cwd=tmp_path, check=False
    )
    assert proc.returncode == 2
    assert_clean_error(proc, "The training loss became", "at step")
    run_dir = only_run_dir(tmp_path)
    assert (run_dir / "checkpoints" / "on_exception.ckpt").is_file()
    assert read_json(run_dir / "metrics.json")["status"] == "failed"
    assert (run_dir / "train.log").read_text().count("training loss became") == 1

"""The mistakes table: every user mistake is one paragraph naming the value, exit 2, no traceback.

Each row is a real command line, run through the real entry point (the warm runner: no
import per row). The README's "Mistakes and their messages" table lists the same cases.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from helpers.runs import run_cli

# (command, arguments, words the message must contain); {tmp} is the test's tmp dir.
MISTAKES = [
    ("convattn-train", ["recipe.optimizer.lr=nan"], ["recipe.optimizer.lr=nan", ">= 0"]),
    ("convattn-train", ["recipe.optimizer.lr=-0.1"], ["recipe.optimizer.lr=-0.1", ">= 0"]),
    ("convattn-train", ["recipe.optimizer.weight_decay=-1"], ["weight_decay=-1"]),
    ("convattn-train", ["recipe.label_smoothing=1.0"], ["label_smoothing=1.0", "[0, 1)"]),
    ("convattn-train", ["recipe.mixup.mixup_alpha=-1"], ["mixup.mixup_alpha=-1"]),
    (
        "convattn-train",
        ["recipe.class_weights=[1.0,2.0]"],
        ["recipe.class_weights=[1.0, 2.0]", "10 numbers"],
    ),
    ("convattn-train", ["trainer.max_epochs=-1"], ["trainer.max_epochs=-1", "max_steps"]),
    ("convattn-train", ["train=false"], ["train=false", "checkpoints/best.ckpt", "ckpt_path="]),
    ("convattn-train", ["seed=abc"], ["seed='abc'", "an integer in [0, 4294967295]"]),
    ("convattn-train", ["seed=-1"], ["seed=-1", "an integer in [0, 4294967295]"]),
    ("convattn-eval", ["seed=1.5", "ckpt_path=x.ckpt"], ["seed=1.5", "an integer"]),
    ("convattn-train", ["data.batch_size=0"], ["data.batch_size=0"]),
    ("convattn-train", ["data.eval_batch_size=-4"], ["data.eval_batch_size=-4"]),
    ("convattn-train", ["data.val_fraction=1.5"], ["data.val_fraction=1.5"]),
    ("convattn-train", ["data.train_fraction=0"], ["data.train_fraction=0"]),
    ("convattn-train", ["data.img_size=4"], ["data.img_size=4"]),
    ("convattn-train", ["data.imbalance=5"], ["data.imbalance=5"]),
    ("convattn-train", ["data=mnist", "data.batch_size=0"], ["data.batch_size=0"]),
    (
        "convattn-train",
        ["data=cifar10", "data.root={tmp}/none"],
        ["CIFAR-10", "data.download=true"],
    ),
    ("convattn-train", ["data=imagefolder", "data.root={tmp}/none"], ["{tmp}/none"]),
    ("convattn-train", ["model=transformerz"], ["model=transformerz", "cbam, cnn, hybrid, vit"]),
    ("convattn-train", ["model.size=huge"], ["huge", "tiny"]),
    ("convattn-train", ["recipe.optimzer.lr=1e-3"], ["did you mean", "recipe.optimizer.lr"]),
    ("convattn-train", ["trainer.max_epoch=3"], ["did you mean", "trainer.max_epochs"]),
    ("convattn-train", ["resume=maybe"], ["resume='maybe'", "resume=force"]),
    ("convattn-train", ["ckpt_path={tmp}/nowhere.ckpt"], ["ckpt_path=", "no checkpoint file"]),
    ("convattn-train", ["ckpt_path={tmp}/notes.ckpt"], ["notes.ckpt", "cannot be read"]),
    ("convattn-train", ["ckpt_path={tmp}/truncated.ckpt"], ["truncated.ckpt", "cannot be read"]),
    ("convattn-train", ["hydra.run.dir={tmp}/notes.ckpt/run"], ["notes.ckpt"]),
    (
        "convattn-eval",
        ["ckpt_path={tmp}/nowhere.ckpt"],
        ["ckpt_path='{tmp}/nowhere.ckpt'", "no checkpoint file"],
    ),
    (
        "convattn-eval",
        ["ckpt_path={tmp}/notes.ckpt"],
        ["notes.ckpt", "could not be read as a convattn checkpoint"],
    ),
    ("convattn-eval", ["ckpt_path={tmp}/truncated.ckpt"], ["truncated.ckpt"]),
    ("convattn-eval", ["ckpt_path={tmp}/notes.ckpt", "split=trian"], ["split"]),
    ("convattn-explain", ["{tmp}/notes.ckpt"], ["notes.ckpt"]),
    ("convattn-report", ["{tmp}/no_sweep_here"], ["no_sweep_here"]),
    ("convattn-explain", ["{tmp}/notes.ckpt", "--device=tpu"], ["device='tpu'", "cuda:N"]),
    (
        "convattn-train",
        ["trainer=ddp_cpu", "recipe.compile=true", "trainer.sync_batchnorm=true"],
        ["recipe.compile=true", "trainer.sync_batchnorm=false"],
    ),
    (
        "convattn-train",
        ["-m", "hydra/launcher=slurm", "trainer=gpu", "seed=0,1"],
        ["hydra.launcher.gpus_per_node=null", "gpus_per_node=1"],
    ),
    (
        "convattn-train",
        ["-m", "hydra/launcher=slurm", "hydra.launcher.gpus_per_node=4", "seed=0,1"],
        ["gpus_per_node=4", "tasks_per_node=1", "tasks_per_node=4"],
    ),
]


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> Path:
    """Files the mistakes point at: a text file named .ckpt and a truncated real checkpoint."""
    tmp = tmp_path_factory.mktemp("mistakes")
    (tmp / "notes.ckpt").write_text("my notes, not a checkpoint\n")
    torch.save({"state_dict": {"w": torch.zeros(1000)}, "global_step": 3}, tmp / "whole.ckpt")
    (tmp / "truncated.ckpt").write_bytes((tmp / "whole.ckpt").read_bytes()[:600])
    return tmp


def paragraphs(text: str) -> list[str]:
    return [block for block in re.split(r"\n\s*\n", text) if block.strip()]


@pytest.mark.parametrize("row", MISTAKES, ids=lambda row: " ".join([row[0], *row[1]]))
def test_every_mistake_is_one_paragraph_on_stderr_and_exit_2(row, planted: Path) -> None:
    """Exit 2, no traceback, and one paragraph on stderr that names the value and what would be
    valid (every expected word in the same paragraph); stdout carries none of it."""
    command, args, words = row
    args = [a.replace("{tmp}", str(planted)) for a in args]
    words = [w.replace("{tmp}", str(planted)) for w in words]
    extra = ["logger=csv", "print_config=false"] if command == "convattn-train" else []
    proc = run_cli(command, *args, *extra, cwd=planted, check=False, timeout=120)
    shown = f"stdout:\n{proc.stdout[-1500:]}\nstderr:\n{proc.stderr[-1500:]}"
    assert proc.returncode == 2, shown
    assert "Traceback" not in proc.stdout + proc.stderr, shown
    assert any(all(w in block for w in words) for block in paragraphs(proc.stderr)), shown
    assert not [w for w in words if w in proc.stdout], shown
    assert proc.stderr.count("[ERROR]") <= 1, shown  # said once, not once per layer


def test_the_table_covers_every_entry_point() -> None:
    assert len(MISTAKES) >= 25
    assert {row[0] for row in MISTAKES} == {
        "convattn-train", "convattn-eval", "convattn-explain", "convattn-report"
    }  # fmt: skip

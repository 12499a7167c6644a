"""Checkpoints and run dirs from elsewhere are data: no payload runs, restarts keep progress.

One short real run is trained per module; each test works on its own copy of its run dir. The
allow-list of what a saved config may name is also checked in process, on every registered
data module.
"""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
import yaml
from helpers.runs import BIN, read_json, run_cli

from convattn.data import get_dataset, list_datasets
from convattn.data.registry import target_path
from convattn.errors import ConvattnError
from convattn.run.load import checked_data_config, checked_hparams
from convattn.run.record import RunRecord

STEPS_PER_EPOCH = 4
SHORT = [
    f"+trainer.limit_train_batches={STEPS_PER_EPOCH}",
    "+trainer.limit_val_batches=2",
    "+trainer.limit_test_batches=2",
    "logger=csv",
    "profile=false",
    "print_config=false",
    "callbacks.attention_maps=null",
]


class Payload:
    """Unpickling this touches `marker`: what a malicious .ckpt would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def train(cwd: Path, run_dir: Path, *extra: str, check: bool = True, prefix: list[str] = ()):
    return run_cli(
        "convattn-train", *SHORT, f"hydra.run.dir={run_dir}", *extra, cwd=cwd, check=check
    ) if not prefix else subprocess.run(
        [*prefix, str(BIN / "convattn-train"), *SHORT, f"hydra.run.dir={run_dir}", *extra],
        cwd=cwd, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A finished 2-epoch cnn run dir."""
    tmp = tmp_path_factory.mktemp("trained")
    train(tmp, tmp / "run", "trainer.max_epochs=2")
    return tmp / "run"


@pytest.fixture
def run_dir(trained: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(trained, copy)
    return copy


def assert_refused(proc, marker: Path, *words: str) -> None:
    text = proc.stdout + proc.stderr
    assert proc.returncode == 2, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
    assert not marker.exists(), "the payload ran"
    for word in words:
        assert word in text, text[-3000:]


# ---------------------------------------------------------------- crafted files
def crafted_checkpoints(run_dir: Path, marker: Path) -> dict[str, Path]:
    real = torch.load(run_dir / "checkpoints" / "best.ckpt", weights_only=True)
    pickled = run_dir / "pickled.ckpt"
    with pickled.open("wb") as f:
        pickle.dump({"state_dict": {}, "hyper_parameters": Payload(marker)}, f)
    nested = run_dir / "nested.ckpt"
    hp = real["hyper_parameters"]
    hp["backbone"]["drop_path_rate"] = {"_target_": "pathlib.Path.touch", "self": str(marker)}
    torch.save(real, nested)
    return {"pickle": pickled, "nested": nested}


@pytest.mark.slow
def test_crafted_checkpoints_are_refused_everywhere(run_dir: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    for kind, ckpt in crafted_checkpoints(run_dir, marker).items():
        words = ["pickled objects"] if kind == "pickle" else ["_target_"]
        eval_run = run_cli("convattn-eval", f"ckpt_path={ckpt}", "logger=csv", cwd=tmp_path,
                           check=False)  # fmt: skip
        assert_refused(eval_run, marker, ckpt.name, *words)
        explain = run_cli("convattn-explain", str(ckpt), "-o", str(tmp_path / "x"), cwd=tmp_path,
                          check=False)  # fmt: skip
        assert_refused(explain, marker, ckpt.name, *words)
        # convattn-report --deletion over a sweep whose job holds the crafted file as best.ckpt
        job = tmp_path / f"sweep_{kind}" / "0"
        shutil.copytree(run_dir, job)
        shutil.copy(ckpt, job / "checkpoints" / "best.ckpt")
        out = tmp_path / f"report_{kind}"
        run_cli("convattn-report", str(job.parent), "-o", str(out), "--deletion", "4",
                cwd=tmp_path)  # fmt: skip
        assert not marker.exists(), "the payload ran"
        notes = (out / "report.md").read_text().split("## Notes")[1]
        assert f"`{job}`: no deletion AUC:" in notes and words[0] in notes


@pytest.mark.slow
def test_crafted_run_dir_config_is_refused(run_dir: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    config_file = run_dir / ".hydra" / "config.yaml"
    config = yaml.safe_load(config_file.read_text())
    config["data"]["val_fraction"] = {"_target_": "pathlib.Path.touch", "self": str(marker)}
    config_file.write_text(yaml.safe_dump(config))
    explain = run_cli("convattn-explain", str(run_dir), "-o", str(tmp_path / "x"), cwd=tmp_path,
                      check=False)  # fmt: skip
    assert_refused(explain, marker, "config.yaml", "a _target_ at data.val_fraction")
    # eval takes its data config from its own command line: the run dir's is never read.
    run_cli("convattn-eval", f"ckpt_path={run_dir}", "logger=csv", cwd=tmp_path)
    assert not marker.exists()


@pytest.mark.slow
def test_a_pickle_planted_as_last_ckpt_never_runs_on_resume(run_dir: Path, tmp_path: Path):
    marker = tmp_path / "pwned"
    with (run_dir / "checkpoints" / "last.ckpt").open("wb") as f:
        pickle.dump({"global_step": 10**6, "x": Payload(marker)}, f)
    proc = train(tmp_path, run_dir, "trainer.max_epochs=3", check=False)
    assert_refused(proc, marker, "last.ckpt", "cannot be read")
    assert read_json(run_dir / "metrics.json")["status"] == "completed"


# ---------------------------------------------------------------- restarts
@pytest.mark.slow
def test_restart_takes_the_most_progress_not_the_newest_file(run_dir: Path, tmp_path: Path):
    # An older state (step 4) planted with a newer mtime than last.ckpt (step 8).
    older = tmp_path / "older"
    train(tmp_path, older, "trainer.max_epochs=1", "test=false")
    planted = run_dir / "checkpoints" / "on_exception.ckpt"
    shutil.copy(older / "checkpoints" / "last.ckpt", planted)
    os.utime(planted)
    proc = train(tmp_path, run_dir, "trainer.max_epochs=3")
    assert "last.ckpt (step 8, the most progress; also found on_exception.ckpt at step 4" in (
        proc.stdout + proc.stderr
    )
    last = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 3 * STEPS_PER_EPOCH
    # Each attempt keeps its own CSV history.
    assert sorted(p.name for p in (run_dir / "csv").iterdir()) == ["version_0", "version_1"]


@pytest.mark.slow
def test_another_experiment_in_a_run_dir_stops_and_keeps_the_record(run_dir: Path, tmp_path):
    before = RunRecord.read(run_dir)
    config_before = (run_dir / ".hydra" / "config.yaml").read_text()
    for change, key in (
        ("model=vit", "model.arm"),
        ("recipe.optimizer.lr=0.5", "recipe.optimizer.lr"),
    ):
        proc = train(tmp_path, run_dir, "trainer.max_epochs=3", change, check=False)
        text = proc.stdout + proc.stderr
        assert proc.returncode == 2 and "Traceback" not in text, text[-3000:]
        assert "holds another experiment" in text and key in text and "resume=force" in text
    after = RunRecord.read(run_dir)
    assert after.status == "completed" and after.metrics == before.metrics
    assert (run_dir / ".hydra" / "config.yaml").read_text() == config_before
    assert not (run_dir / "checkpoints" / "on_exception.ckpt").exists()
    # Asked for explicitly, it resumes with the new learning rate.
    train(tmp_path, run_dir, "trainer.max_epochs=3", "recipe.optimizer.lr=0.002", "resume=force")
    last = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 3 * STEPS_PER_EPOCH


@pytest.mark.slow
def test_a_full_disk_while_checkpointing_keeps_the_previous_checkpoint(run_dir: Path, tmp_path):
    last = run_dir / "checkpoints" / "last.ckpt"
    before = last.read_bytes()
    # Files may not grow past 200 kB: the next checkpoint cannot be written (EFBIG, as ENOSPC).
    proc = train(tmp_path, run_dir, "trainer.max_epochs=3", check=False,
                 prefix=["prlimit", "--fsize=200000", "--"])  # fmt: skip
    text = proc.stdout + proc.stderr
    assert proc.returncode == 2 and "Traceback" not in text, text[-3000:]
    assert "Could not write the checkpoint" in text and "is intact" in text
    assert last.read_bytes() == before
    assert not list(last.parent.glob(".*.tmp"))
    assert RunRecord.read(run_dir).status == "completed"


@pytest.mark.slow
def test_eval_on_data_of_another_shape_names_both(trained: Path, tmp_path: Path) -> None:
    ckpt = trained / "checkpoints" / "best.ckpt"
    proc = run_cli("convattn-eval", f"ckpt_path={ckpt}", "data.img_size=48", "logger=csv",
                   cwd=tmp_path, check=False)  # fmt: skip
    text = proc.stdout + proc.stderr
    assert proc.returncode == 2 and "Traceback" not in text, text[-3000:]
    assert "(1, 32, 10)" in text and "(1, 48, 10)" in text


# ---------------------------------------------------------------- the allow-list, in process
@pytest.mark.parametrize("name", list_datasets())
def test_a_run_dirs_data_config_may_name_any_registered_module(name: str) -> None:
    config = {"_target_": target_path(get_dataset(name)), "img_size": 32, "mean": [0.5]}
    assert checked_data_config(config, Path("config.yaml")) == config


@pytest.mark.parametrize(
    ("config", "named"),
    [
        ({"_target_": "pathlib.Path.touch", "self": "x"}, "data _target_='pathlib.Path.touch'"),
        ({"_target_": "convattn.data.base.ClassificationDataModule"}, "data _target_="),
        ({"_target_": "convattn.data.digits.DigitsDataModule", "a": [{"_target_": "os.system"}]},
         "a _target_ at data.a[0]._target_"),
    ],
)  # fmt: skip
def test_a_run_dirs_data_config_naming_anything_else_is_refused(config: dict, named: str) -> None:
    with pytest.raises(ConvattnError) as err:
        checked_data_config(config, Path("config.yaml"))
    message = str(err.value)
    assert named in message and "Nothing in it was run" in message
    assert all(target_path(get_dataset(name)) in message for name in list_datasets())


def test_saved_hyperparameters_may_name_only_the_factory_and_an_optimizer() -> None:
    backbone = {"_target_": "convattn.backbones.create_backbone", "arm": "cnn", "size": "tiny"}
    fine = {"backbone": backbone, "optimizer": {"_target_": "torch.optim.AdamW", "lr": 1e-3}}
    assert checked_hparams(fine, Path("x.ckpt")) == fine
    refused = {
        "backbone": {**backbone, "_target_": "os.system"},
        "optimizer": {"_target_": "builtins.eval", "lr": {"_target_": "os.getcwd"}},
        "num_classes": [{"_target_": "os.getcwd"}],
    }
    with pytest.raises(ConvattnError) as err:
        checked_hparams(refused, Path("x.ckpt"))
    assert "optimizer _target_='builtins.eval' (only torch.optim classes)" in str(err.value)
    assert "model _target_='os.system'" in str(err.value)
    for where in ("num_classes[0]._target_", "optimizer.lr._target_"):
        assert f"a _target_ at {where}" in str(err.value)

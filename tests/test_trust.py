"""Checkpoints and run dirs from elsewhere are data: no payload runs, restarts keep progress.

One short real run is trained per module; each test works on its own copy of its run dir. The
allow-list of what a saved config may name is also checked in process, on every registered
data module.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import pickle
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from helpers.runs import BIN, read_json, run_cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from convattn.data import get_dataset, list_datasets
from convattn.data.registry import target_path
from convattn.errors import ConvattnError
from convattn.run.checkpoint_checks import checked_hparams
from convattn.run.load import checked_data_config, load_classifier
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


# What convattn-train saves for `model=cnn` on digits (`build_classifier`).
BACKBONE = {
    "_target_": "convattn.backbones.create_backbone",
    "arm": "cnn",
    "size": "tiny",
    "name": "resnet18",
    "channels": None,
    "drop_rate": 0.0,
    "drop_path_rate": 0.0,
}
FINE_HPARAMS: dict[str, Any] = {
    "backbone": BACKBONE, "in_chans": 1, "num_classes": 10, "img_size": 32,
    "optimizer": {"_target_": "torch.optim.AdamW", "_partial_": True, "lr": 0.002,
                  "weight_decay": 0.05, "betas": [0.9, 0.999]},
    "scheduler": {"warmup_epochs": 3.0, "warmup_start_factor": 0.01, "min_lr": 1e-05},
    "label_smoothing": 0.0, "class_weights": None,
    "mixup": {"mixup_alpha": 0.0, "cutmix_alpha": 0.0, "prob": 1.0, "switch_prob": 0.5},
    "channels_last": False, "compile": False, "class_names": [str(i) for i in range(10)],
}  # fmt: skip


def test_saved_hyperparameters_may_name_only_the_factory_and_an_optimizer() -> None:
    assert checked_hparams(FINE_HPARAMS, Path("x.ckpt")) == FINE_HPARAMS
    refused = {
        "backbone": {**BACKBONE, "_target_": "os.system"},
        "optimizer": {"_target_": "builtins.eval", "lr": {"_target_": "os.getcwd"}},
        "num_classes": [{"_target_": "os.getcwd"}],
    }
    with pytest.raises(ConvattnError) as err:
        checked_hparams(refused, Path("x.ckpt"))
    assert "optimizer _target_='builtins.eval' (only torch.optim classes)" in str(err.value)
    assert "model _target_='os.system'" in str(err.value)
    for where in ("num_classes[0]._target_", "optimizer.lr._target_"):
        assert f"a _target_ at {where}" in str(err.value)


def changed(tree: dict[str, Any], where: str, value: Any) -> dict[str, Any]:
    """A deep copy of `tree` with the value at dotted `where` replaced."""
    tree = copy.deepcopy(tree)
    *parents, leaf = where.split(".")
    node = tree
    for part in parents:
        node = node[part]
    node[leaf] = value
    return tree


# Each wrong hyperparameter, what the message must name, and what would be valid.
WRONG_HPARAMS = [
    ("img_size", "32", "img_size is '32', but must be an integer in [1, 4096]"),
    ("img_size", 10**30, "img_size is"),
    ("num_classes", True, "num_classes is True"),
    ("in_chans", 0, "in_chans is 0, but must be an integer in [1, 64]"),
    ("optimizer", None, "optimizer is None, but must be a mapping"),
    ("optimizer.lr", "fast", "optimizer.lr is 'fast', but must be a number"),
    ("optimizer.betas", [0.9], "optimizer.betas is [0.9], but must be a list of 2"),
    ("scheduler", [], "scheduler is [], but must be a mapping"),
    ("scheduler.min_lr", math.nan, "scheduler.min_lr is nan"),
    ("scheduler.extra", 1, "scheduler (a key) is 'extra', but must be one of"),
    ("label_smoothing", 1.0, "label_smoothing is 1.0, but must be a number in [0, 1)"),
    ("class_weights", [1.0] * 3, "class_weights is [1.0, 1.0, 1.0], but must be a list of 10"),
    ("class_weights", "balanced", "class_weights is 'balanced'"),
    ("mixup", 0.5, "mixup is 0.5, but must be a mapping of names to values, or null"),
    ("mixup.prob", 2, "mixup.prob is 2, but must be a number in [0, 1]"),
    ("channels_last", "yes", "channels_last is 'yes', but must be true or false"),
    ("class_names", list(range(10)), "class_names[0] is 0, but must be a string"),
    ("backbone.arm", "resnet", "backbone.arm is 'resnet', but must be one of the registered"),
    ("backbone.size", "huge", "backbone.size is 'huge', but must be a size preset of cnn"),
    ("backbone.channels", [16, "a"], "backbone.channels[1] is 'a'"),
    ("backbone.channels", [2**40] * 4, "but must be an integer in [0, 8192]"),
    ("backbone.drop_rate", math.inf, "backbone.drop_rate is inf, but must be a number in [0, 1]"),
    (
        "backbone.embed_dim",
        96,
        "backbone (a key) is 'embed_dim', but must be an argument of the cnn",
    ),
]


@pytest.mark.parametrize(("where", "value", "message"), WRONG_HPARAMS)
def test_a_wrong_hyperparameter_is_named_with_what_is_valid(
    where: str, value: Any, message: str
) -> None:
    with pytest.raises(ConvattnError) as err:
        checked_hparams(changed(FINE_HPARAMS, where, value), Path("x.ckpt"))
    assert str(err.value).startswith("Refusing to load x.ckpt: its ")
    assert message in str(err.value) and "\n" not in str(err.value)


def test_missing_hyperparameters_are_named() -> None:
    hparams = {k: v for k, v in FINE_HPARAMS.items() if k not in ("img_size", "scheduler")}
    with pytest.raises(
        ConvattnError, match=r"x.ckpt: its hyperparameters lack img_size, scheduler, which"
    ):
        checked_hparams(hparams, Path("x.ckpt"))


# ---------------------------------------------------------------- a real checkpoint, corrupted
def real_checkpoint(trained: Path) -> dict[str, Any]:
    return torch.load(trained / "checkpoints" / "best.ckpt", weights_only=True)


@pytest.mark.slow
def test_what_convattn_train_saves_passes_the_checks(trained: Path) -> None:
    saved = real_checkpoint(trained)["hyper_parameters"]
    assert checked_hparams(saved, Path("best.ckpt")) == saved
    assert set(saved) == set(FINE_HPARAMS)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("state_dict", [1, 2], "its state_dict is [1, 2], but must be a mapping of parameter"),
        ("state_dict", {"w": [1.0]}, "its state_dict['w'] is [1.0], but must be a tensor"),
        ("global_step", "8", "its global_step is '8', but must be an integer in [0, 2**63)"),
        ("global_step", -3, "its global_step is -3"),
        ("epoch", 1.5, "its epoch is 1.5"),
        ("hyper_parameters", None, "holds no convattn model hyperparameters"),
    ],
)
def test_a_checkpoint_with_wrong_contents_is_refused_naming_the_key(
    trained: Path, tmp_path: Path, key: str, value: Any, message: str
) -> None:
    checkpoint = real_checkpoint(trained)
    checkpoint[key] = value
    torch.save(checkpoint, tmp_path / "bad.ckpt")
    with pytest.raises(ConvattnError) as err:
        load_classifier(tmp_path / "bad.ckpt")
    assert str(tmp_path / "bad.ckpt") in str(err.value) and message in str(err.value)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("backbone", "weights", "message"),
    [
        # a vit's hyperparameters over the cnn's weights: another arm's checkpoint
        ({"arm": "vit", "size": "tiny"}, None, "Missing key(s) in state_dict"),
        ({}, {"backbone.model.fc.weight": torch.zeros(3, 3)}, "size mismatch for backbone."),
    ],
)
def test_weights_that_do_not_fit_the_model_are_refused(
    trained: Path, tmp_path: Path, backbone: dict, weights: dict | None, message: str
) -> None:
    checkpoint = real_checkpoint(trained)
    hparams = checkpoint["hyper_parameters"]
    if backbone:
        hparams["backbone"] = {"_target_": BACKBONE["_target_"], **backbone}
    checkpoint["state_dict"].update(weights or {})
    torch.save(checkpoint, tmp_path / "other.ckpt")
    with pytest.raises(ConvattnError) as err:
        load_classifier(tmp_path / "other.ckpt")
    assert "its weights do not fit the model its hyperparameters describe" in str(err.value)
    assert message in str(err.value) and str(tmp_path / "other.ckpt") in str(err.value)


@pytest.mark.slow
def test_hyperparameters_the_arm_itself_refuses_are_one_paragraph(trained, tmp_path) -> None:
    checkpoint = real_checkpoint(trained)
    checkpoint["hyper_parameters"]["backbone"]["name"] = "no_such_timm_model"
    torch.save(checkpoint, tmp_path / "name.ckpt")
    with pytest.raises(ConvattnError) as err:
        load_classifier(tmp_path / "name.ckpt")
    assert "name.ckpt: its hyperparameters do not build a model (" in str(err.value)
    assert "no_such_timm_model" in str(err.value)


WEIRD = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.integers(-2, 70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6),
    st.sampled_from(["32", "inf", "cnn", "vit", "tiny", "balanced", "torch.optim.SGD"]),
    st.lists(st.one_of(st.integers(-2, 70), st.floats(0, 1), st.text(max_size=2)), max_size=11),
    st.dictionaries(st.sampled_from(["arm", "lr", "a", "_target_"]), st.integers(0, 3), max_size=2),
)
PLACES = [
    *FINE_HPARAMS,
    *(f"backbone.{k}" for k in (*BACKBONE, "embed_dim")),
    *(f"optimizer.{k}" for k in FINE_HPARAMS["optimizer"]),
    *(f"scheduler.{k}" for k in FINE_HPARAMS["scheduler"]),
    *(f"mixup.{k}" for k in FINE_HPARAMS["mixup"]),
]


@pytest.mark.slow
@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(changes=st.lists(st.tuples(st.sampled_from(PLACES), WEIRD), min_size=1, max_size=3))
def test_any_corrupted_hyperparameter_loads_a_working_model_or_says_why(
    trained: Path, tmp_path: Path, changes: list[tuple[str, Any]]
) -> None:
    checkpoint = real_checkpoint(trained)
    for where, value in changes:
        with contextlib.suppress(KeyError, TypeError):  # an earlier change replaced a parent
            checkpoint["hyper_parameters"] = changed(checkpoint["hyper_parameters"], where, value)
    path = tmp_path / "corrupt.ckpt"
    torch.save(checkpoint, path)
    try:
        model = load_classifier(path)
    except ConvattnError as err:
        message = str(err)
        assert str(path) in message and "\n" not in message and len(message) < 2000, message
        return
    hp = model.hparams
    with torch.no_grad():
        logits = model(torch.zeros(1, hp.in_chans, hp.img_size, hp.img_size))
    assert logits.shape == (1, hp.num_classes)


@pytest.mark.slow
def test_wrong_typed_checkpoints_exit_2_everywhere(run_dir: Path, tmp_path: Path) -> None:
    real = real_checkpoint(run_dir)
    cases = {
        "img_size": changed(real, "hyper_parameters.img_size", "32"),
        "optimizer": changed(real, "hyper_parameters.optimizer", None),
        "state_dict": changed(real, "state_dict", [1.0]),
        "vit": changed(real, "hyper_parameters.backbone", {"arm": "vit", "size": "tiny"}),
    }
    marker = tmp_path / "never"
    for name, checkpoint in cases.items():
        ckpt = run_dir / "checkpoints" / f"{name}.ckpt"
        torch.save(checkpoint, ckpt)
        word = "do not fit" if name == "vit" else name
        eval_run = run_cli("convattn-eval", f"ckpt_path={ckpt}", "logger=csv", cwd=tmp_path,
                           check=False)  # fmt: skip
        assert_refused(eval_run, marker, ckpt.name, word)
        explain = run_cli("convattn-explain", str(ckpt), "-o", str(tmp_path / "x"), cwd=tmp_path,
                          check=False)  # fmt: skip
        assert_refused(explain, marker, ckpt.name, word)
        job = tmp_path / f"sweep_{name}" / "0"
        shutil.copytree(run_dir, job)
        shutil.copy(ckpt, job / "checkpoints" / "best.ckpt")
        out = tmp_path / f"report_{name}"
        report = run_cli("convattn-report", str(job.parent), "-o", str(out), "--deletion", "2",
                         cwd=tmp_path)  # fmt: skip
        assert "Traceback" not in report.stdout + report.stderr
        notes = (out / "report.md").read_text().split("## Notes")[1]
        assert f"`{job}`: no deletion AUC:" in notes and word in notes

"""DDP in real processes (gloo on CPU): synced metrics, and DDP jobs inside a Hydra multirun."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from helpers.runs import only_run_dir, only_sweep_dir, read_json, run_cli

from convattn.data.base import per_device_batch_size
from convattn.distributed import child_rank_argv
from convattn.errors import ConvattnError

SHORT = ["trainer.max_epochs=1", "+trainer.limit_train_batches=4", "logger=csv", "profile=false"]


def test_global_batch_must_divide_over_processes() -> None:
    assert per_device_batch_size(64, 2) == 32
    with pytest.raises(ConvattnError, match=r"data.batch_size=63 .* 2 processes"):
        per_device_batch_size(63, 2)


def test_child_rank_composes_the_job_config(monkeypatch, tmp_path: Path) -> None:
    argv = ["convattn-train", "-m", "seed=0,1"]
    assert child_rank_argv(argv) == argv  # not a child rank: untouched
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("CONVATTN_JOB_DIR", str(tmp_path))
    child = child_rank_argv(argv)
    assert "-m" not in child and "seed=0,1" not in child
    assert child[child.index("--config-path") + 1] == str(tmp_path / ".hydra")


@pytest.mark.slow
def test_two_process_ddp_matches_single_process_eval(tmp_path: Path) -> None:
    run_cli("convattn-train", "trainer=ddp_cpu", *SHORT, cwd=tmp_path)
    run_dir = only_run_dir(tmp_path)
    record = read_json(run_dir / "metrics.json")
    assert record["status"] == "completed"
    assert sorted(p.name for p in (run_dir / "ranks").iterdir()) == ["rank0.yaml", "rank1.yaml"]
    assert (run_dir / "rank_1.log").is_file()  # the child rank logs beside rank 0
    assert (
        not (run_dir / "wandb").exists()
        and len(list((tmp_path / "logs").rglob("metrics.json"))) == 1
    )

    last = run_dir / "checkpoints" / "last.ckpt"
    run_cli("convattn-eval", f"ckpt_path={last}", "split=val", cwd=tmp_path)
    single = read_json(only_run_dir(tmp_path, "eval") / "metrics.json")["metrics"]
    assert single["val/acc"] == pytest.approx(record["metrics"]["val/acc"], abs=1e-7)
    assert single["val/loss"] == pytest.approx(record["metrics"]["val/loss"], abs=1e-5)


@pytest.mark.slow
def test_ddp_jobs_in_a_multirun_keep_their_own_config(tmp_path: Path) -> None:
    run_cli(
        "convattn-train",
        "-m",
        "trainer=ddp_cpu",
        "recipe.optimizer.lr=1e-3,3e-3",
        "+trainer.limit_val_batches=1",
        *SHORT,
        cwd=tmp_path,
    )
    sweep = only_sweep_dir(tmp_path)  # a second one: a child rank re-walked the sweep
    assert not (tmp_path / "logs" / "train" / "runs").exists()
    for job, lr in (("0", 1e-3), ("1", 3e-3)):
        assert read_json(sweep / job / "metrics.json")["status"] == "completed"
        for rank in (0, 1):
            cfg = yaml.safe_load((sweep / job / "ranks" / f"rank{rank}.yaml").read_text())
            assert cfg["recipe"]["optimizer"]["lr"] == lr, (job, rank)

"""DDP in real processes (gloo on CPU): synced metrics, per-rank randomness, exact resume,
unpadded evaluation, collective-safe stops, and DDP jobs inside a Hydra multirun."""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import pytest
import torch
import yaml
from helpers import runs
from helpers.runs import only_run_dir, only_sweep_dir, read_json

from convattn.cluster.distributed import child_rank_argv
from convattn.data.base import per_device_batch_size
from convattn.data.digits import DigitsDataModule
from convattn.errors import ConvattnError

# Lightning starts the other ranks from the console script's own command line: fresh processes.
run_cli = functools.partial(runs.run_cli, fresh=True)
pytestmark = pytest.mark.xdist_group("processes")  # two ranks: the worker holding both cores

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


# Two epochs of 20 steps on 2 ranks (629 images and 32 per rank per step), with every source of
# randomness a run has: shuffling, random crops, drop path.
# scripts/gpu_check.sh runs these on two GPUs with CONVATTN_DDP_TRAINER=ddp.
TRAINER = f"trainer={os.environ.get('CONVATTN_DDP_TRAINER', 'ddp_cpu')}"
TWO_RANKS = [
    TRAINER, "trainer.max_epochs=2", "trainer.deterministic=true",
    "data.crop_padding=2", "model.drop_path_rate=0.1", "logger=csv", "profile=false",
    "callbacks.attention_maps=null", "+callbacks.streams._target_=helpers.probes.RankStreams",
]  # fmt: skip
MID = 30  # a checkpoint mid-way through the second epoch


def streams(run_dir: Path) -> list[dict[str, str]]:
    return [json.loads((run_dir / "streams" / f"rank{r}.json").read_text()) for r in (0, 1)]


@pytest.mark.slow
def test_two_rank_resume_mid_epoch_equals_the_uninterrupted_run(tmp_path: Path) -> None:
    whole = tmp_path / "whole"
    run_cli(
        "convattn-train", *TWO_RANKS, f"hydra.run.dir={whole}",
        f"+callbacks.streams.out={whole}/streams",
        "+callbacks.mid._target_=lightning.pytorch.callbacks.ModelCheckpoint",
        f"+callbacks.mid.dirpath={whole}/mid", "+callbacks.mid.filename=mid",
        f"+callbacks.mid.every_n_train_steps={MID}", "+callbacks.mid.save_top_k=-1",
        cwd=tmp_path,
    )  # fmt: skip
    # Each rank draws its own augmentation and dropout: their RNG streams differ at every step.
    rank0, rank1 = streams(whole)
    assert len(rank0) == 40 and all(rank0[step] != rank1[step] for step in rank0)

    # Every test image scored once: 359 is odd, so a padded shard would count one twice.
    dm = DigitsDataModule()
    dm.setup()
    assert len(dm.datasets["test"]) % 2 == 1
    record = read_json(whole / "metrics.json")
    assert torch.tensor(record["confusion_matrix"]).sum() == len(dm.datasets["test"])

    # Resumed from the mid-epoch checkpoint in a new run dir: same weights, same streams.
    resumed = tmp_path / "resumed"
    run_cli(
        "convattn-train", *TWO_RANKS, f"hydra.run.dir={resumed}", "test=false",
        f"+callbacks.streams.out={resumed}/streams", f"ckpt_path={whole}/mid/mid.ckpt",
        cwd=tmp_path,
    )  # fmt: skip
    for before, after in zip(streams(whole), streams(resumed), strict=True):
        assert sorted(after, key=int) == [str(s) for s in range(MID, 40)]
        assert all(after[step] == before[step] for step in after)
    expected = torch.load(whole / "checkpoints/last.ckpt", weights_only=True)
    got = torch.load(resumed / "checkpoints/last.ckpt", weights_only=True)
    assert got["global_step"] == expected["global_step"] == 40
    for name, tensor in expected["state_dict"].items():
        torch.testing.assert_close(got["state_dict"][name], tensor, rtol=0, atol=1e-6, msg=name)


@pytest.mark.slow
def test_a_nan_on_one_rank_stops_both_promptly(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    proc = run_cli(
        "convattn-train", TRAINER, *SHORT, f"hydra.run.dir={run_dir}",
        "+callbacks.nan._target_=helpers.probes.NaNOnRank", "+callbacks.nan.step=2",
        "+callbacks.nan.rank=1", cwd=tmp_path, check=False, timeout=300,
    )  # fmt: skip  # without a joint decision rank 0 waits in the all-reduce for 30 min
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, output[-3000:]  # as on one device
    assert "The training loss became nan on rank 1 at step 2" in output
    assert read_json(run_dir / "metrics.json")["status"] == "failed"
    saved = torch.load(run_dir / "checkpoints/on_exception.ckpt", weights_only=True)
    assert saved["global_step"] == 2

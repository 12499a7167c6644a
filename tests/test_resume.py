"""Preemption-safe resume: SIGTERM mid-epoch, restart in the same run dir, same weights."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from helpers.runs import read_json, run_cli
from lightning.fabric.plugins.environments import LightningEnvironment, SLURMEnvironment

from convattn.cluster.slurm import cluster_environment
from convattn.errors import ConvattnError
from convattn.run.resume import resume_checkpoint

# Every source of randomness a run has: shuffling, random crops, drop path, mixup.
RECIPE = [
    "trainer.max_epochs=3",
    "trainer.deterministic=true",
    "data.crop_padding=2",
    "model.drop_path_rate=0.1",
    "recipe.mixup.mixup_alpha=0.2",
    "test=false",
    "profile=false",
    "callbacks.attention_maps=null",
]
STEPS_PER_EPOCH = 20  # 1257 digits training images / batch 64
KILL_AT = 30  # mid-way through the second epoch


def train(tmp_path: Path, run_dir: Path, *extra: str, check: bool = True):
    return run_cli(
        "convattn-train", *RECIPE, f"hydra.run.dir={run_dir}", *extra,
        cwd=tmp_path, check=check,
    )  # fmt: skip


@pytest.mark.slow
def test_sigterm_mid_epoch_and_restart_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    train(tmp_path, tmp_path / "whole", "logger=csv")

    cut = tmp_path / "cut"
    kill = [
        "+callbacks.kill._target_=helpers.signals.SignalAtStep",
        f"+callbacks.kill.step={KILL_AT}",
    ]
    first = train(tmp_path, cut, "logger=wandb", *kill, check=False)
    assert first.returncode == 143, first.stderr[-2000:]  # 128 + SIGTERM: not "done"
    assert read_json(cut / "metrics.json")["status"] == "interrupted"
    saved = torch.load(cut / "checkpoints" / "on_exception.ckpt", weights_only=False)
    assert saved["global_step"] == KILL_AT and KILL_AT % STEPS_PER_EPOCH  # mid-epoch
    assert resume_checkpoint(cut) == cut / "checkpoints" / "on_exception.ckpt"

    # Started again with the same command: no checkpoint path to type.
    second = train(tmp_path, cut, "logger=wandb", *kill)
    assert "Resuming from this run's own checkpoint" in second.stdout + second.stderr
    assert read_json(cut / "metrics.json")["status"] == "completed"

    whole_ckpt = torch.load(tmp_path / "whole/checkpoints/last.ckpt", weights_only=False)
    cut_ckpt = torch.load(cut / "checkpoints/last.ckpt", weights_only=False)
    assert cut_ckpt["global_step"] == whole_ckpt["global_step"] == 3 * STEPS_PER_EPOCH
    whole, resumed = whole_ckpt["state_dict"], cut_ckpt["state_dict"]
    assert whole.keys() == resumed.keys()
    for name in whole:
        torch.testing.assert_close(resumed[name], whole[name], rtol=0, atol=1e-6, msg=name)

    # Both halves logged into one W&B run.
    run_id = (cut / "wandb_run_id").read_text().strip()
    offline = sorted((cut / "wandb").glob("offline-run-*"))
    assert len(offline) == 2 and all(p.name.endswith(f"-{run_id}") for p in offline)


def test_leftover_slurm_variables_do_not_change_the_world_size(tmp_path: Path) -> None:
    # As if copied from an `salloc` shell: Lightning alone would take 4 ranks from them.
    leftover = {
        **{"SLURM_NTASKS": "4", "SLURM_NTASKS_PER_NODE": "4", "SLURM_PROCID": "2"},
        **{"SLURM_JOB_ID": "77", "SLURM_NODELIST": "node1", "SLURM_JOB_NAME": "train"},
    }
    short = ["trainer.max_epochs=1", "+trainer.limit_train_batches=2", "test=false"]
    run_cli("convattn-train", *short, "logger=csv", "profile=false", f"hydra.run.dir={tmp_path}/r",
            cwd=tmp_path, env=leftover)  # fmt: skip
    log = (tmp_path / "r" / "train.log").read_text()
    assert "Ignoring SLURM_NTASKS=4" in log
    record = read_json(tmp_path / "r" / "metrics.json")  # written: this process is rank 0
    assert (record["status"], record["global_step"]) == ("completed", 2), record
    assert not (tmp_path / "r" / "ranks").exists()  # one process: no per-rank configs


def test_slurm_environment_only_inside_a_matching_srun_step(monkeypatch) -> None:
    for key in [k for k in os.environ if k.startswith("SLURM_")]:
        monkeypatch.delenv(key)
    assert cluster_environment(2, 1) is None  # no Slurm: Lightning decides
    monkeypatch.setenv("SLURM_NTASKS", "2")
    monkeypatch.setenv("SLURM_JOB_NAME", "train")
    monkeypatch.setenv("SLURM_NTASKS_PER_NODE", "1")
    assert isinstance(cluster_environment(2, 1), LightningEnvironment)  # not started by srun
    monkeypatch.setenv("SLURM_STEP_ID", "0")
    monkeypatch.setenv("SLURM_PROCID", "1")
    env = cluster_environment(1, 2)
    assert isinstance(env, SLURMEnvironment) and not env.auto_requeue
    with pytest.raises(ConvattnError, match=r"SLURM_NTASKS=2 .* asks for 4 processes"):
        cluster_environment(2, 2)
    monkeypatch.setenv("SLURM_NTASKS", "1")
    assert isinstance(cluster_environment(2, 1), LightningEnvironment)  # one task starts 2 ranks


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_rng_state_is_this_devices_own() -> None:
    from convattn.run.resume import rng_state, set_rng_state

    torch.cuda.init()
    state = rng_state()  # one state: this rank's device, so a resume on fewer GPUs still fits
    assert state["cuda"].shape == torch.cuda.get_rng_state().shape
    first = torch.rand(3, device="cuda")
    set_rng_state(state)
    assert torch.equal(torch.rand(3, device="cuda"), first)

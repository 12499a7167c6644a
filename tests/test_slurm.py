"""Sweeps on a real Slurm cluster through hydra/launcher=slurm (scripts/slurm_local.sh).

The local cluster has two fake nodes (node1, node2) on this host, accounting through slurmdbd,
and requeue enabled: the same submitit and Slurm code paths as a real cluster.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest
import torch
from conftest import BIN, only_sweep_dir, read_json, run_cli

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

JOB = [
    "hydra/launcher=slurm",
    "hydra.launcher.partition=debug",
    "hydra.launcher.cpus_per_task=1",
    "hydra.launcher.timeout_min=15",
    "logger=csv",
    "profile=false",
    "test=false",
    "print_config=false",
    "callbacks.progress_bar=null",
]
STEPS_PER_EPOCH = 20  # 1257 digits training images / batch 64


@pytest.fixture(scope="module", autouse=True)
def slurm_cluster() -> None:
    up = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
    if up.returncode or not up.stdout.strip():
        message = "no local Slurm cluster: run scripts/slurm_local.sh start (make test does)"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI starts it: missing there is a failure, not a skip
        pytest.skip(message)


def sacct(job_id: str, fields: str) -> list[str]:
    out = subprocess.run(
        ["sacct", "-n", "-X", "-P", "--duplicates", "-j", job_id, "-o", fields],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return [line for line in out.splitlines() if line]


def settled(job_id: str, fields: str = "State", timeout: float = 60) -> list[str]:
    """sacct's rows once the job has left Slurm (submitit returns as soon as results exist)."""
    deadline = time.time() + timeout
    while (rows := sacct(job_id, fields)) and any(r.startswith("RUNNING") for r in rows):
        if time.time() > deadline:
            break
        time.sleep(0.5)
    return rows


def slurm_job_ids(sweep: Path) -> list[str]:
    """The sweep's Slurm jobs from its submitit folder: array tasks `<array>_<n>`, or a lone id."""
    names = [p.name for p in (sweep / ".submitit").iterdir() if p.is_dir()]
    tasks = sorted(n for n in names if re.fullmatch(r"\d+_\d+", n))
    return tasks or [n for n in names if n.isdigit()]


def test_a_sweep_of_two_jobs_runs_as_slurm_jobs(tmp_path: Path) -> None:
    run_cli("convattn-train", "-m", *JOB, "seed=0,1", "trainer.max_epochs=1",
            "+trainer.limit_train_batches=4", cwd=tmp_path)  # fmt: skip
    sweep = only_sweep_dir(tmp_path)
    for job in ("0", "1"):
        record = read_json(sweep / job / "metrics.json")
        assert record["status"] == "completed" and record["seed"] == int(job)
    ids = slurm_job_ids(sweep)
    assert len(ids) == 2
    for job_id in ids:
        assert settled(job_id) == ["COMPLETED"]


def test_two_node_ddp_job_on_two_fake_nodes(tmp_path: Path) -> None:
    run_cli("convattn-train", "-m", *JOB, "trainer=ddp_cpu", "hydra.launcher.tasks_per_node=1",
            "hydra.launcher.nodes=2", "trainer.max_epochs=1", "+trainer.limit_train_batches=4",
            cwd=tmp_path)  # fmt: skip
    sweep = only_sweep_dir(tmp_path)
    record = read_json(sweep / "0" / "metrics.json")
    assert record["status"] == "completed"
    assert sorted(p.name for p in (sweep / "0" / "ranks").iterdir()) == ["rank0.yaml", "rank1.yaml"]
    [job_id] = slurm_job_ids(sweep)
    assert settled(job_id, "State,NNodes,NodeList") == ["COMPLETED|2|node[1-2]"]


def test_usr1_requeues_and_resumes_with_the_same_step_count(tmp_path: Path) -> None:
    # Two identical jobs; job 0 is warned mid-training as a time limit or preemption would.
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    sweep_proc = subprocess.Popen(
        [str(BIN / "convattn-train"), "-m", *JOB, "seed=3,3", "trainer.max_epochs=4",
         "hydra.launcher.array_parallelism=2"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.time() + 300
        last = None
        while time.time() < deadline and sweep_proc.poll() is None:
            found = list((tmp_path / "logs").glob("train/multiruns/*/0/checkpoints/last.ckpt"))
            if found:
                last = found[0]
                break
            time.sleep(0.2)
        assert last is not None, "job 0 never finished its first epoch"
        sweep = last.parents[2]
        job0 = next(i for i in slurm_job_ids(sweep) if i.endswith("_0"))
        subprocess.run(["scancel", "--signal=USR1", job0], check=True)
        out, _ = sweep_proc.communicate(timeout=600)
    finally:
        sweep_proc.kill()
    assert sweep_proc.returncode == 0, out[-3000:]

    log = (sweep / "0" / "train.log").read_text()
    assert "Slurm sent SIGUSR1" in log and "Requeued Slurm job" in log
    assert "Resuming from this run's own checkpoint" in log
    states = settled(job0)
    assert "REQUEUED" in states and states[-1] == "COMPLETED", states
    steps = []
    for job in ("0", "1"):
        record = read_json(sweep / job / "metrics.json")
        assert record["status"] == "completed"
        steps.append(record["global_step"])
    assert steps == [4 * STEPS_PER_EPOCH] * 2
    resumed = torch.load(sweep / "0/checkpoints/last.ckpt", weights_only=False)
    assert resumed["global_step"] == 4 * STEPS_PER_EPOCH


def test_sbatch_template_trains_in_a_run_dir_named_after_the_job(tmp_path: Path) -> None:
    (tmp_path / "logs" / "slurm").mkdir(parents=True)
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}  # sbatch exports it
    template = Path(__file__).parents[1] / "scripts" / "slurm_train.sbatch"
    out = subprocess.run(
        ["sbatch", "--wait", "--parsable", "--partition=debug", "--cpus-per-task=1", str(template),
         "trainer.max_epochs=1", "+trainer.limit_train_batches=4", "logger=csv", "profile=false"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    job_id = out.stdout.strip().split(";")[0]
    slurm_out = tmp_path / "logs" / "slurm" / f"{job_id}.out"
    assert out.returncode == 0, slurm_out.read_text()[-3000:] if slurm_out.exists() else out.stderr
    record = read_json(tmp_path / "logs" / "slurm" / job_id / "metrics.json")
    assert record["status"] == "completed" and record["global_step"] == 4
    assert settled(job_id) == ["COMPLETED"]

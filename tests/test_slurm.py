"""Sweeps on a real Slurm cluster through hydra/launcher=slurm (scripts/slurm_local.sh).

The local cluster has two fake nodes (node1, node2) on this host, accounting through slurmdbd,
and requeue enabled: the same submitit and Slurm code paths as a real cluster. Its config is
found through SLURM_CONF (`make test` exports it), and the jobs use the launcher's defaults.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest
import torch
from helpers import runs
from helpers.runs import BIN, only_sweep_dir, read_json

pytestmark = [pytest.mark.slurm, pytest.mark.slow, pytest.mark.xdist_group("processes")]
# The submitting command is a fresh process too: Slurm is the subject, start to end.
run_cli = functools.partial(runs.run_cli, fresh=True)

JOB = [
    "hydra/launcher=slurm",
    "hydra.launcher.partition=debug",
    "hydra.launcher.timeout_min=15",
    "logger=csv",
    "profile=false",
    "test=false",
    "print_config=false",
    "callbacks.progress_bar=null",
]
STEPS_PER_EPOCH = 20  # 1257 digits training images / batch 64
T = TypeVar("T")


@pytest.fixture(scope="module", autouse=True)
def slurm_cluster() -> None:
    up = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
    if up.returncode or not up.stdout.strip():
        message = (
            "no local Slurm cluster: run scripts/slurm_local.sh start, then "
            'eval "$(scripts/slurm_local.sh env)" to export SLURM_CONF (make test does both)'
        )
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


def wait_for(check: Callable[[], T], proc: subprocess.Popen, what: str, timeout: float = 300) -> T:
    """Poll `check` until it returns something truthy; fail if `proc` exits first or on timeout."""
    deadline = time.time() + timeout
    while not (result := check()):
        if proc.poll() is not None or time.time() > deadline:
            raise AssertionError(f"{what} (sweep exit code {proc.poll()})")
        time.sleep(0.2)
    return result


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
    # Two identical deterministic jobs; job 0 is warned mid-training as a time limit or
    # preemption would, job 1 is its uninterrupted twin.
    epochs = 3
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    sweep_proc = subprocess.Popen(
        [str(BIN / "convattn-train"), "-m", *JOB, "seed=3,3", f"trainer.max_epochs={epochs}",
         "trainer.deterministic=true", "hydra.launcher.array_parallelism=2"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        runs = tmp_path / "logs" / "train" / "multiruns"
        last = wait_for(lambda: next(runs.glob("*/0/checkpoints/last.ckpt"), None), sweep_proc,
                        "job 0 never finished its first epoch")  # fmt: skip
        sweep = last.parents[2]
        job0 = next(i for i in slurm_job_ids(sweep) if i.endswith("_0"))
        subprocess.run(["scancel", "--signal=USR1", job0], check=True)
        # The checkpoint the first run leaves when it requeues itself (read now: Lightning
        # deletes it once the resumed run has finished).
        saved = sweep / "0" / "checkpoints" / "on_exception.ckpt"
        log_file = sweep / "0" / "train.log"
        wait_for(lambda: "Requeued Slurm job" in log_file.read_text(), sweep_proc,
                 "job 0 did not requeue itself")  # fmt: skip
        saved_step = torch.load(saved, weights_only=False)["global_step"]
        out, _ = sweep_proc.communicate(timeout=600)
    finally:
        sweep_proc.kill()
    assert sweep_proc.returncode == 0, out[-3000:]

    log = log_file.read_text()
    assert "Slurm sent SIGUSR1" in log
    states = settled(job0)
    assert "REQUEUED" in states and states[-1] == "COMPLETED", states
    # The requeued run started where the first one stopped, mid-training, not from step 0 (a
    # fresh start would end at the same step count).
    [resumed_from] = re.findall(r"Resuming from this run's own checkpoint (\S+)", log)
    assert Path(resumed_from) == saved
    assert 0 < saved_step < epochs * STEPS_PER_EPOCH
    resumed, whole = (
        torch.load(sweep / job / "checkpoints/last.ckpt", weights_only=False) for job in "01"
    )
    for job in "01":
        assert read_json(sweep / job / "metrics.json")["status"] == "completed"
    assert resumed["global_step"] == whole["global_step"] == epochs * STEPS_PER_EPOCH
    # And it continued exactly: the same weights as the twin that was never interrupted.
    assert resumed["state_dict"].keys() == whole["state_dict"].keys()
    for name, value in whole["state_dict"].items():
        torch.testing.assert_close(resumed["state_dict"][name], value, rtol=0, atol=1e-6, msg=name)


def test_sbatch_template_trains_in_a_run_dir_named_after_the_job(tmp_path: Path) -> None:
    (tmp_path / "logs" / "slurm").mkdir(parents=True)
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}  # sbatch exports it
    template = Path(__file__).parents[1] / "scripts" / "slurm_train.sbatch"
    out = subprocess.run(
        ["sbatch", "--wait", "--parsable", "--partition=debug", str(template),
         "trainer.max_epochs=1", "+trainer.limit_train_batches=4", "logger=csv", "profile=false"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    job_id = out.stdout.strip().split(";")[0]
    slurm_out = tmp_path / "logs" / "slurm" / f"{job_id}.out"
    assert out.returncode == 0, slurm_out.read_text()[-3000:] if slurm_out.exists() else out.stderr
    record = read_json(tmp_path / "logs" / "slurm" / job_id / "metrics.json")
    assert record["status"] == "completed" and record["global_step"] == 4
    assert settled(job_id) == ["COMPLETED"]

"""A run dir holds one experiment, run by one process at a time, and a restart keeps its
progress: the identity check, the run-dir lock, a fine-tune's restart, the W&B id file."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers.runs import BIN, cli_env, read_json, run_cli

from convattn.errors import ConvattnError
from convattn.run import lock
from convattn.run.resume import WANDB_ID_FILE, wandb_run_id

SHORT = [
    "trainer.max_epochs=1", "+trainer.limit_train_batches=3", "+trainer.limit_val_batches=1",
    "logger=csv", "print_config=false", "profile=false", "test=false",
    "callbacks.attention_maps=null",
]  # fmt: skip


def train(tmp_path: Path, run_dir: Path, *extra: str, check: bool = True, **kw):
    return run_cli(
        "convattn-train", *SHORT, f"hydra.run.dir={run_dir}", *extra,
        cwd=tmp_path, check=check, **kw,
    )  # fmt: skip


def one_paragraph_exit_2(proc: subprocess.CompletedProcess, *words: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    for word in words:
        assert word in proc.stderr, proc.stderr


# ---------------------------------------------------------------- what the identity covers
@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("identity")
    run_dir = root / "run"
    train(root, run_dir)
    return root, run_dir


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("trainer.gradient_clip_val=0.5", "trainer.gradient_clip_val"),
        ("trainer.precision=bf16-mixed", "trainer.precision"),
        ("+trainer.accumulate_grad_batches=2", "trainer.accumulate_grad_batches"),
        ("callbacks=ema", "callbacks.ema.decay"),
        ("callbacks.model_checkpoint.monitor=val/loss", "callbacks.model_checkpoint.monitor"),
        ("recipe.optimizer.lr=0.01", "recipe.optimizer.lr"),
    ],
)
def test_a_result_changing_setting_is_another_experiment(trained, override: str, key: str):
    root, run_dir = trained
    before = {p: p.stat().st_mtime_ns for p in run_dir.rglob("*") if p.is_file()}
    proc = train(root, run_dir, override, "trainer.max_epochs=2", check=False)
    one_paragraph_exit_2(proc, "holds another experiment", key)
    assert {p: p.stat().st_mtime_ns for p in run_dir.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize(
    "override",
    ["trainer.log_every_n_steps=1", "trainer.num_sanity_val_steps=1", "callbacks.lr_monitor=null"],
)
def test_budgets_devices_and_logging_are_not(trained, override: str):
    root, run_dir = trained
    proc = train(root, run_dir, override, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "Resuming from this run's own checkpoint" in proc.stderr


# ---------------------------------------------------------------- a reused sweep dir
def test_a_reused_sweep_dir_is_checked_job_by_job_before_any_starts(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    grid = ["-m", *SHORT, "seed=0,1", f"hydra.sweep.dir={sweep}"]
    run_cli("convattn-train", *grid, cwd=tmp_path)
    saved = {p: p.read_bytes() for p in sweep.rglob("*") if p.is_file() and ".hydra" in p.parts}
    proc = run_cli("convattn-train", *grid, "recipe.optimizer.lr=0.01", cwd=tmp_path, check=False)
    one_paragraph_exit_2(proc, f"would run in {sweep / '0'}", "recipe.optimizer.lr")
    assert {p: p.read_bytes() for p in saved} == saved  # no job's .hydra/ was rewritten
    # The same sweep again resumes each job in its own dir (budgets may grow).
    proc = run_cli("convattn-train", *grid, "trainer.max_epochs=2", cwd=tmp_path)
    assert [read_json(sweep / n / "metrics.json")["global_step"] for n in "01"] == [6, 6]


# ---------------------------------------------------------------- what train=false tests
def test_train_false_tests_the_run_dirs_best_checkpoint(trained) -> None:
    root, run_dir = trained
    best = run_dir / "checkpoints" / "best.ckpt"
    proc = train(root, run_dir, "train=false", "test=true")
    assert f"train=false: testing {best}" in proc.stderr, proc.stderr
    record = read_json(run_dir / "metrics.json")
    assert record["ckpt_path"] == str(best) and "test/acc" in record["metrics"], record


def test_a_test_of_other_weights_never_replaces_the_completed_record(trained, tmp_path):
    root, run_dir = trained
    other = tmp_path / "other"
    train(tmp_path, other, "seed=1")  # the same model, other weights
    before = (run_dir / "metrics.json").read_bytes()
    attempts = len((run_dir / "attempts.jsonl").read_text().splitlines())
    ckpt = other / "checkpoints" / "best.ckpt"
    proc = train(root, run_dir, "train=false", "test=true", f"ckpt_path={ckpt}")
    assert "keeps the run's completed record" in proc.stderr, proc.stderr
    assert (run_dir / "metrics.json").read_bytes() == before
    lines = (run_dir / "attempts.jsonl").read_text().splitlines()
    assert len(lines) == attempts + 1 and str(ckpt) in lines[-1]


@pytest.mark.parametrize("where", ["a fresh dir", "ckpt_path"])
def test_train_false_needs_a_checkpoint_of_this_model(trained, tmp_path: Path, where: str):
    _, run_dir = trained
    if where == "a fresh dir":
        proc = train(tmp_path, tmp_path / "fresh", "train=false", "test=true", check=False)
        one_paragraph_exit_2(proc, "has no checkpoints/best.ckpt", "ckpt_path=")
    else:  # the cnn's checkpoint for a vit
        args = ["train=false", "test=true", "model=vit", f"ckpt_path={run_dir}"]
        proc = train(tmp_path, tmp_path / "vit", *args, check=False)
        one_paragraph_exit_2(proc, "holds the weights of another model", "'vit'")
    # The mistake is recorded as such; nothing untrained is ever recorded as a result.
    record = read_json(next(tmp_path.glob("*/metrics.json")))
    assert (record["status"], record["metrics"]) == ("failed", {}), record


def test_a_fine_tune_from_another_arms_checkpoint_is_refused(trained, tmp_path: Path) -> None:
    _, run_dir = trained
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    proc = train(tmp_path, tmp_path / "tune", "model=cbam", "model.attn_layer=se",
                 f"ckpt_path={ckpt}", check=False)  # fmt: skip
    one_paragraph_exit_2(proc, "holds the weights of another model", str(ckpt))


# ---------------------------------------------------------------- a fine-tune's restart
def test_a_restarted_fine_tune_goes_on_from_its_own_checkpoint(tmp_path: Path) -> None:
    start = tmp_path / "start"
    train(tmp_path, start)
    tune = tmp_path / "tune"
    ckpt = f"ckpt_path={start / 'checkpoints' / 'last.ckpt'}"
    train(tmp_path, tune, ckpt, "trainer.max_epochs=2")
    last = tune / "checkpoints" / "last.ckpt"
    written = last.read_bytes()
    # The same command again, as Slurm's requeue runs it: its own last.ckpt (epoch 2) wins.
    proc = train(tmp_path, tune, ckpt, "trainer.max_epochs=2")
    assert f"goes on from its own {last}" in proc.stderr, proc.stderr
    assert last.read_bytes() == written  # nothing was trained again
    assert read_json(tune / "metrics.json")["global_step"] == 6


def test_a_fine_tunes_restart_is_checked_like_any_other(tmp_path: Path) -> None:
    start, tune = tmp_path / "start", tmp_path / "tune"
    train(tmp_path, start)
    ckpt = f"ckpt_path={start / 'checkpoints' / 'last.ckpt'}"
    train(tmp_path, tune, ckpt, "trainer.max_epochs=2")
    proc = train(tmp_path, tune, ckpt, "trainer.max_epochs=2", "seed=5", check=False)
    one_paragraph_exit_2(proc, "holds another experiment", "seed")


# ---------------------------------------------------------------- one process per run dir
def pause_at_step_1(marker: Path, release: Path) -> list[str]:
    return ["+callbacks.pause._target_=helpers.probes.PauseAtStep", "+callbacks.pause.step=1",
            f"+callbacks.pause.marker={marker}", f"+callbacks.pause.release={release}"]  # fmt: skip


def paused_run(tmp_path: Path, run_dir: Path, marker: Path, release: Path) -> subprocess.Popen:
    args = [*SHORT, f"hydra.run.dir={run_dir}", *pause_at_step_1(marker, release)]
    proc = subprocess.Popen(
        [str(BIN / "convattn-train"), *args], cwd=tmp_path, env=cli_env(),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.1)
    return proc


@pytest.mark.xdist_group("processes")
def test_a_second_process_in_a_busy_run_dir_is_refused(tmp_path: Path) -> None:
    run_dir, marker, release = tmp_path / "run", tmp_path / "paused", tmp_path / "go"
    first = paused_run(tmp_path, run_dir, marker, release)
    try:
        hydra_files = {p: p.read_bytes() for p in (run_dir / ".hydra").iterdir()}
        second = train(tmp_path, run_dir, "seed=3", check=False)
        one_paragraph_exit_2(second, f"(pid {first.pid})", str(run_dir), "Nothing was changed")
        assert {p: p.read_bytes() for p in (run_dir / ".hydra").iterdir()} == hydra_files
    finally:
        release.touch()
        _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    record = read_json(run_dir / "metrics.json")  # the first run's, untouched by the second
    assert (record["status"], record["global_step"]) == ("completed", 3), record
    assert record["seed"] != 3
    # It has ended: the dir is free again, and the same command resumes it.
    assert train(tmp_path, run_dir, *pause_at_step_1(marker, release)).returncode == 0


@pytest.mark.xdist_group("processes")
def test_a_killed_runs_restart_gets_the_lock(tmp_path: Path) -> None:
    run_dir, marker, release = tmp_path / "run", tmp_path / "paused", tmp_path / "go"
    first = paused_run(tmp_path, run_dir, marker, release)
    first.kill()  # SIGKILL: no cleanup of any kind, as on a node failure
    first.communicate(timeout=60)
    release.touch()
    proc = train(tmp_path, run_dir, *pause_at_step_1(marker, release), check=False)
    assert proc.returncode == 0, proc.stderr
    assert read_json(run_dir / "metrics.json")["status"] == "completed"


def test_the_lock_is_held_against_other_processes_only(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from convattn.run import lock; "
         f"lock.acquire({str(tmp_path)!r}); print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True, env={**os.environ},
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ConvattnError, match=f"pid {holder.pid}"):
            lock.acquire(tmp_path)
    finally:
        holder.kill()
        holder.wait()
    assert lock.acquire(tmp_path) is True  # the kernel released it with its holder
    assert lock.acquire(tmp_path) is False  # this process holds it already
    lock.release(tmp_path)


def test_a_restart_removes_the_temp_files_of_interrupted_writes(trained, tmp_path) -> None:
    root, run_dir = trained
    left = [
        run_dir / "checkpoints" / ".last.ckpt.k2j4h1x0.tmp",
        run_dir / ".metrics.json.a1b2c3d4.tmp",
    ]
    for path in left:
        path.write_bytes(b"half a file")
    look_alike = run_dir / "checkpoints" / "notes.tmp"
    look_alike.write_text("mine")
    train(root, run_dir)
    assert not any(path.exists() for path in left) and look_alike.exists()


# ---------------------------------------------------------------- the W&B id file
@pytest.mark.parametrize("content", ["", "\n", "\x00\x00", "not an id!", "x" * 200])
def test_a_broken_wandb_id_file_is_replaced(tmp_path: Path, content: str) -> None:
    (tmp_path / WANDB_ID_FILE).write_text(content)
    run_id = wandb_run_id(tmp_path)
    assert (tmp_path / WANDB_ID_FILE).read_text() == f"{run_id}\n"
    assert wandb_run_id(tmp_path) == run_id  # and it is read back on the next restart


def test_the_wandb_id_file_follows_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        wandb_run_id(tmp_path)
    finally:
        os.umask(old)
    assert (tmp_path / WANDB_ID_FILE).stat().st_mode & 0o777 == 0o644

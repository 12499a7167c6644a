"""A run dir belongs to one experiment: every setting that changes what is learnt.

That is the model, the data (less where it lives and how it is loaded), the recipe, the seed,
the trainer's result-changing settings (precision, clipping, accumulation, validation
schedule, ...) and the callbacks that change the weights or pick the tested checkpoint (EMA,
SWA, early stopping, `model_checkpoint.monitor`). Budgets, devices and logging are left out:
extending a finished run, or moving it to other hardware, is a resume.

Each checkpoint records that identity (`ResumeState` saves it). A restart in the same run dir
(a Slurm requeue, or `hydra.run.dir=<dir>` after fixing a typo) compares it with the new config
and stops, listing what differs, before anything in the dir is touched. `resume=force` resumes
anyway; `ckpt_path=<file>` fine-tunes from a checkpoint on purpose.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from convattn.data.registry import find_dataset, get_dataset, list_datasets
from convattn.errors import ConvattnError
from convattn.run import lock
from convattn.run.options import check_resume_mode as check_mode
from convattn.run.resume import IDENTITY_KEY, resume_checkpoint
from convattn.utils.config_tree import flatten

log = logging.getLogger("convattn")


# Trainer settings that leave what is learnt unchanged: budgets, where and on how many devices
# it runs, and logging. Every other trainer setting is part of the identity.
TRAINER_NOT_IDENTITY = frozenset({
    "_target_", "max_epochs", "max_steps", "max_time", "min_epochs", "min_steps",
    "accelerator", "devices", "num_nodes", "strategy", "sync_batchnorm", "plugins",
    "default_root_dir", "logger", "log_every_n_steps", "enable_progress_bar",
    "enable_model_summary", "num_sanity_val_steps", "profiler", "barebones",
})  # fmt: skip
# Callbacks that only watch, log or save: left out. Every other callback is in the identity
# with its whole config; a checkpoint callback only with what picks the tested checkpoint.
WATCHERS = frozenset({
    "lightning.pytorch.callbacks.LearningRateMonitor",
    "lightning.pytorch.callbacks.RichModelSummary",
    "lightning.pytorch.callbacks.ModelSummary",
    "lightning.pytorch.callbacks.RichProgressBar",
    "lightning.pytorch.callbacks.TQDMProgressBar",
    "lightning.pytorch.callbacks.DeviceStatsMonitor",
    "convattn.explain.callback.AttentionMapLogger",
    "convattn.run.resume.ProgressCheckpoint",
})  # fmt: skip
CHECKPOINTS = "lightning.pytorch.callbacks.ModelCheckpoint"


def plain(value: Any) -> Any:
    """A config value as plain Python (nodes resolved and converted)."""
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def data_plumbing(target: Any) -> frozenset[str]:
    """The data options left out of the identity: where the data lives and how it is read
    (`plumbing`, declared by the data module `target` names). A data module that is not
    registered (a user's own) is not imported here: every registered module's plumbing is."""
    found = find_dataset(target)
    if found is not None:
        return found.plumbing
    return frozenset().union(*(get_dataset(name).plumbing for name in list_datasets()))


def callback_identity(callbacks: Any) -> dict[str, Any]:
    """The configured callbacks that change the result, by name (see `WATCHERS`)."""
    out: dict[str, Any] = {}
    for name, conf in (callbacks or {}).items():
        target = conf.get("_target_") if OmegaConf.is_dict(conf) else None
        if target is None or target in WATCHERS:
            continue
        if target == CHECKPOINTS:  # the tested checkpoint is the one `monitor` ranks best
            if conf.get("monitor") is not None:
                out[name] = {"monitor": conf.monitor, "mode": conf.get("mode", "min")}
            continue
        out[name] = plain(conf)
    return out


def experiment_identity(cfg: DictConfig) -> dict[str, Any]:
    """`model.*`, `data.*` (without paths and loader plumbing), `recipe.*`, `seed`, the
    result-changing `trainer.*` settings and callbacks, flat.

    Key by key, so a skipped key is never resolved (its interpolation may not resolve where the
    run is restarted)."""
    skip = {"data": data_plumbing(cfg.data.get("_target_")), "trainer": TRAINER_NOT_IDENTITY}
    groups = {name: cfg[name] for name in ("model", "data", "recipe", "trainer") if name in cfg}
    tree = {
        name: {key: plain(node[key]) for key in node if key not in skip.get(name, ())}
        for name, node in groups.items()
    }
    tree["callbacks"] = callback_identity(cfg.get("callbacks"))
    return {**flatten(tree), "seed": cfg.get("seed")}


def recorded_identity(ckpt: Path) -> dict[str, Any] | None:
    """The identity a checkpoint was written with (None for checkpoints from before it existed)."""
    try:
        checkpoint = torch.load(ckpt, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # resume_checkpoint names a broken file in its own message
        return None
    identity = checkpoint.get(IDENTITY_KEY)
    return identity if isinstance(identity, dict) else None


def identity_differences(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    # A checkpoint from before the identity covered the trainer and callbacks: those unchecked.
    if not any(key.startswith(("trainer.", "callbacks.")) for key in recorded):
        current = {k: v for k, v in current.items() if not k.startswith(("trainer.", "callbacks."))}
    keys = sorted(set(recorded) | set(current))
    missing = "(not set)"
    return [
        f"{key}: {recorded.get(key, missing)!r} in the run dir, {current.get(key, missing)!r} now"
        for key in keys
        if recorded.get(key, missing) != current.get(key, missing)
    ]


def check_same_experiment(cfg: DictConfig, ckpt: Path) -> None:
    """Stop unless `cfg` is the experiment `ckpt` was trained as (or `resume=force`)."""
    mode = cfg.get("resume", "auto")
    check_mode(mode)
    recorded = recorded_identity(ckpt)
    if mode == "force" or recorded is None:
        return
    differences = identity_differences(recorded, experiment_identity(cfg))
    if differences:
        shown = "; ".join(differences[:8]) + ("; ..." if len(differences) > 8 else "")
        raise ConvattnError(
            f"The run dir {ckpt.parent.parent} holds another experiment, so this run would mix "
            f"two configs in one dir. {len(differences)} setting(s) differ from its checkpoint "
            f"{ckpt.name}: {shown}. Nothing was changed. Start a new run dir (drop "
            "hydra.run.dir), fine-tune on purpose with ckpt_path=<file> in a new run dir, or "
            "add resume=force to resume it with the new settings."
        )


def run_dir_of(config: DictConfig) -> Path | None:
    """The single run's dir as configured (None where only Hydra's job runtime can resolve it)."""
    try:
        return Path(str(OmegaConf.select(config, "hydra.run.dir", throw_on_missing=True)))
    except Exception:
        return None


def check_writable(run_dir: Path) -> None:
    """Make the run dir (Hydra would) and write a probe file, so a bad dir is one paragraph."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=run_dir):
            pass
    except OSError as err:
        raise ConvattnError(
            f"The run dir {run_dir} cannot be written ({err.strerror or err}); point "
            "hydra.run.dir (or paths.log_dir) at a writable directory."
        ) from None


def check_resume_mode(config: DictConfig) -> None:
    check_mode(config.get("resume", "auto"))


def guard_run_dir(config: DictConfig) -> None:
    """A single run's dir, before Hydra writes its `.hydra/`: writable and, if it holds
    checkpoints, of this same experiment; then its lock is taken, held until the task ends."""
    run_dir = run_dir_of(config)
    if run_dir is None or "model" not in config:
        return
    check_resume_mode(config)
    existed = run_dir.is_dir()
    check_writable(run_dir)
    if existed:  # its own checkpoints win over ckpt_path: check them either way
        found = resume_checkpoint(run_dir, announce=False)
        if found is not None:
            check_same_experiment(config, found)
    lock.acquire(run_dir)


BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"


def check_sweep_dir(config: DictConfig, jobs: list[list[str]]) -> None:
    """A reused sweep dir: every job dir that holds checkpoints must be the job that runs
    there now. Checked for all jobs before the first starts, since Hydra rewrites a job's
    `.hydra/` before any per-job callback could look."""
    sweep_dir = Path(str(config.hydra.sweep.dir))
    if not sweep_dir.is_dir():
        return
    trained = {d: ckpt for d in sweep_dir.iterdir()
               if d.is_dir() and (ckpt := resume_checkpoint(d, announce=False))}  # fmt: skip
    if not trained:
        return
    subdir = OmegaConf.to_container(config.hydra.sweep, resolve=False).get("subdir")
    if config.hydra.sweeper.get("_target_") != BASIC_SWEEPER or subdir != "${hydra.job.num}":
        raise ConvattnError(
            f"The sweep dir {sweep_dir} holds trained jobs, and this sweep cannot say in advance "
            "which job lands in which dir (only a grid sweep into numbered job dirs can). "
            "Nothing was changed. Start a new sweep dir (drop hydra.sweep.dir)."
        )
    from hydra import compose

    for num, overrides in enumerate(jobs):
        job_dir = sweep_dir / str(num)
        if job_dir in trained:
            job = compose(config.hydra.job.config_name, overrides=overrides)
            try:
                check_same_experiment(job, trained[job_dir])
            except ConvattnError as err:
                raise ConvattnError(
                    f"Job {num} of this sweep ({' '.join(overrides)}) would run in {job_dir}: {err}"
                ) from None

"""A run dir belongs to one experiment: the model, data, recipe and seed it was started with.

Each checkpoint records that identity (`ResumeState` saves it). A restart in the same run dir
(a Slurm requeue, or `hydra.run.dir=<dir>` after fixing a typo) compares it with the new config
and stops, listing what differs, before anything in the dir is touched. Budgets
(`trainer.max_epochs`, `max_steps`) may change: extending a finished run is a resume.
`resume=force` resumes anyway; `ckpt_path=<file>` fine-tunes from a checkpoint on purpose.
"""

from __future__ import annotations

import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch
from hydra.experimental.callback import Callback as HydraCallback
from omegaconf import DictConfig, OmegaConf

from convattn.data.registry import find_dataset, get_dataset, list_datasets
from convattn.errors import ConvattnError
from convattn.run.resume import IDENTITY_KEY, resume_checkpoint
from convattn.utils.config_tree import flatten

log = logging.getLogger("convattn")

RESUME_MODES = ("auto", "force")


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


def experiment_identity(cfg: DictConfig) -> dict[str, Any]:
    """`model.*`, `data.*` (without paths and loader plumbing), `recipe.*` and `seed`, flat.

    Key by key, so a skipped data key is never resolved (its interpolation may not resolve
    where the run is restarted)."""
    plumbing = data_plumbing(cfg.data.get("_target_"))
    groups = {name: cfg[name] for name in ("model", "data", "recipe")}
    tree = {
        name: {key: plain(node[key]) for key in node if name != "data" or key not in plumbing}
        for name, node in groups.items()
    }
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
    if mode not in RESUME_MODES:
        raise ConvattnError(
            f"resume={mode!r} is not a resume mode; use resume=auto or resume=force."
        )
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
    mode = config.get("resume", "auto")
    if mode not in RESUME_MODES:
        raise ConvattnError(
            f"resume={mode!r} is not a resume mode; use resume=auto (resume a run dir of the same "
            "experiment, refuse another) or resume=force (resume it whatever the settings)."
        )


class RunDirGuard(HydraCallback):
    """Hydra callback: before Hydra writes a single run's `.hydra/`, check that its dir can be
    written and, if it holds checkpoints, that they are of this same experiment."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        run_dir = run_dir_of(config)
        if run_dir is None or "model" not in config:
            return
        try:
            check_resume_mode(config)
            existed = run_dir.is_dir()
            check_writable(run_dir)
            if existed and not config.get("ckpt_path"):
                found = resume_checkpoint(run_dir, announce=False)
                if found is not None:
                    check_same_experiment(config, found)
        except ConvattnError as err:
            logging.basicConfig(format="%(message)s")
            log.error(str(err))
            sys.exit(2)

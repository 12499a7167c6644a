"""Where the Hydra configs live (repo conf/ or the wheel's copy), and the resolver they use."""

from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

_PACKAGE = Path(__file__).resolve().parents[1]  # src/convattn
_REPO_CONF = _PACKAGE.parents[1] / "conf"

# A checkout (editable install) edits conf/ in place; a wheel ships it as convattn/conf.
CONFIG_DIR = str(_REPO_CONF if (_REPO_CONF / "train.yaml").is_file() else _PACKAGE / "conf")


def from_launcher(key: str, default: Any) -> Any:
    """`hydra.launcher.<key>` when the launcher has it (Slurm's nodes, tasks_per_node), else
    `default`: the trainer config takes its shape from hydra/launcher=slurm."""
    if not HydraConfig.initialized():
        return default
    value = HydraConfig.get().launcher.get(key)
    return default if value is None else value


OmegaConf.register_new_resolver("from_launcher", from_launcher, replace=True)

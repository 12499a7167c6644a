"""Where the Hydra configs live: the repo's conf/ (editable install) or the wheel's copy."""

from pathlib import Path

from omegaconf import OmegaConf

_PACKAGE = Path(__file__).resolve().parent
_REPO_CONF = _PACKAGE.parents[1] / "conf"

# A checkout (editable install) edits conf/ in place; a wheel ships it as convattn/conf.
CONFIG_DIR = str(_REPO_CONF if (_REPO_CONF / "train.yaml").is_file() else _PACKAGE / "conf")


def slurm_tasks_per_node(devices: object) -> int:
    """Slurm tasks per node for `trainer.devices`: one task per device."""
    if isinstance(devices, int) and devices > 0:
        return devices
    raise ValueError(
        f"trainer.devices={devices!r}: under hydra/launcher=slurm give the number of devices per "
        "node (e.g. trainer.devices=4); each becomes one Slurm task."
    )


def slurm_gpus_per_node(accelerator: str, devices: object) -> int | None:
    """GPUs to ask Slurm for per node: the trainer's devices when it trains on GPUs."""
    return slurm_tasks_per_node(devices) if accelerator in ("gpu", "cuda") else None


# The Slurm launcher config reads the trainer config through these (conf/hydra/launcher/slurm.yaml).
OmegaConf.register_new_resolver("slurm_tasks_per_node", slurm_tasks_per_node, replace=True)
OmegaConf.register_new_resolver("slurm_gpus_per_node", slurm_gpus_per_node, replace=True)

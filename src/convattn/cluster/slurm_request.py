"""What a `hydra/launcher=slurm` sweep asks Slurm for, checked before anything is submitted
(no torch: `convattn.config.check` runs it before the heavy imports)."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from convattn.errors import ConvattnError


def slurm_gpu_problem(accelerator: Any, tasks_per_node: Any, gpus_per_node: Any) -> str | None:
    """What is wrong with the GPUs a `hydra/launcher=slurm` job asks for, or None.

    convattn runs one DDP rank per Slurm task and one GPU per rank, so a GPU trainer needs
    `gpus_per_node` and it must equal `tasks_per_node` (which `trainer.devices` follows).
    """
    if str(accelerator) in ("gpu", "cuda") and not gpus_per_node:
        asked = "null" if gpus_per_node is None else gpus_per_node
        return (
            f"trainer.accelerator={accelerator} under hydra/launcher=slurm with "
            f"hydra.launcher.gpus_per_node={asked}: Slurm would give each job no GPU. "
            f"Set hydra.launcher.gpus_per_node={tasks_per_node} (one GPU per task, i.e. per DDP "
            "rank), or train on CPUs with trainer=cpu or trainer=ddp_cpu."
        )
    if gpus_per_node and gpus_per_node != tasks_per_node:
        return (
            f"hydra.launcher.gpus_per_node={gpus_per_node} with hydra.launcher.tasks_per_node="
            f"{tasks_per_node}: each task is one DDP rank on one GPU, so this would leave GPUs "
            "idle or make ranks share one. Set hydra.launcher.tasks_per_node="
            f"{gpus_per_node} (trainer.devices follows it) or hydra.launcher.gpus_per_node="
            f"{tasks_per_node}."
        )
    return None


def check_slurm_request(config: DictConfig) -> None:
    """A Slurm launcher's GPU request must fit the trainer: one paragraph if it does not."""
    launcher = config.hydra.get("launcher") or {}
    if "SlurmLauncher" not in str(launcher.get("_target_", "")) or "trainer" not in config:
        return
    problem = slurm_gpu_problem(
        config.trainer.get("accelerator"),
        launcher.get("tasks_per_node"),
        launcher.get("gpus_per_node"),
    )
    if problem:
        raise ConvattnError(problem)

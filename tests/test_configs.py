"""Every option of every config group composes, and the default objects instantiate."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import compose_config
from hydra.utils import instantiate
from omegaconf import OmegaConf

from convattn.config_dir import CONFIG_DIR
from convattn.utils.instantiate import instantiate_callbacks, instantiate_loggers

CONF = Path(CONFIG_DIR)
GROUPS = [
    "data",
    "model",
    "recipe",
    "trainer",
    "logger",
    "callbacks",
    "paths",
    "hydra",
    "experiment",
    "debug",
]


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def test_every_group_has_options() -> None:
    for group in GROUPS:
        assert options(group), f"conf/{group}/ has no options"


@pytest.mark.parametrize(
    ("group", "option"), [(g, o) for g in GROUPS for o in options(g) if g != "hydra"]
)
def test_train_option_composes(train_cfg, group: str, option: str) -> None:
    cfg = train_cfg([f"{group}={option}"])
    assert cfg.data and cfg.model.arm and cfg.trainer._target_
    if group == "logger":
        names = set(cfg.logger)
        assert "csv" in names, "CSV metrics must always be written"
        if option != "none" and option != "csv":
            assert option in names


@pytest.mark.parametrize("option", options("trainer") + options("data"))
def test_eval_option_composes(tmp_path, option: str) -> None:
    group = "trainer" if option in options("trainer") else "data"
    cfg = compose_config("eval", [f"{group}={option}", "ckpt_path=x.ckpt"], tmp_path)
    assert cfg.ckpt_path == "x.ckpt"


def test_default_objects_instantiate(train_cfg) -> None:
    cfg = train_cfg(["logger=wandb"])
    assert instantiate(cfg.data).num_classes == 10
    callbacks = instantiate_callbacks(cfg.callbacks)
    assert {type(c).__name__ for c in callbacks} >= {"ModelCheckpoint", "OnExceptionCheckpoint"}
    loggers = instantiate_loggers(cfg.logger)
    assert {type(lg).__name__ for lg in loggers} == {"CSVLogger", "WandbLogger"}


def test_run_dirs_are_unique_within_a_second(train_cfg) -> None:
    hydra_dirs = OmegaConf.to_container(train_cfg().hydra, resolve=False)
    assert "%f" in hydra_dirs["run"]["dir"]  # microseconds
    assert "%f" in hydra_dirs["sweep"]["dir"]


@pytest.mark.parametrize("trainer", ["default", "ddp_cpu", "ddp"])
def test_slurm_launcher_shapes_the_trainer(train_cfg, trainer: str) -> None:
    local = train_cfg([f"trainer={trainer}"]).trainer
    assert (
        local.num_nodes == 1 and local.devices == {"default": 1, "ddp_cpu": 2, "ddp": -1}[trainer]
    )
    cfg = train_cfg(
        [f"trainer={trainer}", "hydra/launcher=slurm", "hydra.launcher.nodes=2",
         "hydra.launcher.tasks_per_node=4"]
    )  # fmt: skip
    assert (cfg.trainer.num_nodes, cfg.trainer.devices) == (2, 4)
    launcher = cfg.hydra.launcher
    assert launcher.submitit_folder.startswith(cfg.hydra.sweep.dir)  # fresh per sweep
    assert launcher.signal_delay_s > 0 and launcher.max_num_timeout > 0

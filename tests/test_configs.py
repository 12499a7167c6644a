"""Every option of every config group composes, and the default objects instantiate."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from helpers.data_formats import write_cifar, write_mnist, write_tree
from helpers.runs import cli_env, compose_config
from helpers.warm import warm_server
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint, OnExceptionCheckpoint
from omegaconf import OmegaConf

from convattn.backbones import build_backbone
from convattn.config_dir import CONFIG_DIR
from convattn.data.base import ClassificationDataModule
from convattn.run.loggers import instantiate_callbacks, instantiate_loggers

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
    """Selectable options: files starting with _ are shared bases other options inherit."""
    return sorted(p.stem for p in (CONF / group).glob("*.yaml") if not p.stem.startswith("_"))


def test_every_group_has_options() -> None:
    for group in GROUPS:
        assert options(group), f"conf/{group}/ has no options"


@pytest.mark.parametrize(
    ("group", "option"), [(g, o) for g in GROUPS for o in options(g) if g != "hydra"]
)
def test_train_option_composes(train_cfg, group: str, option: str) -> None:
    cfg = train_cfg([f"{group}={option}"])
    assert cfg.hydra.runtime.choices[group] == option  # the option chosen, not the default
    assert cfg.data and cfg.model.arm and cfg.trainer._target_
    if group == "model":
        assert cfg.model.arm == option
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
    assert cfg.hydra.runtime.choices[group] == option
    built = OmegaConf.to_container(cfg[group], resolve=True)
    train = compose_config("train", [f"{group}={option}"], tmp_path)
    # eval builds the same trainer or data as train does
    assert built == OmegaConf.to_container(train[group], resolve=True)


def test_default_objects_instantiate(train_cfg) -> None:
    cfg = train_cfg(["logger=wandb"])
    assert instantiate(cfg.data).num_classes == 10
    callbacks = instantiate_callbacks(cfg.callbacks)
    assert any(isinstance(c, ModelCheckpoint) for c in callbacks)
    assert any(isinstance(c, OnExceptionCheckpoint) for c in callbacks)
    loggers = instantiate_loggers(cfg.logger)
    assert {type(lg).__name__ for lg in loggers} == {"CSVLogger", "WandbLogger"}


def test_run_dirs_are_unique_within_a_second(tmp_path: Path) -> None:
    """Four commands started at once (two runs, two multiruns) get four dirs of their own.

    Each stops at a mistake found inside the job (data.img_size=4), after Hydra made its dir."""
    calls = [[], [], ["-m"], ["-m"]]
    procs = [warm_server().start("convattn-train", [*c, "data.img_size=4", "logger=csv"],
                                 tmp_path, cli_env()) for c in calls]  # fmt: skip
    for proc in procs:
        proc.result(timeout=120)
    logs = tmp_path / "logs" / "train"
    runs = sorted(p.name for p in (logs / "runs").iterdir())
    sweeps = sorted(p.name for p in (logs / "multiruns").iterdir())
    assert len(runs) == len(sweeps) == 2, (runs, sweeps)
    # the same second, told apart by the microseconds
    assert len({name[:19] for name in runs + sweeps}) <= 2, (runs, sweeps)


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


@pytest.mark.parametrize("group", ["data", "model", "callbacks", "logger"])
def test_every_option_instantiates(train_cfg, tmp_path, group: str) -> None:
    """Not only composes: each option's objects are built (data modules on tiny real files)."""
    root = tmp_path / "data"
    write_mnist(root, "MNIST")
    write_mnist(root, "FashionMNIST")
    write_cifar(root, fine=False, n_train=20, n_test=10)
    write_cifar(root, fine=True, n_train=200, n_test=100)
    write_tree(root, {"train": 2, "val": 1})
    for option in options(group):
        cfg = train_cfg([f"{group}={option}"])
        if "root" in cfg.data:
            cfg.data.root = str(root)
        built = instantiate_group(cfg, group)
        assert built or option == "none", f"{group}={option} built nothing"
        if group in ("data", "model"):  # the object of this option, not a default one
            assert getattr(built[0], "name" if group == "data" else "arm") == option
        if group == "logger":
            kinds = {type(logger).__name__ for logger in built}
            extra = {"csv": set(), "none": set(), "tensorboard": {"TensorBoardLogger"},
                     "wandb": {"WandbLogger"}}[option]  # fmt: skip
            assert kinds == {"CSVLogger", *extra}, kinds


def instantiate_group(cfg, group: str) -> list:
    if group == "data":
        dm = instantiate(cfg.data)
        return [dm] if isinstance(dm, ClassificationDataModule) else []
    if group == "model":
        shape = {"in_chans": 3, "num_classes": 10, "img_size": 32}
        return [build_backbone(OmegaConf.to_container(cfg.model, resolve=True), **shape)]
    if group == "callbacks":
        return instantiate_callbacks(cfg.callbacks)
    return instantiate_loggers(cfg.logger)


def sweep_points(params: dict) -> list[list[str]]:
    """Hydra's own expansion of a sweeper's `params` (comma lists, ranges) into grid points."""
    parser = OverridesParser.create()
    axes = []
    for override in parser.parse_overrides([f"{k}={v}" for k, v in params.items()]):
        key = override.get_key_element()
        values = (
            list(override.sweep_string_iterator())
            if override.is_sweep_override()
            else [override.get_value_element_as_str()]
        )
        axes.append([f"{key}={v}" for v in values])
    return [list(point) for point in itertools.product(*axes)]


@pytest.mark.parametrize("preset", options("experiment"))
def test_every_experiment_point_composes_and_builds(tmp_path, preset: str) -> None:
    base = compose_config("train", [f"experiment={preset}"], tmp_path)
    params = base.hydra.sweeper.get("params")
    params = OmegaConf.to_container(params) if params else {}
    points = sweep_points(params) if params else [[]]
    for point in points:
        cfg = compose_config("train", [f"experiment={preset}", *point], tmp_path / "p")
        for group in ("data", "model"):
            assert instantiate_group(cfg, group)
        for override in point:
            key, value = override.split("=", 1)
            if key != "model":
                assert str(OmegaConf.select(cfg, key)).replace(" ", "") == value.replace(" ", "")


def test_hparams_search_space_composes_at_its_bounds(tmp_path) -> None:
    cfg = compose_config("train", ["hparams_search=digits_optuna"], tmp_path)
    assert cfg.hydra.sweeper._target_.endswith("OptunaSweeper")
    space = cfg.hydra.sweeper.params
    for key, spec in space.items():
        override = OverridesParser.create().parse_override(f"{key}={spec}")
        assert override.is_sweep_override(), key
        value = override.value()
        bounds = [value.start, value.end] if hasattr(value, "start") else list(value.list)
        for bound in bounds:
            point = compose_config(
                "train", ["hparams_search=digits_optuna", f"{key}={bound}"], tmp_path
            )
            assert OmegaConf.select(point, key) == pytest.approx(float(bound))
            assert instantiate_group(point, "model")

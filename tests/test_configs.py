"""Every option of every config group composes, and the default objects instantiate; the
registries match conf/, config trees are walked one way, and the `_target_` allow-list."""

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
from convattn.backbones.registry import MODEL_FACTORY
from convattn.config.check import check_config
from convattn.config.location import CONFIG_DIR
from convattn.data import find_dataset, get_dataset, list_datasets
from convattn.data.base import ClassificationDataModule
from convattn.data.registry import target_path
from convattn.run.checkpoint_checks import allowed_target, check_section
from convattn.run.loggers import instantiate_callbacks, instantiate_loggers
from convattn.utils.config_tree import find_targets, flatten, walk

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
    check_config(cfg)  # every shipped option passes the check before the heavy imports
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

    Each stops at a mistake found inside the job (no dataset files where data.root points),
    after Hydra made its dir."""
    calls = [[], [], ["-m"], ["-m"]]
    empty = tmp_path / "empty"
    empty.mkdir()
    mistake = ["data=cifar10", f"data.root={empty}", "logger=csv"]
    procs = [warm_server().start("convattn-train", [*c, *mistake], tmp_path, cli_env())
             for c in calls]  # fmt: skip
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
        check_config(cfg)
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
            check_config(point)
            assert instantiate_group(point, "model")


# ---------------------------------------------------------------- registries and config trees
def test_every_dataset_has_a_config_and_every_config_a_dataset(tmp_path) -> None:
    """One registered data module, one conf/data/<name>.yaml naming it: neither without the
    other (the arms' counterpart is in test_backbones.py)."""
    assert options("data") == list_datasets()
    for name in list_datasets():
        target = compose_config("train", [f"data={name}"], tmp_path).data._target_
        assert find_dataset(target) is get_dataset(name), (name, target)


def test_one_walker_gives_every_callers_paths() -> None:
    tree = {"a": {"b": 1, "e": {}, "l": [{"_target_": "x"}, 2]}, "c": True}
    assert [path for path, _, _ in walk(tree)] == ["a", "a.b", "a.e", "a.l", "c"]
    assert [path for path, _, _ in walk(tree, lists=True)][-3:] == [
        "a.l[0]._target_",
        "a.l[1]",
        "c",
    ]
    flat = {"m.a.b": 1, "m.a.l": [{"_target_": "x"}, 2], "m.c": True}
    assert flatten(tree, "m") == flat  # the identity's keys: an empty dict leaves none
    assert flatten(tree, keep_empty=True) == {"a.b": 1, "a.e": {}, "a.l": tree["a"]["l"], "c": True}
    assert flatten(3, "seed") == {"seed": 3}
    assert find_targets(tree) == ["a.l[0]._target_"]
    assert find_targets({"_target_": {"_target_": "y"}, "k": ({"_target_": "z"},)}, "data") == [
        "data._target_",
        "data.k[0]._target_",
    ]


def test_identity_keys_are_pinned_and_leave_out_the_modules_plumbing() -> None:
    """Checkpoints store the identity: its keys must not change format; each data module's
    `plumbing` (and only that) is left out, so changing where the data lives still resumes."""
    from convattn.run.identity import experiment_identity

    def identity(target: str, **data) -> dict:
        cfg = OmegaConf.create({
            "model": {"arm": "cnn", "kw": {"a": [1, 2], "none": {}}},
            "data": {"_target_": target, "img_size": 32, "eval_batch_size": 64, **data},
            "recipe": {"lr": "${data.img_size}"},
            "seed": 7,
        })  # fmt: skip
        return experiment_identity(cfg)

    mnist = "convattn.data.torchvision_sets.MNISTDataModule"
    assert identity(mnist, root="/a", download=True) == {
        "model.arm": "cnn",
        "model.kw.a": [1, 2],
        "data._target_": mnist,
        "data.img_size": 32,
        "recipe.lr": 32,
        "seed": 7,
    }
    for name in list_datasets():
        module = get_dataset(name)
        left_out = {f"data.{key}" for key in module.plumbing}
        assert not left_out & set(identity(target_path(module), root="/x", download=False))
    # the digits take no root: a root there is not plumbing (the module would refuse it)
    assert "data.root" in identity("convattn.data.digits.DigitsDataModule", root="/x")
    # a user's own module (not imported here) leaves out every registered module's plumbing
    own = identity("my_pkg.MyDataModule", root="/x", num_workers=3, crop=2)
    assert {k for k in own if k.startswith("data.")} == {
        "data._target_",
        "data.img_size",
        "data.crop",
    }


@pytest.mark.parametrize(
    ("section", "target", "allowed"),
    [
        ("model", "convattn.backbones.create_backbone", True),
        ("model", "convattn.backbones.registry.create_backbone", False),
        ("optimizer", "torch.optim.AdamW", True),
        ("optimizer", "torch.optim.lr_scheduler.LambdaLR", False),
        ("optimizer", "os.system", False),
        ("data", "convattn.data.digits.DigitsDataModule", True),
        ("data", "convattn.data.base.ClassificationDataModule", False),
        ("data", "pathlib.Path.touch", False),
        ("data", None, False),
    ],
)
def test_the_target_allow_list(section: str, target, allowed: bool) -> None:
    assert allowed_target(section, target) is allowed


@pytest.mark.parametrize("name", list_datasets())
def test_every_registered_dataset_is_allowed_in_a_run_dir(name: str) -> None:
    assert allowed_target("data", target_path(get_dataset(name)))


def test_a_section_is_checked_for_its_own_and_its_nested_targets() -> None:
    digits = "convattn.data.digits.DigitsDataModule"
    nested = {"x": [{"_target_": "os.system"}], "y": {"z": {"_target_": "os.system"}}}
    assert check_section("data", {"_target_": digits, **nested}, "data") == (
        True,
        ["data.x[0]._target_", "data.y.z._target_"],
    )
    assert check_section("optimizer", {"lr": 1.0}) == (True, [])  # may be left out
    assert check_section("model", {"arm": "cnn"}, default=MODEL_FACTORY) == (True, [])
    assert check_section("model", {"_target_": None}, default=MODEL_FACTORY) == (False, [])
    assert check_section("model", {"_target_": "os.system"}, default=MODEL_FACTORY) == (False, [])

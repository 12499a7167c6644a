"""W&B sweep definitions: valid under W&B's own schema, and their commands really run."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import yaml
from helpers.runs import BIN, compose_config, only_run_dir, read_json, run_cli
from omegaconf import OmegaConf
from sweeps.config import schema_violations_from_proposed_config
from wandb.sdk.launch.sweeps.utils import create_sweep_command, create_sweep_command_args

SWEEPS = sorted((Path(__file__).resolve().parents[1] / "sweeps").glob("*.yaml"))


def first_point(parameters: dict) -> dict:
    """One parameter set the sweep could propose: first values, or the lower bound."""
    point = {}
    for name, spec in parameters.items():
        if "value" in spec:
            point[name] = spec["value"]
        elif "values" in spec:
            point[name] = spec["values"][0]
        else:
            point[name] = spec["min"]
    return point


def agent_command(sweep: dict, point: dict) -> list[str]:
    """The argv the W&B agent builds, expanded with wandb's own macro code."""
    args = create_sweep_command_args({"args": {k: {"value": v} for k, v in point.items()}})
    macros = {"${env}": ["/usr/bin/env"], "${program}": [str(BIN / sweep["program"])]}
    argv: list[str] = []
    for chunk in create_sweep_command(sweep["command"]):
        key = chunk.strip("${}") if chunk.startswith("${") else None
        argv += macros.get(chunk) or args.get(key, [chunk])
    return argv


def test_there_are_sweeps() -> None:
    assert {p.name for p in SWEEPS} >= {"ablation_grid.yaml", "recipe_bayes.yaml"}


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.name)
def test_sweep_config_is_valid(path: Path) -> None:
    sweep = yaml.safe_load(path.read_text())
    assert schema_violations_from_proposed_config(sweep) == []
    assert "${args_no_hyphens}" in sweep["command"]


def test_schema_check_catches_mistakes() -> None:
    broken = {"method": "gird", "parameters": {"model": {"valuez": ["cnn"]}}}
    assert len(schema_violations_from_proposed_config(broken)) >= 2


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.name)
def test_every_point_composes(path: Path, tmp_path: Path) -> None:
    """Hydra accepts the overrides the agent passes, at every grid point."""
    sweep = yaml.safe_load(path.read_text())
    params = sweep["parameters"]
    choices = [spec.get("values", [first_point({k: spec})[k]]) for k, spec in params.items()]
    for values in itertools.product(*choices):
        point = dict(zip(params, values, strict=True))
        overrides = agent_command(sweep, point)[2:]
        cfg = compose_config("train", overrides, tmp_path)
        assert cfg.model.arm == point.get("model", "cnn")
        for key, value in point.items():
            if key != "model":
                assert OmegaConf.select(cfg, key) == value, key


@pytest.mark.slow
def test_grid_sweep_command_trains(tmp_path: Path) -> None:
    """The exact command line the agent runs for the grid's first point, run for real."""
    sweep = yaml.safe_load((SWEEPS[0].parent / "ablation_grid.yaml").read_text())
    # The grid's first point at a short budget: the command line is what matters here.
    point = {**first_point(sweep["parameters"]), "trainer.max_epochs": 3, "profile": False}
    argv = agent_command(sweep, point)
    assert argv[2:] == [f"{k}={v}" for k, v in point.items()]
    run_cli(argv[1], *argv[2:], cwd=tmp_path)  # argv[0] is /usr/bin/env
    record = read_json(only_run_dir(tmp_path) / "metrics.json")
    assert record["status"] == "completed" and record["arm"] == point["model"]
    assert record["epochs"] == point["trainer.max_epochs"]
    assert record["metrics"]["test/acc"] > 0.7

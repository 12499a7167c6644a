"""What tests share besides fixtures: composing configs, running console scripts, reading runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from convattn.config_dir import CONFIG_DIR

BIN = Path(sys.executable).parent


def compose_config(config_name: str, overrides: list[str], output_dir: Path) -> DictConfig:
    """Compose a config as the entry point would, with its run dir set to `output_dir`."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name, overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(output_dir)
        cfg.hydra.job.num = 0
        cfg.paths.output_dir = str(output_dir)
        cfg.paths.log_dir = str(output_dir / "logs")
    HydraConfig().set_config(cfg)
    return cfg


def run_cli(
    command: str,
    *args: str,
    cwd: Path,
    env: dict | None = None,
    check: bool = True,
    timeout: float = 600,
):
    """Run a console script of this venv in a subprocess, as a user would."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    full_env.pop("WANDB_MODE", None)  # the code must decide offline mode by itself
    full_env.pop("WANDB_API_KEY", None)
    proc = subprocess.run(
        [str(BIN / command), *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{command} {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def only_run_dir(root: Path, task: str = "train") -> Path:
    runs = sorted((root / "logs" / task / "runs").iterdir())
    assert len(runs) == 1, runs
    return runs[0]


def only_sweep_dir(root: Path, task: str = "train") -> Path:
    sweeps = list((root / "logs" / task / "multiruns").iterdir())
    assert len(sweeps) == 1, sweeps
    return sweeps[0]


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def wandb_records(offline_run: Path) -> list[dict]:
    """Every record of a W&B offline run's .wandb file, as W&B's own `leet inspect` prints it."""
    out = subprocess.run(
        [str(BIN / "wandb"), "leet", "inspect", "--json", str(offline_run)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def wandb_summary(run_dir: Path) -> dict:
    """The summary W&B itself recorded in the offline run's .wandb file."""
    (wandb_dir,) = (run_dir / "wandb").glob("offline-run-*")
    out = subprocess.run(
        [str(BIN / "wandb"), "leet", "inspect", "--summary", "--json", str(wandb_dir)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return json.loads(out.stdout)

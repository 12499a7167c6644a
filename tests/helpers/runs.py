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

from convattn.config.location import CONFIG_DIR

from .warm import warm_server, with_tests_on_path

BIN = Path(sys.executable).parent
FRESH = os.environ.get("CONVATTN_TESTS_FRESH") == "1"  # every call a new process
RANK_VARIABLES = {"RANK", "LOCAL_RANK", "WORLD_SIZE", "NODE_RANK", "GROUP_RANK", "PMI_RANK"}


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


def cli_env(env: dict | None = None) -> dict:
    """The environment a console command gets: the suite's, less what the code must decide,
    with tests/ on the path for the probe callbacks (helpers.probes, helpers.signals)."""
    full_env = with_tests_on_path({**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
    full_env.pop("WANDB_MODE", None)  # the code must decide offline mode by itself
    full_env.pop("WANDB_API_KEY", None)
    full_env.pop("PYTEST_XDIST_WORKER", None)
    full_env.pop("PYTEST_CURRENT_TEST", None)
    return full_env


def run_cli(
    command: str,
    *args: str,
    cwd: Path,
    env: dict | None = None,
    check: bool = True,
    timeout: float = 600,
    fresh: bool = False,
) -> subprocess.CompletedProcess:
    """Run a console script of this venv as a user would, and wait for it.

    By default through the warm runner (helpers.warm: the same entry point, argv, cwd,
    environment, output and exit status, without paying the imports again); `fresh=True`
    starts a new process, for tests where the process itself is the subject, and so does an
    `env` that sets rank variables (SLURM_*, RANK, ...), which Lightning reads at import.
    """
    # Lightning reads the rank variables when it is imported, which the warm runner did once.
    fresh = fresh or FRESH or any(k.startswith("SLURM_") or k in RANK_VARIABLES for k in env or {})
    if fresh:
        proc = subprocess.run(
            [str(BIN / command), *args],
            cwd=cwd, env=cli_env(env), capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip
    else:
        proc = warm_server().start(command, list(args), cwd, cli_env(env)).result(timeout)
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

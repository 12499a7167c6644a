"""Start-up pays only for what the run uses: checked in fresh interpreters."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

# Modules a CSV-logged training run on in-memory data never needs. matplotlib and scipy are not
# listed: `import lightning.pytorch` (the floor every Lightning tool pays) imports them itself;
# nor is wandb: `import timm` imports it (timm.utils.summary) wherever it is installed.
UNUSED = [
    "sklearn",  # only to decode the digits, once: later runs read the decode cache
    "optuna",  # only with hydra/sweeper=optuna
    "submitit",  # only with hydra/launcher=slurm
    "convattn.explain",  # plotting: only in convattn-explain and the attention-maps callback
    "convattn.report",
]
REPORT = """
import atexit, json, sys
atexit.register(lambda: print("LOADED=" + json.dumps([m for m in {names} if m in sys.modules])))
"""


def loaded_after(code: str, env_extra: dict[str, str], cwd: Path) -> list[str]:
    """Which of UNUSED are in sys.modules when a fresh interpreter running `code` exits."""
    import os

    script = REPORT.format(names=UNUSED) + code
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=cwd, capture_output=True, text=True,
        env={**os.environ, **env_extra}, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("LOADED="))
    return json.loads(line.removeprefix("LOADED="))


def test_importing_train_loads_none_of_the_optional_modules(tmp_path: Path) -> None:
    assert loaded_after("import convattn.train", {}, tmp_path) == []


@pytest.mark.slow
def test_a_csv_run_on_cached_digits_loads_none_of_them(tmp_path: Path) -> None:
    run = """
from convattn.cli import train
sys.argv = ["convattn-train", "+trainer.max_steps=1", "+trainer.limit_val_batches=0",
            "test=false", "logger=csv", "callbacks=none", "profile=false",
            "hydra.run.dir={run_dir}"]
try:
    train()  # the console script's entry point
except SystemExit as stop:
    assert not stop.code, stop.code
"""
    env = {"CONVATTN_CACHE_DIR": str(tmp_path / "cache")}
    first = loaded_after(run.format(run_dir=tmp_path / "a"), env, tmp_path)
    assert first == ["sklearn"]  # the first run decodes the digits and fills the cache (and
    # shows that the check sees a module that was loaded)
    assert loaded_after(run.format(run_dir=tmp_path / "b"), env, tmp_path) == []

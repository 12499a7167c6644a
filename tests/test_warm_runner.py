"""The warm runner (helpers/warm.py) answers like a fresh process: the same exit status and
messages, the caller's cwd and environment, and a real pid that signals reach."""

from __future__ import annotations

import re
import signal
import subprocess
from pathlib import Path

import pytest
from helpers.runs import cli_env, run_cli
from helpers.warm import warm_server


def without_times(text: str) -> str:
    return re.sub(r"\[\d{4}-\d\d-\d\d [\d:,]+\]", "[time]", text)


@pytest.mark.parametrize(
    "args", [["recipe.optimizer.lr=-0.1"], ["model=transformerz"], ["seed=0", "data.img_size=4"]]
)
def test_a_mistake_reads_the_same_warm_and_fresh(tmp_path: Path, args: list[str]) -> None:
    runs = {}
    for fresh in (False, True):
        cwd = tmp_path / str(fresh)
        cwd.mkdir()
        runs[fresh] = run_cli("convattn-train", *args, "logger=csv", "print_config=false",
                              cwd=cwd, check=False, fresh=fresh)  # fmt: skip
    warm, cold = runs[False], runs[True]
    assert warm.returncode == cold.returncode == 2
    assert without_times(warm.stdout) == without_times(cold.stdout)
    assert without_times(warm.stderr) == without_times(cold.stderr)


def test_signals_reach_the_worker_and_its_status_comes_back(tmp_path: Path) -> None:
    proc = warm_server().start(
        "convattn-train", ["trainer.max_epochs=50", "logger=csv", "profile=false"],
        tmp_path, cli_env(),
    )  # fmt: skip
    with pytest.raises(subprocess.TimeoutExpired):
        proc.wait(timeout=1)  # still training
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL
    assert (tmp_path / "logs" / "train" / "runs").is_dir()  # it ran in the caller's cwd

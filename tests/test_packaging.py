"""A non-editable install (a built wheel) carries its configs and trains from any directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_ships_configs_and_runs_elsewhere(tmp_path: Path) -> None:
    dist, site, work = tmp_path / "dist", tmp_path / "site", tmp_path / "elsewhere"
    work.mkdir()
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    # The build backend (hatchling) comes from the dev extra: nothing is fetched mid-suite.
    build = [*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(dist)]
    subprocess.run([*build, str(REPO)], check=True)
    (wheel,) = dist.glob("convattn-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "convattn/conf/train.yaml" in names and "convattn/conf/model/cnn.yaml" in names

    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)], check=True)
    # PYTHONPATH puts the installed copy ahead of the editable checkout on sys.path.
    env = {**os.environ, "PYTHONPATH": str(site)}
    probe = "import convattn.config.location as c, convattn; print(c.CONFIG_DIR, convattn.__file__)"
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=work, env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert all(line.startswith(str(site)) for line in out), out

    proc = subprocess.run(
        [sys.executable, "-m", "convattn", "debug=fast_dev_run", "print_config=false"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (record,) = work.glob("logs/debug/runs/*/metrics.json")
    record = json.loads(record.read_text())
    assert (record["status"], record["global_step"]) == ("completed", 1), record

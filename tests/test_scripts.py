"""The benchmark and table scripts run at tiny sizes, so they cannot rot unnoticed."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def run_script(name: str, *args: str, cwd: Path) -> str:
    proc = subprocess.run(
        [sys.executable, str(SCRIPTS / name), *args],
        cwd=cwd, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc.stdout


def markdown_rows(out: str) -> list[list[str]]:
    lines = [line for line in out.splitlines() if line.startswith("|") and "---" not in line]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[1:]]


def test_model_table_lists_every_arm(tmp_path: Path) -> None:
    from convattn.backbones import list_arms

    out = run_script("model_table.py", "--markdown", cwd=tmp_path)
    for arm in list_arms():
        assert re.search(rf"\|\s*{arm}\s*\|", out), out


def table_seconds(out: str) -> list[float]:
    """The seconds column of a ratio table (rich): baseline row, then the measured row."""
    return [float(m) for m in re.findall(r"│\s+([0-9]+\.[0-9]{3})\s+│\s+[0-9.]+\s+│", out)]


@pytest.mark.slow
def test_bench_overhead_prints_a_ratio(tmp_path: Path) -> None:
    out = run_script("bench_overhead.py", "--epochs", "1", cwd=tmp_path)
    ratio = float(re.search(r"overhead ratio: ([0-9.]+)", out).group(1))
    plain, framework = table_seconds(out)  # the ratio is the one of the two rows it prints
    assert ratio == pytest.approx(framework / plain, abs=2e-3), out
    assert 0.5 < ratio < 5, out


def test_bench_data_prints_each_pipeline(tmp_path: Path) -> None:
    out = run_script(
        "bench_data.py", "--images", "512", "--batch-size", "64", "--batches", "3",
        "--warmup", "1", "--workers", "1", "--markdown", cwd=tmp_path,
    )  # fmt: skip
    rows = [line for line in out.splitlines() if line.startswith("|") and "---" not in line]
    assert len(rows) >= 3, out  # header + the baseline + convattn's pipelines
    assert "torchvision" in out and "convattn" in out


def test_gpu_check_says_plainly_when_there_is_no_gpu(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible: scripts/gpu_check.sh is for running, not for this check")
    proc = subprocess.run(
        ["bash", str(SCRIPTS / "gpu_check.sh"), str(tmp_path / "out")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2 and "No CUDA device" in proc.stderr, proc.stderr


@pytest.mark.slow
def test_bench_startup_prints_the_extra_over_the_floor(tmp_path: Path) -> None:
    out = run_script(
        "bench_startup.py", "--rounds", "1", "--images", "600", "--folder-images", "8",
        "--markdown", cwd=tmp_path,
    )  # fmt: skip
    rows = {row[0]: row for row in markdown_rows(out)}
    seconds = {name: float(row[2]) for name, row in rows.items()}  # the median column
    extras = dict(re.findall(r"extra over floor, (\w+): (-?[0-9.]+) s", out))
    assert set(extras) == {"digits", "mnist_60k", "imagefolder"}, out
    for name, extra in extras.items():  # each extra is its row's time less the floor's
        assert float(extra) == pytest.approx(seconds[name] - seconds["floor"], abs=0.011), out
        assert float(rows[name][3]) == pytest.approx(float(extra), abs=0.011), out
    budget = float(re.search(r"floor \+ decoded 600 images: ([0-9.]+) MiB", out).group(1))
    assert budget == pytest.approx(float(rows["floor"][4]) + 600 * 32 * 32 / 2**20, abs=1), out
    peaks = dict(re.findall(r"peak memory, (\w+) / \(floor \+ decoded\): ([0-9.]+)", out))
    assert set(peaks) == {"mnist_60k", "mnist_60k_tcmalloc", "hand_step", "hand_step_fixed_mmap"}
    for name, peak in peaks.items():
        assert float(peak) == pytest.approx(float(rows[name][4]) / budget, abs=0.011), out


@pytest.mark.slow
def test_bench_mistakes_times_every_config_mistake_beside_the_floor(tmp_path: Path) -> None:
    """One row per config-only mistake of the table, plus --help and --cfg job of both
    commands, each with its ratio to the floor from the same run (every command's exit
    status is checked by the script itself)."""
    from helpers.mistakes import CONFIG_ONLY

    out = run_script("bench_mistakes.py", "--rounds", "1", "--markdown", cwd=tmp_path)
    rows = markdown_rows(out)
    floor = [row for row in rows if row[0].startswith("floor")]
    assert len(floor) == 1 and len(rows) == 1 + 4 + len(CONFIG_ONLY), out
    floor_s = float(floor[0][1])
    for name, seconds, ratio, _ in rows:  # both printed to 2 and 1 decimals: bound the rounding
        low = (float(seconds) - 0.005) / (floor_s + 0.005) - 0.05
        high = (float(seconds) + 0.005) / (floor_s - 0.005) + 0.05
        assert low <= float(ratio) <= high, (name, seconds, ratio, floor_s)
    summary = re.search(r"(\d+) commands: slowest ([0-9.]+) s", out)
    assert int(summary.group(1)) == len(rows) - 1, out
    assert float(summary.group(2)) == max(float(r[1]) for r in rows[1:]), out


@pytest.mark.slow
def test_bench_overhead_image_folder_prints_a_ratio(tmp_path: Path) -> None:
    out = run_script(
        "bench_overhead.py", "--imagefolder", "--images", "60", "--rounds", "1", cwd=tmp_path
    )
    ratio = float(re.search(r"image-folder ratio: ([0-9.]+)", out).group(1))
    hand, framework = table_seconds(out)
    assert ratio == pytest.approx(framework / hand, abs=2e-3), out
    assert 0.3 < ratio < 5, out


def test_results_script_refuses_an_unknown_step_before_training(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = subprocess.run(
        ["bash", str(SCRIPTS / "fashion_mnist_results.sh"), str(out), "arms", "bogus"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2 and "unknown step 'bogus'" in proc.stderr, proc.stderr
    assert "cnn_full arms data_efficiency lr_sensitivity" in proc.stderr
    assert not (out / "arms").exists()  # the valid step before it did not start either

"""The mistakes table: every user mistake is one paragraph naming the value, exit 2, no traceback.

Each row is a real command line, run through the real entry point (the warm runner: no
import per row). The README's "Mistakes and their messages" table lists the same cases.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers.mistakes import CONFIG_ONLY, MISTAKES
from helpers.runs import cli_env, run_cli


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> Path:
    """Files the mistakes point at: a text file named .ckpt and a truncated real checkpoint."""
    tmp = tmp_path_factory.mktemp("mistakes")
    (tmp / "notes.ckpt").write_text("my notes, not a checkpoint\n")
    torch.save({"state_dict": {"w": torch.zeros(1000)}, "global_step": 3}, tmp / "whole.ckpt")
    (tmp / "truncated.ckpt").write_bytes((tmp / "whole.ckpt").read_bytes()[:600])
    return tmp


def paragraphs(text: str) -> list[str]:
    return [block for block in re.split(r"\n\s*\n", text) if block.strip()]


@pytest.mark.parametrize("row", MISTAKES, ids=lambda row: " ".join([row[0], *row[1]]))
def test_every_mistake_is_one_paragraph_on_stderr_and_exit_2(row, planted: Path) -> None:
    """Exit 2, no traceback, and one paragraph on stderr that names the value and what would be
    valid (every expected word in the same paragraph); stdout carries none of it."""
    command, args, words = row
    args = [a.replace("{tmp}", str(planted)) for a in args]
    words = [w.replace("{tmp}", str(planted)) for w in words]
    extra = ["logger=csv", "print_config=false"] if command == "convattn-train" else []
    proc = run_cli(command, *args, *extra, cwd=planted, check=False, timeout=120)
    shown = f"stdout:\n{proc.stdout[-1500:]}\nstderr:\n{proc.stderr[-1500:]}"
    assert proc.returncode == 2, shown
    assert "Traceback" not in proc.stdout + proc.stderr, shown
    assert any(all(w in block for w in words) for block in paragraphs(proc.stderr)), shown
    assert not [w for w in words if w in proc.stdout], shown
    assert proc.stderr.count("[ERROR]") <= 1, shown  # said once, not once per layer


HEAVY = ("torch", "lightning", "timm", "wandb")
# The console script's own entry point in a fresh interpreter that reports, as it exits,
# which of the heavy modules were ever imported.
PROBE = """
import atexit, sys
heavy = {heavy!r}
atexit.register(lambda: print("heavy modules:", [m for m in heavy if m in sys.modules],
                              file=sys.stderr))
sys.argv = [{command!r}, *{args!r}]
from convattn.cli import {entry}
{entry}()
"""


@pytest.mark.parametrize("row", CONFIG_ONLY, ids=lambda row: " ".join([row[0], *row[1]]))
def test_a_config_mistake_is_answered_before_the_heavy_stack(row, planted: Path) -> None:
    """Exit 2 with its paragraph, and torch, Lightning, timm and wandb never imported."""
    command, args, words = row
    args = [a.replace("{tmp}", str(planted)) for a in args]
    words = [w.replace("{tmp}", str(planted)) for w in words]
    entry = {"convattn-train": "train", "convattn-eval": "evaluate"}[command]
    probe = PROBE.format(heavy=HEAVY, command=command, args=args, entry=entry)
    proc = subprocess.run(
        [sys.executable, "-c", probe], cwd=planted, env=cli_env(), capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip
    shown = f"stderr:\n{proc.stderr[-1500:]}"
    assert proc.returncode == 2, shown
    assert "heavy modules: []" in proc.stderr, shown
    assert any(all(w in block for w in words) for block in paragraphs(proc.stderr)), shown


@pytest.mark.parametrize("command", ["convattn-train", "convattn-eval"])
@pytest.mark.parametrize("flags", [["--help"], ["--cfg", "job"]])
def test_help_and_cfg_print_without_the_heavy_stack(command: str, flags: list[str]) -> None:
    entry = {"convattn-train": "train", "convattn-eval": "evaluate"}[command]
    probe = PROBE.format(heavy=HEAVY, command=command, args=flags, entry=entry)
    proc = subprocess.run(
        [sys.executable, "-c", probe], env=cli_env(), capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr[-1500:]
    assert "heavy modules: []" in proc.stderr, proc.stderr[-1500:]
    assert ("Powered by Hydra" if flags == ["--help"] else "seed: 42") in proc.stdout


def test_the_table_covers_every_entry_point() -> None:
    assert len(MISTAKES) >= 25
    assert {row[0] for row in MISTAKES} == {
        "convattn-train", "convattn-eval", "convattn-explain", "convattn-report"
    }  # fmt: skip

"""The console scripts leave the process alone: no re-run, no allocator swap, no import hook.
tcmalloc is an opt-in through scripts/tcmalloc.sh (make test installs it through
scripts/install_debian_packages.sh)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TRICKS = re.compile(r"os\.exec[lv]|sys\.meta_path|LD_PRELOAD|os\._exit")


def test_the_package_changes_nothing_about_its_process() -> None:
    found = [
        f"{path.relative_to(REPO)}:{n}: {line.strip()}"
        for path in sorted((REPO / "src").rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if TRICKS.search(line)
    ]
    assert not found, "\n".join(found)


def libraries_while_running(cmd: list[str], cwd: Path) -> set[str]:
    """Every shared library the process mapped while it ran (exec keeps the pid)."""
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    seen: set[str] = set()
    try:
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                maps = Path(f"/proc/{proc.pid}/maps").read_text()
            except (FileNotFoundError, ProcessLookupError):
                break
            seen |= {line.split()[-1] for line in maps.splitlines() if ".so" in line}
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait()
    return seen


@pytest.mark.parametrize("opt_in", [False, True], ids=["plain", "scripts/tcmalloc.sh"])
def test_tcmalloc_only_when_asked_for(opt_in: bool, tmp_path: Path) -> None:
    # a checkpoint that is not there: the config passes, torch loads, the command stops
    cmd = [str(BIN / "convattn-eval"), f"ckpt_path={tmp_path / 'missing.ckpt'}"]
    if opt_in:
        cmd = ["bash", str(REPO / "scripts" / "tcmalloc.sh"), *cmd]
    libraries = libraries_while_running(cmd, tmp_path)
    assert any("libtorch" in lib for lib in libraries), "the process ended before torch loaded"
    assert any("tcmalloc" in lib for lib in libraries) == opt_in, sorted(libraries)

"""`convattn-train` and `convattn-eval` start under tcmalloc when the machine has it (make test
installs it through scripts/install_debian_packages.sh), and any LD_PRELOAD keeps glibc's."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from convattn.launch import tcmalloc_path

BIN = Path(sys.executable).parent
CHECK = (
    "from convattn.launch import rerun_with_tcmalloc\n"
    "rerun_with_tcmalloc()\n"
    "print('tcmalloc' in open('/proc/self/maps').read())\n"
)


@pytest.fixture
def env_without_preload() -> dict[str, str]:
    assert tcmalloc_path(), (
        "tcmalloc is missing: run scripts/install_debian_packages.sh malloc (apt-get install "
        "libtcmalloc-minimal4)"
    )
    return {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}


def mapped_libraries(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/maps").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return ""


@pytest.mark.parametrize("command", ["convattn-train", "convattn-eval"])
def test_the_console_scripts_run_under_tcmalloc(
    command: str, env_without_preload: dict[str, str], tmp_path: Path
) -> None:
    # execve keeps the pid: watch the process's own mappings while it imports, then stop it.
    proc = subprocess.Popen(
        [str(BIN / command), "--help"], env=env_without_preload, cwd=tmp_path,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while "tcmalloc" not in mapped_libraries(proc.pid) and proc.poll() is None:
            assert time.monotonic() < deadline, f"{command} never mapped tcmalloc"
            time.sleep(0.05)
        assert "tcmalloc" in mapped_libraries(proc.pid), f"{command} ended without tcmalloc"
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize(
    ("preload", "expected"),
    [(None, "True"), ("", "False")],  # unset: re-run under tcmalloc; any value: left alone
    ids=["unset-reruns", "empty-keeps-glibc"],
)
def test_the_command_line_is_rerun_unless_ld_preload_is_set(
    preload: str | None, expected: str, env_without_preload: dict[str, str]
) -> None:
    env = env_without_preload if preload is None else {**env_without_preload, "LD_PRELOAD": preload}
    done = subprocess.run([sys.executable, "-c", CHECK], env=env, capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == expected, done.stderr

"""How fast a config mistake, `--help` and `--cfg job` are answered, beside Hydra's import floor.

    python scripts/bench_mistakes.py [--rounds 5] [--markdown]

Every command is a fresh process of the real console script (`convattn-train`,
`convattn-eval`), from the first line of the interpreter to its exit. The mistakes are every
config-only row of the mistakes table (`tests/helpers/mistakes.py`, the rows
`tests/test_cli_mistakes.py` also checks): each must exit 2. The floor is
`python -c "import hydra"`, what any Hydra application pays before composing. Rounds go round
all the commands, so drift in machine load hits them alike; each figure is the median over the
rounds, "x floor" its ratio to the floor's median from the same run. Target: every row at
<= 1.5 s median on this 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from helpers.mistakes import CONFIG_ONLY  # noqa: E402  (the table's rows, no torch)

from convattn.utils.tables import print_table  # noqa: E402

TARGET_S = 1.5


def commands(tmp: Path) -> dict[str, tuple[list[str], int]]:
    """{row name: (command line, expected exit status)}."""
    bin_dir = Path(sys.executable).parent
    rows = {"floor: python -c 'import hydra'": ([sys.executable, "-c", "import hydra"], 0)}
    for command in ("convattn-train", "convattn-eval"):
        rows[f"{command} --help"] = ([str(bin_dir / command), "--help"], 0)
        rows[f"{command} --cfg job"] = ([str(bin_dir / command), "--cfg", "job"], 0)
    for command, args, _ in CONFIG_ONLY:
        args = [a.replace("{tmp}", str(tmp)) for a in args]
        rows[" ".join([command, *args]).replace(str(tmp), "<tmp>")] = (
            [str(bin_dir / command), *args],
            2,
        )
    return rows


def timed(cmd: list[str], expected: int, cwd: Path) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != expected:
        sys.exit(f"exit {proc.returncode}, not {expected}: {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds (medians over them)")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "notes.ckpt").write_text("my notes, not a checkpoint\n")
        rows = commands(work)
        for cmd, expected in rows.values():  # warm-up: the page cache, not timed
            timed(cmd, expected, work)
        times: dict[str, list[float]] = {name: [] for name in rows}
        for _ in range(args.rounds):
            for name, (cmd, expected) in rows.items():
                times[name].append(timed(cmd, expected, work))
    median = {name: statistics.median(samples) for name, samples in times.items()}
    floor = next(iter(median.values()))
    table = [
        [name, f"{m:.2f}", f"{m / floor:.1f}", "yes" if m <= TARGET_S else "NO"]
        for name, m in median.items()
    ]
    print_table(
        ["command", f"median s ({args.rounds})", "x floor", f"<= {TARGET_S} s"],
        table,
        title=f"answer time, fresh processes, {os.cpu_count()} cores",
        markdown=args.markdown,
    )
    answers = [m for name, m in median.items() if not name.startswith("floor")]
    slowest, middle = max(answers), statistics.median(answers)
    print(
        f"{len(answers)} commands: slowest {slowest:.2f} s, median {middle:.2f} s; "
        f"floor {floor:.2f} s; all <= {TARGET_S} s: {slowest <= TARGET_S}"
    )


if __name__ == "__main__":
    main()

"""CPU cost of every arm x preset, measured in one run: training throughput, eager and compiled.

    python scripts/bench_arms.py [--presets tiny,small,base] [--compile] [--markdown]
    python scripts/bench_arms.py --presets tiny --compile     # ~1-3 min on 2 cores
    python scripts/bench_arms.py --quick                      # smoke test: seconds

Training: images/s of forward + cross-entropy backward + AdamW step (batch 64, 32x32x1, 10
classes) on fixed random data. With `--compile`, each arm is also trained compiled the way
`recipe.compile=true` does it (`backbone.compile()`, in place); "compile s" is the time of its
`--warmup` steps, which compile (much less once inductor's on-disk cache holds the graphs).
Inference: eager eval-mode forward latency under no_grad for a batch of 1 and of 64.

The machine may be busy, so every measurement (arm x eager / compiled / latency) is set up and
warmed up first, then timed in `--rounds` rounds of `--steps` calls that go round all of them
(cnn, cbam, ..., cnn, cbam, ...): drift in background load hits every arm alike. Each figure is
the median over all its timed calls. "× cnn" columns are time ratios against the cnn arm at the
same preset and mode, from the same run (1.30 = 30 % slower than the cnn). An arm `ARM:ATTN`
(e.g. `cbam:lcbam`) is the cbam arm with `attn_layer=ATTN`.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from convattn.backbones import create_backbone, list_arms
from convattn.utils.tables import print_table

ARMS = ("cnn", *(arm for arm in list_arms() if arm != "cnn"))  # the reference first
KINDS = ("eager", "compiled", "b1", "batch")  # training x 2, inference latency x 2


@dataclass
class Probe:
    """One timed call (a training step or an inference forward), warmed up, and its timings."""

    call: Callable[[], object]
    setup_s: float = 0.0
    times: list[float] = field(default_factory=list)
    error: str | None = None

    def warm_up(self, calls: int) -> None:
        t0 = time.perf_counter()
        try:
            for _ in range(calls):
                self.call()
        except Exception as err:  # e.g. a compile failure: a result to report, not a crash
            self.error = f"{type(err).__name__}: {str(err).splitlines()[0][:60]}"
        self.setup_s = time.perf_counter() - t0

    def run(self, calls: int) -> None:
        for _ in range(0 if self.error else calls):
            t0 = time.perf_counter()
            self.call()
            self.times.append(time.perf_counter() - t0)

    @property
    def seconds(self) -> float | None:
        return statistics.median(self.times) if self.times and not self.error else None


def build(arm_spec: str, preset: str, args: argparse.Namespace) -> nn.Module:
    arm, _, attn = arm_spec.partition(":")
    torch.manual_seed(0)
    return create_backbone(
        arm,
        in_chans=args.in_chans,
        num_classes=args.num_classes,
        img_size=args.img_size,
        size=preset,
        **({"attn_layer": attn} if attn else {}),
    )


def train_probe(model: nn.Module, compiled: bool, args: argparse.Namespace) -> Probe:
    """Training steps of a copy of `model`, compiled in place as the classifier does if asked."""
    model = copy.deepcopy(model).train()
    if compiled:
        model.compile()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch_size, args.in_chans, args.img_size, args.img_size, generator=gen)
    y = torch.randint(0, args.num_classes, (args.batch_size,), generator=gen)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    return Probe(step)


def latency_probe(model: nn.Module, batch: int, args: argparse.Namespace) -> Probe:
    """Eval-mode forwards under no_grad of a copy of `model` (its BN statistics stay put)."""
    model = copy.deepcopy(model).eval()
    x = torch.randn(batch, args.in_chans, args.img_size, args.img_size)

    @torch.no_grad()
    def forward() -> None:
        model(x)

    return Probe(forward)


def bench_preset(preset: str, arms: list[str], args: argparse.Namespace) -> list[list[str]]:
    kinds = [k for k in KINDS if (k != "compiled" or args.compile)]
    if args.no_latency:
        kinds = [k for k in kinds if k in ("eager", "compiled")]
    probes: dict[tuple[str, str], Probe] = {}
    for kind in kinds:
        for arm in arms:
            model = build(arm, preset, args)
            if kind in ("eager", "compiled"):
                probe = train_probe(model, kind == "compiled", args)
            else:
                probe = latency_probe(model, 1 if kind == "b1" else args.batch_size, args)
            probe.warm_up(args.warmup)
            probes[arm, kind] = probe
            print(f"  set up {arm}/{preset} {kind} in {probe.setup_s:.0f} s", flush=True)
    for _ in range(args.rounds):  # interleaved: cnn, cbam, ..., cnn, cbam, ...
        for (_, kind), probe in probes.items():
            probe.run(args.steps if kind in ("eager", "compiled") else 3 * args.steps)

    def ratio(arm: str, kind: str) -> str:
        value, ref = probes[arm, kind].seconds, probes.get(("cnn", kind))
        return f"{value / ref.seconds:.2f}" if value and ref and ref.seconds else "-"

    rows = []
    for arm in arms:
        row = [arm, preset]
        for kind in kinds:
            probe = probes[arm, kind]
            if probe.error:
                row += ["failed", probe.error]
            elif kind in ("eager", "compiled"):
                row += [f"{args.batch_size / probe.seconds:.0f}", ratio(arm, kind)]
            else:
                row += [f"{1e3 * probe.seconds:.2f}", ratio(arm, kind)]
            if kind == "compiled":
                row.append(f"{probe.setup_s:.0f}")
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="tiny,small,base", help="comma-separated")
    parser.add_argument("--arms", default=",".join(ARMS), help="comma-separated; cnn goes first")
    parser.add_argument("--compile", action="store_true", help="also train each arm compiled")
    parser.add_argument("--steps", type=int, default=3, help="timed training steps per round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds over all measurements")
    parser.add_argument("--warmup", type=int, default=2, help="untimed (compiling) calls")
    parser.add_argument("--no-latency", action="store_true", help="skip the inference columns")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--img-size", type=int, default=32)
    parser.add_argument("--in-chans", type=int, default=1)
    parser.add_argument("--num-classes", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None, help="default: torch's default")
    parser.add_argument("--markdown", action="store_true", help="print a markdown table")
    parser.add_argument("--quick", action="store_true", help="smoke test: tiny, batch 8, 1 step")
    args = parser.parse_args()
    if args.quick:
        args.presets, args.batch_size, args.steps, args.rounds, args.warmup = "tiny", 8, 1, 1, 1
    if args.threads:
        torch.set_num_threads(args.threads)
    arms = args.arms.split(",")
    if "cnn" in arms:  # the reference first
        arms = ["cnn", *(a for a in arms if a != "cnn")]

    start = time.perf_counter()
    rows = [row for preset in args.presets.split(",") for row in bench_preset(preset, arms, args)]
    wall = time.perf_counter() - start

    headers = ["arm", "preset", "train img/s", "× cnn time"]
    if args.compile:
        headers += ["compiled img/s", "× cnn time", "compile s"]
    if not args.no_latency:
        headers += ["latency b1 ms", "× cnn", f"latency b{args.batch_size} ms", "× cnn"]
    title = (
        f"{torch.get_num_threads()} threads, {args.img_size}x{args.img_size}x{args.in_chans}, "
        f"batch {args.batch_size}; medians of {args.rounds} interleaved rounds of "
        f"{args.steps} steps; wall time {wall:.0f} s"
    )
    print_table(headers, rows, title=title, markdown=args.markdown)


if __name__ == "__main__":
    main()

"""CPU cost of every arm x preset, measured in one run: training throughput and latency.

    python scripts/bench_arms.py [--steps 5] [--presets tiny,small,base] [--markdown]

Training: images/s of forward + backward + AdamW step (batch 64, 32x32x1, 10 classes), median
over `--steps` timed steps after `--warmup` untimed ones. Inference: median eval-mode forward
latency under no_grad for a batch of 1 and of 64. Ratio columns compare with the cnn arm at
the same preset, measured in the same process right before the other arms.
"""

from __future__ import annotations

import argparse
import time

import torch

from convattn.backbones import create_backbone
from convattn.backbones.profile import measure_latency, measure_throughput, print_table

ARMS = ("cnn", "cbam", "vit", "hybrid")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5, help="timed training steps per model")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps before timing")
    parser.add_argument("--presets", default="tiny,small,base", help="comma-separated")
    parser.add_argument("--arms", default=",".join(ARMS), help="comma-separated; cnn first")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--img-size", type=int, default=32)
    parser.add_argument("--in-chans", type=int, default=1)
    parser.add_argument("--num-classes", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None, help="default: torch's default")
    parser.add_argument("--markdown", action="store_true", help="print a markdown table")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    arms = args.arms.split(",")
    one = (1, args.in_chans, args.img_size, args.img_size)
    batch = (args.batch_size, *one[1:])

    start = time.perf_counter()
    rows = []
    for size in args.presets.split(","):
        ref = None
        for arm in arms:
            torch.manual_seed(0)
            model = create_backbone(
                arm,
                in_chans=args.in_chans,
                num_classes=args.num_classes,
                img_size=args.img_size,
                size=size,
            )
            train = measure_throughput(
                model, batch, args.num_classes, steps=args.steps, warmup=args.warmup
            )
            lat1 = measure_latency(model, one, steps=10, warmup=args.warmup)
            lat64 = measure_latency(model, batch, steps=max(3, args.steps), warmup=1)
            values = (train, lat1, lat64)
            if arm == "cnn":
                ref = values
            ratios = (
                [f"{v / r:.2f}" for v, r in zip(values, ref, strict=True)] if ref else ["-"] * 3
            )
            shown = (f"{train:.0f}", f"{lat1:.2f}", f"{lat64:.1f}")
            rows.append([arm, size, *(x for pair in zip(shown, ratios, strict=True) for x in pair)])
            print(f"  measured {arm}/{size}", flush=True)
    wall = time.perf_counter() - start
    headers = [
        "arm",
        "preset",
        "train img/s",
        "× cnn",
        "latency b1 ms",
        "× cnn",
        f"latency b{args.batch_size} ms",
        "× cnn",
    ]
    title = (
        f"{torch.get_num_threads()} threads, {args.img_size}x{args.img_size}x{args.in_chans}, "
        f"batch {args.batch_size}; wall time {wall:.0f} s"
    )
    print_table(headers, rows, title=title, markdown=args.markdown)


if __name__ == "__main__":
    main()

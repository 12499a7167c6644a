"""Framework overhead: convattn against the loop a person would write by hand.

In memory (default): per-epoch training time on digits, same backbone, data, batch size,
optimizer and thread count, measured in one process (target ratio <= 1.10 on CPU):
    python scripts/bench_overhead.py [--epochs 4] [--arm cnn] [--size tiny]
Image folder: whole processes, start-up included, alternating `convattn-train data=imagefolder`
with scripts/timm_loop.py (timm's create_transform, a DataLoader with the same workers, timm's
resnet18) on a folder of PNGs this script writes, one epoch + one val pass each (target <= 1.05):
    python scripts/bench_overhead.py --imagefolder [--images 3000] [--rounds 3]
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

import lightning as L
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from lightning.pytorch.callbacks import Callback
from rich.console import Console
from rich.table import Table
from timm.optim import param_groups_weight_decay

from convattn.classifier import ImageClassifier
from convattn.data.digits import DigitsDataModule
from convattn.utils.quiet import quiet_libraries

RECIPE = {
    "optimizer": {
        "_target_": "torch.optim.AdamW",
        "_partial_": True,
        "lr": 2e-3,
        "weight_decay": 0.05,
    },
    "scheduler": {"warmup_epochs": 1.0, "warmup_start_factor": 0.01, "min_lr": 1e-5},
}


class EpochTimer(Callback):
    def __init__(self) -> None:
        self.times: list[float] = []

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.start = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.times.append(time.perf_counter() - self.start)


def make_classifier(arm: str, size: str, dm: DigitsDataModule) -> ImageClassifier:
    backbone = {"_target_": "convattn.backbones.create_backbone", "arm": arm, "size": size}
    return ImageClassifier(backbone, dm.in_chans, dm.num_classes, dm.img_size, **RECIPE)


def framework_epochs(arm: str, size: str, epochs: int, tmp: str) -> list[float]:
    """Lightning + convattn as `convattn-train` runs it: metrics, progress bar, CSV logging."""
    torch.manual_seed(0)
    dm = DigitsDataModule()
    model = make_classifier(arm, size, dm)
    timer = EpochTimer()
    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        devices=1,
        limit_val_batches=0,
        callbacks=[timer, instantiate({"_target_": "lightning.pytorch.callbacks.RichProgressBar"})],
        logger=L.pytorch.loggers.CSVLogger(tmp),
        enable_checkpointing=False,
        enable_model_summary=False,
        log_every_n_steps=10,
        gradient_clip_val=1.0,  # as trainer/default.yaml
    )
    trainer.fit(model, datamodule=dm)
    return timer.times


def plain_epochs(arm: str, size: str, epochs: int) -> list[float]:
    """The loop a person would write by hand around the same model and tensors."""
    torch.manual_seed(0)
    dm = DigitsDataModule()
    dm.setup()
    model = make_classifier(arm, size, dm).backbone
    opt = torch.optim.AdamW(param_groups_weight_decay(model, 0.05), lr=2e-3)
    images, labels = dm.datasets["train"].images, dm.datasets["train"].labels
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        model.train()
        for index in torch.randperm(len(labels)).split(dm.batch_size):
            x = dm.transform(images[index], train=True)  # the same normalisation as the framework
            loss = F.cross_entropy(model(x), labels[index])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)  # as trainer/default.yaml
            opt.step()
        times.append(time.perf_counter() - start)
    return times


def process_seconds(cmd: list[str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{proc.stdout[-2000:]}{proc.stderr[-3000:]}")
    return time.perf_counter() - start


def ratio_table(
    title: str, columns: tuple[str, str], baseline: tuple[str, float], other: tuple[str, float]
) -> None:
    """Two timed rows and the second's ratio to the first."""
    table = Table(title=title)
    table.add_column(columns[0])
    for col in (columns[1], "ratio"):
        table.add_column(col, justify="right")
    table.add_row(baseline[0], f"{baseline[1]:.3f}", "1.00")
    table.add_row(other[0], f"{other[1]:.3f}", f"{other[1] / baseline[1]:.3f}")
    Console().print(table)


def image_folder_bench(images: int, rounds: int, workers: int) -> None:
    from bench_startup import write_image_folder  # scripts/ is on sys.path when run as a script

    here = Path(__file__).resolve().parent
    train = str(Path(sys.executable).with_name("convattn-train"))
    with tempfile.TemporaryDirectory() as tmp:
        root = write_image_folder(Path(tmp) / "folder", per_class=images // 10, classes=10)
        hand = [sys.executable, str(here / "timm_loop.py"), str(root), f"--workers={workers}"]
        framework = [
            train, "data=imagefolder", f"data.root={root}", "data.img_size=64",
            f"data.num_workers={workers}", "data.auto_augment=null", "data.re_prob=0",
            "model.size=null", "trainer.max_epochs=1", "test=false", "logger=csv",
            "callbacks=none", "profile=false",
        ]  # fmt: skip
        hand_s, framework_s = [], []
        for round_ in range(rounds):  # alternating, so load drift hits both alike
            hand_s.append(process_seconds(hand))
            framework_s.append(process_seconds([*framework, f"hydra.run.dir={tmp}/run{round_}"]))
    base, fw = statistics.median(hand_s), statistics.median(framework_s)
    ratio_table(
        f"image folder: {images} + {images // 6} PNGs, resnet18 at 64 px, batch 64, "
        f"{workers} workers, 1 epoch + val, whole processes (median of {rounds})",
        ("run", "s"),
        ("hand timm loop (scripts/timm_loop.py)", base),
        ("convattn-train data=imagefolder", fw),
    )
    print(
        f"image-folder ratio: {fw / base:.3f}  (hand loop runs: {hand_s}, convattn: {framework_s})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arm", default="cnn")
    parser.add_argument("--size", default="tiny")
    parser.add_argument(
        "--epochs", type=int, default=4, help="timed epochs after one warm-up epoch"
    )
    parser.add_argument("--imagefolder", action="store_true", help="the image-folder bench")
    parser.add_argument("--images", type=int, default=3000, help="image folder: train images")
    parser.add_argument("--rounds", type=int, default=3, help="image folder: runs of each")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    args = parser.parse_args()
    if args.imagefolder:
        image_folder_bench(args.images, args.rounds, args.workers)
        return
    quiet_libraries()
    runs = 1 + args.epochs
    with tempfile.TemporaryDirectory() as tmp:
        # plain, framework, plain again: drift in machine load shows up as a gap between plains.
        plain_a = plain_epochs(args.arm, args.size, runs)[1:]
        framework = framework_epochs(args.arm, args.size, runs, tmp)[1:]
        plain_b = plain_epochs(args.arm, args.size, runs)[1:]
    baseline, fw = statistics.median(plain_a + plain_b), statistics.median(framework)
    ratio_table(
        f"epoch time, {args.arm}/{args.size} on digits 32x32, batch 64, "
        f"{torch.get_num_threads()} threads (median of {args.epochs} epochs)",
        ("loop", "s / epoch"),
        ("plain PyTorch", baseline),
        ("convattn (Lightning)", fw),
    )
    print(
        f"overhead ratio: {fw / baseline:.3f}  (plain runs: {statistics.median(plain_a):.3f} s, "
        f"{statistics.median(plain_b):.3f} s)"
    )


if __name__ == "__main__":
    main()

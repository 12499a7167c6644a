"""Framework overhead: per-epoch training time of convattn vs a minimal PyTorch loop.

Same backbone, data, batch size, optimizer and thread count, measured in one process:
    python scripts/bench_overhead.py [--epochs 4] [--arm cnn] [--size tiny]
Prints a table with the median epoch time of each and their ratio (target <= 1.10 on CPU).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arm", default="cnn")
    parser.add_argument("--size", default="tiny")
    parser.add_argument(
        "--epochs", type=int, default=4, help="timed epochs after one warm-up epoch"
    )
    args = parser.parse_args()
    quiet_libraries()
    runs = 1 + args.epochs
    with tempfile.TemporaryDirectory() as tmp:
        # plain, framework, plain again: drift in machine load shows up as a gap between plains.
        plain_a = plain_epochs(args.arm, args.size, runs)[1:]
        framework = framework_epochs(args.arm, args.size, runs, tmp)[1:]
        plain_b = plain_epochs(args.arm, args.size, runs)[1:]
    baseline = statistics.median(plain_a + plain_b)
    table = Table(
        title=f"epoch time, {args.arm}/{args.size} on digits 32x32, batch 64, "
        f"{torch.get_num_threads()} threads (median of {args.epochs} epochs)"
    )
    for col in ("loop", "s / epoch", "ratio"):
        table.add_column(col, justify="right" if col != "loop" else "left")
    table.add_row("plain PyTorch", f"{baseline:.3f}", "1.00")
    fw = statistics.median(framework)
    table.add_row("convattn (Lightning)", f"{fw:.3f}", f"{fw / baseline:.3f}")
    Console().print(table)
    print(
        f"overhead ratio: {fw / baseline:.3f}  (plain runs: {statistics.median(plain_a):.3f} s, "
        f"{statistics.median(plain_b):.3f} s)"
    )


if __name__ == "__main__":
    main()

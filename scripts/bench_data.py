"""Training-input throughput: the in-memory batch pipeline vs a torchvision per-sample DataLoader.

    python scripts/bench_data.py [--root DIR] [--images 10000] [--batches 60] [--markdown]

Both read the same CIFAR-10 python-pickle files (a synthetic set of `--images` random images is
written to a temp dir unless `--root` holds cifar-10-batches-py/) and deliver batches of 256
that are fully augmented (random crop, padding 4 + horizontal flip) and normalised, as float
tensors ready for the model:

- baseline: torchvision.datasets.CIFAR10 + RandomCrop(32, padding=4), RandomHorizontalFlip,
  ToTensor, Normalize per sample, DataLoader with `--workers` processes (default: all cores);
- convattn: CIFAR10DataModule's loader (one index op per batch) + its batch transform, i.e.
  what `on_after_batch_transfer` runs on the training device (here the CPU).

Images/s is measured over `--batches` batches after `--warmup` untimed ones (which absorb
worker start-up); the ratio column is against the baseline measured in the same run. This
process runs on one torch thread by default (`--threads`): the baseline's workers use one each
as well, and the batched ops are too small to gain from more threads on a CPU that is busy.
"""

from __future__ import annotations

import argparse
import itertools
import pickle
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

from convattn.data.image_folder import available_cores
from convattn.data.torchvision_sets import CIFAR10DataModule
from convattn.utils.tables import print_table


class SyntheticCIFAR10(datasets.CIFAR10):
    """torchvision's CIFAR10 reader, minus its check of the official files' MD5 sums."""

    def _check_integrity(self) -> bool:
        return True

    def _load_meta(self) -> None:
        self.classes = [str(i) for i in range(10)]


def write_cifar10(root: Path, images: int, seed: int = 0) -> None:
    """`images` random training images (+ 1,000 test) as CIFAR-10 python-pickle batches."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    sizes = [len(part) for part in np.array_split(np.arange(images), 5)] + [1000]
    for name, n in zip(names, sizes, strict=True):
        entry = {
            "data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            "labels": rng.integers(0, 10, n).tolist(),
        }
        (folder / name).write_bytes(pickle.dumps(entry))
    meta = {"label_names": [str(i) for i in range(10)]}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta))


def endless(loader: Iterable) -> Iterable:
    """Batches from epoch after epoch of the same loader."""
    while True:
        yield from loader


def measure(batches: Iterable, prepare: Callable, warmup: int, timed: int) -> float:
    """Images/s of `prepare(batch)` over `timed` batches after `warmup` untimed ones."""
    stream = iter(batches)
    for batch in itertools.islice(stream, warmup):
        prepare(batch)
    images = 0
    start = time.perf_counter()
    for batch in itertools.islice(stream, timed):
        x = prepare(batch)
        images += len(x)
    return images / (time.perf_counter() - start)


def baseline(root: Path, batch_size: int, workers: int) -> DataLoader:
    mean, std = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
    per_sample = transforms.Compose(
        [
            transforms.RandomCrop(32, padding=4),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(mean, std),
        ]
    )
    dataset = SyntheticCIFAR10(str(root), train=True, transform=per_sample)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        num_workers=workers,
        persistent_workers=workers > 0,
        drop_last=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=None, help="holds cifar-10-batches-py/")
    parser.add_argument("--images", type=int, default=10_000, help="synthetic training images")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--workers", type=int, default=None, help="baseline; default: cores")
    parser.add_argument("--batches", type=int, default=60, help="timed batches per pipeline")
    parser.add_argument("--warmup", type=int, default=5, help="untimed batches first")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads of this process (0: torch's default)"
    )
    parser.add_argument("--markdown", action="store_true", help="print a markdown table")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    workers = available_cores() if args.workers is None else args.workers
    torch.manual_seed(0)

    with tempfile.TemporaryDirectory() as tmp:
        root = args.root
        if root is None:
            root = Path(tmp)
            write_cifar10(root, args.images)
        start = time.perf_counter()
        measured = []

        loader = baseline(root, args.batch_size, workers)
        rate = measure(endless(loader), lambda b: b[0], args.warmup, args.batches)
        measured.append((f"torchvision DataLoader, {workers} workers", "per-sample PIL", rate))
        del loader  # stop the workers before timing the in-memory path

        for magnitude in (0, 9):
            dm = CIFAR10DataModule(
                root=root,
                batch_size=args.batch_size,
                val_fraction=0.01,
                hflip=True,
                crop_padding=4,
                randaugment=magnitude,
            )
            dm.setup()
            rate = measure(
                endless(dm.train_dataloader()),
                lambda b, dm=dm: dm.transform(b[0], train=True),
                args.warmup,
                args.batches,
            )
            augment = "crop + flip" + (f" + RandAugment m{magnitude}" if magnitude else "")
            measured.append(("convattn in-memory, 0 workers", f"batched {augment}", rate))
        wall = time.perf_counter() - start

    ref = measured[0][2]
    rows = [[name, how, f"{rate:,.0f}", f"{rate / ref:.1f}"] for name, how, rate in measured]
    title = (
        f"CIFAR-10 training input, batch {args.batch_size}, 32x32x3 -> normalised float; "
        f"{available_cores()} cores, {torch.get_num_threads()} torch threads; wall {wall:.0f} s"
    )
    headers = ["pipeline", "augmentation", "images/s", "× torchvision"]
    print_table(headers, rows, title, args.markdown)


if __name__ == "__main__":
    main()

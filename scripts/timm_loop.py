"""A hand-written timm training loop on an image folder: the baseline of bench_overhead.py.

    python scripts/timm_loop.py ROOT [--img-size 64] [--epochs 1] [--workers 2] [--batch-size 64]

What a person writes around timm without a framework: timm's create_transform (no
auto-augment, no erasing), torchvision's ImageFolder, a shuffled DataLoader with persistent
workers, timm's resnet18, AdamW with timm's weight-decay groups, gradient clipping at 1.0, and
one evaluation pass over val/ per epoch. It imports only torch, torchvision and timm, so its
process time is a fair floor for `convattn-train data=imagefolder` on the same folder.
"""

from __future__ import annotations

import argparse
import time

import timm
import torch
import torch.nn.functional as F
from timm.data import create_transform
from timm.optim import param_groups_weight_decay
from torch.utils.data import DataLoader
from torchvision.datasets import ImageFolder

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root")
    parser.add_argument("--img-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    start = time.perf_counter()
    common = {"mean": MEAN, "std": STD, "interpolation": "bicubic"}
    train_tf = create_transform(args.img_size, is_training=True, hflip=0.5, re_prob=0, **common)
    eval_tf = create_transform(args.img_size, is_training=False, crop_pct=0.875, **common)
    train = ImageFolder(f"{args.root}/train", train_tf)
    val = ImageFolder(f"{args.root}/val", eval_tf)
    options = {"num_workers": args.workers, "persistent_workers": args.workers > 0}
    train_loader = DataLoader(train, args.batch_size, shuffle=True, drop_last=True, **options)
    val_loader = DataLoader(val, 2 * args.batch_size, num_workers=args.workers)
    model = timm.create_model("resnet18", num_classes=len(train.classes))
    optimizer = torch.optim.AdamW(param_groups_weight_decay(model, 0.05), lr=2e-3)
    for _ in range(args.epochs):
        model.train()
        for images, labels in train_loader:
            loss = F.cross_entropy(model(images), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
        model.eval()
        correct = 0
        with torch.inference_mode():
            for images, labels in val_loader:
                correct += (model(images).argmax(1) == labels).sum().item()
    print(f"val acc {correct / len(val):.4f}, loop {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()

"""`convattn-explain CKPT [CKPT ...]`: where each trained arm looks, as PNG overlay grids.

    convattn-explain logs/train/runs/<run> --num-images 8 -o explain
    convattn-explain runs/cnn runs/vit runs/hybrid runs/cbam -o explain --deletion
    convattn-explain best.ckpt --images digit.png cat.jpg
    convattn-explain runs/vit --deletion --device cuda:1

Writes <out>/<arm>/img<i>.png (input + every map), <out>/comparison.png for several
checkpoints (rows = images, columns = each arm's main maps), <out>/index.json, and with
--deletion <out>/deletion.json (deletion curves and AUCs, plus a random baseline).
Runs on a CUDA GPU when torch sees one (--device auto, the default), else on the CPU;
--deletion streams the test split --batch-size images at a time.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from convattn.backbones.capture import eval_mode
from convattn.errors import ConvattnError
from convattn.explain.deletion import deletion_for
from convattn.explain.device import DEVICE_FORMS, resolve_device
from convattn.explain.inputs import display_images, load_image_files, model_ready_batches
from convattn.explain.maps import explain_maps
from convattn.explain.methods import deletion_method, main_map_names
from convattn.explain.plot import (
    Cell,
    class_name,
    comparison_figure,
    explanation_figure,
    map_title,
    save_png,
)
from convattn.run.load import Run, load_run


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="convattn-explain",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument("checkpoints", nargs="+", help=".ckpt files or run dirs of convattn-train")
    parser.add_argument(
        "-n",
        "--num-images",
        type=int,
        default=8,
        help="first N images of each run's test split (default 8)",
    )
    parser.add_argument(
        "--images",
        nargs="+",
        metavar="FILE",
        help="explain these image files instead (after the checkpoints)",
    )
    parser.add_argument(
        "-o", "--out", type=Path, default=Path("explain"), help="output dir (default ./explain)"
    )
    parser.add_argument(
        "--deletion",
        action="store_true",
        help=f"also write deletion.json: pixels ranked by {deletion_method().title} (test split)",
    )
    parser.add_argument(
        "--deletion-images",
        type=int,
        default=None,
        help="test images for --deletion (default: all)",
    )
    parser.add_argument("--steps", type=int, default=10, help="deletion steps (10: 0%%..100%%)")
    parser.add_argument(
        "--fill",
        choices=["zero", "mean"],
        default="zero",
        help="deleted pixels: 0 in normalised space (the training mean) or the image mean",
    )
    parser.add_argument(
        "--device",
        default="auto",
        help=f"where the models run: {DEVICE_FORMS} (default auto); maps come back to the CPU",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=128,
        help="images per forward pass for --deletion (default 128); memory grows with it",
    )
    args = parser.parse_args(argv)
    if args.num_images < 1 or args.steps < 1 or args.batch_size < 1:
        parser.error("--num-images, --steps and --batch-size must be at least 1")
    if args.deletion_images is not None and args.deletion_images < 1:
        parser.error("--deletion-images must be at least 1 (leave it out for the whole split)")
    return args


def unique_labels(runs: list[Run]) -> None:
    """Label runs by arm; repeated arms get their run dir (or checkpoint) name appended."""
    for run in runs:
        same = [r for r in runs if r.arm == run.arm]
        run.label = run.arm
        if len(same) > 1:
            name = run.run_dir.name if run.run_dir else run.ckpt.stem
            run.label = f"{run.arm}-{same.index(run)}-{name}"


def inputs_for(
    run: Run, args: argparse.Namespace, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Model-ready images and labels (-1 when unknown) for one run, on `device`."""
    hp = run.model.hparams
    if args.images:
        images = load_image_files(args.images, hp.in_chans, hp.img_size).to(device)
        return images, torch.full((len(images),), -1, dtype=torch.long, device=device)
    return model_ready_batches(run.datamodule(), args.num_images, split="test", device=device)


def explain_run(run: Run, images: torch.Tensor, labels: torch.Tensor) -> dict[str, Any]:
    """Maps, predictions and display images of one run, on the CPU (the run's model and the
    images may be on an accelerator)."""
    backbone = run.model.backbone
    maps = explain_maps(backbone, images)
    with torch.no_grad(), eval_mode(backbone):
        preds = backbone(images).argmax(dim=1)
    return {
        "maps": {n: m.cpu().numpy() for n, m in maps.items()},
        "preds": preds.cpu().tolist(),
        "labels": labels.cpu().tolist(),
        "shown": display_images(images),
    }


def write_run_grids(run: Run, result: dict[str, Any], out: Path) -> list[dict[str, Any]]:
    """One PNG per image: input, then every map. Returns index entries."""
    folder = out / run.label
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for i, (label, pred) in enumerate(zip(result["labels"], result["preds"], strict=True)):
        true_name, pred_name = class_name(label, run.classes), class_name(pred, run.classes)
        maps = {n: m[i] for n, m in result["maps"].items()}
        fig = explanation_figure(result["shown"][i], maps, true_name, pred_name, label=run.label)
        path = folder / f"img{i:03d}.png"
        panels = save_png(fig, path)
        entries.append(
            {
                "path": str(path),
                "panels": panels,
                "maps": list(maps),
                "true": true_name,
                "pred": pred_name,
            }
        )
    return entries


def write_comparison(runs: list[Run], results: list[dict[str, Any]], out: Path) -> dict[str, Any]:
    """Rows = images, columns = the input and each arm's main maps on its own input."""
    n = min(len(r["preds"]) for r in results)
    first = results[0]
    rows = []
    for i in range(n):
        true = class_name(first["labels"][i], runs[0].classes)
        row = [Cell(first["shown"][i], title=f"input (true {true})")]
        for run, res in zip(runs, results, strict=True):
            pred = class_name(res["preds"][i], run.classes)
            for name in main_map_names(list(res["maps"])):
                title = f"{run.label}: {map_title(name)}\npred {pred}"
                row.append(Cell(res["shown"][i], res["maps"][name][i], title))
        rows.append(row)
    path = out / "comparison.png"
    panels = save_png(comparison_figure(rows), path)
    return {"path": str(path), "panels": panels, "rows": n, "columns": len(rows[0])}


def same_images(results: list[dict[str, Any]]) -> bool:
    """Whether every run explained the same images (same labels, same displayed pixels)."""
    n = min(len(r["preds"]) for r in results)
    ref = results[0]
    return all(
        r["labels"][:n] == ref["labels"][:n]
        and r["shown"][:n].shape == ref["shown"][:n].shape
        and np.allclose(r["shown"][:n], ref["shown"][:n], atol=1e-4)
        for r in results[1:]
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    device = resolve_device(args.device)  # a bad value stops before any checkpoint loads
    runs = [load_run(path) for path in args.checkpoints]
    for r in runs:
        r.model.to(device)
    unique_labels(runs)
    args.out.mkdir(parents=True, exist_ok=True)
    index: dict[str, Any] = {"runs": {}}
    results = []
    for r in runs:
        images, labels = inputs_for(r, args, device)
        result = explain_run(r, images, labels)
        results.append(result)
        index["runs"][r.label] = {
            "ckpt": str(r.ckpt),
            "arm": r.arm,
            "images": write_run_grids(r, result, args.out),
        }
        print(f"{r.label}: {len(labels)} image grid(s) in {args.out / r.label}")
    if len(runs) > 1:
        if not same_images(results):
            print(
                "convattn-explain: warning: the runs' data configs give different test images; "
                "each comparison cell shows its own run's i-th image.",
                file=sys.stderr,
            )
        index["comparison"] = write_comparison(runs, results, args.out)
        print(f"comparison grid: {index['comparison']['path']}")
    if args.deletion:
        deletion = {
            r.label: deletion_for(
                r, args.deletion_images, args.steps, args.fill, batch_size=args.batch_size
            )
            for r in runs
        }
        (args.out / "deletion.json").write_text(json.dumps(deletion, indent=2))
        for label, d in deletion.items():
            print(
                f"{label}: deletion AUC acc {d['auc_acc']:.3f} "
                f"(random {d['random']['auc_acc']:.3f}), prob {d['auc_prob']:.3f} "
                f"(random {d['random']['auc_prob']:.3f})"
            )
        index["deletion"] = str(args.out / "deletion.json")
    (args.out / "index.json").write_text(json.dumps(index, indent=2))
    return index


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        run(args)
    except ConvattnError as err:
        print(f"convattn-explain: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Parameters and forward GFLOPs per image of every arm x preset, with ratios to the cnn arm.

    python scripts/model_table.py [--img-size 32] [--in-chans 1] [--num-classes 10] [--markdown]

GFLOPs come from torch's FlopCounterMode (batch 1, eval mode): a multiply-add counts as
2 FLOPs, and only matmul / conv / attention kernels are counted.
"""

from __future__ import annotations

import argparse

from convattn.backbones import create_backbone, list_arms, list_presets
from convattn.backbones.profile import count_flops, count_params
from convattn.utils.tables import print_table

ARMS = ("cnn", *(arm for arm in list_arms() if arm != "cnn"))  # the reference first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--img-size", type=int, default=32)
    parser.add_argument("--in-chans", type=int, default=1)
    parser.add_argument("--num-classes", type=int, default=10)
    parser.add_argument("--markdown", action="store_true", help="print a markdown table")
    args = parser.parse_args()

    shape = (1, args.in_chans, args.img_size, args.img_size)
    rows = []
    for size in list_presets("cnn"):
        base_params = base_flops = None
        for arm in ARMS:
            model = create_backbone(
                arm,
                in_chans=args.in_chans,
                num_classes=args.num_classes,
                img_size=args.img_size,
                size=size,
            )
            params, flops = count_params(model), count_flops(model, shape)
            if arm == "cnn":
                base_params, base_flops = params, flops
            rows.append(
                [
                    arm,
                    size,
                    f"{params / 1e6:.3f} M",
                    f"{params / base_params:.3f}",
                    f"{flops / 1e9:.4f}",
                    f"{flops / base_flops:.2f}",
                ]
            )
    title = f"{args.img_size}x{args.img_size}x{args.in_chans} input, {args.num_classes} classes"
    headers = ["arm", "preset", "params", "params / cnn", "GFLOPs / image", "GFLOPs / cnn"]
    print_table(headers, rows, title=title, markdown=args.markdown)


if __name__ == "__main__":
    main()

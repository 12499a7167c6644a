"""Start-up cost: one-step `convattn-train` runs against the import floor of the stack.

    python scripts/bench_startup.py [--rounds 5] [--markdown] [--baseline CHECKOUT]

Every process is fresh. Rounds alternate the commands, so drift in machine load hits all
of them alike:

- floor: `python -c "import lightning.pytorch, torchmetrics, hydra"`, what every
  Lightning + Hydra tool pays before doing anything;
- digits: `convattn-train` for one optimizer step on the embedded digits;
- mnist_60k: the same on 60,000 MNIST-format images (idx files this script writes);
- imagefolder: the same on a folder of PNGs this script writes (resnet, 64 px, 2 workers);
- mnist_60k_tcmalloc: the mnist_60k run started through scripts/tcmalloc.sh, the opt-in
  allocator (its peak memory against the system allocator's);
- hand_step: the floor's imports, then by hand what the mnist_60k run does: load the decoded
  60,000 images (a `.npy` written once), build the same cnn, one AdamW step on a batch of 128.
  Its peak memory is what any tool needs for that step (activations included), against which
  convattn's peak is compared;
- hand_step_fixed_mmap: the same with glibc's mmap threshold fixed at 128 KiB
  (`MALLOC_MMAP_THRESHOLD_`), so freed activations go back to the OS at once instead of
  staying in the heap: what the step's peak would be without glibc's fast-path heap reuse
  (which a step pays for in speed; see the README).

With `--baseline CHECKOUT` (another checkout of convattn, e.g. `git worktree add /tmp/old
<commit>`), the digits and mnist_60k runs are also run from that checkout's `src/` (its
`convattn.train:main`, the console script of that time), in the same rounds, and the ratio
now / baseline is printed for each: is start-up faster or slower than before a change.

The one-step runs skip validation, test, checkpoints and loggers other than CSV, so what is
left is start-up: imports, config, data set-up, model build, one step. A warm-up round (not
timed) fills the decode cache first, as a second run of any real job finds it; its times are
printed as "first run". Prints median wall time, the extra over the floor (target <= 1.0 s)
and the peak RSS of the main process (target: within 15 % of the floor + the decoded data).

Every row ends as a Python process does, interpreter teardown included, and runs under the
system allocator but mnist_60k_tcmalloc. This process imports no torch
and writes the data itself (~200 MiB peak): a child's peak RSS starts at its parent's, so a
heavier parent would raise the smaller rows to its own peak.
"""

from __future__ import annotations

import argparse
import gzip
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from convattn.utils.tables import print_table

FLOOR_IMPORTS = "import lightning.pytorch, torchmetrics, hydra"
FLOOR = [sys.executable, "-c", FLOOR_IMPORTS]
TCMALLOC = ["bash", str(Path(__file__).resolve().with_name("tcmalloc.sh"))]
HAND_STEP = f"""
import sys
{FLOOR_IMPORTS}
import numpy as np, torch, torch.nn.functional as F
from convattn.backbones import create_backbone
images = torch.from_numpy(np.load(sys.argv[1]))
model = create_backbone(arm="cnn", size="tiny", in_chans=1, num_classes=10, img_size=32)
optimizer = torch.optim.AdamW(model.parameters())
batch = images[torch.randperm(len(images))[:128]].float().div_(255)
F.cross_entropy(model(batch), torch.randint(0, 10, (128,))).backward()
optimizer.step()
"""
ONE_STEP = [
    "+trainer.max_steps=1", "+trainer.limit_val_batches=0", "test=false", "logger=csv",
    "callbacks=none", "profile=false", "print_config=false",
]  # fmt: skip


def write_idx(path: Path, array: np.ndarray) -> None:
    """IDX as MNIST ships it: magic 0x0000080<ndim>, big-endian uint32 sizes, bytes; gzipped."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes(), compresslevel=1))


def write_mnist(root: Path, n_train: int) -> Path:
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_train // 6)):
        write_idx(
            root / f"{prefix}-images-idx3-ubyte.gz",
            rng.integers(0, 256, (n, 28, 28), dtype=np.uint8),
        )
        write_idx(root / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10)
    return root


WRITE_DECODED = """
import sys
from pathlib import Path
import numpy as np, torch
from convattn.data.in_memory import resize_images
from convattn.data.idx_files import read_idx
images = torch.from_numpy(read_idx(Path(sys.argv[1])).copy()).unsqueeze(1)
np.save(sys.argv[2], resize_images(images, 32).numpy())
"""


def write_decoded(mnist: Path, out: Path) -> None:
    """The training images as the in-memory path holds them: uint8 (N, 1, 32, 32). In a child
    process: a child's peak RSS starts at its parent's, so the parent must stay small."""
    source = str(mnist / "train-images-idx3-ubyte.gz")
    subprocess.run([sys.executable, "-c", WRITE_DECODED, source, str(out)], check=True)


def write_image_folder(root: Path, per_class: int, classes: int = 4) -> Path:
    rng = np.random.default_rng(0)
    for split, n in (("train", per_class), ("val", max(1, per_class // 6))):
        for c in range(classes):
            folder = root / split / f"class_{c}"
            folder.mkdir(parents=True)
            for i in range(n):
                pixels = rng.integers(0, 256, (72, 72, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")
    return root


BASELINE_TRAIN = "import sys; from convattn.train import main; sys.exit(main())"
BASELINE_ROWS = ("digits", "mnist_60k")


def commands(work: Path, train: str, baseline: Path | None = None) -> dict[str, list[str]]:
    def run(name: str, *overrides: str) -> list[str]:
        return [train, *ONE_STEP, f"hydra.run.dir={work / 'runs' / name}", *overrides]

    def baseline_run(name: str, *overrides: str) -> list[str]:
        # `env` execs python in the same process: os.wait4 still reports python's peak.
        entry = ["env", f"PYTHONPATH={baseline / 'src'}", sys.executable, "-c", BASELINE_TRAIN]
        return [*entry, *run(f"{name}_baseline", *overrides)[1:]]

    hand_step = [sys.executable, "-c", HAND_STEP, str(work / "decoded.npy")]
    return {
        "floor": FLOOR,
        "hand_step": hand_step,
        # `env` execs python in the same process, so os.wait4 still reports python's peak.
        "hand_step_fixed_mmap": ["env", "MALLOC_MMAP_THRESHOLD_=131072", *hand_step],
        "digits": run("digits"),
        "mnist_60k": run("mnist", "data=mnist", f"data.root={work / 'mnist'}"),
        "mnist_60k_tcmalloc": [
            *TCMALLOC,
            *run("mnist_tc", "data=mnist", f"data.root={work / 'mnist'}"),
        ],
        "imagefolder": run(
            "imagefolder",
            "data=imagefolder",
            f"data.root={work / 'folder'}",
            "data.img_size=64",
            "data.num_workers=2",
            "data.auto_augment=null",
        ),
        **(
            {
                "digits@baseline": baseline_run("digits"),
                "mnist_60k@baseline": baseline_run(
                    "mnist", "data=mnist", f"data.root={work / 'mnist'}"
                ),
            }
            if baseline
            else {}
        ),
    }


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of the process itself (os.wait4 reports that child only)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output = proc.stdout.read() if proc.stdout else b""
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{output.decode(errors='replace')[-3000:]}")
    return seconds, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds (medians over them)")
    parser.add_argument("--images", type=int, default=60_000, help="MNIST-format train images")
    parser.add_argument("--folder-images", type=int, default=250, help="PNGs per class, 4 classes")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--baseline", type=Path, help="another checkout to compare start-up with")
    args = parser.parse_args()
    train = str(Path(sys.executable).with_name("convattn-train"))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        write_mnist(work / "mnist", args.images)
        write_decoded(work / "mnist", work / "decoded.npy")
        write_image_folder(work / "folder", args.folder_images)
        env = {**os.environ, "CONVATTN_CACHE_DIR": str(work / "cache"), "WANDB_MODE": "offline"}
        cmds = commands(work, train, args.baseline)
        first = {name: timed(cmd, env) for name, cmd in cmds.items()}
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in cmds}
        for _ in range(args.rounds):
            for name, cmd in cmds.items():
                times[name].append(timed(cmd, env))
    median = {name: statistics.median(s for s, _ in samples) for name, samples in times.items()}
    peak = {name: statistics.median(m for _, m in samples) for name, samples in times.items()}
    floor_s = median["floor"]
    rows = []
    for name in times:
        extra = "" if name == "floor" else f"{median[name] - floor_s:+.2f}"
        rows.append(
            [name, f"{first[name][0]:.2f}", f"{median[name]:.2f}", extra, f"{peak[name]:.0f}"]
        )
    print_table(
        ["run", "first run s", f"median s ({args.rounds})", "extra over floor s", "peak RSS MiB"],
        rows,
        title=f"start-up, fresh processes, {os.cpu_count()} cores",
        markdown=args.markdown,
    )
    budget = peak["floor"] + args.images * 32 * 32 / 2**20  # uint8, resized to the module's 32 px
    print(f"floor + decoded {args.images} images: {budget:.0f} MiB")
    for name in ("digits", "mnist_60k", "imagefolder"):
        print(f"extra over floor, {name}: {median[name] - floor_s:.2f} s")
    print(f"peak memory, mnist_60k / hand_step: {peak['mnist_60k'] / peak['hand_step']:.2f}")
    if args.baseline:
        for name in BASELINE_ROWS:
            ratio = median[name] / median[f"{name}@baseline"]
            print(f"now / baseline, {name}: {ratio:.3f} (median s)")
    for name in ("mnist_60k", "mnist_60k_tcmalloc", "hand_step", "hand_step_fixed_mmap"):
        print(f"peak memory, {name} / (floor + decoded): {peak[name] / budget:.2f}  (target 1.15)")


if __name__ == "__main__":
    main()

"""Writers of the real on-disk dataset formats, small, for tests (no downloads).

MNIST/Fashion-MNIST idx files (as torchvision.datasets.MNIST reads them), CIFAR-10/100
python pickles (as distributed, and as torchvision.datasets.CIFAR10 reads them) and
class-folder trees of PNG/JPEG images of different sizes and PIL modes.
"""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
from PIL import Image


def write_idx(path: Path, array: np.ndarray, gz: bool) -> None:
    """IDX: magic 0x0000080<ndim> (0x08 = ubyte), big-endian uint32 sizes, then the bytes."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if gz:
        path.with_name(path.name + ".gz").write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)


def write_mnist(root: Path, folder: str, n_train: int = 60, n_test: int = 20) -> Path:
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n, gz in (("train", n_train, True), ("t10k", n_test, False)):  # .gz and plain
        write_idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)), gz)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10, gz)
    return root


def write_cifar(root: Path, fine: bool, n_train: int, n_test: int) -> Path:
    """The python-pickle version: dicts of uint8 `data` rows (3072, channel-first) + labels."""
    num_classes, key = (100, "fine_labels") if fine else (10, "labels")
    folder = root / ("cifar-100-python" if fine else "cifar-10-batches-py")
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)

    def dump(name: str, n: int, start: int = 0) -> None:
        labels = [(start + i) % num_classes for i in range(n)]
        entry = {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), key: labels}
        if fine:
            entry["coarse_labels"] = [c // 5 for c in labels]
        (folder / name).write_bytes(pickle.dumps(entry))

    if fine:
        dump("train", n_train)
        dump("test", n_test)
        meta = {"fine_label_names": [f"c{i}" for i in range(100)]}
        (folder / "meta").write_bytes(pickle.dumps(meta))
    else:
        for b in range(5):
            dump(f"data_batch_{b + 1}", n_train // 5, start=b * (n_train // 5))
        dump("test_batch", n_test)
        meta = {"label_names": [f"c{i}" for i in range(10)]}
        (folder / "batches.meta").write_bytes(pickle.dumps(meta))
    return root


def image(size: tuple[int, int], mode: str, seed: int) -> Image.Image:
    rgb = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    img = Image.fromarray(rgb)
    return img.convert(mode) if mode != "P" else img.quantize(16)


# (size, mode, format): PNG and JPEG, different sizes, grey / RGB / RGBA / palette
VARIANTS = [
    ((40, 30), "L", "png"),
    ((64, 64), "RGB", "jpg"),
    ((25, 50), "RGBA", "png"),
    ((36, 36), "P", "png"),
    ((48, 20), "L", "jpg"),
]


def write_tree(root: Path, splits: dict[str, int], classes=("cat", "dog", "fish")) -> Path:
    for split, per_class in splits.items():
        for c, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(per_class):
                size, mode, fmt = VARIANTS[(i + c) % len(VARIANTS)]
                image(size, mode, seed=100 * c + i).save(folder / f"{i}.{fmt}")
    return root

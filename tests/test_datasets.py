"""Real datasets in their real on-disk formats, written small into tmp dirs; no downloads.

MNIST/Fashion-MNIST idx files, CIFAR-10/100 python pickles and class-folder trees of PNG/JPEG
images are written byte for byte as distributed (tests/helpers/data_formats.py), then read
through the data modules and trained on for one step through `convattn.train.train`; every
registered dataset takes that step (a new one: on files written by its entry in WRITERS).
"""

from __future__ import annotations

import gzip
import logging
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.data_formats import (
    VARIANTS,
    image,
    write_cifar,
    write_idx,
    write_mnist,
    write_tree,
)
from helpers.runs import run_cli
from hydra.utils import instantiate
from torchvision import datasets

from convattn.data import list_datasets
from convattn.data.image_files import CorruptImageError, load_rgb
from convattn.data.image_folder import ImageFolderDataModule
from convattn.data.imbalance import long_tail_counts
from convattn.data.torchvision_sets import CIFAR10DataModule, MNISTDataModule
from convattn.errors import ConvattnError, instantiate_checked
from convattn.run.record import RunRecord
from convattn.train import train

pytestmark = pytest.mark.usefixtures("one_thread")


# Small files in each dataset's own format, for the datasets that read files (digits ships in
# scikit-learn). A dataset registered without an entry here runs on the files its config points
# at, and is skipped, saying so, when they are not there.
WRITERS = {
    "mnist": lambda root: write_mnist(root, "MNIST"),
    "fashion_mnist": lambda root: write_mnist(root, "FashionMNIST"),
    "cifar10": lambda root: write_cifar(root, fine=False, n_train=100, n_test=20),
    "cifar100": lambda root: write_cifar(root, fine=True, n_train=300, n_test=100),
    "imagefolder": lambda root: write_tree(root, {"train": 5, "val": 2}),
}


@pytest.fixture(scope="module")
def roots(tmp_path_factory) -> dict[str, Path]:
    return {name: write(tmp_path_factory.mktemp(name)) for name, write in WRITERS.items()}


# ---------------------------------------------------------------- formats, shapes, one step
EXPECTED = {  # in_chans, num_classes, train + val images, test images, raw batch dtype
    "digits": (1, 10, 1258 + 180, 359, torch.float32),  # held as floats in [0, 1]
    "mnist": (1, 10, 60, 20, torch.uint8),
    "fashion_mnist": (1, 10, 60, 20, torch.uint8),
    "cifar10": (3, 10, 100, 20, torch.uint8),
    "cifar100": (3, 100, 300, 100, torch.uint8),
    "imagefolder": (3, 3, 15 + 6, 6, torch.float32),  # test/ is absent: test = val/
}


def check_files_here(cfg, name: str) -> None:
    """Skip a dataset that has no writer above when its config's files are not here."""
    if name in WRITERS or name in EXPECTED:
        return
    try:
        instantiate_checked(cfg.data)
    except ConvattnError as err:
        pytest.skip(f"{name}: no files written for it (add it to WRITERS) and none here: {err}")


@pytest.mark.parametrize("name", list_datasets())
def test_one_training_step_through_the_entry_point(train_cfg, tmp_path, roots, name) -> None:
    overrides = [
        f"data={name}",
        "data.img_size=32",
        "trainer.max_epochs=1",
        "+trainer.limit_train_batches=1",
        "+trainer.limit_val_batches=1",
        "+trainer.limit_test_batches=1",
        "callbacks=none",
        "profile=false",
        "model.size=tiny",
    ]
    cfg = train_cfg(overrides)
    if name in roots:
        cfg.data.root = str(roots[name])
    if "num_workers" in cfg.data:
        cfg.data.num_workers = 0
    check_files_here(cfg, name)
    metrics = train(cfg)
    dm = instantiate(cfg.data)
    dm.setup()
    n_test = len(dm.test_dataloader().dataset)
    n_train = len(dm.train_dataloader().dataset) + len(dm.val_dataloader().dataset)
    in_chans, num_classes = dm.in_chans, dm.num_classes
    if name in EXPECTED:  # the sizes of the files written above
        assert (in_chans, num_classes, n_train, n_test) == EXPECTED[name][:4]
    # what the run itself recorded: its data's shape, one step, the test batch it scored
    record = RunRecord.read(tmp_path).to_dict()
    assert (record["dataset"], record["global_step"]) == (name, 1)
    cm = torch.tensor(record["confusion_matrix"], dtype=torch.float64)
    assert cm.shape == (num_classes, num_classes)
    assert cm.sum() == min(n_test, dm.eval_batch_size)  # limit_test_batches=1
    assert metrics["test/acc"] == pytest.approx(float(cm.trace() / cm.sum()), abs=1e-6)

    assert dm.img_size == 32
    counts = dm.class_counts()
    assert counts.shape == (num_classes,)
    loader = dm.train_dataloader()
    assert int(counts.sum()) == len(loader.dataset)
    x, y = next(iter(loader))
    if name in EXPECTED:
        assert x.dtype == EXPECTED[name][4]
    x = dm.on_after_batch_transfer((x, y), 0)[0]  # in memory: augments and normalises
    assert x.shape[1:] == (in_chans, 32, 32) and x.dtype == torch.float32
    assert y.dtype == torch.long and int(y.min()) >= 0 and int(y.max()) < num_classes


def test_cifar_pickles_read_as_torchvision_reads_them(roots) -> None:
    class Unchecked(datasets.CIFAR10):  # torchvision checks the official MD5s; ours differ
        def _check_integrity(self) -> bool:
            return True

        def _load_meta(self) -> None:
            self.classes = []

    dm = CIFAR10DataModule(root=roots["cifar10"])
    for train_split in (True, False):
        images, labels = dm.read_split(train=train_split)
        ref = Unchecked(str(roots["cifar10"]), train=train_split)
        assert torch.equal(images, torch.from_numpy(ref.data).permute(0, 3, 1, 2))
        assert labels.tolist() == ref.targets


def test_mnist_gz_files_are_unpacked_and_match(roots) -> None:
    dm = MNISTDataModule(root=roots["mnist"], img_size=28)
    images, labels = dm.read_split(train=True)  # train files exist only as .gz
    raw = gzip.decompress((dm.folder / "train-images-idx3-ubyte.gz").read_bytes())
    assert torch.equal(images.flatten(), torch.frombuffer(bytearray(raw[16:]), dtype=torch.uint8))
    assert images.shape == (60, 1, 28, 28) and labels.tolist() == [i % 10 for i in range(60)]


@pytest.mark.parametrize(
    ("name", "files"),
    [
        ("mnist", ["MNIST/raw", "train-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]),
        ("cifar10", ["cifar-10-batches-py", "data_batch_1", "data_batch_5", "test_batch"]),
        ("cifar100", ["cifar-100-python", "train", "test"]),
    ],
)
def test_missing_files_name_path_files_and_download_flag(train_cfg, tmp_path, name, files):
    empty = tmp_path / "nothing_here"
    with pytest.raises(ConvattnError) as err:
        train(train_cfg([f"data={name}", f"data.root={empty}", "profile=false"]))
    message = str(err.value)
    assert str(empty) in message and "data.download=true" in message
    for part in files:
        assert part in message


def test_fashion_mnist_falls_back_to_the_debian_package(tmp_path, monkeypatch) -> None:
    """An empty data.root still finds Fashion-MNIST where `dataset-fashion-mnist` installs it."""
    from convattn.data.torchvision_sets import FashionMNISTDataModule

    system = write_mnist(tmp_path / "system", "FashionMNIST") / "FashionMNIST" / "raw"
    monkeypatch.setattr(FashionMNISTDataModule, "system_folders", (str(system),))
    dm = FashionMNISTDataModule(root=tmp_path / "nothing_here", img_size=28)
    assert dm.folder == system
    monkeypatch.setattr(FashionMNISTDataModule, "system_folders", ())
    with pytest.raises(ConvattnError) as err:
        FashionMNISTDataModule(root=tmp_path / "nothing_here", img_size=28).check_files()
    message = str(err.value)
    for part in (
        "FashionMNIST/raw",
        "train-labels-idx1-ubyte",
        "apt-get install",
        "data.download=true",
    ):
        assert part in message


# ---------------------------------------------------------------- MNIST IDX files: bad content
def cut(path: Path, keep: int) -> None:
    path.write_bytes(path.read_bytes()[:keep])


def flip_byte(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


# name -> (change to the files in MNIST/raw, the file or folder the message names, words)
BAD_IDX = {
    "truncated body": (lambda raw: cut(raw / "t10k-images-idx3-ubyte", 1000),
                       "t10k-images-idx3-ubyte", ["truncated"]),
    "truncated header": (lambda raw: cut(raw / "t10k-labels-idx1-ubyte", 6),
                         "t10k-labels-idx1-ubyte", ["cut off"]),
    "empty file": (lambda raw: cut(raw / "t10k-labels-idx1-ubyte", 0),
                   "t10k-labels-idx1-ubyte", ["IDX"]),
    "truncated gzip": (lambda raw: cut(raw / "train-images-idx3-ubyte.gz", 300),
                       "train-images-idx3-ubyte.gz", ["EOFError"]),
    "corrupt deflate stream": (lambda raw: flip_byte(raw / "train-labels-idx1-ubyte.gz", 12),
                               "train-labels-idx1-ubyte.gz", ["error"]),
    "labels up to 14": (lambda raw: write_idx(raw / "t10k-labels-idx1-ubyte",
                                              np.arange(20) % 10 + 5, gz=False),
                        "MNIST/raw", ["test labels", "5 to 14", "0 to 9"]),
    "a label of 255": (lambda raw: write_idx(raw / "train-labels-idx1-ubyte",
                                             np.full(60, 255), gz=True),
                       "MNIST/raw", ["training labels", "255", "0 to 9"]),
    "fewer labels than images": (lambda raw: write_idx(raw / "t10k-labels-idx1-ubyte",
                                                       np.arange(19) % 10, gz=False),
                                 "MNIST/raw", ["20 images but 19 labels"]),
    "images of zero width": (lambda raw: write_idx(raw / "t10k-images-idx3-ubyte",
                                                   np.zeros((20, 28, 0)), gz=False),
                             "t10k-images-idx3-ubyte", ["(20, 28, 0)"]),
    "labels with two axes": (lambda raw: write_idx(raw / "t10k-labels-idx1-ubyte",
                                                   np.zeros((20, 1)), gz=False),
                             "t10k-labels-idx1-ubyte", ["(20, 1)"]),
    "no test images": (lambda raw: [write_idx(raw / f"t10k-{kind}", np.zeros(shape), gz=False)
                                    for kind, shape in (("images-idx3-ubyte", (0, 28, 28)),
                                                        ("labels-idx1-ubyte", (0,)))],
                       "MNIST/raw", ["test files", "no images"]),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BAD_IDX))
def test_bad_idx_content_is_one_paragraph_naming_the_file(tmp_path, case) -> None:
    change, named, words = BAD_IDX[case]
    root = write_mnist(tmp_path, "MNIST")
    change(root / "MNIST" / "raw")
    with pytest.raises(ConvattnError) as err:
        MNISTDataModule(root=root, img_size=32).setup()
    message = str(err.value)
    assert "\n" not in message and str(root / "MNIST" / "raw") in message, message
    assert named in message and all(w in message for w in words), message


def test_the_entry_point_says_which_idx_file_is_truncated(tmp_path) -> None:
    root = write_mnist(tmp_path / "data", "MNIST")
    broken = root / "MNIST" / "raw" / "t10k-images-idx3-ubyte"
    cut(broken, 5000)
    proc = run_cli(
        "convattn-train", "data=mnist", f"data.root={root}", "logger=csv", "profile=false",
        "print_config=false", f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path, check=False, timeout=300,
    )  # fmt: skip
    text = proc.stdout + proc.stderr
    assert proc.returncode == 2 and "Traceback" not in text, text[-3000:]
    assert len([p for p in proc.stderr.split("\n\n") if str(broken) in p]) == 1, text[-3000:]


# ---------------------------------------------------------------- image folders: bad input
def test_every_pil_mode_becomes_rgb(tmp_path) -> None:
    for i, (size, mode, fmt) in enumerate(VARIANTS):
        path = tmp_path / f"{i}.{fmt}"
        image(size, mode, seed=i).save(path)
        img = load_rgb(path)
        assert img.mode == "RGB" and img.size == size
        if mode == "L":  # grey is copied to all three channels
            r, g, b = (np.asarray(img)[..., k] for k in range(3))
            assert np.array_equal(r, g) and np.array_equal(g, b)


def corrupt_tree(root: Path) -> tuple[Path, Path]:
    write_tree(root, {"train": 4, "val": 2})
    broken = root / "train" / "dog" / "broken.jpg"
    good = (root / "train" / "dog" / "0.jpg").read_bytes()
    broken.write_bytes(good[: len(good) // 2])  # truncated
    return root, broken


def test_corrupt_image_error_names_the_file_through_a_worker(tmp_path) -> None:
    root, broken = corrupt_tree(tmp_path)
    dm = ImageFolderDataModule(root=root, img_size=32, batch_size=64, num_workers=1)
    dm.setup()
    with pytest.raises(CorruptImageError) as err:
        next(iter(dm.train_dataloader()))  # one batch holds every image, the broken one too
    message = str(err.value)
    assert str(broken) in message and "data.skip_corrupt=true" in message
    assert "Traceback" not in message and "worker" not in message  # one paragraph


def test_verify_images_fails_up_front_naming_the_file(tmp_path) -> None:
    root, broken = corrupt_tree(tmp_path)
    dm = ImageFolderDataModule(root=root, img_size=32, num_workers=0, verify_images=True)
    with pytest.raises(ConvattnError, match=re.escape(str(broken))):
        dm.setup()


def test_skip_corrupt_drops_and_counts_the_file(tmp_path, caplog) -> None:
    root, broken = corrupt_tree(tmp_path)
    dm = ImageFolderDataModule(root=root, img_size=32, num_workers=0, skip_corrupt=True)
    with caplog.at_level(logging.WARNING, logger="convattn"):
        dm.setup()
    assert [path for path, _ in dm.skipped["train"]] == [str(broken)]
    assert "Skipped 1 unreadable image(s) of 13" in caplog.text and str(broken) in caplog.text
    assert len(dm.datasets["train"]) == 12 and dm.class_counts().tolist() == [4, 4, 4]
    x, _ = next(iter(dm.train_dataloader()))
    assert x.shape == (12, 3, 32, 32)


def test_empty_class_folder_is_named(tmp_path) -> None:
    write_tree(tmp_path, {"train": 2, "val": 1})
    for f in (tmp_path / "val" / "fish").iterdir():
        f.unlink()
    with pytest.raises(ConvattnError, match=re.escape(str(tmp_path / "val" / "fish"))):
        ImageFolderDataModule(root=tmp_path, num_workers=0)


def test_mismatched_class_sets_are_named(tmp_path) -> None:
    write_tree(tmp_path, {"train": 2})
    write_tree(tmp_path, {"val": 1}, classes=("cat", "dog", "bird"))
    with pytest.raises(ConvattnError) as err:
        ImageFolderDataModule(root=tmp_path, num_workers=0)
    message = str(err.value)
    assert str(tmp_path / "train") in message and str(tmp_path / "val") in message
    assert "['fish']" in message and "['bird']" in message


def test_missing_train_folder_and_no_val_folder(tmp_path) -> None:
    with pytest.raises(ConvattnError, match=re.escape(str(tmp_path / "train"))):
        ImageFolderDataModule(root=tmp_path)
    write_tree(tmp_path, {"train": 10})  # no val/: a stratified hold-out of train/
    dm = ImageFolderDataModule(root=tmp_path, img_size=32, num_workers=0, val_fraction=0.2)
    dm.setup()
    assert len(dm.datasets["val"]) == 6 and dm.class_counts().tolist() == [8, 8, 8]
    assert dm.datasets["test"] is dm.datasets["val"]
    assert not set(dm.datasets["train"].samples) & set(dm.datasets["val"].samples)


# ---------------------------------------------------------------- imbalance and its remedy
@pytest.fixture(scope="module")
def big_cifar(tmp_path_factory) -> Path:
    return write_cifar(tmp_path_factory.mktemp("big"), fine=False, n_train=2000, n_test=100)


def test_long_tail_counts_follow_the_exponential_profile() -> None:
    counts = long_tail_counts(torch.full((10,), 500), imbalance=0.01)
    expected = [int(500 * 0.01 ** (c / 9)) for c in range(10)]
    assert counts.tolist() == expected and counts[0] == 500 and counts[-1] == 5


def test_imbalance_shapes_training_set_only_and_is_seeded(big_cifar) -> None:
    plain = CIFAR10DataModule(root=big_cifar)
    plain.setup()
    dm = CIFAR10DataModule(root=big_cifar, imbalance=0.1)
    counts = dm.class_counts()
    assert counts.max() / counts.min() == pytest.approx(10, rel=0.1)
    assert counts.tolist() == sorted(counts.tolist(), reverse=True)
    for split in ("val", "test"):
        assert torch.equal(dm.datasets[split].labels, plain.datasets[split].labels)
    again = CIFAR10DataModule(root=big_cifar, imbalance=0.1)
    again.setup()
    assert torch.equal(again.datasets["train"].images, dm.datasets["train"].images)


def test_balanced_sampler_draws_classes_uniformly(big_cifar) -> None:
    dm = CIFAR10DataModule(root=big_cifar, imbalance=0.1, balanced_sampler=True)
    dm.setup()
    torch.manual_seed(0)
    drawn = torch.cat([y for _ in range(3) for _, y in dm.train_dataloader()])
    assert len(drawn) == 3 * len(dm.datasets["train"])
    share = torch.bincount(drawn, minlength=10).float() / len(drawn)
    assert share.min() > 0.075 and share.max() < 0.125  # uniform is 0.1; the data is 10:1

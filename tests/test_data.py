"""The data registry and what every registered module must declare; the embedded digits: a
fixed, stratified, seeded split, resized and normalised."""

from __future__ import annotations

import inspect

import pytest
import torch

from convattn.data import find_dataset, get_dataset, list_datasets, register_dataset
from convattn.data.base import ClassificationDataModule
from convattn.data.digits import DigitsDataModule
from convattn.data.in_memory import InMemoryDataModule
from convattn.data.registry import target_path
from convattn.errors import ConvattnError

DATASETS = list_datasets()


# ---------------------------------------------------------------- the registry
def init_options(cls: type) -> set[str]:
    """The options a data module takes: its constructor's and, through `**options`, its
    bases' down to one that takes no more."""
    names: set[str] = set()
    for klass in cls.__mro__:
        if "__init__" not in vars(klass) or not issubclass(klass, ClassificationDataModule):
            continue
        params = list(inspect.signature(vars(klass)["__init__"]).parameters.values())
        names |= {p.name for p in params[1:] if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    return names


def test_the_registry_holds_convattns_datasets() -> None:
    # a guard for the tests parametrised from it: an empty registry would run none of them
    assert {"digits", "mnist", "fashion_mnist", "cifar10", "cifar100", "imagefolder"} <= set(
        DATASETS
    )


@pytest.mark.parametrize("name", DATASETS)
def test_a_registered_module_is_found_by_name_path_and_class(name: str) -> None:
    cls = get_dataset(name)
    assert issubclass(cls, ClassificationDataModule) and cls.name == name
    assert find_dataset(target_path(cls)) is cls and find_dataset(cls) is cls


@pytest.mark.parametrize("name", DATASETS)
def test_option_lists_name_only_real_options(name: str) -> None:
    """What a module leaves out of the run identity (`plumbing`) and, in memory, out of the
    decode cache's key (`after_decode`) are options its constructor takes: a renamed option
    cannot silently fall out of a list."""
    cls = get_dataset(name)
    options = init_options(cls)
    assert "eval_batch_size" in options and "img_size" in options  # the walk found the base
    assert isinstance(cls.plumbing, frozenset) and cls.plumbing <= options, cls.plumbing - options
    if issubclass(cls, InMemoryDataModule):
        assert isinstance(cls.after_decode, frozenset)
        assert cls.after_decode <= options, cls.after_decode - options
        assert not {"img_size", "val_fraction", "split_seed"} & cls.after_decode  # these decode


@pytest.mark.parametrize("name", DATASETS)
def test_the_report_names_a_job_by_the_name_its_module_records(name: str) -> None:
    """An unfinished job (no record yet) is grouped under the name a finished one records."""
    from convattn.report.collect import dataset_name

    assert dataset_name(target_path(get_dataset(name))) == name


def test_unknown_targets_are_not_found_nor_imported(tmp_path, monkeypatch) -> None:
    import sys

    (tmp_path / "payload_pkg.py").write_text("raise SystemExit('imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert find_dataset("payload_pkg.EvilDataModule") is None
    assert "payload_pkg" not in sys.modules
    assert find_dataset(None) is None and find_dataset(DigitsDataModule.__module__) is None
    with pytest.raises(KeyError, match="digits"):
        get_dataset("nowhere")


def test_a_name_cannot_be_registered_twice() -> None:
    with pytest.raises(ValueError, match="'digits' is registered twice"):

        @register_dataset("digits")
        class OtherDigits(DigitsDataModule):
            pass

    assert get_dataset("digits") is DigitsDataModule


@pytest.mark.parametrize(
    ("option", "value"),
    [("img_size", 4), ("batch_size", 0), ("eval_batch_size", -1), ("val_fraction", 1.5),
     ("train_fraction", 0)],
)  # fmt: skip
@pytest.mark.parametrize("name", DATASETS)
def test_every_dataset_checks_the_shared_options_first(name: str, option: str, value) -> None:
    """Before looking for any file: a bad shared option is named whatever the dataset."""
    with pytest.raises(ConvattnError, match=f"data.{option}={value}"):
        get_dataset(name)(**{option: value})


# ---------------------------------------------------------------- digits


@pytest.fixture(scope="module")
def digits() -> DigitsDataModule:
    dm = DigitsDataModule(img_size=32)
    dm.setup()
    return dm


def test_split_sizes_cover_all_images_once(digits: DigitsDataModule) -> None:
    sizes = {k: len(v) for k, v in digits.datasets.items()}
    assert sum(sizes.values()) == 1797
    assert sizes["test"] == pytest.approx(0.2 * 1797, abs=1)
    assert sizes["val"] == pytest.approx(0.1 * 1797, abs=1)


def test_split_is_stratified(digits: DigitsDataModule) -> None:
    for split in digits.datasets.values():
        share = torch.bincount(split.labels, minlength=10).float() / len(split)
        assert share.min() > 0.08 and share.max() < 0.12  # each digit is ~10 % everywhere


def test_split_is_fixed_by_split_seed_not_training_seed() -> None:
    torch.manual_seed(123)
    a = DigitsDataModule()
    a.setup()
    torch.manual_seed(456)
    b = DigitsDataModule()
    b.setup()
    c = DigitsDataModule(split_seed=1)
    c.setup()
    assert torch.equal(a.datasets["test"].images, b.datasets["test"].images)
    assert not torch.equal(a.datasets["test"].labels, c.datasets["test"].labels)


@pytest.mark.parametrize("img_size", [8, 28, 64])
def test_images_are_resized_and_normalised(img_size: int) -> None:
    dm = DigitsDataModule(img_size=img_size)
    dm.setup()
    raw = dm.datasets["train"].images  # held in [0, 1]; normalised per batch on the device
    assert raw.shape[1:] == (1, img_size, img_size) and raw.dtype == torch.float32
    assert raw.min() >= 0 and raw.max() <= 1
    x = dm.transform(raw, train=False)
    assert x.mean().abs() < 1e-4 and (x.std() - 1).abs() < 1e-3


def test_digits_are_not_augmented_by_default(digits: DigitsDataModule) -> None:
    raw = digits.datasets["train"].images[:64]
    assert torch.equal(digits.transform(raw, train=True), digits.transform(raw, train=False))


def test_loader_yields_whole_batches(digits: DigitsDataModule) -> None:
    x, y = next(iter(digits.train_dataloader()))
    assert x.shape == (64, 1, 32, 32) and y.shape == (64,) and y.dtype == torch.long
    assert int(y.min()) >= 0 and int(y.max()) <= 9


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [({"img_size": 4}, "data.img_size=4"), ({"val_fraction": 0.5, "test_fraction": 0.6}, "0.6")],
)
def test_bad_values_are_named(kwargs: dict, named: str) -> None:
    with pytest.raises(ConvattnError, match=named):
        DigitsDataModule(**kwargs)


def test_channel_stats_match_torch_for_uint8_and_float() -> None:
    from convattn.data.in_memory import channel_stats

    images = torch.randint(0, 256, (300, 3, 9, 7), dtype=torch.uint8)
    images[:, 1] //= 4  # channels with different moments
    reference = images.double() / 255
    expected_mean = reference.mean(dim=(0, 2, 3))
    expected_std = reference.std(dim=(0, 2, 3), unbiased=False)
    for batch in (images, reference.float()):  # the histogram path and the float path
        mean, std = channel_stats(batch, chunk=64)
        assert torch.allclose(torch.tensor(mean, dtype=torch.float64), expected_mean, atol=1e-6)
        assert torch.allclose(torch.tensor(std, dtype=torch.float64), expected_std, atol=1e-6)


def test_workers_per_rank_share_the_cores(monkeypatch) -> None:
    from convattn.data import image_folder

    monkeypatch.setattr(image_folder, "available_cores", lambda: 8)
    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
    assert [image_folder.cores_per_rank(n) for n in (1, 2, 3, 16)] == [8, 4, 2, 1]
    # Inside a Slurm step each task is one rank with cpus_per_task CPUs of its own.
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "3")
    assert image_folder.cores_per_rank(2) == 8 // 2  # outside a step: the machine's share
    monkeypatch.setenv("SLURM_STEP_ID", "0")
    assert image_folder.cores_per_rank(2) == 3

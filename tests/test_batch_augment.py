"""Batch augmentation on the device: crop/flip/RandAugment ops, normalisation, and the
LightningDataModule hook that augments training batches only."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import lightning as L
import pytest
import torch
from helpers.data_formats import write_cifar

from convattn.data.batch_augment import (
    RAND_OPS,
    BatchTransform,
    apply_chosen,
    rand_augment,
    random_crop,
    random_hflip,
    translate,
    translate_x,
    translate_y,
)
from convattn.data.torchvision_sets import CIFAR10DataModule

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def cifar_root(tmp_path_factory) -> Path:
    return write_cifar(tmp_path_factory.mktemp("cifar10"), fine=False, n_train=100, n_test=20)


# ---------------------------------------------------------------- batch augmentation
def test_translate_moves_content_and_fills() -> None:
    x = torch.arange(16, dtype=torch.uint8).view(1, 1, 4, 4)
    out = translate(x, torch.tensor([1]), torch.tensor([-2]))
    assert out[0, 0].tolist() == [[0, 0, 0, 0], [2, 3, 0, 0], [6, 7, 0, 0], [10, 11, 0, 0]]


@pytest.mark.parametrize("hflip", [False, True])
def test_random_crop_is_a_padded_crop_per_sample(hflip: bool) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(1, 256, (64, 3, 8, 8), dtype=torch.uint8, generator=g)
    out = random_crop(x, padding=2, hflip=hflip, generator=g)
    assert out.shape == x.shape and out.dtype == x.dtype
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    offsets, flips = [], []
    for i in range(len(x)):
        found = [
            (r, c, flipped)
            for r in range(5)
            for c in range(5)
            for flipped in (False, True)
            if torch.equal(
                padded[i, :, r : r + 8, c : c + 8], out[i].flip(-1) if flipped else out[i]
            )
        ]
        assert found, f"sample {i} is not a (mirrored) crop of its padded image"
        offsets.append(found[0][:2])
        flips.append(found[0][2])
    assert len(set(offsets)) > 10  # offsets differ per sample, and most images moved
    assert sum(o != (2, 2) for o in offsets) > 48
    assert (20 < sum(flips) < 44) if hflip else not any(flips)


def test_hflip_flips_about_half() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(200, 1, 4, 5, generator=g)
    out = random_hflip(x, generator=g)
    flipped = torch.tensor([torch.equal(o, xi.flip(-1)) for o, xi in zip(out, x, strict=True)])
    kept = torch.tensor([torch.equal(o, xi) for o, xi in zip(out, x, strict=True)])
    assert bool((flipped | kept).all()) and 60 < int(flipped.sum()) < 140


def test_rand_augment_stays_in_range_and_is_off_at_zero() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(32, 3, 16, 16, generator=g)
    assert torch.equal(rand_augment(x, magnitude=0), x)
    out = rand_augment(x, magnitude=9, num_ops=2, generator=g)
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    changed = (out - x).abs().flatten(1).amax(1) > 1e-3
    assert bool(changed.all())  # every image got 2 ops, each changes it at magnitude 9


Op = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def per_op_loop(
    x: torch.Tensor, chosen: torch.Tensor, fns: Sequence[Op], level: torch.Tensor
) -> torch.Tensor:
    """Reference: each op applied to just the images that chose it, in turn."""
    x = x.clone()
    for j, fn in enumerate(fns):
        index = chosen[:, j].nonzero().squeeze(1)
        if len(index):
            x[index] = fn(x[index], level[index])
    return x


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_apply_chosen_matches_a_per_op_loop(dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(0)
    b = 24
    if dtype == torch.uint8:  # geometric ops work on any dtype, as does inverting
        x = torch.randint(0, 256, (b, 3, 8, 8), dtype=dtype, generator=g)
        fns: list[Op] = [translate_x, lambda x, _: x.flip(-2), translate_y, lambda x, _: 255 - x]
    else:
        x = torch.rand(b, 3, 8, 8, generator=g)
        fns = list(RAND_OPS.values())
    chosen = torch.rand(b, len(fns), generator=g) < 0.5
    chosen[:, 1] = False  # an op nobody chose
    chosen[0], chosen[1] = False, True  # an image with no op, one with every op
    level = torch.rand(b, generator=g) * 2 - 1
    before = x.clone()
    out = apply_chosen(x, chosen, fns, level)
    assert out.dtype == dtype and torch.equal(x, before)  # the input is left alone
    torch.testing.assert_close(out, per_op_loop(x, chosen, fns, level), rtol=0, atol=1e-6)
    assert torch.equal(out[0], x[0]) and not torch.equal(out[1], x[1])
    if dtype == torch.uint8:  # a photometric op on uint8 is a mistake, not a silent cast
        with pytest.raises(TypeError, match="uint8"):
            apply_chosen(x, chosen, [RAND_OPS["brightness"]], level)


def test_rand_augment_matches_a_per_op_loop() -> None:
    """Same draws from the generator, same ops and levels, as choosing per image and looping."""
    x = torch.rand(40, 3, 12, 12, generator=torch.Generator().manual_seed(1))
    out = rand_augment(x, magnitude=7, num_ops=2, generator=torch.Generator().manual_seed(2))
    g = torch.Generator().manual_seed(2)
    order = torch.rand(len(x), len(RAND_OPS), generator=g).argsort(dim=1)
    chosen = torch.zeros(len(x), len(RAND_OPS), dtype=torch.bool).scatter_(1, order[:, :2], True)
    level = (torch.randint(0, 2, (len(x),), generator=g) * 2 - 1).float() * 0.7
    expected = per_op_loop(x, chosen, list(RAND_OPS.values()), level)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)


def test_training_transform_has_no_data_dependent_host_sync() -> None:
    """A host sync (.nonzero(), .item(), len() or `if` of a tensor) is a data-dependent graph
    break, which fullgraph=True turns into an error: a check that runs without a GPU."""
    transform = BatchTransform((0.5, 0.4, 0.3), (0.2, 0.2, 0.2), 4, True, 9)
    x = torch.randint(0, 256, (8, 3, 8, 8), dtype=torch.uint8)
    # Dynamo cannot trace a torch.Generator argument, so this draws from the global RNG.
    torch._dynamo.reset()
    try:
        with torch.random.fork_rng():
            compiled = torch.compile(transform, fullgraph=True, backend="eager")
            torch.manual_seed(0)
            out = compiled(x, train=True)
            torch.manual_seed(0)
            assert torch.equal(out, transform(x, train=True))
    finally:
        torch._dynamo.reset()


def test_normalised_training_set_has_zero_mean_unit_std(cifar_root) -> None:
    dm = CIFAR10DataModule(root=cifar_root)
    dm.setup()
    x = dm.transform(dm.datasets["train"].images, train=False)
    assert x.dtype == torch.float32
    assert x.mean(dim=(0, 2, 3)).abs().max() < 1e-4
    assert (x.std(dim=(0, 2, 3)) - 1).abs().max() < 1e-2


class Recorder(L.LightningModule):
    """Records what the hook hands to the steps."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(1, 1)
        self.seen: dict[str, torch.Tensor] = {}

    def training_step(self, batch, batch_idx):
        self.seen["train"] = batch[0]
        return self.layer(batch[0].mean().view(1, 1)).sum()

    def validation_step(self, batch, batch_idx):
        self.seen["val"] = batch[0]

    def test_step(self, batch, batch_idx):
        self.seen["test"] = batch[0]

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)


def test_hook_augments_training_batches_only(cifar_root) -> None:
    dm = CIFAR10DataModule(
        root=cifar_root, batch_size=90, eval_batch_size=90, crop_padding=4, hflip=True
    )
    trainer = L.Trainer(
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    module = Recorder()
    trainer.fit(module, datamodule=dm)
    trainer.test(module, datamodule=dm, verbose=False)
    for split in ("train", "val", "test"):
        assert module.seen[split].dtype == torch.float32
        assert module.seen[split].device == module.device
    plain = {s: dm.transform(dm.datasets[s].images, train=False) for s in ("val", "test")}
    assert torch.equal(module.seen["val"], plain["val"])  # shuffle=False: same order
    assert torch.equal(module.seen["test"], plain["test"])
    # Training batches are shuffled and augmented: no training image comes out unchanged.
    train_plain = dm.transform(dm.datasets["train"].images, train=False).flatten(1)
    seen = module.seen["train"].flatten(1)
    matches = (seen[:, None] == train_plain[None]).all(-1).any(-1)
    assert int(matches.sum()) < 10


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_transform_runs_on_the_batch_device() -> None:
    transform = BatchTransform((0.5, 0.4, 0.3), (0.2, 0.2, 0.2), 4, True, 9)
    x = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8)
    for train_mode in (True, False):
        out = transform(x.cuda(), train=train_mode)
        assert out.is_cuda and out.dtype == torch.float32 and out.shape == x.shape
    assert torch.allclose(transform(x.cuda(), train=False).cpu(), transform(x, train=False))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_training_transform_never_syncs_with_the_host_on_cuda() -> None:
    transform = BatchTransform((0.5, 0.4, 0.3), (0.2, 0.2, 0.2), 4, True, 9)
    x = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8, device="cuda")
    transform(x, train=True)  # warm-up: caches mean/std on the device
    torch.cuda.set_sync_debug_mode("error")
    try:
        transform(x, train=True)  # raises on any device -> host synchronisation
    finally:
        torch.cuda.set_sync_debug_mode("default")

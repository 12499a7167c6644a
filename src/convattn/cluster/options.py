"""Rules of the settings that meet the hardware: the seed every rank derives its streams from,
and torch.compile against SyncBatchNorm. No torch: checked before the heavy imports
(`convattn.config.check`) and again where they are used (`seed_everything`, the trainer)."""

from __future__ import annotations

from typing import Any

from convattn.errors import ConvattnError

MAX_SEED = 2**32 - 1  # numpy's limit; Lightning replaces a seed outside it by a random one


def check_seed(seed: object) -> int:
    """An integer in [0, 2**32 - 1]: anything else is a mistake, never silently replaced by a
    random seed as Lightning would."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ConvattnError(
            f"seed={seed!r} is not a seed: it must be an integer in [0, {MAX_SEED}] "
            "(e.g. seed=42; a sweep over seeds: -m seed=0,1,2)."
        )
    return seed


def check_compile_with_sync_batchnorm(compile: Any, sync_batchnorm: Any) -> None:
    """torch.compile cannot trace SyncBatchNorm's collectives without graph breaks (and open
    PyTorch issues report errors), so the two are not combined silently."""
    if compile and sync_batchnorm:
        raise ConvattnError(
            "recipe.compile=true with trainer.sync_batchnorm=true (trainer=ddp sets it): "
            "torch.compile breaks its graph at every SyncBatchNorm. Choose one: "
            "trainer.sync_batchnorm=false (each GPU normalises its own share of the batch, fine "
            "from about 16 images per GPU) or recipe.compile=false."
        )

"""Callbacks that record what happened inside a real training run, for tests to read back.

Added with `+callbacks.<name>._target_=helpers.probes.<Class>`; each writes a JSON file.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from lightning.pytorch import Callback, LightningModule, Trainer


class ActivationDtypes(Callback):
    """Write the dtypes of the backbone's outputs during training steps to `out`."""

    def __init__(self, out: str) -> None:
        self.out = Path(out)
        self.dtypes: set[str] = set()

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        def hook(_module: torch.nn.Module, _inputs: object, output: torch.Tensor) -> None:
            self.dtypes.add(str(output.dtype))

        self.handle = pl_module.backbone.register_forward_hook(hook)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.handle.remove()
        self.out.write_text(json.dumps(sorted(self.dtypes)))


class TestedWeights(Callback):
    """Write a checksum of the weights `trainer.test` runs with (per tensor sum) to `out`."""

    def __init__(self, out: str) -> None:
        self.out = Path(out)

    def on_test_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        sums = {k: float(v.double().sum()) for k, v in pl_module.state_dict().items()}
        self.out.write_text(json.dumps(sums))


class RankStreams(Callback):
    """Per rank, per step: a digest of torch's RNG state at the start of the step (what draws
    crops, flips, RandAugment ops and dropout masks), written to `out/rank<r>.json`."""

    def __init__(self, out: str) -> None:
        self.out = Path(out)
        self.digests: dict[int, str] = {}

    def on_train_batch_start(self, trainer: Trainer, module: LightningModule, *_: object) -> None:
        state = torch.get_rng_state().numpy().tobytes()
        self.digests[trainer.global_step] = hashlib.sha256(state).hexdigest()[:16]

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        path = self.out / f"rank{trainer.global_rank}.json"
        path.write_text(json.dumps({str(k): v for k, v in self.digests.items()}))


class NaNOnRank(Callback):
    """Make the training batch of one rank NaN at one step (the others stay finite)."""

    def __init__(self, step: int, rank: int) -> None:
        self.step, self.rank = step, rank

    def on_train_batch_start(
        self, trainer: Trainer, module: LightningModule, batch: object, *_: object
    ) -> None:
        if trainer.global_step == self.step and trainer.global_rank == self.rank:
            batch[0].fill_(float("nan"))


class MixedBatches(Callback):
    """Wrap the run's own mixup and write what it did to each training batch to `out`."""

    def __init__(self, out: str) -> None:
        self.out = Path(out)
        self.batches: list[dict] = []

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        inner, batches = pl_module.mixup, self.batches

        def mix(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            before = x.clone()
            mixed, soft = inner(x, y)
            batches.append({
                "targets_shape": list(soft.shape),
                "rows_sum_to_one": bool(torch.allclose(soft.sum(1), torch.ones(len(soft)))),
                "soft": bool((soft.max(1).values < 1).any()),
                "images_changed": not torch.equal(mixed, before),
            })  # fmt: skip
            return mixed, soft

        pl_module.mixup = mix

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.out.write_text(json.dumps(self.batches))


class PauseAtStep(Callback):
    """At global step `step`, write `marker` and wait (at most `timeout` s) until `release`
    exists: a run held mid-training, for tests of what another process sees meanwhile."""

    def __init__(self, step: int, marker: str, release: str, timeout: float = 120) -> None:
        self.step, self.marker, self.release = step, Path(marker), Path(release)
        self.timeout = timeout

    def on_train_batch_start(self, trainer: Trainer, *args: object) -> None:
        if trainer.global_step != self.step:
            return
        import time

        self.marker.write_text("paused")
        deadline = time.monotonic() + self.timeout
        while not self.release.exists() and time.monotonic() < deadline:
            time.sleep(0.05)

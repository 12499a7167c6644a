"""The Lightning internals convattn relies on, each checked so that an upgrade that changes one
fails here, by name, rather than silently breaking resume or preemption.

- `resume.restore_loader_position` (workaround for Lightning #20550): the fit loop's
  `_combined_loader_states_to_load`, `_load_combined_loader_states()` and `_data_fetcher`;
- `slurm.requeue_on_signal`: `trainer._signal_connector.received_sigterm`, the flag Lightning
  checks after every batch (and broadcasts from rank 0) to stop with a `SIGTERMException`.
"""

from __future__ import annotations

import lightning as L
import pytest
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.demos.boring_classes import BoringModel
from lightning.pytorch.utilities.exceptions import SIGTERMException

from convattn.run.resume import restore_loader_position


def trainer(**kwargs) -> L.Trainer:
    return L.Trainer(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **kwargs,
    )


def test_fit_loop_keeps_loader_states_where_resume_reads_them() -> None:
    loop = trainer(max_steps=1).fit_loop
    assert loop._combined_loader_states_to_load == []
    assert callable(loop._load_combined_loader_states)
    assert hasattr(loop, "_data_fetcher") and hasattr(loop, "restarting")


def test_restore_loader_position_is_a_no_op_on_a_fresh_run() -> None:
    seen = []

    class Probe(Callback):
        def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
            restore_loader_position(trainer)  # not restarting: must not touch the loader
            seen.append(trainer.fit_loop.restarting)

    trainer(max_steps=2, callbacks=[Probe()]).fit(BoringModel())
    assert seen == [False]


def test_the_sigterm_flag_stops_fit_at_the_end_of_the_batch() -> None:
    steps = []

    class RaiseFlag(Callback):
        def on_train_batch_start(self, trainer: L.Trainer, *_: object) -> None:
            steps.append(trainer.global_step)
            if trainer.global_step == 3:
                trainer._signal_connector.received_sigterm = True

    fit = trainer(max_steps=10, callbacks=[RaiseFlag()])
    with pytest.raises(SIGTERMException):
        fit.fit(BoringModel())
    assert steps == [0, 1, 2, 3] and fit.global_step == 4  # batch 3 finished, none after it

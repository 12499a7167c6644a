"""The run's own options: the top-level keys (`seed`, `resume`, ...) and the trainer's, with
their rules, importable without torch. Checked before the heavy imports
(`convattn.config.check`) and again where each is used (`fit_checkpoint`, `train()`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from convattn.cluster.options import check_seed
from convattn.errors import ConvattnError
from convattn.utils.checks import integer, optional, real
from convattn.utils.typed import check_value, typed

RESUME_MODES = ("auto", "force")


@dataclass
class RunOptions:
    """Top-level keys of `conf/train.yaml` and `conf/eval.yaml` (the groups are checked by
    their own options); other top-level keys are left to the task."""

    task_name: str = "train"
    tags: list[str] | None = None
    seed: Any = 42  # an int in [0, MAX_SEED]: `check_seed` says so in one paragraph
    train: bool = True
    test: bool = True
    ckpt_path: str | None = None
    resume: str = "auto"
    optimized_metric: str | None = None
    print_config: bool = True
    profile: bool = True
    split: str = "test"


@dataclass
class TrainerOptions:
    """The Lightning Trainer arguments convattn's configs set; others pass to Lightning as
    they are (it checks them when it builds the trainer)."""

    max_epochs: int | None = None
    max_steps: int = -1
    min_epochs: int | None = None
    min_steps: int | None = None
    accelerator: str = "auto"
    precision: Any = "32-true"  # 32-true | bf16-mixed | 16-mixed | 64 | ...
    gradient_clip_val: float | None = None
    accumulate_grad_batches: int = 1
    check_val_every_n_epoch: int | None = 1
    val_check_interval: Any = None  # an int (batches) or a float (a share of the epoch)
    log_every_n_steps: int = 50
    num_sanity_val_steps: int = 2
    sync_batchnorm: bool = False
    use_distributed_sampler: bool = True
    deterministic: Any = None  # true | false | warn
    benchmark: bool | None = None
    enable_checkpointing: bool | None = None
    enable_progress_bar: bool | None = None


def check_resume_mode(mode: Any) -> None:
    if mode not in RESUME_MODES:
        raise ConvattnError(
            f"resume={mode!r} is not a resume mode; use resume=auto (resume a run dir of the same "
            "experiment, refuse another) or resume=force (resume it whatever the settings)."
        )


def check_budget(max_epochs: Any, max_steps: Any) -> None:
    """An endless run is a mistake on a shared cluster: max_epochs=-1 needs max_steps."""
    steps = -1 if max_steps is None else max_steps
    if max_epochs is not None and max_epochs < 1 and steps < 1:
        raise ConvattnError(
            f"trainer.max_epochs={max_epochs} with trainer.max_steps={max_steps} would train "
            "forever; set trainer.max_epochs to 1 or more, or set trainer.max_steps (e.g. "
            "trainer.max_epochs=-1 trainer.max_steps=5000)."
        )


def check_trainer(values: dict[str, Any]) -> TrainerOptions:
    """`trainer.*`: the types of the keys convattn sets, the budget, the counts' ranges."""
    trainer = typed(TrainerOptions, values, "trainer", closed=False)
    check_budget(trainer.max_epochs, trainer.max_steps)
    for key in ("accumulate_grad_batches", "log_every_n_steps"):
        check_value(f"trainer.{key}", integer(1), getattr(trainer, key))
    every = trainer.check_val_every_n_epoch
    check_value("trainer.check_val_every_n_epoch", optional(integer(1)), every,
                "null: validate by val_check_interval")  # fmt: skip
    check_value("trainer.gradient_clip_val", optional(real(0)), trainer.gradient_clip_val,
                "null turns clipping off")  # fmt: skip
    return trainer


def check_run(values: dict[str, Any]) -> RunOptions:
    """The top-level keys: their types, the seed and the resume mode."""
    scalars = {k: v for k, v in values.items() if not isinstance(v, dict)}
    run = typed(RunOptions, scalars, "", closed=False)
    check_seed(values.get("seed"))
    check_resume_mode(run.resume)
    if run.split not in ("test", "val"):
        raise ConvattnError(f"split={run.split!r} is not a split; use split=test or split=val.")
    return run

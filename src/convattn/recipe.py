"""The training recipe's options (`conf/recipe`): types and rules, importable without torch.

Checked before the heavy imports (`convattn.config.check`) and again by `ImageClassifier`
when it is built, from a config or from a checkpoint's saved hyperparameters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from convattn.errors import ConvattnError
from convattn.utils.checks import real, sequence
from convattn.utils.typed import check_value, typed

NON_NEGATIVE = real(0)
FRACTION = real(0, 1)


@dataclass
class OptimizerOptions:
    """AdamW's by default; another `torch.optim` class may take other keyword arguments."""

    _target_: str = "torch.optim.AdamW"
    _partial_: bool = True
    lr: float = 2.0e-3
    weight_decay: float = 0.05
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])


@dataclass
class SchedulerOptions:
    warmup_epochs: float = 3.0
    warmup_start_factor: float = 0.01
    min_lr: float = 1.0e-5


@dataclass
class MixupOptions:
    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0
    prob: float = 1.0
    switch_prob: float = 0.5


@dataclass
class RecipeOptions:
    optimizer: OptimizerOptions = field(default_factory=OptimizerOptions)
    scheduler: SchedulerOptions = field(default_factory=SchedulerOptions)
    label_smoothing: float = 0.0
    class_weights: Any = None  # null | balanced | a list of numbers, one per class
    mixup: MixupOptions = field(default_factory=MixupOptions)
    channels_last: bool = False
    compile: bool = False


def check_recipe(
    optimizer: dict[str, Any],
    scheduler: dict[str, Any] | None = None,
    label_smoothing: Any = 0.0,
    mixup: dict[str, Any] | None = None,
    class_weights: Any = None,
    num_classes: int | None = None,
) -> None:
    """Numbers that would train silently wrong (or NaN), one paragraph for the first."""
    example = "a finite number >= 0, e.g. 1e-3"
    typed(OptimizerOptions, optimizer, "recipe.optimizer", closed=False)
    for key in ("lr", "weight_decay"):
        if optimizer.get(key) is not None:
            check_value(f"recipe.optimizer.{key}", NON_NEGATIVE, optimizer[key], example)
    if "betas" in optimizer:
        check_value("recipe.optimizer.betas", sequence(FRACTION, 2), optimizer["betas"])
    scheduler = typed(SchedulerOptions, scheduler or {}, "recipe.scheduler")
    check_value("recipe.scheduler.warmup_epochs", NON_NEGATIVE, scheduler.warmup_epochs)
    check_value("recipe.scheduler.warmup_start_factor", FRACTION, scheduler.warmup_start_factor)
    check_value("recipe.scheduler.min_lr", NON_NEGATIVE, scheduler.min_lr)
    check_value("recipe.label_smoothing", real(0, 1, open_high=True), label_smoothing, "e.g. 0.1")
    mixup = typed(MixupOptions, mixup or {}, "recipe.mixup", closed=False)
    for key in ("mixup_alpha", "cutmix_alpha"):
        check_value(f"recipe.mixup.{key}", NON_NEGATIVE, getattr(mixup, key), "0 turns it off")
    for key in ("prob", "switch_prob"):
        check_value(f"recipe.mixup.{key}", FRACTION, getattr(mixup, key))
    check_class_weights(class_weights, num_classes)
    if class_weights is not None and (mixup.mixup_alpha > 0 or mixup.cutmix_alpha > 0):
        raise ConvattnError(
            f"recipe.class_weights={class_weights!r} cannot be combined with "
            "mixup/cutmix (soft targets); set recipe.mixup.mixup_alpha=0 and "
            "recipe.mixup.cutmix_alpha=0, or recipe.class_weights=null."
        )


def check_class_weights(weights: Any, num_classes: int | None) -> None:
    """null, 'balanced', or one non-negative number per class (`num_classes`, when known)."""
    if weights is None or weights == "balanced":
        return
    count = "" if num_classes is None else f"{num_classes} "
    if (
        isinstance(weights, str)
        or not isinstance(weights, (list, tuple))
        or (num_classes is not None and len(weights) != num_classes)
    ):
        raise ConvattnError(
            f"recipe.class_weights={weights!r} must be null, 'balanced' or a list of "
            f"{count}numbers (one per class)."
        )
    check_value("recipe.class_weights", sequence(NON_NEGATIVE), list(weights))


def check_recipe_config(recipe: dict[str, Any], num_classes: int | None) -> None:
    """`recipe.*` of a composed config: its types, then `check_recipe`."""
    typed(RecipeOptions, {k: v for k, v in recipe.items() if not isinstance(v, dict)}, "recipe")
    check_recipe(
        recipe.get("optimizer") or {},
        recipe.get("scheduler"),
        recipe.get("label_smoothing", 0.0),
        recipe.get("mixup"),
        recipe.get("class_weights"),
        num_classes,
    )

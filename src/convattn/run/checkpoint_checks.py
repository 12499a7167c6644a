"""What a checkpoint or run dir may hold: the one `_target_` allow-list, and typed checks of a
checkpoint's contents and hyperparameters against what convattn-train writes."""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

import torch

from convattn.backbones.registry import MODEL_FACTORY, arm_builder, list_arms, list_presets
from convattn.classifier import ImageClassifier
from convattn.data.registry import find_dataset
from convattn.errors import ConvattnError
from convattn.utils.checks import (
    Check,
    Wrong,
    boolean,
    integer,
    mapping,
    optional,
    real,
    sequence,
    shown,
    text,
)
from convattn.utils.config_tree import TARGET, find_targets

OPTIMIZER_TARGET = re.compile(r"torch\.optim\.[A-Z][A-Za-z0-9]*")
SECTIONS = ("model", "optimizer", "data")


def allowed_target(section: str, target: Any) -> bool:
    """Whether a checkpoint or run dir may name `target` as the `_target_` of its `section`:
    the model convattn's backbone factory, the optimizer a `torch.optim` class, the data a
    registered data module (`convattn.data.registry`). Nothing else, anywhere."""
    if not isinstance(target, str):
        return False
    if section == "model":
        return target == MODEL_FACTORY
    if section == "optimizer":
        return OPTIMIZER_TARGET.fullmatch(target) is not None
    if section == "data":
        return find_dataset(target) is not None
    raise ValueError(f"unknown config section {section!r}; one of {', '.join(SECTIONS)}")


def check_section(
    section: str, config: dict[str, Any], path: str = "", default: str | None = None
) -> tuple[bool, list[str]]:
    """One section of a config read from disk: (whether its own `_target_` may be named there,
    where other `_target_` keys sit below it as dotted paths under `path`). A missing
    `_target_` stands for `default`; with no default, leaving it out (or null) is allowed."""
    target = config.get(TARGET, default)
    allowed = (target is None and default is None) or allowed_target(section, target)
    return allowed, find_targets({k: v for k, v in config.items() if k != TARGET}, path)


def tensors(value: Any) -> dict[str, torch.Tensor]:
    """A state_dict: parameter names to tensors, as Lightning saves it."""
    if not isinstance(value, dict):
        raise Wrong("a mapping of parameter names to tensors", value)
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, torch.Tensor):
            raise Wrong("a tensor under a parameter name", item, f"[{shown(key)}]")
    return value


# What a checkpoint holds besides its hyperparameters (checked by `checked_hparams`); the rest
# (loop and optimizer states) only Lightning reads, when a run resumes.
CHECKPOINT_CHECKS: dict[str, Check] = {
    "state_dict": tensors,
    "global_step": integer(0),
    "epoch": integer(-1),  # Lightning saves -1 before the first epoch ends
    "pytorch-lightning_version": text(),
}


def checked_value(check: Check, value: Any, key: str, source: Path) -> Any:
    """`check(value)`, or the one paragraph naming the file, the key and what it should be."""
    try:
        return check(value)
    except Wrong as wrong:
        raise ConvattnError(
            f"Refusing to load {source}: its {key}{wrong.where} is {shown(wrong.value)}, but "
            f"must be {wrong.expected}. convattn-train never writes that: the file was altered "
            "or comes from another program. Pass a checkpoint that convattn-train wrote (a run "
            "dir, or its checkpoints/best.ckpt)."
        ) from None


def checked_hparams(hparams: Any, source: Path) -> dict[str, Any]:
    """The classifier's saved hyperparameters, refused unless they are plain convattn ones:
    first what they may name (`_target_`s, argument names), then each argument's type and
    range as convattn-train saves it (`HPARAM_CHECKS`, `backbone_config`), so that building
    the model never meets a value it would crash on."""
    if not isinstance(hparams, dict) or not isinstance(hparams.get("backbone"), dict):
        raise ConvattnError(
            f"{source} holds no convattn model hyperparameters; pass a checkpoint that "
            "convattn-train wrote."
        )
    hparams = dict(hparams)
    optimizer = hparams.get("optimizer")
    optimizer = optimizer if isinstance(optimizer, dict) else {}  # its type: checked below
    backbone = hparams["backbone"]
    problems = []
    optimizer_ok, optimizer_nested = check_section("optimizer", optimizer, "optimizer")
    if not optimizer_ok:
        problems.append(f"optimizer _target_={optimizer['_target_']!r} (only torch.optim classes)")
    model_ok, model_nested = check_section("model", backbone, "backbone", default=MODEL_FACTORY)
    if not model_ok:
        problems.append(f"model _target_={backbone['_target_']!r}")
    rest = {k: v for k, v in hparams.items() if k not in ("optimizer", "backbone")}
    nested = find_targets(rest) + optimizer_nested + model_nested
    problems += [f"a _target_ at {where}" for where in nested]
    unknown = set(hparams) - set(inspect.signature(ImageClassifier).parameters)
    problems += [f"an unknown hyperparameter {name!r}" for name in sorted(unknown)]
    if problems:
        raise ConvattnError(
            f"Refusing to load {source}: its saved config names {'; '.join(problems)}. A "
            "convattn checkpoint builds only convattn's backbones with plain values; this file "
            "was not written by convattn-train or was altered. Nothing in it was run."
        )
    missing = [name for name in REQUIRED_HPARAMS if name not in hparams]
    if missing:
        raise ConvattnError(
            f"Refusing to load {source}: its hyperparameters lack {', '.join(missing)}, which "
            "convattn-train always saves; the file was altered or comes from another program."
        )
    for name, check in HPARAM_CHECKS.items():
        if name in hparams:
            hparams[name] = checked_value(check, hparams[name], f"hyperparameter {name}", source)
    n = hparams["num_classes"]
    for name, check in (
        ("class_weights", sequence(NON_NEGATIVE, n)),
        ("class_names", sequence(text(), n)),
    ):
        checked_value(optional(check), hparams.get(name), f"hyperparameter {name}", source)
    checked_value(backbone_config, backbone, "hyperparameter backbone", source)
    return hparams


def plain(value: Any) -> Any:
    """Plain config data (what Hydra resolves a YAML file to): null, bools, 64-bit ints,
    finite floats, strings, and lists and string-keyed mappings of them."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return integer()(value)
    if isinstance(value, float):
        return real()(value)
    if isinstance(value, (list, tuple)):
        return sequence(plain)(value)
    if isinstance(value, dict):
        return mapping(plain)(value)
    raise Wrong(
        "plain config data (null, true/false, a number, a string, a list, a mapping)", value
    )


def keyed(checks: dict[str, Check], closed: bool = False) -> Check:
    """A mapping whose keys in `checks` pass their check, the other keys plain data (no other
    keys when `closed`)."""

    def check(value: Any) -> dict[str, Any]:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise Wrong("a mapping of names to values", value)
        out = {}
        for key, item in value.items():
            if closed and key not in checks:
                raise Wrong(f"one of {', '.join(checks)}", key, " (a key)")
            try:
                out[key] = checks.get(key, plain)(item)
            except Wrong as wrong:
                raise Wrong(wrong.expected, wrong.value, f".{key}{wrong.where}") from None
        return out

    return check


def backbone_config(value: dict[str, Any]) -> dict[str, Any]:
    """A `conf/model` config: a registered arm, one of its size presets (or null), and only
    keyword arguments its builder takes, each of the type its builder annotates."""
    if not all(isinstance(k, str) for k in value):
        raise Wrong("a mapping of names to values", value)
    value = dict(value)
    arm = value.get("arm")
    if arm not in list_arms():
        raise Wrong(f"one of the registered arms {', '.join(list_arms())}", arm, ".arm")
    size = value.get("size")
    if size is not None and size not in list_presets(arm):
        raise Wrong(
            f"a size preset of {arm} ({', '.join(list_presets(arm))}) or null", size, ".size"
        )
    parameters = inspect.signature(arm_builder(arm)).parameters
    taken = set(parameters) - {"in_chans", "num_classes", "img_size"}
    for key, item in value.items():
        if key in ("_target_", "arm", "size"):
            continue
        if key not in taken:
            raise Wrong(
                f"an argument of the {arm} arm ({', '.join(sorted(taken))})", key, " (a key)"
            )
        check = optional(arm_argument(key, str(parameters[key].annotation)))
        value[key] = keyed({key: check})({key: item})[key]  # null: the preset's value
    return value


ARM_INT = integer(0, 8192)  # widths, depths, heads, patch sizes: far past any preset


def arm_argument(name: str, annotation: str) -> Check:
    """The check of an arm's keyword argument, from its builder's annotation: rates in [0, 1],
    other floats in (0, 64], ints and int sequences in [0, 8192] (a width of 2**40 would
    exhaust memory before its weights could be compared), strings, else plain data."""
    if annotation == "float":
        return FRACTION if name.endswith("_rate") else real(0, 64, open_low=True)
    if annotation == "int":
        return ARM_INT
    if annotation == "str":
        return text()
    if annotation.startswith(("tuple[int", "Sequence[int]", "list[int]")):
        return sequence(ARM_INT)
    return plain


NON_NEGATIVE = real(0)
FRACTION = real(0, 1)
REQUIRED_HPARAMS = tuple(
    name
    for name, parameter in inspect.signature(ImageClassifier).parameters.items()
    if parameter.default is inspect.Parameter.empty
)
# Each of ImageClassifier's arguments as convattn-train saves it (`build_classifier`).
OPTIMIZER = {
    "lr": NON_NEGATIVE,
    "weight_decay": NON_NEGATIVE,
    "_partial_": boolean,
    "betas": sequence(FRACTION, 2),
}
SCHEDULER = {"warmup_epochs": NON_NEGATIVE, "warmup_start_factor": FRACTION, "min_lr": NON_NEGATIVE}
MIXUP = {
    "mixup_alpha": NON_NEGATIVE,
    "cutmix_alpha": NON_NEGATIVE,
    "prob": FRACTION,
    "switch_prob": FRACTION,
    "cutmix_minmax": optional(sequence(FRACTION, 2)),
    "mode": text(("batch", "pair", "elem")),
    "correct_lam": boolean,
}
HPARAM_CHECKS: dict[str, Check] = {
    "in_chans": integer(1, 64),
    "num_classes": integer(1, 1_000_000),
    "img_size": integer(1, 4096),
    "optimizer": keyed(OPTIMIZER),
    "scheduler": keyed(SCHEDULER, closed=True),
    "label_smoothing": real(0, 1, open_high=True),
    "mixup": optional(keyed(MIXUP, closed=True)),
    "channels_last": boolean,
    "compile": boolean,
}

"""The config's options, checked before the heavy imports, are the options things are built
with: each arm's and each dataset's declared options match its constructor, and the check
before the imports agrees with the check when building, value for value (property-based)."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from convattn.backbones import create_backbone, list_arms
from convattn.backbones.options import list_arm_options, options_of
from convattn.backbones.registry import arm_builder
from convattn.data import get_dataset, list_datasets
from convattn.data.options import check_data, list_dataset_options, options_of_dataset
from convattn.errors import ConvattnError
from convattn.utils.typed import typed

SHAPE = {"in_chans", "num_classes", "img_size"}
OWN = {"_target_", "arm", "size"}


def fields(cls: type) -> dict[str, Any]:
    return {
        f.name: f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        for f in dataclasses.fields(cls)
    }


def test_every_arm_and_dataset_declares_its_options() -> None:
    assert list_arm_options() == list_arms()
    assert list_dataset_options() == list_datasets()


@pytest.mark.parametrize("arm", list_arms())
def test_arm_options_are_its_builders_arguments(arm: str) -> None:
    """Same names and defaults; an option the presets set defaults to null (the preset's)."""
    options = options_of(arm)
    declared = {k: v for k, v in fields(options).items() if k not in OWN}
    builder = {
        name: p.default
        for name, p in inspect.signature(arm_builder(arm)).parameters.items()
        if name not in SHAPE
    }
    assert set(declared) == set(builder)
    preset_keys = {k for preset in options.PRESETS.values() for k in preset}
    for name, default in declared.items():
        expected = None if name in preset_keys else builder[name]
        expected = list(expected) if isinstance(expected, tuple) else expected
        assert default == expected, name


def constructor_defaults(cls: type) -> dict[str, Any]:
    """Every keyword a data module's `__init__` chain takes, with the nearest default."""
    out: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        init = klass.__dict__.get("__init__")
        if init is None or klass.__module__.startswith(("lightning", "builtins")):
            continue
        for name, p in inspect.signature(init).parameters.items():
            if name != "self" and p.kind is not p.VAR_KEYWORD:
                out[name] = p.default
    return out


@pytest.mark.parametrize("name", list_datasets())
def test_dataset_options_are_its_constructors_arguments(name: str) -> None:
    declared = {k: v for k, v in fields(options_of_dataset(name)).items() if k != "_target_"}
    taken = constructor_defaults(get_dataset(name))
    assert set(declared) == set(taken)
    for key, default in declared.items():
        given_default = list(taken[key]) if isinstance(taken[key], tuple) else taken[key]
        assert default == given_default or str(default) == str(given_default), key


# ---------------------------------------------------------------- the two checks agree
SMALL_INT = st.integers(-2, 40)
WORDS = st.sampled_from(["abc", "avg", "token", "se"])
VALUES = st.one_of(
    SMALL_INT, st.floats(-1, 2), st.just(float("nan")), WORDS, st.none(),
    st.lists(SMALL_INT, max_size=5), st.booleans(),
)  # fmt: skip


def outcome(fn) -> str | None:
    """None if `fn()` passes, else the message of its ConvattnError (anything else fails)."""
    try:
        fn()
    except ConvattnError as err:
        return str(err)
    return None


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_check_before_imports_and_the_build_agree_for_every_arm(data) -> None:
    """For random option values: the config check refuses exactly what building refuses,
    with the same paragraph, and what it passes builds."""
    arm = data.draw(st.sampled_from(list_arms()))
    names = [k for k in fields(options_of(arm)) if k not in OWN]
    chosen = data.draw(st.lists(st.sampled_from(names), max_size=3, unique=True))
    values = {k: data.draw(VALUES) for k in chosen}
    values.setdefault("embed_dim", None)  # keep what passes small enough to build quickly

    def check() -> None:
        typed(options_of(arm), {"arm": arm, "size": "tiny", **values}, "model").check(32)

    before = outcome(check)
    built = outcome(lambda: create_backbone(arm, in_chans=1, num_classes=10, img_size=32, **values))
    assert before == built, (arm, values)


DATA_KEYS = (
    "img_size", "batch_size", "val_fraction", "train_fraction", "imbalance", "crop_padding",
    "test_fraction", "hflip", "split_seed",
)  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(values=st.fixed_dictionaries({}, optional=dict.fromkeys(DATA_KEYS, VALUES)))
def test_the_check_before_imports_and_the_data_module_agree(values: dict) -> None:
    cls = get_dataset("digits")
    target = f"{cls.__module__}.{cls.__qualname__}"
    before = outcome(lambda: check_data({"_target_": target, **values}))
    built = outcome(lambda: cls(**values))
    assert before == built, values

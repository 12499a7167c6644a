"""A command line Hydra cannot compose is a user mistake: keep Hydra's text, add the closest
keys for a typo ("did you mean"), and exit 2 like every other user mistake."""

from __future__ import annotations

import difflib
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from convattn.config.location import CONFIG_DIR
from convattn.utils.config_tree import walk

MISSING = object()


def is_group_override(key: str) -> bool:
    """`model=vit`, `hydra/launcher=slurm`, `+experiment=x`: a config-group choice."""
    key = key.lstrip("+~")
    return "/" in key or (Path(CONFIG_DIR) / key).is_dir()


def split_args(args: list[str]) -> tuple[list[str], list[str]]:
    """(group choices, value overrides) of a command line, sweeps reduced to their first value."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    groups, values = [], []
    for override in OverridesParser.create().parse_overrides([a for a in args if "=" in a]):
        key = override.get_key_element()
        value = (
            next(iter(override.sweep_string_iterator()))
            if override.is_sweep_override()
            else override.get_value_element_as_str()
        )
        (groups if is_group_override(key) else values).append(f"{key}={value}")
    return groups, values


def option_hint(choice: str) -> str | None:
    """One line for `group=option` when conf/ has no such option: the options it has."""
    group, option = choice.lstrip("+~").split("=", 1)
    folder = Path(CONFIG_DIR) / group
    options = sorted(p.stem for p in folder.glob("*.yaml"))
    # hydra/* groups also have Hydra's own options, which are not in conf/
    if group.startswith("hydra/") or not options or option in (*options, "null"):
        return None
    close = difflib.get_close_matches(option, options, n=1, cutoff=0.6)
    guess = f"; did you mean {group}={close[0]}?" if close else "."
    return f"{choice} is not an option of {group}; the options are {', '.join(options)}{guess}"


def typo_hints(config_name: str, args: list[str]) -> list[str] | None:
    """One line per override key the config does not have, with its closest keys; None when
    the command line composes (the failure was not a config mistake)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    GlobalHydra.instance().clear()
    try:
        groups, values = split_args(args)
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            try:
                compose(config_name, overrides=groups + values, return_hydra_config=True)
                return None
            except Exception:
                pass
            base = compose(config_name, overrides=groups, return_hydra_config=True)
    except Exception:  # the group choices themselves fail: name the unknown option
        return [hint for choice in groups if (hint := option_hint(choice))]
    keys = [path for path, _, _ in walk(OmegaConf.to_container(base, resolve=False))]
    hints = []
    for override in values:
        key = override.split("=", 1)[0]
        if (
            key.startswith(("+", "~"))
            or OmegaConf.select(base, key, default=MISSING) is not MISSING
        ):
            continue
        close = difflib.get_close_matches(key, keys, n=3, cutoff=0.6)
        if close:
            hints.append(f"'{key}' is not a config key; did you mean {' or '.join(close)}?")
        else:
            hints.append(f"'{key}' is not a config key; to add a new one write +{key}=...")
    return hints


@contextmanager
def config_mistakes_exit_2(config_name: str) -> Iterator[None]:
    """Around a Hydra main: Hydra exits 1 after printing a composition error; make it exit 2
    and add "did you mean" lines. A task that crashed (it composed fine) keeps its exit 1."""
    try:
        yield
    except SystemExit as stop:
        if stop.code != 1:
            raise
        hints = typo_hints(config_name, [a for a in sys.argv[1:] if not a.startswith("-")])
        if hints is None:
            raise
        for hint in hints:
            print(hint, file=sys.stderr)
        raise SystemExit(2) from None


def hydra_entry(hydra_main: Callable[[], Any], config_name: str) -> Any:
    """Run a `@hydra.main` function so that config mistakes exit 2 with suggestions."""
    with config_mistakes_exit_2(config_name):
        return hydra_main()

"""User-facing errors: one clear paragraph, never a traceback."""

from __future__ import annotations

from typing import Any


class ConvattnError(Exception):
    """A mistake in the user's input (config value, path, data).

    Entry points print its message and exit with status 2 instead of showing a traceback.
    The message names the offending value and what would be valid.
    """


def check_choice(name: str, value: object, valid: list[str] | tuple[str, ...]) -> None:
    """Raise ConvattnError unless `value` is one of `valid`."""
    if value not in valid:
        raise ConvattnError(
            f"{name}={value!r} is not a valid choice; valid: {', '.join(map(str, valid))}."
        )


def find_user_error(err: BaseException) -> ConvattnError | None:
    """The ConvattnError behind `err`, if any (Hydra wraps errors raised in `_target_`s)."""
    while err is not None:
        if isinstance(err, ConvattnError):
            return err
        err = err.__cause__ or err.__context__
    return None


def instantiate_checked(config: Any, **kwargs: Any) -> Any:
    """`hydra.utils.instantiate` with plain Python containers as arguments (they end up in
    checkpoints, which load with weights_only=True), re-raising a user mistake as itself
    instead of wrapped."""
    from hydra.utils import instantiate

    try:
        return instantiate(config, _convert_="all", **kwargs)
    except Exception as err:
        user_error = find_user_error(err)
        if user_error is None:
            raise
        raise user_error from None

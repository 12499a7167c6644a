"""User-facing errors: one clear paragraph, never a traceback."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, TypeVar

E = TypeVar("E", bound=BaseException)


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


def error_chain(err: BaseException | None) -> Iterator[BaseException]:
    """`err`, then what it was raised from (`__cause__`) or while handling (`__context__`), and
    so on: the errors a wrapper (Hydra's instantiate, torch's writer) hides."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        yield err
        err = err.__cause__ or err.__context__


def find_cause(err: BaseException | None, kind: type[E]) -> E | None:
    """The first error of type `kind` in `err`'s chain (`error_chain`), or None."""
    return next((e for e in error_chain(err) if isinstance(e, kind)), None)


def find_user_error(err: BaseException | None) -> ConvattnError | None:
    """The ConvattnError behind `err`, if any (Hydra wraps errors raised in `_target_`s)."""
    return find_cause(err, ConvattnError)


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

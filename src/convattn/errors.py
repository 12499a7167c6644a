"""User-facing errors: one clear paragraph, never a traceback."""


class ConvattnError(Exception):
    """A mistake in the user's input (config value, path, data).

    Entry points print its message and exit with status 2 instead of showing a traceback.
    The message names the offending value and what would be valid.
    """


def check_choice(name: str, value: object, valid: "list[str] | tuple[str, ...]") -> None:
    """Raise ConvattnError unless `value` is one of `valid`."""
    if value not in valid:
        raise ConvattnError(
            f"{name}={value!r} is not a valid choice; valid: {', '.join(map(str, valid))}."
        )

"""Errors a user can act on. The CLI prints each as one line and exits with code 2."""


class EvokdError(Exception):
    """Base class: a problem with the user's input or environment, not a bug."""

    exit_code = 2


class InputError(EvokdError):
    """Bad input: names the file, the line or field, and what was expected."""

    def __init__(self, path, message: str, *, line: int | None = None, field: str | None = None):
        where = str(path)
        if line is not None:
            where += f": line {line}"
        if field is not None:
            where += f": field '{field}'"
        super().__init__(f"{where}: {message}")
        self.path = str(path)
        self.line = line
        self.field = field


class RunError(EvokdError):
    """A run directory that cannot be used as asked (e.g. resumed with another task)."""


_SECRET_NAMES = ("KEY", "TOKEN", "SECRET", "PASSWORD")


def scrub_secrets(text: str) -> str:
    """Replace the value of every secret-looking environment variable (…_API_KEY, …_TOKEN, …)
    in `text` with ***. Applied to every error message and call log line evokd writes, since
    providers sometimes echo the key they were sent."""
    import os

    for name, value in os.environ.items():
        if len(value) >= 8 and any(part in name.upper() for part in _SECRET_NAMES):
            text = text.replace(value, "***")
    return text

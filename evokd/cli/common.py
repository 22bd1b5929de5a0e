"""What every command shares: expected errors as one line and an exit code, and the exact command line."""

from __future__ import annotations

import functools
import shlex
import sys

import click

from evokd.errors import EvokdError


def _fail(message: str, code: int = 2):
    from evokd.errors import scrub_secrets

    message = " ".join(scrub_secrets(str(message)).split())  # one line, never a key
    click.echo(f"evokd: {'stopped' if code == 3 else 'error'}: {message}", err=True)
    sys.exit(code)


def friendly_errors(fn):
    """Turn expected errors into one line on stderr and exit code 2; Ctrl-C into exit 130."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except EvokdError as exc:
            _fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            click.echo("evokd: interrupted; committed rounds are kept, re-run the same command to resume", err=True)
            sys.exit(130)

    return wrapper


class _Group(click.Group):
    """Remembers the raw arguments so a model card can quote the exact command."""

    raw_args: list[str] = []

    def main(self, args=None, *a, **kw):
        _Group.raw_args = list(sys.argv[1:] if args is None else args)
        return super().main(args, *a, **kw)


def _command_line() -> str:
    return "evokd " + " ".join(shlex.quote(a) for a in _Group.raw_args)

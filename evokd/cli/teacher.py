"""`evokd teacher`: inspect the available teachers."""

from __future__ import annotations

import json

import click

from evokd.cli.common import friendly_errors


@click.group()
def teacher():
    """Inspect the available teachers.

    \b
    Example:
      evokd teacher info --json
    """


@teacher.command("info")
@click.option("--no-verify", is_flag=True, help="Skip hashing the local model file.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@friendly_errors
def teacher_info(no_verify, as_json):
    """Show which teachers can run here and the embedded model's path, size and hash.

    \b
    Example:
      evokd teacher info
    """
    from evokd.teacher.local import teacher_info as info

    data = info(verify=not no_verify)
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
        return
    for key, value in data.items():
        click.echo(f"{key:>18}: {value}")
    click.echo("            hosted: any DSPy model string, e.g. --teacher openai/gpt-4o-mini "
               "(key from the provider's environment variable)")

"""Command line: one command per job; each parses options and calls one library function.

Heavy libraries are imported inside the commands, so `evokd predict` and `evokd eval` need
only onnxruntime and numpy.
"""

from __future__ import annotations

import click

import evokd  # noqa: F401  (applies the offline environment first)
from evokd.cli.bench import bench as _bench
from evokd.cli.common import _Group
from evokd.cli.distill import distill as _distill, eval_cmd, predict
from evokd.cli.generate import generate as _generate, strategies_cmd
from evokd.cli.optimize import optimize as _optimize
from evokd.cli.pool import pool_group
from evokd.cli.runs import EXPORT_FORMATS, SAMPLE_SOURCES, calls, compare, export, report, runs_cmd
from evokd.cli.teacher import teacher as _teacher

__all__ = ["EXPORT_FORMATS", "SAMPLE_SOURCES", "main"]


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(evokd.__version__, prog_name="evokd")
def main():
    """evokd: an LLM teacher writes data aimed at a small student's mistakes; the student ships as ONNX.

    \b
    Example:
      evokd generate datasets/sst2/task.yaml --rounds 3 --per-round 8 --out runs/sst2
      evokd distill runs/sst2 --task datasets/sst2/task.yaml --student tfidf --out students/sst2
      evokd predict students/sst2 "a gorgeous, witty film"
    """


# Each command module defines its commands without importing this package (no import circle);
# they are registered here. Commands named like their module are imported under another name so
# that `evokd.cli.generate` etc. stay the modules.
for _command in (_generate, _optimize, pool_group, strategies_cmd, _distill, predict, eval_cmd, report, export, compare,
                 runs_cmd, calls, _bench, _teacher):
    main.add_command(_command)
del _command

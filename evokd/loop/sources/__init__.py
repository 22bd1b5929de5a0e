"""Ways to get a round's data, one module each (see `base.Source` for the contract).

Every module in this package is imported here, so a source registers itself (`@source("MODE")`)
just by being a file in it; `make_source` picks the one a settled plan needs.
"""

from __future__ import annotations

import importlib
import pkgutil

from evokd.loop.sources.base import SOURCES, Context, Round, Source, source
from evokd.loop.sources.pool import NearestPoolSource, PoolRankSource, load_pool

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")


def make_source(ctx: Context) -> Source | None:
    """The source of the plan's strategy: its generation mode's, wrapped as pool queries for pool-evokd;
    the pool ranking for the no-LLM pool strategies; None for seed-only (no rounds add data)."""
    strategy, mode = ctx.plan.strategy, ctx.plan.mode
    if strategy.needs_pool and mode == "none":
        return PoolRankSource(ctx)
    if mode == "none":
        return None
    inner = SOURCES[mode](ctx)
    return NearestPoolSource(ctx, inner) if strategy.needs_pool else inner


__all__ = ["SOURCES", "Context", "Round", "Source", "load_pool", "make_source", "source"]

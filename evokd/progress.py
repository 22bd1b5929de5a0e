"""Progress display and summaries: `evokd generate` rounds (rich on stderr, or JSON lines), `runs` and `calls` tables."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text


class _BarProgress:
    """A rich bar on stderr (nothing when quiet), used as a context manager around long work."""

    first_description = ""

    def __init__(self, quiet: bool = False):
        self.quiet = quiet
        self.console = Console(stderr=True)
        self._progress = None
        self._task = None

    def __enter__(self):
        if not self.quiet:
            self._progress = Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(),
                                      MofNCompleteColumn(), TimeElapsedColumn(), console=self.console, transient=False)
            self._progress.start()
            self._task = self._progress.add_task(self.first_description, total=None)
        return self

    def __exit__(self, exc_type, *exc):
        if self._progress is not None:
            if exc_type is not None:  # the error is the last word, on a line of its own: no half-done bar above it
                self._progress.remove_task(self._task)
            self._progress.stop()


class RoundProgress(_BarProgress):
    """A callable progress sink for `RoundRunner(progress=...)`: a bar over rounds plus the current step."""

    first_description = "round 0"

    def __call__(self, event: str, **info):
        if self._progress is None:
            return
        p, t = self._progress, self._task
        if event in ("start", "resume"):
            p.update(t, total=info["total"], completed=info["done"],
                     description=f"resuming after round {info['done']}" if event == "resume" else "starting")
        elif event == "round_start":
            p.update(t, total=info["total"], description=f"round {info['round']}")
        elif event == "step":
            p.update(t, description=f"round {info['round']}: {info['name']}")
        elif event == "data":
            p.console.print(f"read {info['use']} data: {info['description']}", markup=False, highlight=False)
        elif event == "round":
            r = info["record"]
            if r.eval_entity_f1 is not None:
                metric = f"eval entity F1 {r.eval_entity_f1:.3f}"
            else:
                metric = "eval accuracy " + ("–" if r.eval_accuracy is None else f"{r.eval_accuracy:.3f}")
            doubted = doubted_labels(r.training)
            p.console.print(f"round {r.round}: accepted {r.n_accepted}, rejected {r.n_rejected}, {metric}, "
                            + (f"{doubted} teacher labels doubted, " if doubted != "–" else "")
                            + f"{r.prompt_tokens + r.completion_tokens} tokens, {r.seconds:.1f} s")
            if r.round > 0:
                p.advance(t)


def doubted_labels(training: dict | None) -> str:
    """How many of the teacher's labels the round's student doubted, as "5 of 32": those the anchored
    student contradicted (`--noise agree`, weighed AGREE_FLOOR) plus those confident learning dropped
    (`clean`, weighed 0) plus those label fusion changed (`fuse`); "–" where the mode doubts none
    (confidence, none) or the run predates the record."""
    if not training or not ({"disagreed", "dropped", "relabeled"} & set(training)):
        return "–"
    doubted = training.get("disagreed", 0) + training.get("dropped", 0) + training.get("relabeled", 0)
    return f"{doubted} of {training.get('teacher_rows', '?')}"


# the rounds table's headings of the eval columns
_EVAL_HEADS = {"eval_entity_f1": "entity F1", "eval_accuracy": "eval acc", "eval_macro_f1": "macro-F1"}


def print_summary(rounds: list[dict], out_dir: Path, data: dict | None = None,
                  unconfirmed: list[tuple[str, int, int]] | None = None, guard_off: str | None = None,
                  time_budget: str | None = None) -> None:
    """The rounds table of `evokd generate`, then a line per data file read (`data`: the run config's
    "data", e.g. {"pool": ReadReport.as_dict()}) saying what reading it changed, then a line per label
    the teacher rarely gave the texts it wrote for it (`unconfirmed`: (label, confirmed, written),
    `loop.candidates.unconfirmed_labels`), then what the eval guard rolled back, or why it did not
    run (`guard_off`, `loop.guard.inactive_reason`), then why the run ended before its last round
    (`time_budget`: `RoundRunner.time_budget`, --max-minutes spent)."""
    table = Table(title=f"evokd generate → {out_dir}")
    scored = (("eval_entity_f1",) if any(r.get("eval_entity_f1") is not None for r in rounds)
              else ("eval_accuracy", "eval_macro_f1"))  # the eval columns the rounds fill
    doubting = any(doubted_labels(r.get("training")) != "–" for r in rounds)  # --noise agree / clean
    for col in ("round", "accepted", "rejected (by reason)", *(["doubted"] if doubting else []),
                *(_EVAL_HEADS[c] for c in scored), "tokens", "seconds"):
        table.add_column(col, justify="right" if col != "rejected (by reason)" else "left",
                         no_wrap=col == "rejected (by reason)")
    for r in rounds:
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(r["rejected_by_reason"].items())) or "–"
        fmt = lambda v: "–" if v is None else f"{v:.3f}"  # noqa: E731
        table.add_row(str(r["round"]), str(r["n_accepted"]), f"{r['n_rejected']} ({reasons})" if r["n_rejected"] else "0",
                      *([doubted_labels(r.get("training"))] if doubting else []), *(fmt(r[c]) for c in scored),
                      str((r["prompt_tokens"] or 0) + (r["completion_tokens"] or 0)), f"{r['seconds']:.1f}")
    console = Console()
    if not console.is_terminal:
        console = Console(width=120)
    console.print(table)
    for use, report in (data or {}).items():
        console.print(f"{use} data: {report['description']}", markup=False, highlight=False)
    for label, confirmed, written in unconfirmed or []:
        console.print(f"the teacher labeled {confirmed} of the {written} texts it wrote for {label} as {label}: it often "
                      f"does not recognise {label}, so its labels for real texts of it are likely wrong too "
                      "(`evokd compare` measures it on labeled rows)", markup=False, highlight=False)
    from evokd.loop.guard import summary as guard_summary

    line = guard_summary(rounds, guard_off)
    if line:
        console.print(line, markup=False, highlight=False)
    if time_budget:
        console.print(time_budget, markup=False, highlight=False)


class JsonProgress:
    """`--json` twin of `RoundProgress`: one JSON object per event on stderr, for scripts and CI logs."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    def __call__(self, event: str, **info):
        import dataclasses
        import json
        import sys

        payload = {"event": event}
        for key, value in info.items():
            if dataclasses.is_dataclass(value) and not isinstance(value, type):
                record = value
                value = {k: v for k, v in dataclasses.asdict(record).items() if k not in ("started_at", "finished_at")}
                if isinstance(getattr(record, "seconds", None), float):
                    value["seconds"] = record.seconds
            payload[key] = value
        sys.stderr.write(json.dumps(payload, default=str) + "\n")
        sys.stderr.flush()


def _console() -> Console:
    console = Console()
    return console if console.is_terminal else Console(width=160)


def print_runs(rows: list[list[str]], columns: list[str], root) -> None:
    """The `evokd runs` table."""
    table = Table(title=f"evokd runs under {root}")
    for col in columns:
        table.add_column(col, justify="right" if col in ("rounds", "samples", "seed-only") else "left",
                         overflow="fold")
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))  # paths and errors are text, never markup
    _console().print(table)


def print_calls(calls: list[dict], run_dir) -> None:
    """The `evokd calls` table and a one-line total. *held*: prompt tokens the teacher already had in its
    cache (the embedded teacher's KV cache, a provider's prompt cache), so did not read again."""
    table = Table(title=f"teacher calls of {run_dir}")
    numbers = ("id", "round", "try", "prompt tok", "held", "completion tok", "latency s")
    for col in ("id", "round", "step", "try", "model", "prompt tok", "held", "completion tok", "latency s", "outcome"):
        table.add_column(col, justify="right" if col in numbers else "left", overflow="fold")
    for c in calls:
        outcome = Text("ok") if c["ok"] else Text.assemble(("failed", "red"), ": " + (c["error"] or "")[:160])
        if c.get("cached"):
            outcome.append(" (from the run's call cache)")
        held = "–" if c.get("prompt_tokens_cached") is None else c["prompt_tokens_cached"]  # the teacher did not say
        table.add_row(*(Text(str(v)) for v in (c["id"], c["round"], c["step"] or "", c["attempt"], c["model"] or "",
                                               c["prompt_tokens"] or 0, held, c["completion_tokens"] or 0)),
                      Text(f"{c['latency_s'] or 0:.2f}"), outcome)
    console = _console()
    console.print(table)
    failed = sum(not c["ok"] for c in calls)
    tokens = sum((c["prompt_tokens"] or 0) + (c["completion_tokens"] or 0) for c in calls)
    latency = sum(c["latency_s"] or 0 for c in calls)
    costs = [c["cost"] for c in calls if c.get("cost") is not None]
    cost = f", ${sum(costs):.4f} where the price is known" if costs else ""
    console.print(f"{len(calls)} calls, {failed} failed, {tokens} tokens, {latency:.1f} s of teacher latency{cost}",
                  markup=False, highlight=False)


class BenchProgress(_BarProgress):
    """A callable sink for `run_bench(events=...)`: a bar over cells (done / total), the cells now
    running, and one line per finished cell."""

    first_description = "preparing the cells' tasks"

    def __init__(self, quiet: bool = False):
        super().__init__(quiet)
        self._running: list[str] = []

    def __call__(self, event: str, **info):
        if self._progress is None:
            return
        p, t = self._progress, self._task
        if event == "plan":
            p.update(t, total=info["total"], completed=info["done"],
                     description=f"{info['done']} finished earlier" if info["done"] else "cells")
        elif event == "start":
            self._running.append(info["job"].key)
        elif event == "done":
            from evokd.bench import cell_scores

            key, r = info["job"].key, info["result"]
            self._running.remove(key)
            tokens = f", {r['tokens']:,} teacher tokens" if r.get("tokens") else ""
            p.console.print(Text(f"{key}: {cell_scores(r)}{tokens}, {r['seconds']:.1f} s"), soft_wrap=True)
            p.advance(t)
        if event in ("start", "done"):
            running = self._running
            p.update(t, description=("done" if not running else "running " + "; ".join(running) if len(running) <= 3
                                     else f"{len(running)} cells submitted, e.g. {running[0]}"))


class OptimizeProgress(_BarProgress):
    """A callable sink for `Optimization(progress=...)`: a bar over each evaluation, a counter of
    metric calls while an optimiser compiles (DSPy's optimisers do not say how many they will make)."""

    first_description = "loading the teacher"

    def __init__(self, quiet: bool = False):
        super().__init__(quiet)
        self._ticks = 0

    def __call__(self, event: str, **info):
        if self._progress is None:
            return
        p, t = self._progress, self._task
        if event == "eval":
            p.update(t, description=info["name"], total=info["total"], completed=info["done"])
            if info["done"] == info["total"]:
                self._ticks = 0
        elif event == "phase":
            self._ticks = 0
            p.update(t, description=info["name"], total=None, completed=0)
        elif event == "tick":
            self._ticks += 1
            p.update(t, completed=self._ticks)
        elif event == "note":
            p.console.print(Text(info["text"]), soft_wrap=True)


class RowProgress(_BarProgress):
    """A callable sink for `embed_pool(progress=...)`: rows embedded so far."""

    first_description = "embedding"

    def __call__(self, event: str, **info):
        if self._progress is None:
            return
        if event == "rows":
            self._progress.update(self._task, completed=info["done"], total=info.get("total"))


class CompareProgress(_BarProgress):
    """A callable sink for `evokd.compare.compare(progress=...)`: the current step, then the teacher's rows."""

    first_description = "comparing"

    def __call__(self, event: str, **info):
        if self._progress is None:
            return
        if event == "step":
            self._progress.update(self._task, description=info["name"], completed=0, total=None)
        elif event == "labeled":
            self._progress.update(self._task, completed=info["done"], total=info["total"])

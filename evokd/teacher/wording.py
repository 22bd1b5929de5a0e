"""How the teacher's prompts put numbers computed by code into words."""

from __future__ import annotations

from evokd.task_kinds import ErrorStats


def error_stats_text(stats: ErrorStats) -> str:
    """Per-label error counts and the most frequent confusions, one line each, e.g.
    "positive: 2 of 5 wrong", "PER: 1 of 3 entities missed, precision 0.50", "3x true a predicted as b"."""
    lines = []
    for e in stats.per_label:
        if not e.total:
            lines.append(f"{e.label}: no {'examples' if stats.unit == 'wrong' else 'entities'} in the latest batch")
        elif e.precision is None:
            lines.append(f"{e.label}: {e.wrong} of {e.total} {stats.unit}")
        else:
            lines.append(f"{e.label}: {e.wrong} of {e.total} {stats.unit}, precision {e.precision:.2f}")
    lines += [f"{c}x true {g} predicted as {p}" for g, p, c in stats.confusions]
    return "\n".join(lines)


def statistics_aim(stats: ErrorStats) -> str:
    """What generation aims at when the weakness analysis failed: the statistics themselves."""
    return f"Error statistics of the latest batch:\n{error_stats_text(stats)}"

"""How the teacher's prompts put numbers computed by code into words."""

from __future__ import annotations

import re

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


# A quoted span: '...' (not an apostrophe: no word character outside either quote), "..." or “...”.
_QUOTED = re.compile(r"(?<!\w)'([^'\n]+?)'(?!\w)|\"([^\"\n]+?)\"|“([^”\n]+?)”")


def without_quoted_examples(analysis: str, min_words: int = 4) -> str:
    """The weakness analysis with every quoted span of `min_words` or more words replaced by "…".

    Such spans are example inputs (a small teacher quotes the student's mistakes although told to
    generalise), and the generation step copies them verbatim: every copy is a duplicate of a text
    the loop already has. Short quotes ("not bad") describe a phrasing and are kept."""
    def cut(match: re.Match) -> str:
        inner = next(g for g in match.groups() if g is not None)
        return "…" if len(inner.split()) >= min_words else match.group(0)

    return _QUOTED.sub(cut, analysis)

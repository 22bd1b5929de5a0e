"""Batch calibration of the teacher's labels: its label probabilities divided by their mean over the
user's own texts (Zhou et al. 2023, "Batch Calibration"), so that a label the teacher favours
whatever it reads stops taking the texts of the labels it neglects.

The embedded teacher names DESC for 266 of 500 TREC questions (138 are DESC) and Sci/Tech for 4 of
300 AG News texts (77 are); divided by its mean distribution over the texts it labels, its
macro-F1 rises 19 points on TREC and 7 on AG News and is unchanged on SST-2, where it has no such
bias (`benchmarks/teacher_calibration.md`). The mean needs no labels, only texts that are not chosen
by class: a random sample of the user's pool (`evokd.loop.sources.pool.calibrate_labels`), never
texts the teacher wrote for a class.
"""

from __future__ import annotations

CALIBRATION_TEXTS = 50  # random pool texts the mean is taken over (50 recovered most of the gain in the benchmark)
MIN_DISTRIBUTIONS = 10  # fewer texts with every label's probability than this: no calibration


def mean_distribution(distributions: list[dict[str, float] | None], labels: list[str]) -> dict[str, float] | None:
    """The mean probability of each label over the texts whose distribution is known (None entries are
    texts the teacher gave no full distribution for); None when fewer than MIN_DISTRIBUTIONS are."""
    known = [d for d in distributions if d is not None]
    if len(known) < MIN_DISTRIBUTIONS:
        return None
    return {label: sum(d[label] for d in known) / len(known) for label in labels}


def calibrate(distribution: dict[str, float], prior: dict[str, float]) -> dict[str, float]:
    """`distribution` divided label by label by `prior` (a `mean_distribution`) and renormalised; a label
    the prior gives no probability at all keeps its raw share (nothing to divide by)."""
    scaled = {label: p / prior[label] if prior.get(label, 0.0) > 0 else p for label, p in distribution.items()}
    total = sum(scaled.values())
    return {label: s / total for label, s in scaled.items()} if total > 0 else dict(distribution)


def describe_prior(prior: dict[str, float], n_texts: int) -> str:
    """One line for the run summary: what the teacher's labels were divided by."""
    shares = ", ".join(f"{label} {p:.2f}" for label, p in sorted(prior.items(), key=lambda kv: -kv[1]))
    return (f"the teacher's label probabilities are divided by their mean over {n_texts} random pool texts "
            f"({shares}), so that no label wins by the teacher's bias alone")

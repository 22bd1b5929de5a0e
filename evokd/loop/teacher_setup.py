"""The teacher a run talks to, built from the run's config (also how `evokd compare` rebuilds it)."""

from __future__ import annotations

from evokd.loop.config import LoopConfig, generation_chars
from evokd.prompts import load_prompts
from evokd.task import TaskSpec
from evokd.teacher.teacher import Teacher


def seed_demonstrations(task: TaskSpec, seeds: list[dict], per_label: int) -> list[dict]:
    """The labeled seeds the labeling step shows: `per_label` per label in label order (NER: the
    first `per_label * 4` sentences; one sentence per entity type already covers the types)."""
    return task.rules.demonstrations(seeds, task.label_names, per_label)


def build_teacher(task: TaskSpec, seeds: list[dict], lm, config: dict) -> Teacher:
    """The teacher a run talks to, from its config (a LoopConfig as a dict, or as a run stored it):
    seed demonstrations, generation length, labeling temperature and format, optimised prompts, and
    the label prior a run recorded (`recorded_label_prior`).
    `evokd compare` builds the run's teacher again with it, so it labels with the run's prompts."""
    per_label = config.get("demonstrations_per_label", LoopConfig.demonstrations_per_label)
    teacher = Teacher(task, lm, demonstrations=seed_demonstrations(task, seeds, per_label), seed=config.get("seed", 0),
                      max_chars=generation_chars(seeds, config.get("max_chars", LoopConfig.max_chars)),
                      label_temperature=config.get("label_temperature", 0.0),
                      label_format=config.get("label_format", "plain"))
    if config.get("prompts"):
        load_prompts(config["prompts"], task).apply(teacher)
    teacher.label_prior = recorded_label_prior(config)
    return teacher


def recorded_label_prior(config: dict) -> dict[str, float] | None:
    """The label prior a run recorded when it calibrated the teacher's labels of pool texts
    (`evokd.loop.sources.pool.calibrate_labels`), so that `evokd compare` labels as the run did; None
    for a run that did not (and for a LoopConfig, which records nothing: the run estimates it)."""
    return ((config.get("data") or {}).get("label calibration") or {}).get("prior") or None

"""The EvoKD loop: settle a run's plan (config.py), then run rounds (runner.py) that take the
student's feedback (feedback.py), get candidates from the strategy's source (sources/), filter and
label them (candidates.py) and retrain the student. See ARCHITECTURE.md for the picture."""

from evokd.loop.config import LoopConfig, Plan, generation_chars, needs_teacher, settle
from evokd.loop.runner import RoundRunner
from evokd.loop.sources.class_conditioned import described_labels
from evokd.loop.teacher_setup import build_teacher, seed_demonstrations

__all__ = ["LoopConfig", "Plan", "RoundRunner", "build_teacher", "described_labels", "generation_chars", "needs_teacher",
           "seed_demonstrations", "settle"]

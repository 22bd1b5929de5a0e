"""`evokd optimize`: tune the Teacher's prompts with DSPy's optimisers, against metrics computed by code.

Steps and their metrics (no human in the loop):

- `label`: the labeling step, scored by accuracy (classification) or per-sentence entity F1 (NER)
  of the teacher's labels against gold on the task's seeds and a labeled dev slice.
- `generate`: class-conditioned generation, scored by the *yield* of each batch: the fraction of
  the texts asked for that pass the validity and near-duplicate filters, that the separate
  labeling step puts in the intended class, and that the current student gets wrong (hard) or
  right (easy).
- `analyze`: the weakness analysis, judged through the yield of the hard texts written from it.

Every LM call goes through the TeacherGateway with a DuckDB call cache in the work directory, so
a killed optimisation re-run replays the calls it already paid for and continues (the optimisers
are seeded, so the same calls come in the same order). An optimised program that scores below
the unoptimised one on the validation data is not kept: the state written is then the
unoptimised program, and the sidecar says so.

The work is split by job: `config` (OptimizeConfig), `data` (training/validation splits and
examples), `scoring` (the metrics and their text feedback), `programs` (the steps as DSPy
programs, and what is done to their demos) and `optimization` (the driver: compile, check, keep,
save).
"""

from __future__ import annotations

from evokd.optimize.config import OPTIMIZERS, OptimizeConfig
from evokd.optimize.data import interleave_by_label, label_examples, split_data
from evokd.optimize.optimization import NO_ANALYSIS, Optimization, StepResult
from evokd.optimize.programs import (AnalyzeProgram, GenerateProgram, LabelProgram, balance_label_demos,
                                     compact_demos)
from evokd.metrics import entity_f1
from evokd.optimize.scoring import LabelMetric, YieldMetric

__all__ = ["NO_ANALYSIS", "OPTIMIZERS", "AnalyzeProgram", "GenerateProgram", "LabelMetric", "LabelProgram",
           "Optimization", "OptimizeConfig", "StepResult", "YieldMetric", "balance_label_demos", "compact_demos",
           "entity_f1", "interleave_by_label", "label_examples", "split_data"]

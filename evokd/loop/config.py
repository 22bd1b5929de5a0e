"""A run's configuration, and the one place where the strategy, the generation mode and the
ablation switches are settled (`settle`): the runner, the sources and `--dry-run` all read the
settled plan, so an estimate cannot drift from the run it estimates."""

from __future__ import annotations

from dataclasses import dataclass, field

from evokd import strategies
from evokd.errors import RunError
from evokd.noise import DEFAULT_NOISE, NOISE_MODES
from evokd.teacher.gateway import GatewayConfig


@dataclass
class LoopConfig:
    rounds: int = 3
    per_round: int = 8
    seed: int = 0
    student: str | None = None  # None: the task kind's default student (evokd.task_kinds)
    strategy: str = strategies.DEFAULT  # see evokd/strategies.py
    pool: str | None = None  # unlabeled in-domain corpus (pool strategies)
    oracle: bool = False  # pool strategies: take the pool file's own labels instead of the teacher's
    near_dup_threshold: float = 0.9
    min_chars: int = 3
    max_chars: int = 1000
    # Switches the strategy sets; None takes the strategy's value, anything else overrides it.
    use_easy: bool | None = None  # paper ablation: easy samples
    correct_feedback: bool | None = None  # paper ablation: show correct predictions to the analysis
    review_every: int | None = None  # paper ablation: replay earlier hard mistakes every N rounds (0 = off)
    separate_labeling: bool | None = None  # paper ablation: label in a separate call
    label_votes: int = 1  # label each text this many times; keep it only if all votes agree
    # Pool texts the teacher labels: divide its label probabilities by their mean over random pool texts
    # (evokd.teacher.calibration), where it gives every label's probability (the embedded teacher does).
    calibrate_labels: bool = True
    min_confidence: float | None = None  # reject a teacher label whose probability is below this (None: off)
    noise: str = DEFAULT_NOISE  # how the student trains on teacher labels (evokd.noise.NOISE_MODES)
    label_temperature: float | None = 0.0  # first labeling vote's temperature (0 greedy; None: the teacher's)
    label_format: str = "plain"  # classification labeling put as a plain question, or "json" (DSPy's JSONAdapter)
    demonstrations_per_label: int = 2
    generation_topups: int = 2  # extra generation rounds when accepted texts fall short of the budget
    prompts: str | None = None  # optimised teacher prompt state (`evokd optimize --out`), loaded into the Teacher
    max_minutes: float | None = None  # time budget: no new round once the committed rounds took this long
    eval_guard: bool = True  # roll back a round that lowers the student's eval score (evokd.loop.guard)
    gateway: GatewayConfig = field(default_factory=GatewayConfig)  # concurrency, rate limits, retries, budgets

    def __post_init__(self):
        if self.rounds < 0:
            raise ValueError(f"rounds must be >= 0, got {self.rounds}")
        if self.label_votes < 1:
            raise ValueError(f"label votes must be >= 1, got {self.label_votes}")
        if self.min_confidence is not None and not 0.0 <= self.min_confidence <= 1.0:
            raise ValueError(f"min-confidence must be between 0 and 1, got {self.min_confidence}")
        if self.noise not in NOISE_MODES:
            raise ValueError(f"noise must be one of {', '.join(NOISE_MODES)}, got {self.noise!r}")
        if self.per_round < 1:
            raise ValueError(f"per-round must be >= 1, got {self.per_round}")
        if self.max_minutes is not None and not self.max_minutes > 0:
            raise ValueError(f"max-minutes must be > 0, got {self.max_minutes}")
        if self.pool is not None and not strategies.get(self.strategy).needs_pool:
            if self.strategy != strategies.DEFAULT:
                raise ValueError(f"strategy '{self.strategy}' does not use a pool; drop --pool or pick a pool-* strategy")
            self.strategy = "pool-evokd"  # --pool with the default strategy: the teacher's texts become queries
        strategy = strategies.get(self.strategy)
        if strategy.needs_pool and self.pool is None:
            raise ValueError(f"strategy '{self.strategy}' needs --pool FILE (an unlabeled in-domain corpus)")
        if self.oracle and self.pool is None:
            raise ValueError("--oracle takes labels from the pool file; it needs --pool FILE")
        for name in ("use_easy", "correct_feedback", "review_every", "separate_labeling"):
            if getattr(self, name) is None:
                setattr(self, name, getattr(strategy, name))

    @property
    def strategy_spec(self) -> strategies.Strategy:
        """The named strategy's switches (evokd.strategies.Strategy)."""
        return strategies.get(self.strategy)


@dataclass(frozen=True)
class Plan:
    """What a run of `config` on `task` does, settled once: the strategy, the generation mode it runs
    with on this task kind, the student it trains, and the teacher steps each round calls."""

    config: LoopConfig
    strategy: strategies.Strategy
    mode: str  # free | class | static | paraphrase | none (evokd.strategies)
    student: str
    rounds: int  # rounds that add samples (0 for seed-only: round 0 is the result)

    def warmup(self, round_: int) -> bool:
        """Round 1 of a strategy with a warm-up: class-conditioned varied texts, no weakness analysis."""
        return self.strategy.warmup and round_ == 1

    def analyzes(self, round_: int) -> bool:
        """Whether round `round_` asks the teacher for a weakness analysis."""
        return self.strategy.analysis and not self.warmup(round_)

    @property
    def calls_teacher(self) -> bool:
        """Whether the run calls an LLM (pool strategies with --oracle and seed-only do not)."""
        return self.strategy.calls_teacher(self.config.oracle)


def settle(config: LoopConfig, task, student: str | None = None) -> Plan:
    """The plan of a run: the strategy's generation mode on this task kind (NER has no class to
    condition on) and the student (`student`, else the config's, else the kind's default). Raises
    RunError for a strategy the task kind or the student cannot run, or a student that cannot train here."""
    from evokd.students import STUDENTS

    strategy = config.strategy_spec
    mode = task.rules.generation_mode(strategy)
    name = student or config.student or task.rules.default_student
    if strategy.pool_select == "uncertainty" and not task.rules.ranks_by_confidence(STUDENTS.get(name)):
        raise RunError(f"strategy '{strategy.name}' ranks by the student's confidence, which the "
                       f"'{name}' student does not give; expected --student tagger (or use "
                       "pool-random, pool-errors or pool-evokd)")
    problem = STUDENTS[name]().unavailable() if hasattr(STUDENTS.get(name), "unavailable") else None
    if problem:  # an encoder that is not installed: said before the run starts, not at its first fit
        raise RunError(f"--student {name}: {problem}")
    return Plan(config, strategy, mode, name, config.rounds if strategy.adds_samples else 0)


def needs_teacher(config: LoopConfig) -> bool:
    """Whether a run with this config calls an LLM (pool strategies with --oracle and seed-only do not)."""
    return config.strategy_spec.calls_teacher(config.oracle)


def generation_chars(seeds: list[dict], max_chars: int) -> int:
    """Length cap of a generated text: twice the seeds' mean length, within 120-300 characters. It
    becomes the JSON schema's maxLength (a grammar for a local model), so texts stay about as long
    as the task's own (sst2 fragments, trec questions, ag_news paragraphs) and a verbose model does
    not spend a minute of CPU per call writing essays."""
    mean = sum(len(r["text"]) for r in seeds) / max(1, len(seeds))
    return int(min(max_chars, 300, max(120, 2 * mean)))

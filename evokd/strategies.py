"""Ways to spend a teacher (or a pool) budget, selectable by name; all share the store, filters and students.

Each strategy is a set of switches on the one round loop in `evokd.loop`, so every strategy is
measured with the same dedup filters, the same student and the same per-round sample budget. Its
`generation` mode names the source that gets its data (evokd/loop/sources/, one module per mode;
a pool strategy's texts become queries into the pool, or the pool is ranked without an LLM).

Generation modes:
  free        the paper's step 3: hard and easy texts with no intended label, labeled separately
  class       class-conditioned: "write N hard (or easy) texts whose label is X", N per class set by
              the student's per-class error with a floor; kept only when the separate label agrees
  static      class-conditioned with an even split and no feedback; the label is the intended one (ZeroGen)
  paraphrase  paraphrases of the seeds, labeled like their seed (AugGPT)
  none        no generation (seed-only, and the pool strategies that need no LLM)
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Strategy:
    name: str
    summary: str
    generation: str = "class"  # free | class | static | paraphrase | none
    analysis: bool = True  # a weakness analysis each round (feedback)
    warmup: bool = False  # round 1 is class-conditioned with no analysis (the paper's EvoKD+Init)
    agreement: bool = True  # keep a class-conditioned text only if the separate label equals the intended one
    class_budget: bool = True  # split the round's budget over classes by student error, with a floor
    use_easy: bool = True
    correct_feedback: bool = True
    review_every: int = 2
    separate_labeling: bool = True
    pool_select: str | None = None  # nearest | random | uncertainty | errors (pool strategies only)
    # class-conditioned requests also name drawn properties: a seed-like length, a teacher-listed subtopic,
    # the task file's attributes (evokd.loop.attributes)
    attributes: bool = False

    @property
    def needs_teacher(self) -> bool:
        """True when the strategy calls the LLM (pool strategies may still use it to label, without --oracle)."""
        return self.generation != "none"

    @property
    def needs_pool(self) -> bool:
        return self.pool_select is not None

    def calls_teacher(self, oracle: bool) -> bool:
        """Whether a run calls the LLM: to generate, or to label pool texts without --oracle."""
        return self.needs_teacher or (self.needs_pool and not oracle)

    def labels_by_teacher(self, oracle: bool) -> bool:
        """Whether the samples a run adds carry the teacher's labels (generated texts, or pool texts
        without --oracle), which --noise weighs; pool texts with --oracle carry their own."""
        return self.adds_samples and not (self.needs_pool and oracle)

    @property
    def adds_samples(self) -> bool:
        return self.generation != "none" or self.pool_select is not None


_EVOKD = Strategy(
    "evokd", "default: class-conditioned warm-up round, then class-conditioned hard+easy texts aimed at the "
             "weakness analysis, budget by per-class error, kept only when the separate label agrees",
    generation="class", warmup=True)

STRATEGIES: dict[str, Strategy] = {s.name: s for s in [
    Strategy("seed-only", "no added samples: the student trained on the seeds (a floor)", generation="none",
             analysis=False, agreement=False, class_budget=False),
    Strategy("static", "'write examples of class X' once per round, even split, no feedback; label = the class "
                       "asked for (ZeroGen-style)", generation="static", analysis=False, agreement=False,
             class_budget=False, separate_labeling=False),
    Strategy("augment", "the teacher paraphrases the seeds; each paraphrase keeps its seed's label (AugGPT-style)",
             generation="paraphrase", analysis=False, agreement=False, class_budget=False, separate_labeling=False),
    _EVOKD,
    Strategy("evokd-paper", "the paper's recipe: free hard+easy texts aimed at the weakness analysis, labeled in a "
                            "separate call, earlier mistakes reviewed every 2 rounds",
             generation="free", agreement=False, class_budget=False),
    replace(_EVOKD, name="evokd-no-easy", summary="evokd without easy texts (all hard)", use_easy=False),
    replace(_EVOKD, name="evokd-no-correct", summary="evokd; the analysis sees only the student's mistakes",
            correct_feedback=False),
    replace(_EVOKD, name="evokd-no-review", summary="evokd without replaying earlier mistakes", review_every=0),
    replace(_EVOKD, name="evokd-no-separate", summary="evokd; the intended class is the label (no separate "
                                                      "labeling call, no agreement filter)",
            separate_labeling=False, agreement=False),
    replace(_EVOKD, name="evokd-no-warmup", summary="evokd without the class-conditioned warm-up round", warmup=False),
    replace(_EVOKD, name="evokd-attr", summary="evokd; each request for a label's texts also names a length drawn from "
                                               "the seeds', a subtopic of the label the teacher listed once, and the "
                                               "task file's attributes (AttrPrompt-style diversity)", attributes=True),
    Strategy("pool-random", "random unused texts from the pool", generation="none", analysis=False, agreement=False,
             class_budget=False, pool_select="random"),
    Strategy("pool-uncertainty", "the pool texts the student is least confident about", generation="none",
             analysis=False, agreement=False, class_budget=False, pool_select="uncertainty"),
    Strategy("pool-errors", "one typical pool text from each region no labeled text covers yet, the regions nearest "
                            "the student's latest mistakes first (no LLM)", generation="none",
             analysis=False, agreement=False, class_budget=False, pool_select="errors"),
    replace(_EVOKD, name="pool-evokd", summary="evokd's texts become queries; the nearest unused pool texts are "
                                               "taken instead", agreement=False, warmup=False, pool_select="nearest"),
]}

DEFAULT = "evokd"


def get(name: str) -> Strategy:
    try:
        return STRATEGIES[name]
    except KeyError:
        raise ValueError(f"unknown strategy '{name}'; expected one of: {', '.join(STRATEGIES)}") from None


def help_text() -> str:
    return "\n".join(f"{s.name}: {s.summary}" for s in STRATEGIES.values())

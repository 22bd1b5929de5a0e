"""The EvoKD round loop (Liu et al. 2024, Fig. 2), in the paper's order.

seeds -> train student; then each round:
  1. feedback: the student's predictions on the latest batch, made BEFORE it trained on it
  2. weakness analysis (teacher)        3. hard + easy input generation (teacher)
  4. filters: validity, exact and near duplicates
  5. separate labeling (teacher)        6. student predicts the accepted batch, then retrains
  7. eval on the task's held-out data; the round is committed to the store in one transaction

The loop formats no prompt and writes no file itself: the Teacher owns prompts, the Store owns SQL.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import random
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from evokd import __version__, strategies
from evokd.embed import encode
from evokd.errors import InputError, RunError
from evokd.filters import (REASON_EXACT_DUP, REASON_NEAR_DUP, REASON_NO_LABEL, REASON_OFF_INTENT, REASON_POOL_EMPTY,
                           NearDuplicateFilter, ValidityFilter, text_hash)
from evokd.io import read_pool, write_jsonl_atomic
from evokd.metrics import classification_report, confusion_pairs, entity_report
from evokd.prompts import load_prompts
from evokd.store import EMBED_DIM, CallRow, RoundRecord, SampleRow, Store
from evokd.students import STUDENTS, default_student, fit_student, make_student, run_student
from evokd.task import TaskSpec
from evokd.teacher.gateway import BudgetExceeded, GatewayConfig, TeacherGateway
from evokd.teacher.module import Feedback, Teacher

STORE_NAME = "evokd.duckdb"
DATASET_NAME = "dataset.jsonl"
ROUNDS_NAME = "rounds.jsonl"


@dataclass
class LoopConfig:
    rounds: int = 3
    per_round: int = 8
    seed: int = 0
    student: str | None = None  # None: tfidf for classification, tagger for NER
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
    label_temperature: float | None = 0.0  # first labeling vote's temperature (0 greedy; None: the teacher's)
    label_format: str = "plain"  # classification labeling put as a plain question, or "json" (DSPy's JSONAdapter)
    demonstrations_per_label: int = 2
    generation_topups: int = 2  # extra generation rounds when accepted texts fall short of the budget
    prompts: str | None = None  # optimised teacher prompt state (`evokd optimize --out`), loaded into the Teacher
    gateway: GatewayConfig = field(default_factory=GatewayConfig)  # concurrency, rate limits, retries, budgets

    def __post_init__(self):
        if self.rounds < 0:
            raise ValueError(f"rounds must be >= 0, got {self.rounds}")
        if self.label_votes < 1:
            raise ValueError(f"label votes must be >= 1, got {self.label_votes}")
        if self.per_round < 1:
            raise ValueError(f"per-round must be >= 1, got {self.per_round}")
        if self.pool is not None and not strategies.get(self.strategy).needs_pool:
            if self.strategy != strategies.DEFAULT:
                raise ValueError(f"strategy '{self.strategy}' does not use a pool; drop --pool or pick a pool-* strategy")
            self.strategy = "pool-evokd"  # --pool with the default strategy: the teacher's texts become queries
        strat = strategies.get(self.strategy)
        if strat.needs_pool and self.pool is None:
            raise ValueError(f"strategy '{self.strategy}' needs --pool FILE (an unlabeled in-domain corpus)")
        if self.oracle and self.pool is None:
            raise ValueError("--oracle takes labels from the pool file; it needs --pool FILE")
        for name in ("use_easy", "correct_feedback", "review_every", "separate_labeling"):
            if getattr(self, name) is None:
                setattr(self, name, getattr(strat, name))

    @property
    def strat(self) -> strategies.Strategy:
        return strategies.get(self.strategy)


def generation_chars(seeds: list[dict], max_chars: int) -> int:
    """Length cap of a generated text: twice the seeds' mean length, within 120-300 characters. It
    becomes the JSON schema's maxLength (a grammar for a local model), so texts stay about as long
    as the task's own (sst2 fragments, trec questions, ag_news paragraphs) and a verbose model does
    not spend a minute of CPU per call writing essays."""
    mean = sum(len(r["text"]) for r in seeds) / max(1, len(seeds))
    return int(min(max_chars, 300, max(120, 2 * mean)))


def seed_demonstrations(task: TaskSpec, seeds: list[dict], per_label: int) -> list[dict]:
    """The labeled seeds the labeling step shows: `per_label` per label in label order (NER: the
    first `per_label * 4` sentences; one sentence per entity type already covers the types)."""
    if task.is_ner:
        return seeds[: per_label * 4]
    by_label: dict[str, list[dict]] = {}
    for row in seeds:
        by_label.setdefault(row["label"], []).append(row)
    return [r for label in task.label_names for r in by_label.get(label, [])[:per_label]]


def build_teacher(task: TaskSpec, seeds: list[dict], lm, config: dict) -> Teacher:
    """The teacher a run talks to, from its config (a LoopConfig as a dict, or as a run stored it):
    seed demonstrations, generation length, labeling temperature and format, optimised prompts.
    `evokd compare` builds the run's teacher again with it, so it labels with the run's prompts."""
    per_label = config.get("demonstrations_per_label", LoopConfig.demonstrations_per_label)
    teacher = Teacher(task, lm, demonstrations=seed_demonstrations(task, seeds, per_label), seed=config.get("seed", 0),
                      max_chars=generation_chars(seeds, config.get("max_chars", LoopConfig.max_chars)),
                      label_temperature=config.get("label_temperature", 0.0),
                      label_format=config.get("label_format", "plain"))
    if config.get("prompts"):
        load_prompts(config["prompts"], task).apply(teacher)
    return teacher


def described_labels(task: TaskSpec) -> dict[str, str]:
    """Label name -> "NAME (description)", what class-conditioned generation is told to write."""
    return {lab.name: f"{lab.name} ({lab.description.strip().rstrip('.')})" if lab.description else lab.name
            for lab in task.labels}


def needs_teacher(config: LoopConfig) -> bool:
    """Whether a run with this config calls an LLM (pool strategies with --oracle and seed-only do not)."""
    return config.strat.calls_teacher(config.oracle)


Progress = Callable[..., None]


def _noop(event: str, **info: Any) -> None:
    pass


@dataclass
class Candidate:
    text: str
    intent: str
    intended_label: str | None = None
    teacher_label: str | None = None
    reject_reason: str | None = None
    embedding: np.ndarray | None = None
    student_pred: str | None = None
    student_score: float | None = None
    label_notes: list | None = None
    hash: str = field(default="")
    labeler: str | None = None  # teacher | intent | seed | oracle
    query: str | None = None  # pool mode: the generated text this pool text was retrieved for
    pool_id: int | None = None


class EvoKD:
    """Runs (or resumes) generation into `out_dir`."""

    def __init__(self, task: TaskSpec, out_dir: str | Path, config: LoopConfig, *, teacher_lm=None,
                 teacher_name: str = "", api_base: str | None = None, progress: Progress = _noop,
                 pool_vectors: Callable[[list[str]], np.ndarray] | None = None):
        self.task = task
        self.out_dir = Path(out_dir)
        self.config = config
        self.teacher_lm = teacher_lm
        self.teacher_name = teacher_name
        self.api_base = api_base
        self.progress = progress
        self.pool_vectors = pool_vectors  # optional shared cache of pool embeddings (evokd bench), else embed.encode
        self.labels = task.label_names
        self.validity = ValidityFilter(self.labels, config.min_chars, config.max_chars)
        self.near_dup = NearDuplicateFilter(config.near_dup_threshold)
        self.eval_rows, self.eval_report = task.eval_data()
        self.data: dict[str, dict] = {}  # after run(): what reading its eval and pool data changed, as recorded
        self.seeds = task.seed_rows()
        self.student_name = config.student or default_student(task.kind)
        self.target_key = task.target_key
        strat = config.strat
        self.mode = strat.generation
        if task.is_ner and self.mode in ("static", "paraphrase"):
            raise RunError(f"strategy '{strat.name}' writes class-conditioned texts; it is for classification tasks "
                           "(for NER use evokd, evokd-paper or a pool strategy)")
        if task.is_ner and self.mode == "class":
            self.mode = "free"  # NER has no single class per text: the paper's hard/easy sentences, annotated
        if (task.is_ner and strat.pool_select == "uncertainty"
                and not hasattr(STUDENTS.get(self.student_name), "confidence")):
            raise RunError(f"strategy '{strat.name}' ranks by the student's confidence, which the "
                           f"'{self.student_name}' student does not give; expected --student tagger (or use "
                           "pool-random, pool-errors or pool-evokd)")
        self._described = described_labels(task)
        self.pred_key = "student_entities" if task.is_ner else "student_pred"

    # helpers -------------------------------------------------------------------
    def _rng(self, round_: int) -> random.Random:
        return random.Random(int(hashlib.sha256(f"{self.config.seed}|{round_}".encode()).hexdigest()[:12], 16))

    def _train(self, rows: list[dict]):
        return fit_student(make_student(self.student_name), [r["text"] for r in rows],
                           [r[self.target_key] for r in rows], self.task)

    def _same(self, a, b) -> bool:
        if self.task.is_ner:
            key = lambda spans: sorted((s["start"], s["end"], s["label"]) for s in spans or [])  # noqa: E731
            return a is not None and b is not None and key(a) == key(b)
        return a == b

    def _predict(self, student, texts: list[str]) -> list[tuple[Any, float | None]]:
        """(prediction, confidence) per text; NER students give spans and no single confidence."""
        if not texts:
            return []
        if self.task.is_ner:
            return [(spans, None) for spans in student.predict(texts)]
        proba = student.predict_proba(texts)
        return [(student.labels_[int(np.argmax(row))], float(np.max(row))) for row in proba]

    def _evaluate(self, student) -> dict | None:
        if not self.eval_rows:
            return None
        pred = student.predict([r["text"] for r in self.eval_rows])
        gold = [r[self.target_key] for r in self.eval_rows]
        if self.task.is_ner:
            return entity_report(gold, list(pred), self.labels)
        return classification_report(gold, list(pred), self.labels)

    @staticmethod
    def _eval_fields(report: dict | None) -> dict:
        if report is None:
            return {"eval_n": 0, "eval_accuracy": None, "eval_macro_f1": None, "eval_entity_f1": None}
        if "accuracy" in report:
            return {"eval_n": report["n"], "eval_accuracy": report["accuracy"], "eval_macro_f1": report["macro_f1"],
                    "eval_entity_f1": None}
        return {"eval_n": report["n"], "eval_accuracy": None, "eval_macro_f1": None, "eval_entity_f1": report["f1"]}

    def _cross_predictions(self, rows: list[dict]) -> list[str | None]:
        """Out-of-fold predictions on the seeds: what the student says before it has seen each one."""
        n = len(rows)
        k = min(5, n)
        order = list(range(n))
        self._rng(0).shuffle(order)
        preds: list = [None] * n
        for fold in range(k):
            test_idx = set(order[fold::k])
            train = [rows[i] for i in range(n) if i not in test_idx]
            if self.task.is_ner:
                trainable = any(r["entities"] for r in train)
                fallback = []
            else:
                labels = {r["label"] for r in train}
                trainable = len(labels) >= 2
                fallback = next(iter(labels)) if labels else None
            if trainable:
                student = self._train(train)
                out = student.predict([rows[i]["text"] for i in sorted(test_idx)])
                for i, p in zip(sorted(test_idx), out):
                    preds[i] = p
            else:
                for i in test_idx:
                    preds[i] = fallback
        return preds

    # run -----------------------------------------------------------------------
    def run(self) -> list[dict]:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        with Store(self.out_dir / STORE_NAME) as store:
            info = store.run_info()
            if info is None:
                self._start(store)
            elif info["task_name"] != self.task.name:
                raise RunError(f"{self.out_dir}: holds a run of task '{info['task_name']}', not '{self.task.name}'; "
                               "use another --out directory")
            elif self.config.student is None:  # resuming: keep training the student the run started with
                self.student_name = run_student(info.get("config"), self.task.kind)
            if self.eval_report is not None:
                self._record_data(store, "eval", self.eval_report)
            last = store.last_round()
            if last is None:  # killed before round 0 was committed
                self._round_zero(store)
                last = 0
            self._load_pool(store)
            strat = self.config.strat
            teacher = None
            if self.teacher_lm is not None:
                # Every teacher call goes through the gateway: paid answers are cached in this store the
                # moment they return, so a killed or budget-stopped round costs nothing to redo.
                gateway = TeacherGateway(self.teacher_lm, self.config.gateway, cache=store)
                teacher = build_teacher(self.task, self.seeds, gateway, asdict(self.config))
            elif needs_teacher(self.config):
                raise RunError(f"strategy '{strat.name}' needs a teacher" + (" (or --oracle)" if strat.needs_pool else ""))
            student = self._train(store.samples())
            total = self.config.rounds if strat.adds_samples else 0  # seed-only: round 0 is the result
            self.progress("resume" if last > 0 else "start", done=last, total=total)
            for round_ in range(last + 1, total + 1):
                try:
                    student = self._round(store, teacher, student, round_)
                except BudgetExceeded as exc:
                    done = store.last_round() or 0
                    raise BudgetExceeded(
                        f"{exc}; stopped in round {round_}, rounds up to {done} are committed in {self.out_dir} "
                        f"(the paid calls of round {round_} are cached); re-run with a higher limit to continue") from None
                self._write_outputs(store)
            self._write_outputs(store)
            self.data = store.run_info()["config"].get("data", {})
            return store.rounds()

    def _record_data(self, store: Store, use: str, report) -> None:
        """Record in the run's config what reading its `use` ("eval", "pool") data changed, and say it."""
        store.record_run_data(use, report.as_dict())
        self.progress("data", use=use, description=report.describe())

    def _start(self, store: Store) -> None:
        run_id = hashlib.sha256(f"{self.task.name}|{_dt.datetime.now().isoformat()}".encode()).hexdigest()[:16]
        config = {**asdict(self.config), "student": self.student_name}  # the student trained, named even by default
        store.create_run(run_id, self.task.to_public_dict(), self.teacher_name, self.api_base, config, __version__)

    def _round_zero(self, store: Store) -> None:
        started = _dt.datetime.now()
        self.progress("step", round=0, name="embedding and training on seeds")
        preds = self._cross_predictions(self.seeds)
        vectors = encode([r["text"] for r in self.seeds])
        ner = self.task.is_ner
        samples = [
            SampleRow(round=0, source="seed", text=r["text"], label=None if ner else r["label"],
                      entities=r["entities"] if ner else None, text_hash=text_hash(r["text"]), status="accepted",
                      student_pred=None if ner else p, student_entities=p if ner else None, embedding=v)
            for r, p, v in zip(self.seeds, preds, vectors)
        ]
        student = self._train(self.seeds)
        report = self._evaluate(student)
        correct = sum(self._same(p, r[self.target_key]) for p, r in zip(preds, self.seeds))
        record = RoundRecord(
            round=0, started_at=started, finished_at=_dt.datetime.now(), analysis=None,
            n_generated=0, n_accepted=len(samples), n_rejected=0, rejected_by_reason={},
            feedback_size=0, feedback_accuracy=None, batch_student_accuracy=correct / len(self.seeds),
            train_size=len(self.seeds), **self._eval_fields(report),
            prompt_tokens=0, completion_tokens=0, n_calls=0, n_failed_calls=0,
        )
        store.commit_round(record, samples, [])
        self._write_outputs(store)
        self.progress("round", record=record)

    # one round -------------------------------------------------------------------
    def _feedback(self, store: Store, round_: int) -> Feedback:
        cfg = self.config
        latest = store.samples(round=round_ - 1)
        tk, pk = self.target_key, self.pred_key
        rows = [r for r in latest if r[pk] is not None]
        if cfg.review_every and round_ > 2 and round_ % cfg.review_every == 0:
            earlier = [r for r in store.samples() if r["round"] < round_ - 1 and r["intent"] == "hard"
                       and r[pk] is not None and not self._same(r[pk], r[tk])]
            rng = self._rng(round_)
            rows += rng.sample(earlier, min(len(earlier), 4))
        wrong = [{"text": r["text"], "gold": r[tk], "pred": r[pk]} for r in rows if not self._same(r[pk], r[tk])]
        correct = [{"text": r["text"], "gold": r[tk]} for r in rows if self._same(r[pk], r[tk])]
        lines = self._ner_error_stats(rows) if self.task.is_ner else self._error_stats(rows)
        metric = "eval_entity_f1" if self.task.is_ner else "eval_accuracy"
        history = [r[metric] for r in store.rounds()]
        return Feedback(wrong=wrong, correct=correct, error_stats="\n".join(lines), score_history=history)

    def _error_stats(self, rows: list[dict]) -> list[str]:
        gold = [r["label"] for r in rows]
        pred = [r["student_pred"] for r in rows]
        lines = []
        per_label = Counter(gold)
        errors = Counter(g for g, p in zip(gold, pred) if g != p)
        for label in self.labels:
            if per_label[label]:
                lines.append(f"{label}: {errors[label]} of {per_label[label]} wrong")
            else:
                lines.append(f"{label}: no examples in the latest batch")
        for g, p, c in confusion_pairs(gold, pred):
            lines.append(f"{c}x true {g} predicted as {p}")
        return lines

    def _ner_error_stats(self, rows: list[dict]) -> list[str]:
        report = entity_report([r["entities"] for r in rows], [r["student_entities"] for r in rows], self.labels)
        lines = []
        for label in self.labels:
            v = report["per_label"].get(label)
            if v and v["support"]:
                missed = round(v["support"] * (1 - v["recall"]))
                lines.append(f"{label}: {missed} of {v['support']} entities missed, precision {v['precision']:.2f}")
            else:
                lines.append(f"{label}: no entities in the latest batch")
        return lines

    # generation modes --------------------------------------------------------------
    def _generate_free(self, teacher: Teacher, round_: int, analysis: str, previous: list[str]) -> list[Candidate]:
        """The paper's step 3: hard and easy texts with no intended label (top-ups ask for what is missing)."""
        cfg = self.config
        n_hard = cfg.per_round if not cfg.use_easy else math.ceil(cfg.per_round / 2)
        n_easy = cfg.per_round - n_hard
        candidates: list[Candidate] = []
        unique = {"hard": set(), "easy": set()}
        seen: set[str] = set()
        for _ in range(1 + cfg.generation_topups):
            need_hard, need_easy = n_hard - len(unique["hard"]), n_easy - len(unique["easy"])
            if need_hard <= 0 and need_easy <= 0:
                break
            need_hard, need_easy = max(need_hard, 0), max(need_easy, 0)
            if cfg.separate_labeling:
                h, e = teacher.generate_inputs(round_, analysis, previous, need_hard, need_easy)
                batch = [Candidate(t, "hard") for t in h[:need_hard]] + [Candidate(t, "easy") for t in e[:need_easy]]
            else:
                h, e = teacher.generate_labeled_inputs(round_, analysis, previous, need_hard, need_easy)
                batch = ([Candidate(t, "hard", teacher_label=lab, labeler="teacher") for t, lab in h[:need_hard]]
                         + [Candidate(t, "easy", teacher_label=lab, labeler="teacher") for t, lab in e[:need_easy]])
            # A weak teacher often copies its hard texts into the easy list. Copies stay as
            # candidates (the filter rejects and records them) but do not count toward the
            # batch, so the next top-up call asks for what is still missing.
            for c in batch:
                h_ = text_hash(c.text)
                if h_ not in seen:
                    seen.add(h_)
                    unique[c.intent].add(h_)
                candidates.append(c)
        return candidates

    def _warmup(self, round_: int) -> bool:
        """Round 1 of a strategy with a warm-up: class-conditioned varied texts, no weakness analysis."""
        return self.config.strat.warmup and round_ == 1

    def _class_budget(self, store: Store, round_: int, even: bool) -> dict[str, int]:
        """The round's budget per label. Even: a fair split whose remainder rotates with the round.
        Otherwise: one per label as a floor (when the budget allows), the rest in proportion to the
        student's smoothed error on each label over the last two batches (predicted before training)."""
        n, labels = self.config.per_round, self.labels
        k = len(labels)
        if even:
            out = {lab: n // k for lab in labels}
            for i in range(n % k):
                out[labels[(round_ * n + i) % k]] += 1
            return out
        rows = [r for r in store.samples() if r["round"] >= round_ - 2 and r["student_pred"] is not None]
        wrong, total = Counter(), Counter()
        for r in rows:
            total[r["label"]] += 1
            wrong[r["label"]] += r["student_pred"] != r["label"]
        weight = {lab: (wrong[lab] + 1) / (total[lab] + 2) for lab in labels}
        floor = 1 if n >= k else 0
        out = {lab: floor for lab in labels}
        rest = n - floor * k
        if rest:
            total_w = sum(weight.values())
            share = {lab: rest * weight[lab] / total_w for lab in labels}
            for lab in labels:
                out[lab] += int(share[lab])
            left = n - sum(out.values())
            for lab in sorted(labels, key=lambda lab: (share[lab] - int(share[lab]), weight[lab]), reverse=True)[:left]:
                out[lab] += 1
        return out

    def _generate_class(self, teacher: Teacher, round_: int, aim: str | None, need: dict[str, int], attempt: int,
                        varied: bool) -> list[Candidate]:
        """Class-conditioned texts: per label, hard and easy ones (or varied ones: warm-up, static). The
        label goes to the teacher with its description: a 1.5B model given only "positive" and a
        hard-text brief often writes the opposite class."""
        out: list[Candidate] = []
        for label, n in need.items():
            if n <= 0:
                continue
            if varied:
                kinds = [("varied", n)]
            elif not self.config.use_easy:
                kinds = [("hard", n)]
            elif attempt == 0 and n > 1:
                kinds = [("hard", math.ceil(n / 2)), ("easy", n - math.ceil(n / 2))]
            else:  # one text, or a top-up: one call per class (each call costs a prompt read), hard then easy
                kinds = [("easy" if attempt and attempt % 2 == 0 else "hard", n)]
            for kind, k in kinds:
                weaknesses = aim or "(not used: write natural, varied examples)"
                for t in teacher.generate_for_label(round_, weaknesses, kind, self._described[label], k,
                                                    attempt_key=str(attempt)):
                    out.append(Candidate(t, kind, intended_label=label))
        return out

    def _generate_paraphrases(self, teacher: Teacher, round_: int, n: int, attempt: int) -> list[Candidate]:
        """AugGPT-style: two rewrites per seed, seeds taken in turn (rotating with the round and top-up)."""
        per_seed = 2
        calls = math.ceil(n / per_seed)
        start = ((round_ - 1) * math.ceil(self.config.per_round / per_seed) + attempt * calls) % len(self.seeds)
        out: list[Candidate] = []
        for i in range(calls):
            seed = self.seeds[(start + i) % len(self.seeds)]
            k = min(per_seed, n - i * per_seed)
            for t in teacher.paraphrase_text(round_, seed["text"], seed["label"], k, attempt_key=str(attempt)):
                out.append(Candidate(t, "paraphrase", intended_label=seed["label"], teacher_label=seed["label"],
                                     labeler="seed", query=seed["text"]))
        return out

    # pool mode -------------------------------------------------------------------------
    def _load_pool(self, store: Store) -> None:
        if store.pool_size() or self.config.pool is None:
            return
        ner_oracle = self.config.oracle and self.task.is_ner
        if ner_oracle and Path(self.config.pool).is_dir():
            raise RunError(f"{self.config.pool}: --oracle on a NER task reads each row's entity spans, which an "
                           "embedded pool folder does not keep; expected a JSONL/CSV/Parquet pool file of "
                           "{\"text\", \"entities\"} or {\"tokens\", \"tags\"} rows")
        if Path(self.config.pool).is_dir():  # embedded once by `evokd pool embed`: Parquet shards with vectors
            from evokd.pool import check_pool_dir, shard_glob

            n = check_pool_dir(store.con, self.config.pool, self.labels if self.config.oracle else None)
            self.progress("step", round=0, name=f"loading {n} embedded pool rows")
            store.load_pool_shards(shard_glob(self.config.pool), with_labels=self.config.oracle)
            return
        if ner_oracle:  # the gold spans travel in the pool's label column as JSON
            ner_rows, report = self.task.read_data(self.config.pool, "pool")
            rows = [{"text": r["text"], "label": json.dumps(r["entities"])} for r in ner_rows]
            if not rows:
                raise InputError(self.config.pool, "no rows; expected sentences with their entities", field="text")
        else:
            rows, report = read_pool(self.config.pool, self.labels if self.config.oracle else None)
        self._record_data(store, "pool", report)
        for r in rows:
            r["text_hash"] = text_hash(r["text"])
        if self.pool_vectors is not None:
            store.load_pool(rows, self.pool_vectors([r["text"] for r in rows]))
            return
        vectors = []
        step = 512
        for i in range(0, len(rows), step):
            self.progress("step", round=0, name=f"embedding the pool {i}/{len(rows)}")
            vectors.append(encode([r["text"] for r in rows[i:i + step]]))
        store.load_pool(rows, np.concatenate(vectors))

    def _free_blocks(self, store: Store, column: str, taken: set[int]):
        """The available pool in blocks, minus the ids this round has already taken."""
        drop = np.fromiter(taken, dtype=np.int64, count=len(taken))
        for ids, values in store.pool_blocks(column):
            if len(drop):
                keep = np.nonzero(~np.isin(ids, drop))[0]
                ids = ids[keep]
                values = values[keep] if column == "embedding" else [values[j] for j in keep]
            yield ids, values

    def _pool_rank(self, store: Store, student, feedback: Feedback, round_: int, taken: set[int]) -> list[int]:
        """Available pool ids, best first, for the no-LLM pool strategies. The pool is read in blocks
        (`Store.pool_blocks`): memory holds ids, one block, and one score per row (pool-errors: the
        vectors of at most POOL_ERRORS_SAMPLE rows), never the whole pool's vectors."""
        select = self.config.strat.pool_select
        if select == "random":
            free = [int(i) for i in store.pool_free_ids() if int(i) not in taken]
            self._rng(round_).shuffle(free)
            return free
        if select == "errors":
            return self._pool_errors_rank(store, feedback, round_, taken)
        ids, conf = [np.empty(0, dtype=np.int64)], [np.empty(0)]
        for block_ids, texts in self._free_blocks(store, "text", taken):
            ids.append(block_ids)
            if not texts:
                conf.append(np.empty(0))
            elif self.task.is_ner:  # the least certain token's top-tag probability
                conf.append(student.confidence(texts))
            else:
                conf.append(np.max(self._student_proba(student, texts), axis=1))
        ids_all, conf_all = np.concatenate(ids), np.concatenate(conf)
        return [int(i) for i in ids_all[np.argsort(conf_all, kind="stable")]]

    POOL_ERRORS_SAMPLE = 20_000

    def _pool_errors_rank(self, store: Store, feedback: Feedback, round_: int, taken: set[int]) -> list[int]:
        """pool-errors: one typical text from each uncovered region of the pool, the regions nearest
        the latest mistakes first (`pool.coverage_picks`), then the rest of the pool at random. The
        regions are found among at most POOL_ERRORS_SAMPLE free rows (drawn at random each round when
        the pool is larger), read block by block, so memory stays bounded on any pool size."""
        from evokd.pool import coverage_picks

        free = [int(i) for i in store.pool_free_ids() if int(i) not in taken]
        rng = self._rng(round_)
        keep = (np.sort(np.asarray(rng.sample(free, self.POOL_ERRORS_SAMPLE), dtype=np.int64))
                if len(free) > self.POOL_ERRORS_SAMPLE else None)
        ids, vectors = [np.empty(0, dtype=np.int64)], [np.zeros((0, EMBED_DIM), dtype=np.float32)]
        for block_ids, block in self._free_blocks(store, "embedding", taken):
            if keep is not None:
                rows = np.nonzero(np.isin(block_ids, keep))[0]
                block_ids, block = block_ids[rows], block[rows]
            ids.append(block_ids)
            vectors.append(block)
        mistakes = (encode([w["text"] for w in feedback.wrong]) if feedback.wrong
                    else np.zeros((0, EMBED_DIM), dtype=np.float32))
        picks = coverage_picks(np.concatenate(ids), np.concatenate(vectors), store.accepted_vectors(), mistakes,
                               self.config.per_round, seed=100 * self.config.seed + round_)
        chosen = set(picks)
        rest = [i for i in free if i not in chosen]
        rng.shuffle(rest)
        return picks + rest

    def _student_proba(self, student, texts: list[str]) -> np.ndarray:
        return student.predict_proba(texts) if texts else np.zeros((0, len(self.labels)))

    def _to_pool(self, store: Store, queries: list[Candidate], taken: set[int]) -> list[Candidate]:
        """pool-evokd: each generated text is replaced by its nearest unused pool text (MiniLM cosine)."""
        if not queries:
            return []
        from evokd.pool import nearest_ids

        # the first free neighbour of each query is within its top (taken + queries) rows
        tops = nearest_ids(encode([q.text for q in queries]), store.pool_blocks("embedding"), len(taken) + len(queries))
        picks: list[int | None] = []
        for top in tops:
            pick = next((int(j) for j in top if int(j) not in taken), None)
            if pick is not None:
                taken.add(pick)
            picks.append(pick)
        hits = [q for q, p in zip(queries, picks) if p is not None]
        found = iter(self._pool_candidates(store, [p for p in picks if p is not None], queries=hits))
        return [next(found) if p is not None else
                Candidate(q.text, q.intent, intended_label=q.intended_label, reject_reason=REASON_POOL_EMPTY)
                for q, p in zip(queries, picks)]

    def _pool_candidates(self, store: Store, ids: list[int], *, queries: list[Candidate] | None = None
                         ) -> list[Candidate]:
        """Candidates of pool rows; with `queries`, each row stands in for the generated text at its position."""
        rows, vectors = store.pool_rows(ids)
        out = []
        for k, r in enumerate(rows):
            q = queries[k] if queries else None
            c = Candidate(r["text"], q.intent if q else "pool", intended_label=q.intended_label if q else None,
                          embedding=vectors[k], query=q.text if q else None, pool_id=r["pool_id"])
            if self.config.oracle:
                c.teacher_label = json.loads(r["label"]) if self.task.is_ner else r["label"]
                c.labeler = "oracle"
            out.append(c)
        return out

    # filters and labels ----------------------------------------------------------------
    def _filter(self, store: Store, candidates: list[Candidate], prior: list[Candidate] = ()) -> None:
        """Validity, exact and near duplicates against the store and the round's earlier accepted texts."""
        seen = store.accepted_hashes() | {c.hash for c in prior if c.reject_reason is None}
        for c in candidates:
            if c.reject_reason is not None:
                continue
            c.hash = text_hash(c.text)
            c.reject_reason = self.validity.reason(c.text)
            if c.reject_reason is None and c.hash in seen:
                c.reject_reason = REASON_EXACT_DUP
            if c.reject_reason is None:
                seen.add(c.hash)
        alive = [c for c in candidates if c.reject_reason is None]
        if alive:
            todo = [c for c in alive if c.embedding is None]
            for c, v in zip(todo, encode([c.text for c in todo])):
                c.embedding = v
            earlier = [c.embedding for c in prior if c.reject_reason is None and c.embedding is not None]
            existing = store.accepted_vectors()
            if earlier:
                existing = np.vstack([existing, np.stack(earlier)])
            keep = self.near_dup.select(np.stack([c.embedding for c in alive]), existing)
            for c, k in zip(alive, keep):
                if not k:
                    c.reject_reason = REASON_NEAR_DUP

    def _label(self, teacher: Teacher | None, round_: int, candidates: list[Candidate]) -> None:
        """Labels for the texts that passed the filters: oracle/seed labels as they are, the intended
        class when the strategy skips the labeling call, otherwise the teacher's separate labeling
        (and, with the agreement switch, only when it names the class the text was written for)."""
        cfg, strat = self.config, self.config.strat
        alive = [c for c in candidates if c.reject_reason is None and c.teacher_label is None]
        if not cfg.separate_labeling:
            for c in alive:
                if c.intended_label is not None:
                    c.teacher_label, c.labeler = c.intended_label, "intent"
            alive = [c for c in alive if c.teacher_label is None]
        if not alive:
            return
        self.progress("step", round=round_, name=f"labeling 0/{len(alive)}")
        labeled = teacher.label_many(round_, [c.text for c in alive], cfg.label_votes, concurrency=cfg.gateway.concurrency,
                                     on_done=lambda i, n: self.progress("step", round=round_, name=f"labeling {i}/{n}"))
        for c, result in zip(alive, labeled):
            c.labeler = "teacher"
            if self.task.is_ner:
                if result is None:
                    c.reject_reason = REASON_NO_LABEL
                else:
                    c.teacher_label, c.label_notes = result
            else:
                c.teacher_label, c.reject_reason = result
                if (c.reject_reason is None and strat.agreement and c.intended_label is not None
                        and c.teacher_label != c.intended_label):
                    c.reject_reason = REASON_OFF_INTENT

    def _collect(self, store: Store, teacher: Teacher | None, student, round_: int, feedback: Feedback,
                 aim: str | None, previous: list[str]) -> list[Candidate]:
        """The round's candidates, filtered and labeled, by the strategy's mode. Top-ups ask again for
        what the filters and the labeling rejected, at most `generation_topups` times."""
        cfg, strat = self.config, self.config.strat
        mode = self.mode
        if mode == "free" and not strat.needs_pool:
            candidates = self._generate_free(teacher, round_, aim, previous)
            self._filter(store, candidates)
            self._label(teacher, round_, candidates)
            return candidates
        warm = self._warmup(round_)
        even = mode == "static" or warm or not strat.class_budget
        need = self._class_budget(store, round_, even) if mode in ("class", "static") else {None: cfg.per_round}
        candidates: list[Candidate] = []
        taken: set[int] = set()
        ranked: list[int] | None = None
        for attempt in range(1 + cfg.generation_topups):
            if sum(max(v, 0) for v in need.values()) <= 0:
                break
            if mode in ("class", "static"):
                batch = self._generate_class(teacher, round_, None if (warm or mode == "static") else aim, need, attempt,
                                             varied=warm or mode == "static")
            elif mode == "paraphrase":
                batch = self._generate_paraphrases(teacher, round_, need[None], attempt)
            elif mode == "free":  # pool-evokd on NER: the paper's free texts are the queries
                batch = self._generate_free(teacher, round_, aim, previous)[:need[None]]
            else:  # no-LLM pool strategies
                if ranked is None:
                    ranked = self._pool_rank(store, student, feedback, round_, taken)
                picks = [i for i in ranked if i not in taken][:need[None]]
                taken.update(picks)
                batch = self._pool_candidates(store, picks)
            if strat.needs_pool and mode != "none":
                batch = self._to_pool(store, batch, taken)
            if not batch:
                continue
            self._filter(store, batch, prior=candidates)
            self._label(teacher, round_, batch)
            candidates += batch
            for c in batch:
                key = c.intended_label if c.intended_label in need else None
                if c.reject_reason is None and key in need:
                    need[key] -= 1
        return candidates

    def _round(self, store: Store, teacher: Teacher | None, student, round_: int):
        cfg, strat = self.config, self.config.strat
        started = _dt.datetime.now()
        self.progress("round_start", round=round_, total=cfg.rounds)
        feedback = self._feedback(store, round_)
        analysis = None
        if strat.analysis and not self._warmup(round_):
            self.progress("step", round=round_, name="weakness analysis")
            analysis = teacher.analyze_weaknesses(round_, feedback, use_correct=cfg.correct_feedback)
        previous = [r["analysis"] for r in store.rounds() if r["analysis"]]
        # A failed analysis still leaves the code-computed statistics to aim at.
        aim = analysis or f"Error statistics of the latest batch:\n{feedback.error_stats}"
        self.progress("step", round=round_, name="collecting samples" if self.mode == "none" else "generating inputs")
        candidates = self._collect(store, teacher, student, round_, feedback, aim, previous)
        for c in candidates:
            if self.task.is_ner and c.reject_reason is None and isinstance(c.teacher_label, tuple):
                c.teacher_label, c.label_notes = c.teacher_label  # generated together with its spans
            if self.task.is_ner and c.reject_reason is None:
                from evokd.ner import validate_spans

                c.reject_reason = validate_spans(c.text, c.teacher_label, self.labels)
        accepted = [c for c in candidates if c.reject_reason is None]
        for c, (pred, score) in zip(accepted, self._predict(student, [c.text for c in accepted])):
            c.student_pred, c.student_score = pred, score
        self.progress("step", round=round_, name="training the student")
        train_rows = store.samples() + [{"text": c.text, self.target_key: c.teacher_label} for c in accepted]
        new_student = self._train(train_rows)
        report = self._evaluate(new_student)
        calls: list[CallRow] = teacher.drain_calls() if teacher is not None else []
        rejected = Counter(c.reject_reason for c in candidates if c.reject_reason)
        batch_correct = [self._same(c.student_pred, c.teacher_label) for c in accepted]
        record = RoundRecord(
            round=round_, started_at=started, finished_at=_dt.datetime.now(), analysis=analysis,
            n_generated=len(candidates), n_accepted=len(accepted), n_rejected=len(candidates) - len(accepted),
            rejected_by_reason=dict(rejected), feedback_size=len(feedback.wrong) + len(feedback.correct),
            feedback_accuracy=(len(feedback.correct) / (len(feedback.wrong) + len(feedback.correct))
                               if feedback.wrong or feedback.correct else None),
            batch_student_accuracy=sum(batch_correct) / len(batch_correct) if batch_correct else None,
            train_size=len(train_rows), **self._eval_fields(report),
            prompt_tokens=sum(c.prompt_tokens for c in calls), completion_tokens=sum(c.completion_tokens for c in calls),
            n_calls=len(calls), n_failed_calls=sum(not c.ok for c in calls),
        )
        ner = self.task.is_ner
        samples = [
            SampleRow(round=round_, source="pool" if c.pool_id is not None else "generated", intent=c.intent, text=c.text,
                      label=None if ner or c.reject_reason else c.teacher_label,
                      entities=c.teacher_label if ner and c.reject_reason is None else None,
                      intended_label=c.intended_label, teacher_label=None if ner else c.teacher_label,
                      student_pred=None if ner else c.student_pred, student_entities=c.student_pred if ner else None,
                      student_score=c.student_score, label_notes=c.label_notes or None,
                      status="accepted" if c.reject_reason is None else "rejected", reject_reason=c.reject_reason,
                      text_hash=c.hash or text_hash(c.text), embedding=c.embedding, labeler=c.labeler, query=c.query,
                      pool_id=c.pool_id)
            for c in candidates
        ]
        store.commit_round(record, samples, calls)
        self.progress("round", record=record)
        return new_student

    # outputs ---------------------------------------------------------------------
    def _write_outputs(self, store: Store) -> None:
        if self.task.is_ner:
            rows = [{"id": r["id"], "text": r["text"], "entities": r["entities"], "source": r["source"],
                     "round": r["round"], "intent": r["intent"], "student_entities": r["student_entities"]}
                    for r in store.samples()]
        else:
            rows = [{"id": r["id"], "text": r["text"], "label": r["label"], "source": r["source"], "round": r["round"],
                     "intent": r["intent"], "teacher_label": r["teacher_label"], "student_pred": r["student_pred"],
                     "student_score": r["student_score"]}
                    for r in store.samples()]
        write_jsonl_atomic(self.out_dir / DATASET_NAME, rows)
        write_jsonl_atomic(self.out_dir / ROUNDS_NAME, store.rounds())

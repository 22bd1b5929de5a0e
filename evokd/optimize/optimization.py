"""One `evokd optimize` invocation: each step compiled, checked against the unoptimised program,
kept or not, and the prompt state and its sidecar written."""

from __future__ import annotations

import datetime as _dt
import random
import time
from dataclasses import dataclass
from pathlib import Path

import dspy

from evokd import __version__
from evokd.errors import EvokdError
from evokd.io import write_json_atomic
from evokd.optimize.config import OptimizeConfig, Progress, _quiet
from evokd.optimize.data import label_examples, split_data
from evokd.optimize.programs import AnalyzeProgram, GenerateProgram, LabelProgram, balance_label_demos, compact_demos
from evokd.optimize.scoring import LabelMetric, YieldMetric
from evokd.prompts import STEP_PREDICTORS, dump_program, meta_path, prompt_document
from evokd.task import TaskSpec

NO_ANALYSIS = "(not used: write natural, varied examples)"  # what the loop's warm-up round passes


@dataclass
class StepResult:
    step: str
    metric: str
    n_train: int
    n_val: int
    before: float
    after: float
    kept: str  # optimised | unoptimised (the optimised one scored lower) | unchanged (nothing better was found)
    seconds: float
    tokens: int
    demos: int
    instructions_changed: bool
    heldout: dict | None = None


def _same_prompt(a: dict, b: dict) -> bool:
    return a.get("demos") == b.get("demos") and a.get("signature") == b.get("signature")


class Optimization:
    """One `evokd optimize` invocation: steps in pipeline order, each compiled and checked."""

    def __init__(self, task: TaskSpec, lm: dspy.LM, teacher_name: str, config: OptimizeConfig, work_dir: Path,
                 dev: list[dict] | None = None, heldout: list[dict] | None = None, zero_shot: bool = False,
                 progress: Progress = _quiet, gateway_config=None):
        self.task = task
        self.lm = lm
        self.teacher_name = teacher_name
        self.config = config
        self.work_dir = Path(work_dir)
        self.seeds = task.seed_rows()
        self.dev = list(dev or [])
        self.heldout = list(heldout or [])
        self.zero_shot = zero_shot
        self.search_log: list[dict] = []  # random search: each candidate's validation score
        self.progress = progress
        self.gateway_config = gateway_config  # token / call / cost budgets over the whole optimisation
        if not task.rules.one_label_per_text and any(s != "label" for s in config.steps):
            raise EvokdError("--steps: generate and analyze tune class-conditioned generation, which NER tasks do not "
                             "use; optimise the label step for NER")

    # helpers ---------------------------------------------------------------------
    def _teacher(self, gateway):
        from evokd.loop import LoopConfig, generation_chars, seed_demonstrations
        from evokd.teacher.teacher import Teacher

        # the demonstrations the loop gives its labeling step
        demos = seed_demonstrations(self.task, self.seeds, LoopConfig.demonstrations_per_label)
        return Teacher(self.task, gateway, demonstrations=demos, seed=self.config.seed,
                       max_chars=generation_chars(self.seeds, 1000), label_temperature=self.config.label_temperature,
                       label_format=self.config.label_format)

    def _max_demos(self, step: str) -> int:
        if self.config.max_demos is not None:
            return self.config.max_demos
        return min(8, 2 * len(self.task.label_names)) if step == "label" else 2

    def evaluate(self, program, metric, examples, what: str) -> float:
        """Mean metric over examples, one call at a time (or `threads` at a time), with progress."""
        if not examples:
            return float("nan")
        self.progress("eval", name=what, done=0, total=len(examples))
        scores: list[float] = []

        def one(ex):
            try:
                pred = program(**ex.inputs())
            except EvokdError:  # a spent budget or a refused key stops the optimisation
                raise
            except Exception:  # teacher output is untrusted: an unparseable answer scores 0
                return 0.0
            value = metric(ex, pred)
            return float(value)

        if self.config.threads <= 1 or getattr(self.lm, "is_local", False):
            for i, ex in enumerate(examples):
                scores.append(one(ex))
                self.progress("eval", name=what, done=i + 1, total=len(examples))
        else:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(self.config.threads) as pool:
                for i, value in enumerate(pool.map(one, examples)):
                    scores.append(value)
                    self.progress("eval", name=what, done=i + 1, total=len(examples))
        return sum(scores) / len(scores)

    def _compile(self, program, metric, trainset, valset, step: str, gateway):
        cfg, k = self.config, self._max_demos(step)
        labeled = k if step == "label" else 0  # generation examples have no gold texts to show
        threads = 1 if gateway.is_local else cfg.threads
        if cfg.optimizer == "bootstrap":
            if cfg.budget and cfg.budget > 1:
                return self._random_search(program, metric, trainset, valset, step, k, labeled)
            opt = dspy.BootstrapFewShot(metric=metric, max_bootstrapped_demos=k, max_labeled_demos=labeled, max_rounds=1)
            return opt.compile(program, trainset=trainset)
        if cfg.optimizer == "mipro":
            try:
                import optuna  # noqa: F401
            except ImportError:
                raise EvokdError("--optimizer mipro needs optuna; pip install 'optuna>=3.6'") from None
            trials = cfg.budget or 6
            opt = dspy.MIPROv2(metric=metric, prompt_model=gateway, task_model=gateway, auto=None,
                               num_candidates=max(2, min(6, trials // 2)), max_bootstrapped_demos=k,
                               max_labeled_demos=labeled, num_threads=threads, seed=cfg.seed, verbose=False,
                               track_stats=False)
            return opt.compile(program, trainset=trainset, valset=valset, num_trials=trials,
                               minibatch=len(valset) > 35, minibatch_size=min(35, max(1, len(valset))))
        log_dir = self.work_dir / f"gepa-{step}"
        opt = dspy.GEPA(metric=metric, reflection_lm=gateway, max_metric_calls=cfg.budget or 10 * max(1, len(valset)),
                        num_threads=threads, seed=cfg.seed, log_dir=str(log_dir), track_stats=False,
                        reflection_minibatch_size=3)
        return opt.compile(program, trainset=trainset, valset=valset)

    def _finish(self, compiled, step: str, trainset: list) -> None:
        """What evokd does to every compiled program before it is scored or saved: demos cut to the
        step's own fields, and (classification labeling, bootstrap) every label shown."""
        for pname, predictor in compiled.named_predictors():
            compact_demos(predictor, pname)
            if step == "label" and self.task.rules.one_label_per_text and self.config.optimizer == "bootstrap":
                balance_label_demos(predictor, trainset, self.task.label_names, self._max_demos(step))

    def _random_search(self, program, metric, trainset, valset, step: str, k: int, labeled: int):
        """BootstrapFewShotWithRandomSearch's candidates (the seeds' labeled demos, the plain bootstrap,
        then `budget` bootstraps of shuffled training items with 1..k demos each), except that each
        candidate is scored on the validation items *as it would be saved* (after `_finish`): scoring
        DSPy's raw candidate and post-processing the winner afterwards can keep a program that scores
        far lower than the one that won. A re-run replays the call cache."""
        best, best_score = None, float("-inf")
        total = self.config.budget + 2
        for i, seed in enumerate(range(-2, self.config.budget)):
            items = list(trainset)
            if seed == -2:
                candidate = dspy.LabeledFewShot(k=labeled or k).compile(program, trainset=items, sample=True)
            else:
                size = k
                if seed >= 0:
                    random.Random(seed).shuffle(items)
                    size = random.Random(seed).randint(1, k)
                candidate = dspy.BootstrapFewShot(metric=metric, max_bootstrapped_demos=size, max_labeled_demos=labeled,
                                                  max_rounds=1).compile(program, trainset=items)
            self._finish(candidate, step, trainset)
            score = self.evaluate(candidate, metric, valset, f"{step}: candidate {i + 1} of {total} on "
                                                             f"{len(valset)} validation items")
            self.search_log.append({"step": step, "candidate": seed, "demos": sum(len(p.demos) for _, p in
                                                                                  candidate.named_predictors()),
                                    "validation": round(score, 4)})
            if score > best_score:
                best, best_score = candidate, score
        return best

    # steps -------------------------------------------------------------------------
    def _student(self, rows: list[dict]):
        from evokd.students import fit_student, make_student

        name = self.config.student or self.task.rules.default_student
        return fit_student(make_student(name), [r["text"] for r in rows], [r["label"] for r in rows], self.task)

    def _feedback(self, student, rows: list[dict]):
        """What the loop's analysis step sees, computed from the student's errors on the dev rows."""
        from evokd.loop.feedback import feedback_rows
        from evokd.teacher.teacher import Feedback

        rules = self.task.rules
        preds = list(student.predict([r["text"] for r in rows]))
        scored = [{**r, rules.pred_key: p} for r, p in zip(rows, preds)]
        wrong, correct = feedback_rows(scored, rules)
        return Feedback(wrong=wrong, correct=correct, stats=rules.error_stats(scored, self.task.label_names),
                        score_history=[len(correct) / max(1, len(rows))])

    def _generation_sets(self, teacher, train_rows, val_rows, step: str):
        """Examples for the generate/analyze steps, the yield metric, and the feedback they use."""
        from evokd.embed import encode

        student = self._student(train_rows)
        feedback = self._feedback(student, val_rows)
        known = encode([r["text"] for r in self.seeds + self.dev])
        metric = YieldMetric(self.task, teacher, student, known, near_dup=self.config.near_dup,
                             max_chars=teacher.max_chars,
                             on_call=lambda: self.progress("tick"))
        from evokd.loop import described_labels

        described, n = described_labels(self.task), self.config.texts_per_call
        if step == "analyze":
            shown = {"error_stats": feedback.error_stats, "wrong_examples": teacher._examples_text(feedback.wrong, True),
                     "correct_examples": teacher._examples_text(feedback.correct, False),
                     "score_history": f"round 0: {feedback.score_history[0]:.3f}"}
            examples = [dspy.Example(**shown, kind="hard", label=described[lab], n=n, target=lab).with_inputs(
                *shown, "kind", "label", "n") for lab in self.task.label_names]
        else:
            with dspy.context(trace=None):
                analysis = teacher.analyze_weaknesses(0, feedback) or feedback.error_stats
            examples = []
            for kind in ("varied", "hard", "easy"):
                for lab in self.task.label_names:
                    examples.append(dspy.Example(weaknesses=NO_ANALYSIS if kind == "varied" else analysis, kind=kind,
                                                 label=described[lab], n=n, target=lab).with_inputs(
                                                     "weaknesses", "kind", "label", "n"))
            random.Random(self.config.seed).shuffle(examples)
        half = max(1, len(examples) // 2)
        return metric, examples[:half] if len(examples) > 3 else examples, examples[half:] if len(examples) > 3 else examples

    def run(self, out: Path) -> dict:
        from evokd.store import Store
        from evokd.teacher.gateway import TeacherGateway

        self.work_dir.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        results: list[StepResult] = []
        zero_shot = None
        train_rows, val_rows = split_data(self.task, self.seeds, self.dev, self.config.seed)
        with Store(self.work_dir / "cache.duckdb") as store:
            gateway = TeacherGateway(self.lm, self.gateway_config, cache=store)
            teacher = self._teacher(gateway)
            with dspy.context(lm=gateway, adapter=dspy.JSONAdapter()):
                for step in self.config.steps:
                    results.append(self._run_step(step, teacher, gateway, store, train_rows, val_rows))
                if self.heldout and self.zero_shot:
                    zero_shot = self._zero_shot(gateway, store)
            program = dump_program(teacher, self.config.steps)
            spent = store.cache_spent()
        doc = prompt_document(self.task, self.config.steps, program)
        meta = {
            "evokd_version": __version__,
            "created_at": _dt.datetime.now().isoformat(timespec="seconds"),
            "task": {"name": self.task.name, "kind": self.task.kind, "labels": list(self.task.label_names),
                     "file": str(self.task.path.name) if self.task.path else None},
            "teacher": self.teacher_name,
            "optimizer": self.config.optimizer,
            "budget": self.config.budget,
            "label_temperature": self.config.label_temperature,
            "label_format": self.config.label_format,
            "steps": [r.__dict__ for r in results],
            "data": {"seeds": len(self.seeds), "dev": len(self.dev), "train": len(train_rows), "validation": len(val_rows),
                     "validation_is_train": not self.dev, "heldout": len(self.heldout)},
            "zero_shot_heldout": zero_shot,
            "candidates": self.search_log,  # random search only: every candidate as it was scored
            "seconds": round(time.perf_counter() - started, 1),
            "tokens_total": spent.tokens,
            "calls_total": spent.calls,
            "digest": doc["digest"],
        }
        write_json_atomic(out, doc)
        write_json_atomic(meta_path(out), meta)
        return meta

    def _run_step(self, step, teacher, gateway, store, train_rows, val_rows) -> StepResult:
        t0, tokens0 = time.perf_counter(), store.cache_spent().tokens
        if step == "label":
            program, metric = LabelProgram(teacher), LabelMetric(self.task, on_call=lambda: self.progress("tick"))
            trainset, valset = label_examples(self.task, train_rows), label_examples(self.task, val_rows)
            name = self.task.rules.headline[1]
        else:
            metric, trainset, valset = self._generation_sets(teacher, train_rows, val_rows, step)
            program = (AnalyzeProgram if step == "analyze" else GenerateProgram)(teacher)
            name = "yield"
        saved = {n: p.dump_state() for n, p in program.named_predictors()}
        before = self.evaluate(program, metric, valset, f"{step}: unoptimised on {len(valset)} validation items")
        self.progress("phase", name=f"{step}: {self.config.optimizer} on {len(trainset)} training items")
        compiled = self._compile(program, metric, trainset, valset, step, gateway)
        self._finish(compiled, step, trainset)
        after = self.evaluate(compiled, metric, valset, f"{step}: optimised on {len(valset)} validation items")
        tuned = STEP_PREDICTORS[step]
        compiled_states = {n: p.dump_state() for n, p in compiled.named_predictors()}
        if all(_same_prompt(compiled_states[n], saved[n]) for n in tuned if n in saved):
            kept = "unchanged"  # the optimiser found nothing better than the program it started from
        else:
            kept = "optimised" if after >= before else "unoptimised"
        for pname, predictor in program.named_predictors():
            if pname not in tuned:
                continue
            state = compiled_states[pname] if kept == "optimised" else saved[pname]
            predictor.load_state(state)  # the Teacher's own predictor: later steps and the saved state see it
        demos = sum(len(p.demos) for n, p in program.named_predictors() if n in tuned)
        changed = any(p.signature.instructions != saved[n]["signature"]["instructions"]
                      for n, p in program.named_predictors() if n in tuned)
        heldout = None
        if step == "label" and self.heldout:
            examples = label_examples(self.task, self.heldout)
            heldout = {"n": len(examples),
                       "after": self.evaluate(program, metric, examples, f"label: kept program on {len(examples)} held-out")}
            current = {n: p.dump_state() for n, p in program.named_predictors()}
            for n, p in program.named_predictors():
                p.load_state(saved[n])
            heldout["before"] = self.evaluate(program, metric, examples, f"label: unoptimised on {len(examples)} held-out")
            for n, p in program.named_predictors():
                p.load_state(current[n])
        return StepResult(step=step, metric=name, n_train=len(trainset), n_val=len(valset), before=before, after=after,
                          kept=kept, seconds=round(time.perf_counter() - t0, 1),
                          tokens=store.cache_spent().tokens - tokens0, demos=demos, instructions_changed=changed,
                          heldout=heldout)

    def _zero_shot(self, gateway, store) -> dict:
        """The labeling step with neither seed demonstrations nor optimised state, on the held-out rows."""
        from evokd.teacher.teacher import Teacher

        bare = Teacher(self.task, gateway, demonstrations=[], seed=self.config.seed,
                       label_temperature=self.config.label_temperature, label_format=self.config.label_format)
        examples = label_examples(self.task, self.heldout)
        score = self.evaluate(LabelProgram(bare), LabelMetric(self.task), examples,
                              f"label: zero-shot on {len(examples)} held-out")
        return {"n": len(examples), "score": score}

"""Pool strategies: real texts from the user's unlabeled in-domain corpus instead of invented ones.

`PoolRankSource` (no LLM needed to choose): random texts, the ones the student is least sure of, or
one typical text from each region no labeled text covers yet. `NearestPoolSource` (pool-evokd): the
texts another source generates become queries, and the nearest unused pool text of each is taken.
Without --oracle the teacher labels the chosen texts; with it, the pool's own labels are taken.
The pool lives in the run store and is read in blocks, so memory stays bounded on any pool size.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np

from evokd.embed import EMBED_DIM, encode
from evokd.errors import InputError, RunError
from evokd.filters import REASON_POOL_EMPTY, text_hash
from evokd.io import read_pool
from evokd.loop.candidates import Candidate
from evokd.loop.sources.base import Context, Round, Source
from evokd.loop.state import round_rng

POOL_ERRORS_SAMPLE = 20_000  # pool-errors looks for uncovered regions among at most this many free rows
EMBED_BATCH = 512


def load_pool(ctx: Context, record_data) -> None:
    """Read the pool file (or an embedded pool folder from `evokd pool embed`) into the store once,
    with its embeddings; `record_data(use, report)` records what reading changed."""
    store, config, task = ctx.store, ctx.config, ctx.task
    if store.pool_size() or config.pool is None:
        return
    with_answers = config.oracle
    if Path(config.pool).is_dir():  # embedded once by `evokd pool embed`: Parquet shards with vectors
        if with_answers and task.rules.target_key != "label":
            raise RunError(f"{config.pool}: --oracle on a NER task reads each row's entity spans, which an "
                           "embedded pool folder does not keep; expected a JSONL/CSV/Parquet pool file of "
                           "{\"text\", \"entities\"} or {\"tokens\", \"tags\"} rows")
        from evokd.pool import check_pool_dir, shard_glob

        n = check_pool_dir(store.con, config.pool, ctx.labels if with_answers else None)
        ctx.progress("step", round=0, name=f"loading {n} embedded pool rows")
        store.load_pool_shards(shard_glob(config.pool), with_labels=with_answers)
        return
    if with_answers and task.rules.target_key != "label":  # the gold spans travel in the pool's label column
        answered, report = task.read_data(config.pool, "pool")
        rows = [{"text": r["text"], "label": task.rules.encode_stored_label(r)} for r in answered]
        if not rows:
            raise InputError(config.pool, "no rows; expected sentences with their entities", field="text")
    else:
        rows, report = read_pool(config.pool, ctx.labels if with_answers else None)
    record_data("pool", report)
    for r in rows:
        r["text_hash"] = text_hash(r["text"])
    if ctx.pool_vectors is not None:
        store.load_pool(rows, ctx.pool_vectors([r["text"] for r in rows]))
        return
    vectors = []
    for i in range(0, len(rows), EMBED_BATCH):
        ctx.progress("step", round=0, name=f"embedding the pool {i}/{len(rows)}")
        vectors.append(encode([r["text"] for r in rows[i:i + EMBED_BATCH]]))
    store.load_pool(rows, np.concatenate(vectors))


def free_blocks(store, column: str, taken: set[int]):
    """The available pool in blocks, minus the ids this round has already taken."""
    drop = np.fromiter(taken, dtype=np.int64, count=len(taken))
    for ids, values in store.pool_blocks(column):
        if len(drop):
            keep = np.nonzero(~np.isin(ids, drop))[0]
            ids = ids[keep]
            values = values[keep] if column == "embedding" else [values[j] for j in keep]
        yield ids, values


def pool_candidates(ctx: Context, ids: list[int], *, queries: list[Candidate] | None = None) -> list[Candidate]:
    """Candidates of pool rows; with `queries`, each row stands in for the generated text at its position."""
    rows, vectors = ctx.store.pool_rows(ids)
    out = []
    for k, r in enumerate(rows):
        q = queries[k] if queries else None
        c = Candidate(r["text"], q.intent if q else "pool", intended_label=q.intended_label if q else None,
                      embedding=vectors[k], query=q.text if q else None, pool_id=r["pool_id"])
        if ctx.config.oracle:
            c.teacher_label = ctx.task.rules.decode_stored_label(r["label"])
            c.labeler = "oracle"
        out.append(c)
    return out


CALIBRATION_DATA = "label calibration"  # the run config's "data" entry recording the prior


def calibration_applies(config, rules) -> bool:
    """Whether a pool run with `config` calibrates the teacher's labels: --calibrate-labels, no --oracle,
    and a task whose answer is one label (the caller knows the run is a pool run)."""
    return config.calibrate_labels and not config.oracle and rules.labeled_by_votes


def calibrate_labels(ctx: Context, round_: int) -> None:
    """Batch calibration of the teacher's labels of pool texts (`evokd.teacher.calibration`): once per run,
    the teacher's label distribution for CALIBRATION_TEXTS random pool texts (the run's seed), whose mean
    becomes `Teacher.label_prior`, recorded in the run's config (a resumed run reads it back) and said
    in the run summary. Off with --oracle or --no-calibrate-labels, for NER (its answer is not a label
    distribution), and when the teacher gives every label's probability for too few of the texts
    (a hosted teacher's first token lists whole labels only by chance)."""
    from evokd.io import cut_text
    from evokd.loop.candidates import TEACHER_TEXT_CHARS
    from evokd.teacher.calibration import CALIBRATION_TEXTS, describe_prior, mean_distribution

    cfg, teacher = ctx.config, ctx.teacher
    if teacher is None or teacher.label_prior is not None or not calibration_applies(cfg, ctx.task.rules):
        return
    recorded = (ctx.store.run_info()["config"].get("data") or {}).get(CALIBRATION_DATA)
    if recorded is not None:  # estimated by an earlier session of this run
        teacher.label_prior = recorded.get("prior") or {}
        return
    free = [int(i) for i in ctx.store.pool_free_ids()]
    ids = sorted(random.Random(cfg.seed).sample(free, min(CALIBRATION_TEXTS, len(free))))
    rows, _ = ctx.store.pool_rows(ids)
    distributions = []
    for k, row in enumerate(rows):
        ctx.progress("step", round=round_, name=f"calibrating the teacher's labels {k}/{len(rows)}")
        distributions.append(teacher.label_distribution(round_, cut_text(row["text"], TEACHER_TEXT_CHARS)))
    prior = mean_distribution(distributions, ctx.labels)
    known = sum(d is not None for d in distributions)
    if prior is None:
        description = (f"not calibrated: the teacher gave every label's probability for {known} of {len(rows)} "
                       "random pool texts, too few to estimate its label bias; its labels are taken as given")
    else:
        description = describe_prior(prior, known)
    ctx.store.record_run_data(CALIBRATION_DATA, {"prior": prior, "texts": known, "description": description})
    ctx.progress("data", use=CALIBRATION_DATA, description=description)
    teacher.label_prior = prior or {}  # {}: tried, nothing to divide by


def calibration_calls(ctx: Context, round_: int) -> dict[str, int]:
    """The labeling calls `calibrate_labels` makes in a new run's first round (for --dry-run's plan):
    one per calibration text, at most CALIBRATION_TEXTS (fewer on a smaller pool)."""
    from evokd.teacher.calibration import CALIBRATION_TEXTS

    if round_ != 1 or not calibration_applies(ctx.config, ctx.task.rules):
        return {}
    return {"label": min(CALIBRATION_TEXTS, ctx.store.pool_size()) if ctx.store is not None else CALIBRATION_TEXTS}


class PoolRankSource(Source):
    """Pool texts in the order the strategy's `pool_select` ranks them (random, uncertainty, errors)."""

    def __init__(self, ctx: Context):
        super().__init__(ctx)
        self.ranked: list[int] | None = None

    def collect(self, rnd: Round) -> list[Candidate]:
        self.ranked = None
        calibrate_labels(self.ctx, rnd.number)
        return super().collect(rnd)

    def batch(self, rnd: Round, need, attempt: int) -> list[Candidate]:
        if self.ranked is None:
            self.ranked = self.rank(rnd)
        picks = [i for i in self.ranked if i not in rnd.taken][:need[None]]
        rnd.taken.update(picks)
        return pool_candidates(self.ctx, picks)

    def plan_calls(self, round_: int, need) -> dict[str, int]:
        return calibration_calls(self.ctx, round_)

    def labeling_calls(self, n: int) -> int:
        """Pool texts carry no intended class: the teacher labels them, unless --oracle takes the pool's."""
        return 0 if self.ctx.config.oracle else self.teacher_labeling_calls(n)

    def rank(self, rnd: Round) -> list[int]:
        """Available pool ids, best first. The pool is read in blocks (`Store.pool_blocks`): memory holds
        ids, one block, and one score per row (pool-errors: the vectors of at most POOL_ERRORS_SAMPLE rows)."""
        store, select = self.ctx.store, self.ctx.plan.strategy.pool_select
        if select == "random":
            free = [int(i) for i in store.pool_free_ids() if int(i) not in rnd.taken]
            round_rng(self.ctx.config.seed, rnd.number).shuffle(free)
            return free
        if select == "errors":
            return self.errors_rank(rnd)
        ids, conf = [np.empty(0, dtype=np.int64)], [np.empty(0)]
        for block_ids, texts in free_blocks(store, "text", rnd.taken):
            ids.append(block_ids)
            conf.append(self.ctx.task.rules.confidence(rnd.student, texts) if texts else np.empty(0))
        ids_all, conf_all = np.concatenate(ids), np.concatenate(conf)
        return [int(i) for i in ids_all[np.argsort(conf_all, kind="stable")]]

    def errors_rank(self, rnd: Round) -> list[int]:
        """pool-errors: one typical text from each uncovered region of the pool, the regions nearest the
        latest mistakes first (`pool.coverage_picks`), then the rest of the pool at random. The regions
        are found among at most POOL_ERRORS_SAMPLE free rows (drawn at random each round when the pool
        is larger), read block by block."""
        from evokd.pool import coverage_picks

        store, cfg = self.ctx.store, self.ctx.config
        free = [int(i) for i in store.pool_free_ids() if int(i) not in rnd.taken]
        rng = round_rng(cfg.seed, rnd.number)
        keep = (np.sort(np.asarray(rng.sample(free, POOL_ERRORS_SAMPLE), dtype=np.int64))
                if len(free) > POOL_ERRORS_SAMPLE else None)
        ids, vectors = [np.empty(0, dtype=np.int64)], [np.zeros((0, EMBED_DIM), dtype=np.float32)]
        for block_ids, block in free_blocks(store, "embedding", rnd.taken):
            if keep is not None:
                rows = np.nonzero(np.isin(block_ids, keep))[0]
                block_ids, block = block_ids[rows], block[rows]
            ids.append(block_ids)
            vectors.append(block)
        mistakes = (encode([w["text"] for w in rnd.feedback.wrong]) if rnd.feedback.wrong
                    else np.zeros((0, EMBED_DIM), dtype=np.float32))
        picks = coverage_picks(np.concatenate(ids), np.concatenate(vectors), rnd.state.vectors, mistakes,
                               cfg.per_round, seed=100 * cfg.seed + rnd.number)
        chosen = set(picks)
        rest = [i for i in free if i not in chosen]
        rng.shuffle(rest)
        return picks + rest


class NearestPoolSource(Source):
    """pool-evokd: each text `inner` generates is replaced by its nearest unused pool text (MiniLM cosine)."""

    def __init__(self, ctx: Context, inner: Source):
        super().__init__(ctx)
        self.inner = inner

    def budget(self, round_: int, state):
        return self.inner.budget(round_, state)

    def plan_calls(self, round_: int, need) -> dict[str, int]:
        calls = dict(self.inner.plan_calls(round_, need))
        for step, n in calibration_calls(self.ctx, round_).items():
            calls[step] = calls.get(step, 0) + n
        return calls

    def labeling_calls(self, n: int) -> int:
        return 0 if self.ctx.config.oracle else self.inner.labeling_calls(n)

    def collect(self, rnd: Round) -> list[Candidate]:
        calibrate_labels(self.ctx, rnd.number)
        return super().collect(rnd)

    def batch(self, rnd: Round, need, attempt: int) -> list[Candidate]:
        queries = self.inner.batch(rnd, need, attempt)
        if not queries:
            return []
        from evokd.pool import nearest_ids

        # the first free neighbour of each query is within its top (taken + queries) rows
        tops = nearest_ids(encode([q.text for q in queries]), self.ctx.store.pool_blocks("embedding"),
                           len(rnd.taken) + len(queries))
        picks: list[int | None] = []
        for top in tops:
            pick = next((int(j) for j in top if int(j) not in rnd.taken), None)
            if pick is not None:
                rnd.taken.add(pick)
            picks.append(pick)
        hits = [q for q, p in zip(queries, picks) if p is not None]
        found = iter(pool_candidates(self.ctx, [p for p in picks if p is not None], queries=hits))
        return [next(found) if p is not None else
                Candidate(q.text, q.intent, intended_label=q.intended_label, reject_reason=REASON_POOL_EMPTY)
                for q, p in zip(queries, picks)]

"""The run store: one DuckDB file per run (DIR/evokd.duckdb).

A round is written in one transaction, so a run killed mid-round keeps every earlier round
intact and resumes after the last committed one. Migrations are numbered and applied in order.
"""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np

from evokd.embed import EMBED_DIM
from evokd.errors import RunError

_MIGRATIONS: list[str] = [
    # 1: initial schema
    f"""
    CREATE TABLE runs (
        run_id VARCHAR PRIMARY KEY,
        created_at TIMESTAMP,
        task_name VARCHAR,
        task_kind VARCHAR,
        task JSON,
        teacher VARCHAR,
        api_base VARCHAR,
        config JSON,
        evokd_version VARCHAR
    );
    CREATE SEQUENCE sample_id START 1;
    CREATE TABLE samples (
        id BIGINT PRIMARY KEY DEFAULT nextval('sample_id'),
        round INTEGER NOT NULL,
        source VARCHAR NOT NULL,          -- seed | generated | pool
        intent VARCHAR,                   -- hard | easy (NULL for seeds)
        text VARCHAR NOT NULL,
        label VARCHAR,                    -- final label (accepted rows)
        intended_label VARCHAR,           -- label the generator aimed at, if any
        teacher_label VARCHAR,            -- label from the separate labeling call
        student_pred VARCHAR,             -- student's prediction before training on it
        student_score DOUBLE,
        status VARCHAR NOT NULL,          -- accepted | rejected
        reject_reason VARCHAR,
        text_hash VARCHAR NOT NULL,
        embedding FLOAT[{EMBED_DIM}],
        created_at TIMESTAMP
    );
    CREATE TABLE rounds (
        round INTEGER PRIMARY KEY,
        started_at TIMESTAMP,
        finished_at TIMESTAMP,
        seconds DOUBLE,
        analysis VARCHAR,
        n_generated INTEGER,
        n_accepted INTEGER,
        n_rejected INTEGER,
        rejected_by_reason JSON,
        feedback_size INTEGER,
        feedback_accuracy DOUBLE,
        batch_student_accuracy DOUBLE,
        train_size INTEGER,
        eval_n INTEGER,
        eval_accuracy DOUBLE,
        eval_macro_f1 DOUBLE,
        prompt_tokens BIGINT,
        completion_tokens BIGINT,
        n_calls INTEGER,
        n_failed_calls INTEGER
    );
    CREATE SEQUENCE call_id START 1;
    CREATE TABLE calls (
        id BIGINT PRIMARY KEY DEFAULT nextval('call_id'),
        round INTEGER,
        step VARCHAR,
        attempt INTEGER,
        model VARCHAR,
        prompt_tokens BIGINT,
        completion_tokens BIGINT,
        latency_s DOUBLE,
        ok BOOLEAN,
        error VARCHAR,
        created_at TIMESTAMP
    );
    """,
    # 2: named-entity recognition: entity spans as JSON next to the classification label
    """
    ALTER TABLE samples ADD COLUMN entities JSON;          -- final spans [{start, end, label}] (NER)
    ALTER TABLE samples ADD COLUMN student_entities JSON;  -- student's spans before training on it (NER)
    ALTER TABLE samples ADD COLUMN label_notes JSON;       -- teacher mentions that could not be placed, with reasons
    ALTER TABLE rounds ADD COLUMN eval_entity_f1 DOUBLE;   -- entity-level micro F1 (NER)
    """,
    # 3: reliability: every paid teacher call cached with the run the moment it returns (a killed
    # run never pays twice), and the calls log shows cache hits, HTTP retries, cost and raw output
    """
    CREATE TABLE call_cache (
        key VARCHAR PRIMARY KEY,          -- sha256 of model, messages, sampling params, rollout id
        model VARCHAR,
        response JSON,                    -- the LM outputs as DSPy returned them
        prompt_tokens BIGINT,
        completion_tokens BIGINT,
        cost DOUBLE,
        created_at TIMESTAMP
    );
    ALTER TABLE calls ADD COLUMN cached BOOLEAN DEFAULT false;  -- answered from call_cache, not paid again
    ALTER TABLE calls ADD COLUMN cost DOUBLE;                   -- USD when the price is known
    ALTER TABLE calls ADD COLUMN raw VARCHAR;                   -- the teacher's raw answer when it was unusable
    """,
    # 4: strategies and pool mode: who labeled each sample, the generated text a pool sample was
    # retrieved for, and the unlabeled pool with its MiniLM vectors (embedded once per run)
    f"""
    ALTER TABLE samples ADD COLUMN labeler VARCHAR;   -- teacher | intent | seed | oracle
    ALTER TABLE samples ADD COLUMN query VARCHAR;     -- pool mode: the teacher text this pool text is nearest to
    CREATE TABLE pool (
        pool_id INTEGER PRIMARY KEY,      -- line order in the pool file
        text VARCHAR NOT NULL,
        label VARCHAR,                    -- the file's own label (used only with --oracle)
        text_hash VARCHAR NOT NULL,
        embedding FLOAT[{EMBED_DIM}] NOT NULL,
        used_round INTEGER                -- round that took it (NULL: still available)
    );
    """,
    # 5: optimised prompts: the digest of the prompt state (evokd optimize) each teacher call used
    """
    ALTER TABLE calls ADD COLUMN prompt_state VARCHAR;  -- NULL: the built-in prompts
    """,
    # 6: teacher throughput and label confidence: how much of each prompt the teacher already held
    # (KV cache, provider prompt cache), and the teacher's probability of each label it gave
    """
    ALTER TABLE calls ADD COLUMN prompt_tokens_cached INTEGER;  -- NULL: the teacher did not say
    ALTER TABLE samples ADD COLUMN teacher_confidence DOUBLE;  -- NULL: no probability returned (or not teacher-labeled)
    """,
    # 7: noise-aware training: how each round's student weighed the teacher's labels (evokd.noise's
    # record: the mode, the mean weight, how many labels the anchored student contradicted)
    """
    ALTER TABLE rounds ADD COLUMN training JSON;  -- NULL: rounds from before the record
    """,
]

SCHEMA_VERSION = len(_MIGRATIONS)


@dataclass
class SampleRow:
    round: int
    source: str
    text: str
    text_hash: str
    status: str
    intent: str | None = None
    label: str | None = None
    intended_label: str | None = None
    teacher_label: str | None = None
    student_pred: str | None = None
    student_score: float | None = None
    reject_reason: str | None = None
    embedding: np.ndarray | None = None
    entities: list[dict] | None = None
    student_entities: list[dict] | None = None
    label_notes: list | None = None
    labeler: str | None = None
    query: str | None = None
    pool_id: int | None = None  # pool mode: marks the pool row used when the round commits
    teacher_confidence: float | None = None  # the teacher's probability of its label (classification)


@dataclass
class CallRow:
    round: int
    step: str
    attempt: int
    model: str
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    ok: bool
    error: str | None = None
    created_at: _dt.datetime = field(default_factory=_dt.datetime.now)
    cached: bool = False
    cost: float | None = None
    raw: str | None = None
    prompt_state: str | None = None  # digest of the `--prompts` state the call used
    prompt_tokens_cached: int | None = None  # prompt tokens the teacher already held (not read again)


@dataclass
class RoundRecord:
    round: int
    started_at: _dt.datetime
    finished_at: _dt.datetime
    analysis: str | None
    n_generated: int
    n_accepted: int
    n_rejected: int
    rejected_by_reason: dict
    feedback_size: int
    feedback_accuracy: float | None
    batch_student_accuracy: float | None
    train_size: int
    eval_n: int
    eval_accuracy: float | None
    eval_macro_f1: float | None
    prompt_tokens: int
    completion_tokens: int
    n_calls: int
    n_failed_calls: int
    eval_entity_f1: float | None = None
    training: dict | None = None  # how the round's student weighed teacher labels (evokd.noise), with teacher_rows

    @property
    def seconds(self) -> float:
        return (self.finished_at - self.started_at).total_seconds()


def _json_or_none(value) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False)


class Store:
    """Thin, typed access to the run's DuckDB file. The only module that writes SQL."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.con = duckdb.connect(str(self.path))
        except duckdb.Error as exc:
            raise RunError(f"{self.path}: cannot open the run store ({str(exc).splitlines()[0]})") from None
        self._migrate()

    @classmethod
    def open_read_only(cls, path: str | Path) -> "Store":
        """An existing run store opened for reading (report, export, runs, calls): never created and
        never written, except that a store from an older evokd is first migrated like any resume
        would; refused while `evokd generate` holds it open."""
        path = Path(path)
        if not path.is_file():
            raise RunError(f"{path}: not found; expected a run store written by `evokd generate`")
        store = cls.__new__(cls)
        store.path = path
        try:
            store.con = duckdb.connect(str(path), read_only=True)
        except duckdb.Error as exc:
            reason = str(exc).splitlines()[0]
            hint = "; is `evokd generate` still writing it?" if "lock" in reason.lower() else ""
            raise RunError(f"{path}: cannot open the run store for reading ({reason}){hint}") from None
        try:
            version = store._one("SELECT max(version) FROM schema_version")[0]
        except duckdb.Error:
            store.close()
            raise RunError(f"{path}: not an evokd run store (no schema_version table)") from None
        if version != SCHEMA_VERSION:
            store.close()
            if (version or 0) > SCHEMA_VERSION:
                raise RunError(f"{path}: store schema v{version} is newer than this evokd (v{SCHEMA_VERSION}); upgrade evokd")
            try:
                cls(path).close()  # additive migrations, as `evokd generate` applies on resume
            except (duckdb.Error, OSError) as exc:
                raise RunError(f"{path}: store schema v{version} needs migrating to v{SCHEMA_VERSION}, which failed "
                               f"({str(exc).splitlines()[0]})") from None
            return cls.open_read_only(path)
        return store

    def close(self) -> None:
        self.con.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _one(self, sql: str, params=None):
        """First row of a query. DuckDB 2.0 needs every result fetched to the end before the next statement."""
        rows = self._exec(sql, params)
        return rows[0] if rows else None

    def _exec(self, sql: str, params=None) -> list[tuple]:
        """Run a statement and fetch its result to the end (DuckDB 2.0 refuses the next statement otherwise)."""
        return self.con.execute(sql, params or []).fetchall()

    # schema -----------------------------------------------------------------
    def _migrate(self) -> None:
        self._exec("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER, applied_at TIMESTAMP)")
        current = self._one("SELECT coalesce(max(version), 0) FROM schema_version")[0]
        if current > SCHEMA_VERSION:
            raise RunError(f"{self.path}: store schema v{current} is newer than this evokd (v{SCHEMA_VERSION}); upgrade evokd")
        for version in range(current + 1, SCHEMA_VERSION + 1):
            self._exec("BEGIN TRANSACTION")
            try:
                self.con.execute(_MIGRATIONS[version - 1]).fetchall()
                self._exec("INSERT INTO schema_version VALUES (?, now())", [version])
                self._exec("COMMIT")
            except BaseException:
                self._exec("ROLLBACK")
                raise

    def schema_version(self) -> int:
        return self._one("SELECT max(version) FROM schema_version")[0]

    # runs -------------------------------------------------------------------
    def run_info(self) -> dict | None:
        row = self._one(
            "SELECT run_id, task_name, task_kind, task, teacher, api_base, config, evokd_version, created_at FROM runs"
        )
        if row is None:
            return None
        keys = ["run_id", "task_name", "task_kind", "task", "teacher", "api_base", "config", "evokd_version", "created_at"]
        info = dict(zip(keys, row))
        info["task"] = json.loads(info["task"])
        info["config"] = json.loads(info["config"])
        return info

    def create_run(self, run_id: str, task: dict, teacher: str, api_base: str | None, config: dict, version: str) -> None:
        self._exec(
            "INSERT INTO runs VALUES (?, now(), ?, ?, ?, ?, ?, ?, ?)",
            [run_id, task["name"], task["kind"], json.dumps(task), teacher, api_base, json.dumps(config), version],
        )

    def record_run_data(self, use: str, report: dict) -> None:
        """Record in the run's config, under "data"[use], what reading its `use` data ("eval",
        "pool") changed (evokd.io.ReadReport.as_dict), replacing an earlier record of it."""
        config = json.loads(self._one("SELECT config FROM runs")[0])
        config.setdefault("data", {})[use] = report
        self._exec("UPDATE runs SET config = ?", [json.dumps(config)])

    # rounds -----------------------------------------------------------------
    def last_round(self) -> int | None:
        return self._one("SELECT max(round) FROM rounds")[0]

    def commit_round(self, record: RoundRecord, samples: list[SampleRow], calls: list[CallRow]) -> None:
        """Write a round's samples, calls and summary atomically."""
        con = self.con
        self._exec("BEGIN TRANSACTION")
        try:
            if samples:
                con.executemany(
                    "INSERT INTO samples (round, source, intent, text, label, intended_label, teacher_label, student_pred,"
                    " student_score, status, reject_reason, text_hash, embedding, entities, student_entities, label_notes,"
                    " labeler, query, teacher_confidence, created_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, now())",
                    [
                        [s.round, s.source, s.intent, s.text, s.label, s.intended_label, s.teacher_label, s.student_pred,
                         s.student_score, s.status, s.reject_reason, s.text_hash,
                         None if s.embedding is None else [float(x) for x in s.embedding],
                         _json_or_none(s.entities), _json_or_none(s.student_entities), _json_or_none(s.label_notes),
                         s.labeler, s.query, s.teacher_confidence]
                        for s in samples
                    ],
                )
                used = [[record.round, s.pool_id] for s in samples if s.pool_id is not None]
                if used:
                    con.executemany("UPDATE pool SET used_round = ? WHERE pool_id = ?", used)
            if calls:
                con.executemany(
                    "INSERT INTO calls (round, step, attempt, model, prompt_tokens, completion_tokens, latency_s, ok, error,"
                    " created_at, cached, cost, raw, prompt_state, prompt_tokens_cached)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [[c.round, c.step, c.attempt, c.model, c.prompt_tokens, c.completion_tokens, c.latency_s, c.ok, c.error,
                      c.created_at, c.cached, c.cost, c.raw, c.prompt_state, c.prompt_tokens_cached] for c in calls],
                )
            r = record
            self._exec(
                "INSERT INTO rounds (round, started_at, finished_at, seconds, analysis, n_generated, n_accepted,"
                " n_rejected, rejected_by_reason, feedback_size, feedback_accuracy, batch_student_accuracy, train_size,"
                " eval_n, eval_accuracy, eval_macro_f1, eval_entity_f1, prompt_tokens, completion_tokens, n_calls,"
                " n_failed_calls, training) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [r.round, r.started_at, r.finished_at, r.seconds, r.analysis, r.n_generated, r.n_accepted, r.n_rejected,
                 json.dumps(r.rejected_by_reason), r.feedback_size, r.feedback_accuracy, r.batch_student_accuracy,
                 r.train_size, r.eval_n, r.eval_accuracy, r.eval_macro_f1, r.eval_entity_f1, r.prompt_tokens,
                 r.completion_tokens, r.n_calls, r.n_failed_calls, _json_or_none(r.training)],
            )
            self._exec("COMMIT")
        except BaseException:
            self._exec("ROLLBACK")
            raise

    def rounds(self) -> list[dict]:
        rel = self.con.sql("SELECT * FROM rounds ORDER BY round")
        cols = rel.columns
        out = []
        for row in rel.fetchall():
            d = dict(zip(cols, row))
            d["rejected_by_reason"] = json.loads(d["rejected_by_reason"] or "{}")
            d["training"] = json.loads(d["training"]) if d.get("training") else None
            for key in ("started_at", "finished_at"):
                d[key] = d[key].isoformat() if d[key] is not None else None
            out.append(d)
        return out

    # samples ----------------------------------------------------------------
    _SAMPLE_COLS = ["id", "round", "source", "intent", "text", "label", "intended_label", "teacher_label",
                    "student_pred", "student_score", "status", "reject_reason", "entities", "student_entities", "label_notes",
                    "labeler", "query", "teacher_confidence"]
    _JSON_COLS = ("entities", "student_entities", "label_notes")

    def samples(self, *, status: str | None = "accepted", round: int | None = None, source: str | None = None) -> list[dict]:
        where, params = [], []
        for col, value in (("status", status), ("round", round), ("source", source)):
            if value is not None:
                where.append(f"{col} = ?")
                params.append(value)
        sql = f"SELECT {', '.join(self._SAMPLE_COLS)} FROM samples"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id"
        out = []
        for row in self._exec(sql, params):
            d = dict(zip(self._SAMPLE_COLS, row))
            for col in self._JSON_COLS:
                if d[col] is not None:
                    d[col] = json.loads(d[col])
            out.append(d)
        return out

    def accepted_hashes(self) -> set[str]:
        return {row[0] for row in self._exec("SELECT text_hash FROM samples WHERE status = 'accepted'")}

    def accepted_vectors(self) -> np.ndarray:
        """All accepted embeddings as an (n, EMBED_DIM) float32 matrix, read through Arrow."""
        table = self.con.sql(
            "SELECT embedding FROM samples WHERE status = 'accepted' AND embedding IS NOT NULL ORDER BY id"
        ).to_arrow_table()
        if table.num_rows == 0:
            return np.zeros((0, EMBED_DIM), dtype=np.float32)
        return _vectors(table.column(0))

    # pool -------------------------------------------------------------------
    def pool_size(self) -> int:
        return int(self._one("SELECT count(*) FROM pool")[0])

    def load_pool(self, rows: list[dict], vectors: np.ndarray) -> None:
        """Store the unlabeled pool once, in one transaction (a killed load leaves no partial pool)."""
        self._exec("BEGIN TRANSACTION")
        try:
            self.con.executemany(
                "INSERT INTO pool (pool_id, text, label, text_hash, embedding) VALUES (?, ?, ?, ?, ?)",
                [[i, r["text"], r.get("label"), r["text_hash"], [float(x) for x in v]]
                 for i, (r, v) in enumerate(zip(rows, vectors))])
            self._exec("COMMIT")
        except BaseException:
            self._exec("ROLLBACK")
            raise

    def load_pool_shards(self, glob: str, *, with_labels: bool) -> None:
        """Store an embedded pool (`evokd pool embed` shards) straight from Parquet: DuckDB streams the
        rows, nothing passes through Python. One transaction, as load_pool."""
        label = "label" if with_labels else "NULL"
        self._exec("BEGIN TRANSACTION")
        try:
            self._exec(f"INSERT INTO pool (pool_id, text, label, text_hash, embedding) SELECT pool_id, text, {label}, "
                       f"text_hash, vector::FLOAT[{EMBED_DIM}] FROM read_parquet(?)", [glob])
            self._exec("COMMIT")
        except BaseException:
            self._exec("ROLLBACK")
            raise

    POOL_BLOCK = 32768  # pool rows per block when a round scans the pool (~50 MB of vectors)

    def pool_free_ids(self) -> np.ndarray:
        """pool_ids not yet taken by a committed round, ascending (8 bytes a row: 80 MB for 10M rows)."""
        ids = self.con.sql("SELECT pool_id FROM pool WHERE used_round IS NULL ORDER BY pool_id").fetchnumpy()["pool_id"]
        return np.asarray(ids, dtype=np.int64)

    def pool_blocks(self, column: str, block: int | None = None):
        """The available pool in pool_id order, one block at a time: (ids, vectors (n, EMBED_DIM)) for
        column 'embedding', (ids, texts) for 'text'. Only one block is ever in memory, so a round can
        scan a pool far larger than RAM (keyset pagination over the primary key)."""
        if column not in ("embedding", "text"):
            raise ValueError(f"pool column {column!r}: expected embedding or text")
        block, last = block or self.POOL_BLOCK, -1
        while True:
            table = self.con.sql(f"SELECT pool_id, {column} FROM pool WHERE used_round IS NULL AND pool_id > ? "
                                 "ORDER BY pool_id LIMIT ?", params=[last, block]).to_arrow_table()
            if table.num_rows == 0:
                return
            ids = np.asarray(table.column(0).to_numpy(), dtype=np.int64)
            if column == "embedding":
                values = _vectors(table.column(1))
            else:
                values = table.column(1).to_pylist()
            yield ids, values
            last = int(ids[-1])

    def pool_rows(self, ids) -> tuple[list[dict], np.ndarray]:
        """Rows (pool_id, text, label, text_hash) and vectors of the given pool_ids, in that order."""
        ids = [int(i) for i in ids]
        if not ids:
            return [], np.zeros((0, EMBED_DIM), dtype=np.float32)
        table = self.con.sql("SELECT pool_id, text, label, text_hash, embedding FROM pool WHERE pool_id IN "
                             "(SELECT unnest(?::BIGINT[]))", params=[ids]).to_arrow_table()
        found = {pid: k for k, pid in enumerate(table.column(0).to_pylist())}
        missing = [i for i in ids if i not in found]
        if missing:
            raise KeyError(f"pool_id {missing[0]} is not in the pool")
        cols = [table.column(c).to_pylist() for c in range(4)]
        order = [found[i] for i in ids]
        rows = [{"pool_id": cols[0][k], "text": cols[1][k], "label": cols[2][k], "text_hash": cols[3][k]} for k in order]
        return rows, _vectors(table.column(4))[order]

    def sample_counts(self) -> dict[tuple[str, str], int]:
        """Number of samples per (source, status)."""
        return {(src, status): int(n) for src, status, n in
                self._exec("SELECT source, status, count(*) FROM samples GROUP BY ALL ORDER BY ALL")}

    # calls ------------------------------------------------------------------
    _CALL_COLS = ["id", "round", "step", "attempt", "model", "prompt_tokens", "completion_tokens", "latency_s", "ok",
                  "error", "created_at", "cached", "cost", "raw", "prompt_state", "prompt_tokens_cached"]

    def calls(self, *, round: int | None = None, step: str | None = None, failed: bool | None = None) -> list[dict]:
        """The teacher call log in call order, optionally only one round, one step, failed (or ok) calls."""
        where, params = [], []
        if round is not None:
            where.append("round = ?")
            params.append(round)
        if step is not None:
            where.append("step = ?")
            params.append(step)
        if failed is not None:
            where.append("ok = ?")
            params.append(not failed)
        sql = f"SELECT {', '.join(self._CALL_COLS)} FROM calls"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id"
        out = []
        for row in self._exec(sql, params):
            d = dict(zip(self._CALL_COLS, row))
            d["created_at"] = d["created_at"].isoformat() if d["created_at"] is not None else None
            out.append(d)
        return out

    def call_stats(self) -> dict[int, dict]:
        """Per round: calls, failed calls, tokens and latency (sum, mean, max) of the teacher calls."""
        rows = self._exec(
            "SELECT round, count(*), count(*) FILTER (WHERE NOT ok), coalesce(sum(prompt_tokens), 0),"
            " coalesce(sum(completion_tokens), 0), coalesce(sum(latency_s), 0), coalesce(avg(latency_s), 0),"
            " coalesce(max(latency_s), 0) FROM calls GROUP BY round ORDER BY round"
        )
        keys = ["n_calls", "n_failed", "prompt_tokens", "completion_tokens", "latency_sum_s", "latency_mean_s", "latency_max_s"]
        return {int(r[0]): dict(zip(keys, r[1:])) for r in rows}

    # call cache -------------------------------------------------------------
    def cache_get(self, key: str) -> dict | None:
        """A completed teacher call of this run (any round, committed or not), or None."""
        row = self._one("SELECT response, prompt_tokens, completion_tokens, cost FROM call_cache WHERE key = ?", [key])
        if row is None:
            return None
        return {"outputs": json.loads(row[0]), "prompt_tokens": int(row[1] or 0), "completion_tokens": int(row[2] or 0),
                "cost": row[3]}

    def cache_put(self, key: str, record: dict) -> None:
        """Stored at once, outside the round's transaction: a paid answer survives a kill."""
        self._exec(
            "INSERT INTO call_cache VALUES (?, ?, ?, ?, ?, ?, now()) ON CONFLICT (key) DO NOTHING",
            [key, record.get("model"), json.dumps(record["outputs"], ensure_ascii=False), record["prompt_tokens"],
             record["completion_tokens"], record.get("cost")],
        )

    def cache_spent(self):
        """Tokens, cost and requests paid so far by this run (each paid call is in the cache once)."""
        from evokd.teacher.gateway import Spent

        tokens, cost, n = self._one(
            "SELECT coalesce(sum(prompt_tokens + completion_tokens), 0), coalesce(sum(cost), 0), count(*) FROM call_cache")
        # Requests that failed at the transport/provider level were sent but left no cache entry.
        failed = self._one("SELECT count(*) FROM calls WHERE NOT ok AND NOT coalesce(cached, false)"
                           " AND coalesce(prompt_tokens, 0) = 0 AND raw IS NULL")[0]
        return Spent(tokens=int(tokens), cost=float(cost), calls=int(n) + int(failed))

    def token_totals(self) -> tuple[int, int]:
        row = self._one("SELECT coalesce(sum(prompt_tokens),0), coalesce(sum(completion_tokens),0) FROM calls")
        return int(row[0]), int(row[1])


def _vectors(column) -> np.ndarray:
    """An Arrow FLOAT[EMBED_DIM] column as a float32 (n, EMBED_DIM) array."""
    return np.asarray(column.combine_chunks().values.to_numpy(), dtype=np.float32).reshape(-1, EMBED_DIM)

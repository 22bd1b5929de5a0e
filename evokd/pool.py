"""Embedded pools: `evokd pool embed FILE --out DIR` writes Parquet shards of (pool_id, text, label,
text_hash, vector) with the ONNX MiniLM encoder, locally or on Ray; `evokd generate --pool DIR`
reads them through DuckDB, so the pool is embedded once, not once per run.

Layout of DIR: `*.parquet` shards (any names: the local path writes part-NNNNN.parquet, Ray Data
its own) and `pool.json`, written last, which says the pool is complete: source file, rows,
vector size, encoder digest. A folder without `pool.json` is an interrupted embedding and is refused.
The input is read and checked row by row in chunks (one-line error naming file, line and field;
no row dropped), and embedded and written chunk by chunk. A text over MAX_TEXT_CHARS is cut
(evokd.io.cut_text); pool.json's "data" (evokd.io.ReadReport) counts the cuts and the repeats.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import time
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from evokd import __version__
from evokd.embed import EMBED_DIM
from evokd.errors import EvokdError, InputError
from evokd.filters import text_hash
from evokd.io import ReadReport, iter_pool_rows, write_json_atomic

MANIFEST = "pool.json"
FORMAT = "evokd-pool/1"
DIM = EMBED_DIM  # the vector size of every shard
Progress = Callable[..., None]


def _quiet(*_a, **_k) -> None:
    return None


def iter_pool_chunks(path: str | Path, chunk_rows: int, report: ReadReport) -> Iterator[dict]:
    """Column chunks {pool_id, text, label, text_hash} of a pool file, one row per input row in
    order (pool_id counts them from 0), every row checked (evokd.io.iter_pool_rows: a text over
    MAX_TEXT_CHARS cut). Rows read, texts cut and rows repeating an earlier text (kept: a run's
    duplicate filter takes such a text once) are counted into `report`."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file not found; expected a JSONL/CSV/Parquet file with a 'text' column (or .txt)")
    chunk: dict[str, list] = {"pool_id": [], "text": [], "label": [], "text_hash": []}
    seen: set[str] = set()
    pool_id = 0
    for _, row in iter_pool_rows(path, report):
        digest = text_hash(row["text"])
        if digest in seen:
            report.repeats_kept += 1
        seen.add(digest)
        chunk["pool_id"].append(pool_id)
        chunk["text"].append(row["text"])
        chunk["label"].append(row["label"])
        chunk["text_hash"].append(digest)
        pool_id += 1
        if len(chunk["text"]) >= chunk_rows:
            yield chunk
            chunk = {k: [] for k in chunk}
    report.rows_read = report.rows_kept = pool_id
    if chunk["text"]:
        yield chunk
    if pool_id == 0:
        raise InputError(path, "no rows; expected unlabeled texts, one per row", field="text")


def _table(chunk: dict, vectors: np.ndarray):
    import pyarrow as pa

    flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1), type=pa.float32())
    return pa.table({"pool_id": pa.array(chunk["pool_id"], pa.int64()), "text": pa.array(chunk["text"], pa.string()),
                     "label": pa.array(chunk["label"], pa.string()), "text_hash": pa.array(chunk["text_hash"], pa.string()),
                     "vector": pa.FixedSizeListArray.from_arrays(flat, DIM)})


class _EncodeBatch:
    """Ray Data actor: one ONNX encoder per actor process, reused for every batch it is given."""

    def __init__(self, threads: int = 1):
        from evokd.encoder import OnnxEncoder

        self.encoder = OnnxEncoder(threads=threads)

    def __call__(self, batch):
        vectors = self.encoder.encode(list(batch["text"]))
        batch["vector"] = vectors
        return batch


def _prepare_out(out: Path) -> Path:
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        if (out / MANIFEST).is_file() or any(out.glob("*.parquet")) or any(out.glob(".part-*")):
            shutil.rmtree(out)  # an earlier (possibly interrupted) embedding of this folder: start over
        else:
            raise EvokdError(f"--out {out}: folder exists and holds other files; expected a new or a pool folder")
    out.mkdir(parents=True, exist_ok=True)
    return out


def embed_pool(path: str | Path, out: str | Path, *, executor: str = "local", address: str | None = None,
               batch_size: int = 256, shard_rows: int = 50_000, threads: int | None = None, actors: int | None = None,
               progress: Progress = _quiet) -> dict:
    """Embed every row of `path` into Parquet shards under `out`; returns the manifest, whose "data"
    (evokd.io.ReadReport) counts the rows read, the texts cut and the repeated ones."""
    from evokd.encoder import encoder_digest, ensure_encoder

    if executor not in ("local", "ray"):
        raise EvokdError(f"--executor {executor!r}: expected local or ray")
    start = time.perf_counter()
    ensure_encoder()  # built once here, before any worker needs it
    out = _prepare_out(Path(out))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    rows = 0
    report = ReadReport(Path(path).name)
    if executor == "local":
        from evokd.encoder import OnnxEncoder

        encoder = OnnxEncoder(threads=threads or cores, batch_size=64)
        import pyarrow.parquet as pq

        for n, chunk in enumerate(iter_pool_chunks(path, shard_rows, report)):
            vectors = np.zeros((len(chunk["text"]), DIM), dtype=np.float32)
            for i in range(0, len(chunk["text"]), batch_size):
                vectors[i:i + batch_size] = encoder.encode(chunk["text"][i:i + batch_size])
                progress("rows", done=rows + min(i + batch_size, len(chunk["text"])))
            tmp = out / f".part-{n:05d}.parquet"
            pq.write_table(_table(chunk, vectors), tmp)
            os.replace(tmp, out / f"part-{n:05d}.parquet")
            rows += len(chunk["text"])
    else:
        ray = import_ray()
        init_ray(ray, address)
        import pyarrow as pa

        tables = [pa.table(chunk) for chunk in iter_pool_chunks(path, shard_rows, report)]
        rows = sum(t.num_rows for t in tables)
        progress("rows", done=0, total=rows)
        n_actors = actors or max(1, int(ray.cluster_resources().get("CPU", 1)))
        ds = ray.data.from_arrow(tables).map_batches(
            _EncodeBatch, fn_constructor_kwargs={"threads": threads or 1}, batch_size=batch_size,
            batch_format="numpy", concurrency=n_actors, num_cpus=threads or 1)
        ds.write_parquet(str(out))
        progress("rows", done=rows, total=rows)
    manifest = {"format": FORMAT, "source": str(path), "rows": rows, "dim": DIM, "encoder": encoder_digest(),
                "executor": executor, "seconds": round(time.perf_counter() - start, 2), "evokd_version": __version__,
                "created_at": _dt.datetime.now().isoformat(timespec="seconds"), "data": report.as_dict()}
    write_json_atomic(out / MANIFEST, manifest)
    return manifest


def is_pool_dir(path: str | Path) -> bool:
    return Path(path).is_dir()


def read_manifest(folder: str | Path) -> dict:
    folder = Path(folder)
    manifest = folder / MANIFEST
    if not manifest.is_file():
        raise InputError(folder, f"no {MANIFEST}; expected a folder written by `evokd pool embed` "
                                 "(an interrupted embedding has none: run it again)")
    try:
        info = json.loads(manifest.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(manifest, f"not valid JSON ({exc})") from None
    if info.get("format") != FORMAT or info.get("dim") != DIM:
        raise InputError(manifest, f"expected an evokd pool manifest ({FORMAT}, {DIM}-dim vectors)", field="format")
    return info


def shard_glob(folder: str | Path) -> str:
    return str(Path(folder) / "*.parquet")


def check_pool_dir(con, folder: str | Path, labels: list[str] | None) -> int:
    """Rows of an embedded pool, checked in DuckDB (count against the manifest, labels for --oracle)."""
    info = read_manifest(folder)
    glob = shard_glob(folder)
    n = con.execute(f"SELECT count(*) FROM read_parquet('{_sql(glob)}')").fetchall()[0][0]
    if n != info["rows"]:
        raise InputError(folder, f"the shards hold {n} rows, the manifest says {info['rows']}; embed the pool again")
    if labels is not None:
        bad = con.execute(f"SELECT pool_id, label FROM read_parquet('{_sql(glob)}') WHERE label IS NULL OR NOT "
                          f"list_contains(?, label) ORDER BY pool_id LIMIT 1", [labels]).fetchall()
        if bad:
            pool_id, label = bad[0]
            raise InputError(info.get("source", folder), f"{label!r} is not a task label; expected one of: "
                             f"{', '.join(labels)} (--oracle reads the pool's labels)", line=pool_id + 1, field="label")
    return int(n)


def _sql(text: str) -> str:
    return text.replace("'", "''")


def import_ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise EvokdError("--executor ray needs Ray: pip install 'evokd[ray]'") from None
    return ray


def init_ray(ray, address: str | None) -> None:
    """Connect to a cluster (`--address`, or RAY_ADDRESS), else start a local one on this machine."""
    if ray.is_initialized():
        return
    kwargs = {"ignore_reinit_error": True, "log_to_driver": False, "include_dashboard": False}
    address = address or os.environ.get("RAY_ADDRESS")
    try:
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(**kwargs)
    except ConnectionError as exc:
        raise EvokdError(f"--address {address}: cannot connect to a Ray cluster ({exc})") from None


# ── search ───────────────────────────────────────────────────────────────────


def nearest_ids(queries: np.ndarray, blocks, k: int) -> list[np.ndarray]:
    """Per query vector, the ids of the k most similar pool rows (cosine of unit vectors), best first,
    ties by ascending id. `blocks` yields (ids ascending, vectors) as `Store.pool_blocks` does, so
    only one block and k candidates per query are in memory: exact brute force, blocked. This is the
    same order a stable argsort of the whole similarity row gives."""
    nq = len(queries)
    best_ids = [np.empty(0, dtype=np.int64) for _ in range(nq)]
    best_sims = [np.empty(0, dtype=np.float32) for _ in range(nq)]
    if nq == 0 or k <= 0:
        return best_ids
    for ids, vectors in blocks:
        sims = queries @ vectors.T  # (nq, block)
        for q in range(nq):
            row = sims[q]
            if len(row) > k:  # this block's top k, keeping every row tied with the k-th
                cut = row[np.argpartition(-row, k - 1)[k - 1]]
                keep = np.nonzero(row >= cut)[0]
            else:
                keep = np.arange(len(row))
            all_ids = np.concatenate([best_ids[q], ids[keep]])
            all_sims = np.concatenate([best_sims[q], row[keep]])
            order = np.lexsort((all_ids, -all_sims))[:k]
            best_ids[q], best_sims[q] = all_ids[order], all_sims[order]
    return best_ids


def typicality(vectors: np.ndarray, neighbours: int = 20, chunk: int = 2048) -> np.ndarray:
    """Per row, the mean cosine similarity to its `neighbours` nearest other rows (TypiClust's
    typicality, on unit vectors): high in the dense middle of a region, low on its outliers.
    Computed in chunks of rows, so memory is chunk × n, not n × n."""
    n = len(vectors)
    k = min(neighbours, n - 1)
    if k <= 0:
        return np.ones(n, dtype=np.float32)
    out = np.empty(n, dtype=np.float32)
    for start in range(0, n, chunk):
        sims = vectors[start:start + chunk] @ vectors.T
        top = -np.sort(-sims, axis=1)[:, 1:k + 1]  # column 0 is the row itself
        out[start:start + chunk] = top.mean(axis=1)
    return out


def coverage_picks(ids: np.ndarray, vectors: np.ndarray, labeled: np.ndarray, mistakes: np.ndarray, budget: int,
                   seed: int) -> list[int]:
    """pool-errors' choice: pool ids to label next, at most one per region of the pool that no
    labeled text covers yet, the regions nearest the student's latest mistakes first.

    The labeled and the free vectors are clustered together with k-means into (labeled + budget)
    regions; a region holding a labeled text is covered. Each mistake, in turn, claims the uncovered
    region whose centre is most similar to it; the other uncovered regions follow, largest first.
    From each region comes its most typical free text (`typicality`), not the one nearest the
    mistake: the nearest neighbours of a mistake are near copies of a text the student has just
    been trained on, and taking them drills one spot (measured: benchmarks/results/README.md)."""
    from sklearn.cluster import KMeans

    if len(ids) == 0:
        return []
    points = np.vstack([labeled, vectors]) if len(labeled) else vectors
    k = min(len(labeled) + budget, len(points))
    km = KMeans(n_clusters=k, n_init=1, random_state=seed).fit(points)
    covered = set(km.labels_[:len(labeled)].tolist())
    free_cluster = km.labels_[len(labeled):]
    sizes = np.bincount(free_cluster, minlength=k)
    uncovered = [c for c in range(k) if c not in covered and sizes[c] > 0]
    order: list[int] = []
    if len(mistakes) and uncovered:
        candidates = np.asarray(uncovered)
        for row in mistakes @ km.cluster_centers_[candidates].T:
            claim = next((int(candidates[j]) for j in np.argsort(-row) if int(candidates[j]) not in order), None)
            if claim is not None:
                order.append(claim)
    rest = set(uncovered) - set(order)
    order += [int(c) for c in np.argsort(-sizes, kind="stable") if int(c) in rest]
    picks = []
    for c in order:
        members = np.nonzero(free_cluster == c)[0]
        picks.append(int(ids[members[int(np.argmax(typicality(vectors[members])))]]))
    return picks

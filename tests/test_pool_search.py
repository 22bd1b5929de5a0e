"""Pool search without the whole pool in memory: `Store.pool_blocks` / `pool_rows` over a real DuckDB
file and `evokd.pool.nearest_ids`, the blocked exact search the pool strategies use."""

from __future__ import annotations

import numpy as np

from evokd.pool import coverage_picks, nearest_ids, typicality
from evokd.store import Store


def _unit(n: int, seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, 384)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _blocks(vectors: np.ndarray, size: int, ids: np.ndarray | None = None):
    ids = np.arange(len(vectors), dtype=np.int64) if ids is None else ids
    for i in range(0, len(vectors), size):
        yield ids[i:i + size], vectors[i:i + size]


def test_blocked_search_gives_the_full_stable_argsort_order():
    pool, queries = _unit(1000, 1), _unit(7, 2)
    pool[500] = pool[10]  # exact ties: the lower id ranks first, as a stable argsort of the full row does
    pool[900] = pool[10]
    queries[0] = pool[10]
    full = [np.argsort(-(q @ pool.T), kind="stable")[:25] for q in queries]
    for size in (1000, 333, 64, 7):
        got = nearest_ids(queries, _blocks(pool, size), 25)
        assert all(np.array_equal(g, f) for g, f in zip(got, full)), size
    assert list(nearest_ids(queries[:1], _blocks(pool, 64), 3)[0]) == [10, 500, 900]


def test_blocked_search_edges():
    pool = _unit(5, 3)
    got = nearest_ids(pool[:2], _blocks(pool, 2), 50)  # k larger than the pool: all of it, ranked
    assert [len(g) for g in got] == [5, 5] and got[0][0] == 0 and got[1][0] == 1
    assert [len(g) for g in nearest_ids(pool[:2], iter(()), 4)] == [0, 0]
    assert nearest_ids(pool[:0], _blocks(pool, 2), 4) == []


def test_store_reads_the_free_pool_in_blocks_and_rows_by_id(tmp_path):
    vectors = _unit(70, 4)
    rows = [{"text": f"text {i}", "label": "a" if i % 2 else "b", "text_hash": f"h{i}"} for i in range(70)]
    with Store(tmp_path / "s.duckdb") as store:
        store.load_pool(rows, vectors)
        store._exec("UPDATE pool SET used_round = 1 WHERE pool_id IN (3, 40)")
        free = store.pool_free_ids()
        assert len(free) == 68 and 3 not in free and 40 not in free and list(free) == sorted(free)
        blocks = list(store.pool_blocks("embedding", block=16))
        assert [len(b[0]) for b in blocks] == [16, 16, 16, 16, 4]
        ids = np.concatenate([b[0] for b in blocks])
        assert np.array_equal(ids, free)
        assert np.allclose(np.concatenate([b[1] for b in blocks]), vectors[free], atol=1e-6)
        texts = [t for _, block in store.pool_blocks("text", block=50) for t in block]
        assert texts == [f"text {i}" for i in free]
        got, vecs = store.pool_rows([41, 2, 69])
        assert [r["text"] for r in got] == ["text 41", "text 2", "text 69"]
        assert [r["label"] for r in got] == ["a", "b", "a"] and got[0]["pool_id"] == 41
        assert np.allclose(vecs, vectors[[41, 2, 69]], atol=1e-6)


def _blob(centre: np.ndarray, n: int, spread: float, seed: int) -> np.ndarray:
    """n unit vectors scattered around a unit centre; the first is the centre itself."""
    noise = np.random.default_rng(seed).normal(size=(n, 384)).astype(np.float32) * spread
    noise[0] = 0
    v = centre + noise
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_typicality_is_highest_in_the_dense_middle():
    centre = _unit(1, 20)[0]
    vectors = np.vstack([_blob(centre, 30, 0.05, 21), _unit(1, 22)])  # 30 around the centre, one far outlier
    typ = typicality(vectors, neighbours=5, chunk=7)  # chunked the same as whole
    assert np.allclose(typ, typicality(vectors, neighbours=5))
    assert int(np.argmax(typ)) == 0 and int(np.argmin(typ)) == 30
    assert typicality(vectors[:1]).tolist() == [1.0]


def test_coverage_picks_one_typical_text_per_uncovered_region_mistakes_first():
    a, b, c, d = _unit(4, 30)  # four far-apart regions of 20, 20, 30 and 40 texts
    blobs = [_blob(a, 20, 0.04, 31), _blob(b, 20, 0.04, 32), _blob(c, 30, 0.04, 33), _blob(d, 40, 0.04, 34)]
    vectors = np.vstack(blobs)
    ids = np.arange(1000, 1000 + len(vectors), dtype=np.int64)  # a: 1000-, b: 1020-, c: 1040-, d: 1070-
    region = dict(zip(ids.tolist(), "".join(r * len(blob) for r, blob in zip("abcd", blobs))))
    labeled = _blob(a, 1, 0.0, 35)  # region a is covered by a labeled text
    edge = 20 + int(np.argmin(typicality(blobs[1])))  # the mistake sits on b's edge, next to this text
    mistake = vectors[edge:edge + 1] + 0.01
    mistake /= np.linalg.norm(mistake)
    picks = coverage_picks(ids, vectors, labeled, mistake, budget=3, seed=1)
    assert [region[p] for p in picks] == ["b", "d", "c"]  # the mistake's region first, then the largest
    assert picks == [1020, 1070, 1040]  # each region's most typical text (its centre), not the mistake's neighbour
    assert int(ids[edge]) not in picks
    no_mistakes = coverage_picks(ids, vectors, labeled, np.zeros((0, 384), np.float32), budget=3, seed=1)
    assert no_mistakes == [1070, 1040, 1020]  # largest first; a stays covered
    assert coverage_picks(ids[:0], vectors[:0], labeled, mistake, budget=3, seed=1) == []

"""Scale-out: the ONNX MiniLM encoder, `evokd pool embed` (local and Ray Data), embedded pools in
`evokd generate`, and `evokd bench --executor ray` on a real two-node Ray cluster started on this
machine (`ray.cluster_utils.Cluster`). No test doubles except the smoke config's scripted teacher.
"""

from __future__ import annotations

import json
import os
import threading
import time

import duckdb
import numpy as np
import pytest
from click.testing import CliRunner
from conftest import DATA, ROOT, data_rows, write_jsonl

from evokd.cli import main

ray = pytest.importorskip("ray", reason="the [ray] extra is part of `make test` (dev extra)")


def _shards(folder) -> list[tuple]:
    con = duckdb.connect()
    rows = con.execute(f"SELECT pool_id, text, label, vector FROM read_parquet('{folder}/*.parquet') ORDER BY pool_id").fetchall()
    con.close()
    return rows


def test_onnx_encoder_matches_the_sentence_transformers_vectors():
    from evokd.embed import encode
    from evokd.encoder import OnnxEncoder

    texts = [r["text"] for r in data_rows("banking77", "test", limit=200)]
    texts += ["a", "short one", " ".join(["long"] * 400)]  # single token, and one cut at 256 tokens
    onnx, torch = OnnxEncoder().encode(texts), encode(texts)
    assert onnx.shape == (len(texts), 384)
    assert float(np.min(np.sum(onnx * torch, axis=1))) >= 0.9999
    assert np.allclose(np.linalg.norm(onnx, axis=1), 1.0, atol=1e-5)


def test_pool_embed_writes_shards_duckdb_reads_and_generate_uses(tmp_path):
    runner = CliRunner()
    rows = data_rows("trec", "train", limit=1200)
    src = write_jsonl(tmp_path / "pool.jsonl", [{"text": r["text"], "label": r["label"]} for r in rows])
    out = tmp_path / "pool"
    result = runner.invoke(main, ["pool", "embed", str(src), "--out", str(out), "--shard-rows", "500", "--quiet"])
    assert result.exit_code == 0, result.output
    manifest = json.loads(result.output)
    assert manifest["rows"] == len(rows) and sorted(p.name for p in out.glob("*.parquet")) == [
        "part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    shards = _shards(out)
    assert [s[0] for s in shards] == list(range(len(rows)))  # one row per input line, in order
    assert [s[1] for s in shards] == [r["text"] for r in rows] and [s[2] for s in shards] == [r["label"] for r in rows]

    run = tmp_path / "run"
    result = runner.invoke(main, ["generate", str(ROOT / "datasets" / "trec" / "task.yaml"), "--pool", str(out), "--oracle",
                                  "--strategy", "pool-errors", "--rounds", "1", "--per-round", "8", "--out", str(run),
                                  "--quiet"])
    assert result.exit_code == 0, result.output
    con = duckdb.connect(str(run / "evokd.duckdb"), read_only=True)
    n_pool, n_labels, used = con.execute("SELECT count(*), count(label), count(used_round) FROM pool").fetchall()[0]
    taken = con.execute("SELECT count(*) FROM samples WHERE source = 'pool' AND labeler = 'oracle'").fetchall()[0][0]
    first = con.execute("SELECT embedding FROM pool WHERE pool_id = 0").fetchall()[0][0]
    con.close()
    assert (n_pool, n_labels) == (len(rows), len(rows)) and used == taken >= 8
    assert np.allclose(first, shards[0][3], atol=1e-6)  # the shard's vector, not a re-embedding


def test_pool_embed_refuses_bad_rows_and_generate_refuses_an_unfinished_pool(tmp_path):
    runner = CliRunner()
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{"txt": "oops"}\n', encoding="utf-8")
    result = runner.invoke(main, ["pool", "embed", str(bad), "--out", str(tmp_path / "p")])
    assert result.exit_code == 2 and "bad.jsonl: line 2: field 'text': missing" in result.output
    assert "Traceback" not in result.output
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "part-00000.parquet").write_bytes(b"")
    result = runner.invoke(main, ["generate", str(ROOT / "datasets" / "trec" / "task.yaml"), "--pool", str(unfinished),
                                  "--strategy", "pool-random", "--oracle", "--rounds", "1", "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "no pool.json" in result.output


@pytest.fixture
def ray_cluster():
    """A real two-node Ray cluster on this machine: a head and one worker node, 1 CPU each."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    worker = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    yield cluster, worker
    ray.shutdown()
    cluster.shutdown()


def _smoke(tmp_path, name: str, **kw) -> dict:
    from evokd.bench import load_config, run_bench

    os.environ["EVOKD_DATA"] = str(DATA)  # the benchmark data folder: the trec slices (conftest resets it)
    config, tasks = load_config(ROOT / "benchmarks" / "configs" / "smoke.yaml")
    config = config.model_copy(update={"strategies": ["pool-random", "pool-errors", "static"], "rounds": 4,
                                       "per_round": 8})
    out = run_bench(config, tasks, work_dir=tmp_path / name / "work", results_dir=tmp_path / name / "results", **kw)
    assert out["unfinished"] == 0
    return json.loads((tmp_path / name / "results" / "smoke.json").read_text())


def _rows(result: dict) -> dict:
    cells = {c["strategy"]: (c["accuracy"], c["macro_f1"], [r["eval_accuracy"] for r in c["rounds"]]) for c in result["cells"]}
    return {**cells, "ceiling": tuple((c["accuracy"], c["macro_f1"]) for c in result["ceilings"])}


@pytest.mark.slow
def test_bench_on_a_two_node_ray_cluster_gives_the_local_numbers_and_survives_a_dead_node(tmp_path, ray_cluster):
    cluster, worker = ray_cluster
    local = _smoke(tmp_path, "local")
    on_ray = _smoke(tmp_path, "ray", executor="ray", address=cluster.address)
    assert _rows(on_ray) == _rows(local)
    heads = [[line for line in (tmp_path / name / "results" / "smoke.md").read_text().splitlines() if line.startswith("#")]
             for name in ("local", "ray")]
    assert heads[0] == heads[1] and len(heads[0]) > 2  # the same report, section by section
    assert (tmp_path / "ray" / "results" / "smoke-trec.png").stat().st_size > 1000

    # Kill the worker node while its cells run: Ray retries them on the head and every cell completes.
    started = threading.Event()

    def events(event, **info):
        if event == "start":
            started.set()

    finished_at_kill = []

    def kill():  # as soon as a cell has committed a round but not finished
        started.wait(60)
        cells = tmp_path / "killed" / "work" / "cells"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            running = [d for d in cells.rglob("evokd.duckdb") if not (d.parent / "cell.json").exists()] if cells.exists() else []
            if running:
                break
            time.sleep(0.05)
        cluster.remove_node(worker, allow_graceful=False)
        finished_at_kill.append(len(list(cells.rglob("cell.json"))))

    killer = threading.Thread(target=kill)
    killer.start()
    survived = _smoke(tmp_path, "killed", executor="ray", address=cluster.address, events=events)
    killer.join()
    assert worker not in cluster.worker_nodes
    assert finished_at_kill and finished_at_kill[0] < 3  # the node died while cells were still running
    assert _rows(survived) == _rows(local)


@pytest.mark.slow
def test_pool_embed_on_ray_equals_the_local_path(tmp_path):
    rows = data_rows("sst2", "train")  # 3,000 sentences
    src = write_jsonl(tmp_path / "pool.jsonl", [{"text": r["text"]} for r in rows])
    from evokd.pool import embed_pool

    embed_pool(src, tmp_path / "local", shard_rows=10_000)
    try:
        manifest = embed_pool(src, tmp_path / "ray", executor="ray", shard_rows=5_000, batch_size=512)
    finally:
        ray.shutdown()
    assert manifest["rows"] == len(rows) and manifest["executor"] == "ray"
    a, b = _shards(tmp_path / "local"), _shards(tmp_path / "ray")
    assert [r[0] for r in b] == list(range(len(rows))) and [r[1] for r in a] == [r[1] for r in b]
    va, vb = np.array([r[3] for r in a], dtype=np.float32), np.array([r[3] for r in b], dtype=np.float32)
    assert float(np.min(np.sum(va * vb, axis=1))) >= 0.9999

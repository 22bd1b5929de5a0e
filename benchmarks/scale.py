"""Scale-out benchmark: pool embedding throughput local vs Ray Data, and bench cells per minute
local vs Ray, on this machine in the same run; plus a projection for a 10M-text pool.

    .venv/bin/python benchmarks/scale.py [--texts 100000] [--cells-config benchmarks/configs/pool-oracle.yaml]
    .venv/bin/python benchmarks/scale.py --batch-sweep 64,256,1024 --texts 10000   # then: Ray Data batch size

Embedding: the first N texts of sst2 train + ag_news train (100k by default), written once to a
JSONL file, embedded by `evokd pool embed` with --executor local (every core) and --executor ray
(one encoder actor per core), twice each, interleaved; medians reported. Cells: the pool-oracle
config's no-LLM cells for seed 1 (tfidf), run with the local executor (--jobs = cores) and with
Ray, each into a fresh work dir. Writes benchmarks/scale.md and benchmarks/scale.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
from evokd import datadir  # noqa: E402  (the benchmark data folder: --data-dir or EVOKD_DATA)

DATA = datadir.for_script(__file__, required="--render-only" not in sys.argv)
OUT = Path(__file__).resolve().parent


def block_mb() -> float:
    from evokd.store import Store

    return Store.POOL_BLOCK * 384 * 4 / 1e6


def machine() -> str:
    from evokd.bench import machine as bench_machine

    return bench_machine()["cpu"]


def corpus(n: int, path: Path) -> dict:
    per = {"sst2": 0, "ag_news": 0}
    with path.open("w", encoding="utf-8") as out:
        written = 0
        for name in ("sst2", "ag_news"):
            with (DATA / name / "train.jsonl").open(encoding="utf-8") as fh:
                for line in fh:
                    if written >= n:
                        break
                    out.write(json.dumps({"text": json.loads(line)["text"]}) + "\n")
                    written += 1
                    per[name] += 1
    chars = sum(len(json.loads(line)["text"]) for line in path.open(encoding="utf-8"))
    return {"texts": written, "by_source": per, "mean_chars": chars / max(1, written)}


def embed(executor: str, src: Path, out: Path) -> float:
    from evokd.pool import embed_pool

    t0 = time.perf_counter()
    embed_pool(src, out, executor=executor, shard_rows=20_000, batch_size=256)
    return time.perf_counter() - t0


def _median_time(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def search(pool_dir: Path, work: Path, k: int = 32, n_queries: int = 8, repeats: int = 3) -> dict:
    """Nearest-neighbour lookup over the embedded pool, as a pool round does it: 8 queries (a
    round's generated texts), top 32. evokd's path is the blocked exact scan through DuckDB
    (`Store.pool_blocks` + `nearest_ids`); against it: the whole matrix in memory, and two ANN
    libraries where installed (faiss-cpu HNSW, usearch HNSW; not evokd dependencies) with recall@k."""
    import numpy as np

    from evokd.embed import encode
    from evokd.pool import nearest_ids, shard_glob
    from evokd.store import Store

    queries = encode([json.loads(line)["text"] for line in (DATA / "ag_news" / "test.jsonl").open()][:n_queries])
    out: dict = {"k": k, "queries": n_queries}
    with Store(work / "search.duckdb") as store:
        t0 = time.perf_counter()
        store.load_pool_shards(shard_glob(pool_dir), with_labels=False)
        out["load_s"] = time.perf_counter() - t0
        out["rows"] = store.pool_size()
        out["blocked_s"], exact = _median_time(lambda: nearest_ids(queries, store.pool_blocks("embedding"), k), repeats)
        t0 = time.perf_counter()
        blocks = list(store.pool_blocks("embedding"))
        ids = np.concatenate([b[0] for b in blocks])
        matrix = np.concatenate([b[1] for b in blocks])
        out["matrix_read_s"] = time.perf_counter() - t0
    del blocks

    def in_memory():
        sims = queries @ matrix.T
        return [ids[np.argsort(-row, kind="stable")[:k]] for row in sims]

    out["in_memory_s"], mem = _median_time(in_memory, repeats)
    out["in_memory_equal"] = all(np.array_equal(a, b) for a, b in zip(exact, mem))
    truth = [set(int(i) for i in e) for e in exact]

    def recall(found) -> float:
        return float(np.mean([len(truth[q] & {int(i) for i in found[q]}) / k for q in range(len(truth))]))

    ann: dict = {}
    try:
        import faiss

        faiss.omp_set_num_threads(len(os.sched_getaffinity(0)))
        t0 = time.perf_counter()
        index = faiss.IndexHNSWFlat(matrix.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
        index.add(matrix)
        build = time.perf_counter() - t0
        index.hnsw.efSearch = 128
        q_s, (_, found) = _median_time(lambda: index.search(queries, k), repeats)
        ann["faiss-hnsw"] = {"version": faiss.__version__, "build_s": build, "query_s": q_s,
                             "recall": recall([ids[f] for f in found])}
        index = None  # free it before the next library builds its own
    except ImportError:
        pass
    try:
        import usearch
        from usearch.index import Index

        t0 = time.perf_counter()
        index = Index(ndim=matrix.shape[1], metric="ip", dtype="f32")
        index.add(ids, matrix)
        build = time.perf_counter() - t0
        q_s, matches = _median_time(lambda: index.search(queries, k), repeats)
        ann["usearch-hnsw"] = {"version": usearch.__version__, "build_s": build, "query_s": q_s,
                               "recall": recall([m.keys for m in matches])}
        index = None  # free it before the next library builds its own
    except ImportError:
        pass
    out["ann"] = ann
    out["matrix_mb"] = matrix.nbytes / 1e6
    return out


def cells(config_path: Path, executor: str, work: Path, cores: int) -> dict:
    from evokd.bench import load_config, run_bench

    config, tasks = load_config(config_path)
    config = config.model_copy(update={"seeds": config.seeds[:1], "students": ["tfidf"], "ceiling": False,
                                       "strategies": [s for s in config.strategies if s != "pool-evokd"]})
    t0 = time.perf_counter()
    out = run_bench(config, tasks, work_dir=work / "work", results_dir=work / "results", n_workers=cores,
                    executor=executor)
    seconds = time.perf_counter() - t0
    return {"cells": out["ran"], "seconds": seconds, "cells_per_minute": out["ran"] / seconds * 60}


def batch_sweep(sizes: list[int], n: int) -> None:
    """Ray Data `map_batches` batch size: embed the same n texts at each size (Ray started once),
    twice each, interleaved; appends a section to scale.md and `batch_sweep` to scale.json."""
    import ray

    from evokd.encoder import ensure_encoder
    from evokd.pool import embed_pool, init_ray

    ensure_encoder()
    tmp = Path(tempfile.mkdtemp(prefix="evokd-sweep-"))
    times: dict[int, list[float]] = {b: [] for b in sizes}
    try:
        info = corpus(n, tmp / "corpus.jsonl")
        init_ray(ray, None)
        for _ in range(2):
            for b in sizes:
                t0 = time.perf_counter()
                embed_pool(tmp / "corpus.jsonl", tmp / f"p{b}", executor="ray", shard_rows=20_000, batch_size=b)
                times[b].append(time.perf_counter() - t0)
                shutil.rmtree(tmp / f"p{b}")
                print("batch", b, f"{times[b][-1]:.1f} s", flush=True)
        ray.shutdown()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    rate = {b: info["texts"] / statistics.median(t) for b, t in times.items()}
    result = json.loads((OUT / "scale.json").read_text(encoding="utf-8"))
    result["batch_sweep"] = {"texts": info["texts"], "seconds": {str(b): t for b, t in times.items()},
                             "texts_per_s": {str(b): r for b, r in rate.items()},
                             "command": " ".join(["benchmarks/scale.py", *sys.argv[1:]]),
                             "load_average_end": os.getloadavg()}
    (OUT / "scale.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    render(result)


def render(result: dict) -> None:
    """scale.md from the results (`--render-only` re-renders scale.json)."""
    cores, started, load, info = result["cores"], result["started"], result["load_average"], result["corpus"]
    times, med, rate, bench, found = (result["embed_seconds"], result["embed_median_s"], result["texts_per_s"],
                                      result["cells"], result["search"])
    per_core, ten_m_hours = result["texts_per_s_per_core"], {int(c): h for c, h in result["projection_10m_hours"].items()}
    repeats = len(times["local"])
    lines = ["# Scale-out: pool embedding and bench cells, local vs Ray", "",
             f"- Machine: {result['machine']}, {cores} cores; Python {result['python']}; evokd {result['evokd']}; "
             f"Ray {result['ray']}; {started}.",
             f"- Command: `.venv/bin/python {result['command']}`",
             "- Load average (1/5/15 min; the machine is shared, other jobs ran beside this one): "
             + "; ".join(f"{k.replace('_', ' ')} {' / '.join(f'{x:.1f}' for x in v)}" for k, v in load.items()), "",
             "## Pool embedding (ONNX MiniLM encoder)", "",
             f"{info['texts']:,} texts ({info['by_source']['sst2']:,} sst2 train + {info['by_source']['ag_news']:,} ag_news "
             f"train, mean {info['mean_chars']:.0f} characters"
             + ("; all of both splits, which hold fewer than the "
                f"{result.get('texts_asked', 100_000):,} asked" if info["texts"] < result.get("texts_asked", 100_000) else "")
             + "), "
             f"{repeats} runs per executor, interleaved.", "",
             "| executor | median seconds | texts/s | runs (s) |", "|---|---|---|---|"]
    for ex in ("local", "ray"):
        lines.append(f"| {ex} | {med[ex]:.1f} | {rate[ex]:,.0f} | {', '.join(f'{t:.1f}' for t in times[ex])} |")
    lines += ["", f"Ray / local: {rate['ray'] / rate['local']:.2f}x.", "",
              "## Bench cells (pool-oracle config, seed 1, tfidf, no-LLM strategies)", "",
              "| executor | cells | seconds | cells/minute |", "|---|---|---|---|"]
    for ex in ("local", "ray"):
        b = bench[ex]
        lines.append(f"| {ex} | {b['cells']} | {b['seconds']:.1f} | {b['cells_per_minute']:.2f} |")
    f = found
    scale10m = 10_000_000 / f["rows"]
    lines += ["", "## Nearest-neighbour lookup over the pool", "",
              f"{f['rows']:,} embedded rows loaded into a run's DuckDB store in {f['load_s']:.1f} s; {f['queries']} "
              f"queries (ag_news test texts, a round's generated texts), top {f['k']}, median of 3.", "",
              "| method | seconds per query batch | build s | recall@k vs exact | memory |", "|---|---|---|---|---|",
              f"| blocked exact scan through DuckDB (evokd: `Store.pool_blocks` + `nearest_ids`) | {f['blocked_s']:.3f} | "
              f"– | 1.000 | one block ({block_mb():.0f} MB) |",
              f"| whole matrix in memory, numpy | {f['in_memory_s']:.3f} | {f['matrix_read_s']:.1f} (read) | "
              f"{'1.000' if f['in_memory_equal'] else 'differs'} | {f['matrix_mb']:.0f} MB |"]
    for name, a in f["ann"].items():
        params = {"faiss-hnsw": "M=32, efSearch=128", "usearch-hnsw": "default connectivity"}.get(name, "")
        lines.append(f"| {name} {a['version']} ({params}) | {a['query_s']:.4f} | {a['build_s']:.1f} | {a['recall']:.3f} | "
                     f"index ≥ {f['matrix_mb']:.0f} MB |")
    lines += ["", f"At 10M rows ({scale10m:.0f}x) the blocked scan would take about {f['blocked_s'] * scale10m:.0f} s per "
              f"query batch on this machine (linear in rows), memory flat; an HNSW index would answer in milliseconds "
              f"but needs the whole matrix in RAM (~{f['matrix_mb'] * scale10m / 1000:.0f} GB) plus about "
              + (f"{max(a['build_s'] for a in f['ann'].values()) * scale10m / 3600:.1f} h of build (measured build x "
                 f"{scale10m:.0f}, a lower bound: HNSW build grows faster than linearly)" if f["ann"] else "its build")
              + ", and is approximate. A pool round makes a few query batches against minutes of teacher calls, "
              "so evokd uses the exact blocked scan at every size it can store."]
    lines += ["", "## Projection: a 10M-text pool", "",
              f"Measured local throughput per core: {per_core:,.0f} texts/s (this corpus' length mix). Embedding scales "
              "with cores as long as each actor gets a whole core (no shared state between batches), so 10M texts take "
              + ", ".join(f"{h:.1f} h on {c} cores" for c, h in ten_m_hours.items())
              + ". The shards of 10M x 384 float32 vectors are 15 GB; a query batch against them is a blocked scan."]
    sweep = result.get("batch_sweep")
    if sweep:
        sweep_rate = {int(b): r for b, r in sweep["texts_per_s"].items()}
        best = max(sweep_rate, key=sweep_rate.get)
        lines += ["", "## Ray Data batch size", "",
                  f"`.venv/bin/python {sweep['command']}`: the first {sweep['texts']:,} texts of the corpus above "
                  "through `pool embed --executor ray` at each `--batch-size`, twice each, interleaved, one Ray session; "
                  "medians.", "", "| batch size | texts/s | runs (s) |", "|---|---|---|"]
        lines += [f"| {b} | {r:,.0f} | {', '.join(f'{t:.1f}' for t in sweep['seconds'][str(b)])} |"
                  for b, r in sweep_rate.items()]
        lines += ["", f"Fastest here: {best} ({sweep_rate[best] / min(sweep_rate.values()):.2f}x the slowest); "
                  "`--batch-size` defaults to 256."]
    if result.get("notes"):
        lines += ["", "## Notes", "", *[f"- {n}" for n in result["notes"]]]
    (OUT / "scale.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(OUT / "scale.md")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch-sweep", default=None, metavar="B[,B...]",
                    help="only sweep Ray Data batch sizes on --texts texts and append the section (after a full run)")
    ap.add_argument("--render-only", action="store_true", help="re-render scale.md from scale.json")
    ap.add_argument("--texts", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--cells-config", type=Path, default=ROOT / "benchmarks" / "configs" / "pool-oracle.yaml")
    args = ap.parse_args()
    if args.render_only:
        render(json.loads((OUT / "scale.json").read_text(encoding="utf-8")))
        return
    if args.batch_sweep:
        batch_sweep([int(b) for b in args.batch_sweep.split(",")], args.texts)
        return
    import ray

    import evokd
    from evokd.encoder import ensure_encoder

    cores = len(os.sched_getaffinity(0))
    ensure_encoder()
    tmp = Path(tempfile.mkdtemp(prefix="evokd-scale-"))
    started = dt.datetime.now().isoformat(timespec="minutes")
    load = {"start": os.getloadavg()}
    try:
        src = tmp / "corpus.jsonl"
        info = corpus(args.texts, src)
        times: dict[str, list[float]] = {"local": [], "ray": []}
        for r in range(args.repeats):
            for executor in ("local", "ray"):
                times[executor].append(embed(executor, src, tmp / f"pool-{executor}-{r}"))
                if executor == "ray" or r < args.repeats - 1:
                    shutil.rmtree(tmp / f"pool-{executor}-{r}")
                print(executor, r, f"{times[executor][-1]:.1f} s", flush=True)
        ray.shutdown()
        load["after_embedding"] = os.getloadavg()
        found = search(tmp / f"pool-local-{args.repeats - 1}", tmp)
        print("search", json.dumps(found), flush=True)
        bench = {ex: cells(args.cells_config, ex, tmp / f"cells-{ex}", cores) for ex in ("local", "ray")}
        ray.shutdown()
        load["end"] = os.getloadavg()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    rate = {k: info["texts"] / v for k, v in med.items()}
    per_core = rate["local"] / cores
    ten_m_hours = {c: 10_000_000 / (per_core * c) / 3600 for c in (16, 64, 256)}
    result = {"machine": machine(), "cores": cores, "evokd": evokd.__version__, "python": platform.python_version(),
              "ray": ray.__version__, "started": started, "command": " ".join(["benchmarks/scale.py", *sys.argv[1:]]),
              "corpus": info, "texts_asked": args.texts, "embed_seconds": times, "embed_median_s": med, "texts_per_s": rate,
              "texts_per_s_per_core": per_core, "projection_10m_hours": ten_m_hours, "cells": bench,
              "search": found, "load_average": load}
    (OUT / "scale.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    render(result)



if __name__ == "__main__":
    main()

"""Benchmark the TF-IDF student on full SST-2: accuracy, ONNX parity, single-sentence latency.

Run from the project root:  .venv/bin/python benchmarks/student_tfidf.py
Writes benchmarks/student_tfidf.md and benchmarks/student_tfidf.json next to this file.
"""

import datetime
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
from evokd import datadir  # noqa: E402  (the benchmark data folder: --data-dir or EVOKD_DATA)

DATA = datadir.for_script(__file__) / "sst2"
N_CALLS = 1000
COMMAND = ".venv/bin/python benchmarks/student_tfidf.py"


def read_split(split: str) -> tuple[list[str], list[str]]:
    rows = [json.loads(line) for line in (DATA / f"{split}.jsonl").open(encoding="utf-8")]
    return [r["text"] for r in rows], [r["label"] for r in rows]


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def per_call_us(fn, texts: list[str]) -> list[float]:
    """Time fn(text) once per text, in microseconds."""
    times = []
    for text in texts:
        start = time.perf_counter_ns()
        fn(text)
        times.append((time.perf_counter_ns() - start) / 1000)
    return times


def summary(times: list[float]) -> dict:
    return {
        "median_us": statistics.median(times),
        "p95_us": float(np.percentile(times, 95)),
        "mean_us": statistics.fmean(times),
    }


def main() -> None:
    import onnxruntime
    import skl2onnx
    import sklearn

    import evokd
    from evokd.runtime import load_student
    from evokd.students import TfidfStudent

    train_texts, train_labels = read_split("train")
    test_texts, test_labels = read_split("test")

    student = TfidfStudent()
    start = time.perf_counter()
    student.fit(train_texts, train_labels)
    fit_s = time.perf_counter() - start
    predicted = student.predict(test_texts)
    accuracy = float(np.mean([p == g for p, g in zip(predicted, test_labels)]))

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        parity = student.save(tmp, test_texts)  # raises ParityError on any disagreement
        save_s = time.perf_counter() - start
        onnx_bytes = (Path(tmp) / "model.onnx").stat().st_size
        runtime = load_student(tmp)
        onnx_labels = [r["label"] for r in runtime.predict(test_texts)]
        agreement = float(np.mean([a == b for a, b in zip(onnx_labels, predicted)]))
        onnx_accuracy = float(np.mean([p == g for p, g in zip(onnx_labels, test_labels)]))

        # single-sentence latency, same process, same sentences, interleaved in blocks
        session, input_name = runtime.session, runtime.session.get_inputs()[0].name
        pipeline = student.pipeline_
        sentences = [test_texts[i % len(test_texts)] for i in range(N_CALLS)]

        def onnx_one(text):
            session.run(["probabilities"], {input_name: np.array([[text]], dtype=object)})

        def runtime_one(text):
            runtime.predict([text])

        def sklearn_one(text):
            pipeline.predict_proba([text])

        for fn in (onnx_one, runtime_one, sklearn_one):  # warm-up
            per_call_us(fn, sentences[:50])
        timings = {"onnx_session_run": [], "runtime_predict": [], "sklearn_predict_proba": []}
        for block in range(0, N_CALLS, 100):
            chunk = sentences[block:block + 100]
            timings["onnx_session_run"] += per_call_us(onnx_one, chunk)
            timings["runtime_predict"] += per_call_us(runtime_one, chunk)
            timings["sklearn_predict_proba"] += per_call_us(sklearn_one, chunk)

    latency = {name: summary(t) for name, t in timings.items()}
    ratio = latency["sklearn_predict_proba"]["median_us"] / latency["onnx_session_run"]["median_us"]
    result = {
        "dataset": "sst2",
        "train_rows": len(train_texts),
        "test_rows": len(test_texts),
        "student": student.name,
        "params": student.get_params(),
        "n_features": len(pipeline.named_steps["tfidf"].vocabulary_),
        "fit_s": round(fit_s, 2),
        "save_with_parity_check_s": round(save_s, 2),
        "test_accuracy": accuracy,
        "test_accuracy_onnx": onnx_accuracy,
        "onnx_vs_sklearn_label_agreement": agreement,
        "parity": parity,
        "model_onnx_bytes": onnx_bytes,
        "latency_single_sentence": {k: {m: round(v, 1) for m, v in s.items()} for k, s in latency.items()},
        "latency_calls": N_CALLS,
        "speedup_median_sklearn_over_onnx": round(ratio, 1),
        "targets": {"test_accuracy": 0.80, "label_agreement": 1.0, "speedup": 10},
        "machine": {
            "cpu": cpu_model(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "evokd": evokd.__version__,
            "scikit-learn": sklearn.__version__,
            "skl2onnx": skl2onnx.__version__,
            "onnxruntime": onnxruntime.__version__,
            "numpy": np.__version__,
            "onnxruntime_threads": 1,
        },
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": COMMAND,
    }
    (HERE / "student_tfidf.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    (HERE / "student_tfidf.md").write_text(render_markdown(result), encoding="utf-8")
    print(render_markdown(result))
    missed = [name for name, ok in [("accuracy", accuracy >= 0.80), ("agreement", agreement == 1.0),
                                     ("speed-up", ratio >= 10)] if not ok]
    if missed:
        print("targets missed: " + ", ".join(missed), file=sys.stderr)


def render_markdown(r: dict) -> str:
    lat = r["latency_single_sentence"]
    m = r["machine"]

    def check(ok: bool) -> str:
        return "yes" if ok else "**no**"

    rows = [
        ("test accuracy (1,821 sentences), sklearn", f"{r['test_accuracy']:.4f}", "≥ 0.80", check(r["test_accuracy"] >= 0.80)),
        ("test accuracy, ONNX runtime", f"{r['test_accuracy_onnx']:.4f}", "", ""),
        ("label agreement ONNX vs sklearn (all test)", f"{r['onnx_vs_sklearn_label_agreement']:.2%}", "100%", check(r["onnx_vs_sklearn_label_agreement"] == 1.0)),
        ("max abs probability difference", f"{r['parity']['max_abs_diff']:.1e}", "≤ 1e-4", check(r["parity"]["max_abs_diff"] <= 1e-4)),
        ("1 sentence: ONNX session.run, median / p95", f"{lat['onnx_session_run']['median_us']:.1f} / {lat['onnx_session_run']['p95_us']:.1f} µs", "", ""),
        ("1 sentence: RuntimeStudent.predict, median / p95", f"{lat['runtime_predict']['median_us']:.1f} / {lat['runtime_predict']['p95_us']:.1f} µs", "", ""),
        ("1 sentence: sklearn predict_proba, median / p95", f"{lat['sklearn_predict_proba']['median_us']:.1f} / {lat['sklearn_predict_proba']['p95_us']:.1f} µs", "", ""),
        ("speed-up, median sklearn / median ONNX", f"{r['speedup_median_sklearn_over_onnx']:.1f}×", "≥ 10×", check(r["speedup_median_sklearn_over_onnx"] >= 10)),
        (f"fit time ({r['train_rows']:,} rows, {r['n_features']:,} features)", f"{r['fit_s']:.1f} s", "", ""),
        ("save (convert + parity check on test)", f"{r['save_with_parity_check_s']:.1f} s", "", ""),
        ("model.onnx size", f"{r['model_onnx_bytes'] / 1e6:.1f} MB", "", ""),
    ]
    table = "\n".join(f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows)
    params = ", ".join(f"{k}={v!r}" for k, v in r["params"].items())
    return f"""# TF-IDF student on SST-2

`TfidfStudent({params})` trained on the full SST-2 train split ({r['train_rows']:,} phrases),
evaluated on all {r['test_rows']:,} test sentences; exported to ONNX (raw-text graph) and run in onnxruntime
(CPUExecutionProvider, 1 intra-op thread). Latency: {r['latency_calls']:,} single-sentence calls each,
same process, interleaved in blocks of 100, after 50 warm-up calls.

| measure | value | target | met |
|---|---|---|---|
{table}

Not measured by this script (one-off checks, same machine, Nov 2026): the shared 2-core machine
is noisy: seven runs gave speed-ups from 8.4× to 11.6× (ONNX medians 97–150 µs, sklearn 980–1,800 µs). Per-op profile of one sentence: TfIdfVectorizer
~22 µs, row L2 norm (Mul + ReduceSum over ~81k dense floats) ~40 µs, class dot product ~20 µs,
each of the ~12 small ops 3–5 µs. skl2onnx 1.20's own graph for the same pipeline ends in
ai.onnx.ml Normalizer + LinearClassifier and takes ~400 µs per sentence (Normalizer alone ~300 µs),
and converting it takes ~12 s (1.6 s here).

Machine: {m['cpu']}, {m['cores']} cores, {m['platform']}; Python {m['python']}, evokd {m['evokd']},
scikit-learn {m['scikit-learn']}, skl2onnx {m['skl2onnx']}, onnxruntime {m['onnxruntime']}, numpy {m['numpy']}.
Date: {r['date']}. Command (from the project root): `{r['command']}`
"""


if __name__ == "__main__":
    main()

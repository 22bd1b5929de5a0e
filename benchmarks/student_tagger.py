"""Benchmark the BiLSTM + char-CNN tagger on full CoNLL-2003: entity F1, ONNX parity, latency.

Run from the project root:  .venv/bin/python benchmarks/student_tagger.py
Writes benchmarks/student_tagger.md and benchmarks/student_tagger.json next to this file.

Training goes through the product path: CoNLL tokens are joined into text with character
spans (`evokd.ner.tokens_to_example`), and `TaggerStudent.fit` re-tokenises them with spaCy.
Test F1 is reported twice: on the gold CoNLL tokens (`predict_tags`, comparable with the
literature) and on raw text (`predict`, spaCy tokens, exact character-span match).
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

DATA = datadir.for_script(__file__) / "conll2003"
N_CALLS = 1000
COMMAND = ".venv/bin/python benchmarks/student_tagger.py"
PARAMS = {"epochs": 30, "patience": 4, "max_seconds": 540, "n_threads": 1, "random_state": 0}
TARGETS = {"test_f1": 0.75, "identical_tags": 1.0, "onnx_median_ms": 0.5}


def read_split(split: str) -> list[dict]:
    return [json.loads(line) for line in (DATA / f"{split}.jsonl").open(encoding="utf-8")]


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def latency_us(fn, items) -> list[float]:
    times = []
    for item in items:
        start = time.perf_counter()
        fn(item)
        times.append((time.perf_counter() - start) * 1e6)
    return times


def summary(times: list[float]) -> dict:
    ordered = sorted(times)
    return {"median_us": statistics.median(ordered), "p95_us": ordered[int(0.95 * (len(ordered) - 1))],
            "mean_us": statistics.fmean(ordered)}


def main() -> None:
    import onnx
    import onnxruntime
    import spacy
    import torch

    import evokd
    from evokd.metrics import entity_report
    from evokd.ner import bio_to_token_spans, tokenize, tokens_to_example
    from evokd.runtime import load_student
    from evokd.students.tagger import TaggerStudent

    torch.set_num_threads(PARAMS["n_threads"])
    train, dev, test = (read_split(s) for s in ("train", "dev", "test"))
    train_ex = [tokens_to_example(r["tokens"], r["tags"]) for r in train]
    dev_ex = [tokens_to_example(r["tokens"], r["tags"]) for r in dev]
    test_ex = [tokens_to_example(r["tokens"], r["tags"]) for r in test]
    test_texts = [e["text"] for e in test_ex]
    test_tokens = [r["tokens"] for r in test]

    start = time.perf_counter()
    student = TaggerStudent(**PARAMS, verbose=True).fit(
        [e["text"] for e in train_ex], [e["entities"] for e in train_ex],
        validation=([e["text"] for e in dev_ex], [e["entities"] for e in dev_ex]),
    )
    fit_s = time.perf_counter() - start
    types = student.entity_types_

    # F1 on gold CoNLL tokens and on raw text (spaCy tokens, character spans)
    pred_tags = student.predict_tags(test_tokens)
    token_f1 = entity_report(
        [bio_to_token_spans(r["tags"]) for r in test], [bio_to_token_spans(t) for t in pred_tags], types
    )
    pred_spans = student.predict(test_texts)
    text_f1 = entity_report([ex["entities"] for ex in test_ex], pred_spans, types)
    retokenised = sum(
        [t.text for t in tokenize(text)] != tokens for text, tokens in zip(test_texts, test_tokens)
    )

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        parity = student.save(tmp, test_texts)  # raises ParityError on any differing tag
        save_s = time.perf_counter() - start
        onnx_bytes = (Path(tmp) / "model.onnx").stat().st_size
        opset = max(o.version for o in onnx.load(str(Path(tmp) / "model.onnx")).opset_import if o.domain in ("", "ai.onnx"))
        runtime = load_student(tmp)
        onnx_tags = runtime.predict_tags(test_tokens)
        onnx_tags_single = [runtime.predict_tags([t])[0] for t in test_tokens]
        gold_token_identical = float(np.mean([a == b for a, b in zip(onnx_tags, pred_tags)]))
        gold_token_identical_single = float(np.mean([a == b for a, b in zip(onnx_tags_single, pred_tags)]))
        runtime_spans = [r["entities"] for r in runtime.predict(test_texts)]
        text_identical = float(np.mean([a == b for a, b in zip(runtime_spans, pred_spans)]))

        # single-sentence latency, same process, same sentences, interleaved in blocks
        sentences = [i % len(test) for i in range(N_CALLS)]
        feeds = {i: runtime.encode([test_tokens[i]]) for i in set(sentences)}
        tensors = {i: tuple(torch.from_numpy(feeds[i][k]) for k in ("word_ids", "char_ids", "case_ids")) for i in feeds}
        module = student.module_

        def onnx_run(i):
            runtime.session.run(["scores"], feeds[i])

        def torch_forward(i):
            with torch.inference_mode():
                module(*tensors[i])

        def runtime_predict(i):
            runtime.predict([test_texts[i]])

        def student_predict(i):
            student.predict([test_texts[i]])

        fns = {"onnx_session_run": onnx_run, "torch_forward": torch_forward,
               "runtime_predict_text": runtime_predict, "torch_student_predict_text": student_predict}
        for fn in fns.values():  # warm-up
            latency_us(fn, sentences[:50])
        timings = {name: [] for name in fns}
        for block in range(0, N_CALLS, 100):
            for name, fn in fns.items():
                timings[name] += latency_us(fn, sentences[block:block + 100])

    latency = {name: {k: round(v, 1) for k, v in summary(t).items()} for name, t in timings.items()}
    n_params = sum(p.numel() for p in student.module_.parameters())
    result = {
        "dataset": "conll2003",
        "train_rows": len(train), "dev_rows": len(dev), "test_rows": len(test),
        "student": student.name,
        "params": student.get_params(),
        "word_vocab_size": len(student.words_), "char_vocab_size": len(student.chars_),
        "n_parameters": n_params,
        "fit_s": round(fit_s, 1),
        "epochs_run": len(student.history_), "best_epoch": student.best_epoch_,
        "history": student.history_,
        "save_with_parity_check_s": round(save_s, 1),
        "test_gold_tokens": token_f1,
        "test_raw_text": text_f1,
        "test_texts_retokenised_differently": retokenised,
        "median_test_sentence_tokens": statistics.median(len(t) for t in test_tokens),
        "parity": parity,
        "onnx_vs_torch_identical_tags_gold_tokens_batched": gold_token_identical,
        "onnx_vs_torch_identical_tags_gold_tokens_single": gold_token_identical_single,
        "onnx_vs_torch_identical_spans_raw_text": text_identical,
        "model_onnx_bytes": onnx_bytes,
        "onnx_opset": opset,
        "latency_single_sentence": latency,
        "latency_calls": N_CALLS,
        "targets": TARGETS,
        "machine": {
            "cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(), "evokd": evokd.__version__, "torch": torch.__version__,
            "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__, "spacy": spacy.__version__,
            "numpy": np.__version__, "torch_threads": PARAMS["n_threads"], "onnxruntime_threads": 1,
        },
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": COMMAND,
    }
    (HERE / "student_tagger.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    (HERE / "student_tagger.md").write_text(render_markdown(result), encoding="utf-8")
    print(render_markdown(result))
    checks = {
        "F1": token_f1["f1"] >= TARGETS["test_f1"],
        "identical tags": min(parity["identical_tags_single"], parity["identical_tags_batched"],
                              gold_token_identical, gold_token_identical_single, text_identical) == 1.0,
        "latency": latency["onnx_session_run"]["median_us"] <= TARGETS["onnx_median_ms"] * 1000,
    }
    missed = [name for name, ok in checks.items() if not ok]
    if missed:
        print("targets missed: " + ", ".join(missed), file=sys.stderr)


def render_markdown(r: dict) -> str:
    lat, m, t = r["latency_single_sentence"], r["machine"], r["targets"]
    gold, text = r["test_gold_tokens"], r["test_raw_text"]

    def check(ok: bool) -> str:
        return "yes" if ok else "**no**"

    def us(name: str) -> str:
        return f"{lat[name]['median_us'] / 1000:.3f} / {lat[name]['p95_us'] / 1000:.3f} ms"

    identical = min(r["parity"]["identical_tags_single"], r["parity"]["identical_tags_batched"],
                    r["onnx_vs_torch_identical_tags_gold_tokens_batched"],
                    r["onnx_vs_torch_identical_tags_gold_tokens_single"])
    rows = [
        (f"test entity F1, micro ({r['test_rows']:,} sentences, gold tokens)", f"{gold['f1']:.4f}", f"≥ {t['test_f1']}", check(gold["f1"] >= t["test_f1"])),
        ("test precision / recall, gold tokens", f"{gold['precision']:.4f} / {gold['recall']:.4f}", "", ""),
        ("test entity F1, micro, raw text (spaCy tokens, char spans)", f"{text['f1']:.4f}", "", ""),
        ("ONNX vs PyTorch identical tags, every test sentence (one at a time and batched; spaCy and gold tokens)", f"{identical:.2%}", "100%", check(identical == 1.0)),
        ("ONNX vs PyTorch identical spans, raw text, every test sentence", f"{r['onnx_vs_torch_identical_spans_raw_text']:.2%}", "100%", check(r["onnx_vs_torch_identical_spans_raw_text"] == 1.0)),
        ("max abs score difference (spaCy tokens)", f"{r['parity']['max_abs_score_diff']:.1e}", "", ""),
        ("1 sentence: ONNX session.run (encoded), median / p95", us("onnx_session_run"), f"≤ {t['onnx_median_ms']} ms", check(lat["onnx_session_run"]["median_us"] <= t["onnx_median_ms"] * 1000)),
        ("1 sentence: PyTorch forward (encoded), median / p95", us("torch_forward"), "", ""),
        ("1 sentence: runtime predict(text) (spaCy + encode + ONNX + decode), median / p95", us("runtime_predict_text"), "", ""),
        ("1 sentence: TaggerStudent.predict(text), median / p95", us("torch_student_predict_text"), "", ""),
        (f"training time ({r['train_rows']:,} sentences, {r['epochs_run']} epochs, best {r['best_epoch']}, 1 thread)", f"{r['fit_s'] / 60:.1f} min", "≤ 10 min", check(r["fit_s"] <= 600)),
        ("save (export + parity check on all test sentences)", f"{r['save_with_parity_check_s']:.1f} s", "", ""),
        (f"model.onnx size ({r['n_parameters']:,} parameters, {r['word_vocab_size']:,} words, {r['char_vocab_size']} chars)", f"{r['model_onnx_bytes'] / 1e6:.2f} MB", "", ""),
    ]
    table = "\n".join(f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows)
    per_type = "\n".join(
        f"| {name} | {gold['per_label'][name]['precision']:.4f} | {gold['per_label'][name]['recall']:.4f} | "
        f"{gold['per_label'][name]['f1']:.4f} | {text['per_label'][name]['f1']:.4f} | {gold['per_label'][name]['support']:,} |"
        for name in gold["per_label"]
    )
    epochs = ", ".join(f"{h['validation_f1']:.3f}" for h in r["history"])
    if r["epochs_run"] - r["best_epoch"] >= r["params"]["patience"]:
        stopped = f"early-stopped after epoch {r['epochs_run']}, best epoch {r['best_epoch']}"
    elif r["epochs_run"] < r["params"]["epochs"]:
        stopped = (f"stopped by max_seconds={r['params']['max_seconds']} after epoch {r['epochs_run']}, "
                   f"best epoch {r['best_epoch']}")
    else:
        stopped = f"all {r['epochs_run']} epochs run, best epoch {r['best_epoch']}"
    params = ", ".join(f"{k}={v!r}" for k, v in r["params"].items() if k != "verbose")
    return f"""# BiLSTM + char-CNN tagger on CoNLL-2003

`TaggerStudent({params})` trained on the full CoNLL-2003 train split ({r['train_rows']:,} sentences),
early-stopped on entity F1 over dev ({r['dev_rows']:,} sentences), evaluated on all {r['test_rows']:,} test
sentences. Training goes through `fit(texts, entities)`: CoNLL tokens joined with spaces, re-tokenised
by spaCy ({r['test_texts_retokenised_differently']} of the test sentences tokenise differently from the gold tokens). F1 is exact entity
match, micro-averaged; "gold tokens" tags the CoNLL tokens (`predict_tags`), "raw text" runs `predict` on
the joined text and matches character spans. No pretrained embeddings, no CRF. Exported with the legacy
`torch.onnx.export` (opset {r['onnx_opset']}) and run in onnxruntime (CPUExecutionProvider, 1 intra-op thread).
Latency: {r['latency_calls']:,} single-sentence calls each (test sentences in order, median length {r['median_test_sentence_tokens']:g} tokens),
same process, interleaved in blocks of 100, after 50 warm-up calls.

| measure | value | target | met |
|---|---|---|---|
{table}

Per type (test):

| type | precision | recall | F1 (gold tokens) | F1 (raw text) | support |
|---|---|---|---|---|---|
{per_type}

Dev F1 by epoch: {epochs}; {stopped}.

Not measured by this script (same machine, same day): an earlier run of this command, during which
another process filled the machine's memory (one epoch took 14 min instead of 35 s), stopped after 7
epochs at test F1 0.776 with parity also 100%. Single-sentence latency on this shared 2-core machine
varies between runs (ONNX session.run medians 0.17–0.21 ms in four runs; p95 is dominated by the
other process). The model is ~7.5 MB because the word vocabulary keeps every training word
(min_word_count=1: 16.6k words × 100 dims, 89% of the parameters); min_word_count=2 would keep 9.7k
words (~4.8 MB).

Machine: {m['cpu']}, {m['cores']} cores (shared with another process), {m['platform']}; Python {m['python']},
evokd {m['evokd']}, torch {m['torch']} ({m['torch_threads']} thread), onnx {m['onnx']}, onnxruntime {m['onnxruntime']},
spaCy {m['spacy']}, numpy {m['numpy']}.
Date: {r['date']}. Command (from the project root): `{r['command']}`
"""


if __name__ == "__main__":
    main()

"""MODEL_CARD.md of a shipped student: what it is, how it runs, what it learned from and how well it does.

`evokd distill` writes it from the student folder's metrics.json (`model_card(task, metrics)`).
"""

from __future__ import annotations

from evokd.task import TaskSpec


_RUNTIME_TEXT = {
    # student runtime / input -> (what it is, how it runs)
    "spacy-ner": ("A CPU named-entity recogniser (spaCy pipeline, shipped as a folder and an installable wheel)",
                  "It needs the spaCy runtime, not onnxruntime (`evokd predict DIR TEXT`, or `pip install` the wheel)."),
    "spacy-classification": ("A CPU text classifier (spaCy `textcat` pipeline, shipped as a folder and an installable wheel)",
                             "It needs the spaCy runtime, not onnxruntime (`evokd predict DIR TEXT`, or `pip install` "
                             "the wheel and `spacy.load` the package)."),
    "tokens": ("A CPU named-entity tagger", "It runs with onnxruntime plus spaCy's rule-based English tokenizer "
            "(`evokd predict DIR TEXT` or `evokd.runtime.load_student(DIR)`)."),
    "token_ids": ("A CPU text classifier (a sentence encoder and its classification head in one ONNX graph)",
                  "It runs with onnxruntime and the `tokenizers` package (`tokenizer.json` in this folder), no "
                  "torch (`evokd predict DIR TEXT` or `evokd.runtime.load_student(DIR)`)."),
    "text": ("A CPU text classifier", "It runs with onnxruntime alone (`evokd predict DIR TEXT` or "
             "`evokd.runtime.load_student(DIR)`)."),
}
_REQUIREMENTS_NOTE = {
    "spacy": "(not onnxruntime): load `pipeline/` with `spacy.load`, or `pip install` the wheel in this folder and "
             "`spacy.load` the package it installs",
    "tokenizers": "(no scikit-learn, no torch, no sentence-transformers)",
}


def _runtime_text(task: TaskSpec, m: dict) -> tuple[str, str]:
    if m.get("runtime") == "spacy":
        return _RUNTIME_TEXT[f"spacy-{task.kind}"]
    needs = m.get("runtime_requirements", [])
    return _RUNTIME_TEXT["token_ids" if "tokenizers" in needs else "tokens" if "spacy (tokenizer only)" in needs else "text"]


def _data_lines(data: dict) -> list[str]:
    """The model card's account of what reading the data changed (metrics.json "data")."""
    lines = []
    for use, what in (("train", "Training data as read"), ("eval", "Eval data as read")):
        if use in data:
            d = data[use]
            answer = "labels" if d.get("answer", "label") == "label" else "entities"
            rule = (f" Repeated texts were kept once; where their {answer} disagreed the majority won, a tie going to "
                    "the one seen first." if d["conflicts_resolved"] else "")
            lines += [f"{what}: {d['description']}.{rule}", ""]
    return lines


def _learning_lines(train: dict) -> list[str]:
    """How the student learned: its encoder and fine-tuning (encoder students), and how it weighed the teacher's labels."""
    lines = []
    if train.get("encoder"):
        tuning = train.get("fine_tuning")
        if not tuning:
            how = "adapted with SetFit's contrastive pairs" if train.get("fine_tuned") else "frozen"
        elif not tuning.get("held_out_texts"):
            how = f"fine-tuned with its head for {tuning['best_epoch']} epochs"
        elif tuning["best_epoch"]:
            how = (f"fine-tuned with its head, keeping epoch {tuning['best_epoch']} by accuracy on "
                   f"{tuning['held_out_texts']} held-out training texts")
        else:
            how = "kept frozen: no fine-tuning epoch beat the frozen head on the held-out training texts"
        lines += [f"Encoder: {train['encoder']}, {how}.", ""]
    noise = train.get("noise") or {}
    if noise.get("mode", "none") == "none":
        lines += ["Every training label was trusted alike" + (f": {noise['why']}." if "why" in noise else " (`--noise none`)."),
                  ""]
    else:
        parts = []
        if "auto_chose" in noise:
            chose = "label fusion" if noise["auto_chose"] == "fuse" else "the teacher's own labels"
            parts.append(f"{chose} chosen ({noise['auto_why']})")
        if "relabeled" in noise:
            right = ", ".join(f"{label} {share:.0%}" for label, share in noise.get("teacher_right_estimate", {}).items())
            parts.append(f"the teacher's labels fused with the anchored student's probabilities (EM over the teacher's "
                         f"confusions; estimated share of each label's texts the teacher names right: {right}): "
                         f"{noise['relabeled']} of {noise['of']} labels changed")
        if "fuse_skipped" in noise:
            parts.append(f"no label fusion ({noise['fuse_skipped']})")
        if "why" in noise:
            parts.append(f"no weights ({noise['why']})")
        if "mean_weight" in noise:
            whose = "the fused label's probability" if "relabeled" in noise else "the teacher's confidence"
            parts.append(f"texts weighted by {whose} beyond chance (mean weight {noise['mean_weight']:.2f}; "
                         "rows without a confidence weigh 1)")
        if "dropped" in noise:
            parts.append(f"{noise['dropped']} texts that cross-validation flagged as mislabeled left out")
        if "clean_skipped" in noise:
            parts.append(f"no cleaning ({noise['clean_skipped']})")
        if "disagreed" in noise:
            parts.append(f"{noise['disagreed']} texts that the anchored student (fitted on the trusted rows and the label "
                         "descriptions) labels otherwise weighted a tenth")
        if "agree_skipped" in noise:
            parts.append(f"no agreement check ({noise['agree_skipped']})")
        lines += [f"Teacher labels (`--noise {noise['mode']}`): {'; '.join(parts)}.", ""]
    return lines


def model_card(task: TaskSpec, m: dict) -> str:
    train = m["train"]
    what, how = _runtime_text(task, m)
    lines = [
        f"# {task.name} — `{m['student']}` student",
        "",
        f"{what} distilled by evokd {m['evokd_version']} for the task below. {how}",
        "",
        "## Task",
        "",
        task.description.strip(),
        "",
        f"| {task.rules.answer_name} | meaning |",
        "|---|---|",
        *[f"| {lab.name} | {lab.description} |" for lab in task.labels],
        "",
        "## Training data",
        "",
        f"{train['n']} examples (fit in {train['fit_seconds']} s)."
        + (f" The head also learned from each label's description in the table above, as one example of that label "
           f"weighted {train['label_anchors']['weight']:g} (label anchors)." if train.get("label_anchors") else ""),
        "",
        *_learning_lines(train),
        *_data_lines(m.get("data") or {}),
        "| by source | n |", "|---|---|", *[f"| {k} | {v} |" for k, v in train["by_source"].items()], "",
        "| by round | n |", "|---|---|", *[f"| {k} | {v} |" for k, v in train["by_round"].items()], "",
        f"| {task.rules.answers_name} | n |", "|---|---|",
        *[f"| {k} | {v} |" for k, v in train["by_label"].items()], "",
    ]
    if "selection" in m:
        sel = m["selection"]
        how_scored = (f"{sel['folds']}-fold cross-validation on the training data ({sel['n']} examples, "
                      f"{'stratified' if sel['stratified'] else 'not stratified: some label has a single example'}, "
                      "scored on the pooled out-of-fold predictions)" if sel["method"] == "cross-validation" else
                      f"held-out `{sel['data']}` ({sel['n']} examples; {sel['why']}). The "
                      "metrics below are measured on the same data, so they flatter the chosen student")
        metric = "entity F1" if sel["metric"] == "entity_f1" else "macro-F1"
        accuracy = all("accuracy" in c for c in sel["candidates"] if "score" in c)  # classification candidates report it too
        lines += ["## Student selection", "",
                  f"`--student auto` trained every candidate and chose **{sel['chosen']}** by {metric} on {how_scored}.", "",
                  f"| candidate | {metric} |" + (" accuracy |" if accuracy else "") + " seconds |",
                  "|---|---|---|" + ("---|" if accuracy else ""),
                  *[f"| {c['student']}{' (chosen)' if c['student'] == sel['chosen'] else ''} | {c['score']:.4f} |"
                    + (f" {c['accuracy']:.4f} |" if accuracy else "") + f" {c['seconds']} |"
                    if "score" in c else f"| {c['student']} | not scored: {c['skipped']} |" + (" |" if accuracy else "")
                    + " |" for c in sel["candidates"]],
                  "", sel.get("why_chosen", "") + ".", ""]
    lines += ["## Metrics", ""]
    if "eval" in m and "f1" in m["eval"]:  # entity level (NER)
        ev = m["eval"]
        lines += [f"Measured on `{ev['data']}` ({ev['n']} held-out sentences) with the shipped model, "
                  "entity level (exact span and type):", "",
                  f"- precision: **{ev['precision']:.4f}**, recall: **{ev['recall']:.4f}**, F1: **{ev['f1']:.4f}**", "",
                  "| type | precision | recall | F1 | support |", "|---|---|---|---|---|",
                  *[f"| {k} | {v['precision']:.3f} | {v['recall']:.3f} | {v['f1']:.3f} | {v['support']} |"
                    for k, v in ev["per_label"].items()], ""]
    elif "eval" in m:
        ev = m["eval"]
        lines += [f"Measured on `{ev['data']}` ({ev['n']} held-out examples) with the shipped model:", "",
                  f"- accuracy: **{ev['accuracy']:.4f}**", f"- macro-F1: **{ev['macro_f1']:.4f}**", "",
                  "| label | precision | recall | F1 | support |", "|---|---|---|---|---|",
                  *[f"| {k} | {v['precision']:.3f} | {v['recall']:.3f} | {v['f1']:.3f} | {v['support']} |"
                    for k, v in ev["per_label"].items()], ""]
    else:
        lines += ["No held-out data was given (`--eval` or the task's `eval`), so no accuracy is reported.", ""]
    if "quantization" in m:
        q = m["quantization"]
        lines += ["## int8 quantisation", "",
                  f"The shipped graph is quantised ({q['scheme']}). On `{q['data']}` ({q['n']} examples): accuracy "
                  f"{q['fp32_accuracy']:.4f} (float) → {q['int8_accuracy']:.4f} (int8), a loss of "
                  f"{q['accuracy_loss_points']:.2f} points (allowed: {q['max_loss_points']:g}); macro-F1 "
                  f"{q['fp32_macro_f1']:.4f} → {q['int8_macro_f1']:.4f}; the int8 graph gives the float graph's label on "
                  f"{q['label_agreement_with_fp32']:.2%} of them. model.onnx: {q['fp32_model_bytes'] / 1e6:.1f} MB → "
                  f"{q['int8_model_bytes'] / 1e6:.1f} MB.", ""]
    p, lat = m["parity"], m["latency"]
    if m.get("runtime") == "spacy":
        parity_line = (f"- The saved pipeline predicts exactly like the trained one: {p['label_agreement']:.4f} agreement "
                       f"over {p['n_checked']} texts.")
    else:
        parity_line = (f"- ONNX parity with the training framework (float graph): {p['label_agreement']:.4f} label "
                       f"agreement, max |Δp| = {p['max_abs_diff']:.2e} over {p['n_checked']} texts.")
    requirements = ", ".join(f"`{r}`" if " " not in r else f"`{r.split(' ', 1)[0]}` {r.split(' ', 1)[1]}"
                             for r in m.get("runtime_requirements", []))
    note = next((v for k, v in _REQUIREMENTS_NOTE.items() if k in m.get("runtime_requirements", [])),
                "(no scikit-learn, no torch)")
    lines += [
        "## Export and runtime",
        "",
        parity_line,
        f"- Size on disk: {m['size_bytes'] / 1e6:.2f} MB (this folder).",
        f"- Latency, one sentence per call, {lat['runtime']} on 1 thread: p50 {lat['single_sentence_ms_p50']:.3f} ms, "
        f"p95 {lat['single_sentence_ms_p95']:.3f} ms ({lat['n_calls']} calls on the training texts).",
        f"- Runtime requirements: {requirements} {note}.",
        "",
        "## Provenance",
        "",
        f"Produced by evokd {m['evokd_version']} with:",
        "",
        "```",
        m["command"] or "(called from Python)",
        "```",
        "",
        "Limitations: trained on LLM-generated and seed data; the teacher's labels can be wrong, and the held-out "
        "metrics above are the only measured quality.",
        "",
    ]
    return "\n".join(lines)

"""Classification metrics, computed without sklearn so the runtime side stays light."""

from __future__ import annotations

from collections import Counter


def classification_report(gold: list[str], pred: list[str], labels: list[str] | None = None) -> dict:
    """Accuracy, macro-F1 over `labels` (default: labels seen in gold or pred), per-label P/R/F1."""
    if len(gold) != len(pred):
        raise ValueError(f"gold has {len(gold)} items but pred has {len(pred)}")
    labels = list(labels) if labels is not None else sorted(set(gold) | set(pred))
    n = len(gold)
    correct = sum(g == p for g, p in zip(gold, pred))
    tp, fp, fn = Counter(), Counter(), Counter()
    for g, p in zip(gold, pred):
        if g == p:
            tp[g] += 1
        else:
            fp[p] += 1
            fn[g] += 1
    per_label = {}
    for label in labels:
        precision = tp[label] / (tp[label] + fp[label]) if tp[label] + fp[label] else 0.0
        recall = tp[label] / (tp[label] + fn[label]) if tp[label] + fn[label] else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_label[label] = {"precision": precision, "recall": recall, "f1": f1, "support": tp[label] + fn[label]}
    macro = sum(v["f1"] for v in per_label.values()) / len(labels) if labels else 0.0
    return {"n": n, "accuracy": correct / n if n else 0.0, "macro_f1": macro, "per_label": per_label}


def confusion_pairs(gold: list[str], pred: list[str], top: int = 5) -> list[tuple[str, str, int]]:
    """Most frequent (gold, predicted) mistakes."""
    counts = Counter((g, p) for g, p in zip(gold, pred) if g != p)
    return [(g, p, c) for (g, p), c in counts.most_common(top)]


def _entity_set(spans) -> set[tuple[int, int, str]]:
    out = set()
    for s in spans:
        if isinstance(s, dict):
            out.add((s["start"], s["end"], s["label"]))
        else:
            start, end, label = s
            out.add((start, end, label))
    return out


def entity_report(gold: list[list[dict]], pred: list[list[dict]], labels: list[str] | None = None) -> dict:
    """Entity-level P/R/F1, CoNLL style: a predicted entity counts only when its span and type both
    match a gold entity exactly. `gold`/`pred` hold one list of spans {"start","end","label"} (or
    (start, end, label) tuples) per sentence. Micro scores count every entity; `per_label` covers
    `labels` (default: types seen in gold or pred)."""
    if len(gold) != len(pred):
        raise ValueError(f"gold has {len(gold)} sentences but pred has {len(pred)}")
    tp, n_gold, n_pred = Counter(), Counter(), Counter()
    for g_spans, p_spans in zip(gold, pred):
        g, p = _entity_set(g_spans), _entity_set(p_spans)
        for _, _, lab in g:
            n_gold[lab] += 1
        for _, _, lab in p:
            n_pred[lab] += 1
        for _, _, lab in g & p:
            tp[lab] += 1
    labels = list(labels) if labels is not None else sorted(set(n_gold) | set(n_pred))

    def prf(t: int, np_: int, ng: int) -> tuple[float, float, float]:
        precision = t / np_ if np_ else 0.0
        recall = t / ng if ng else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return precision, recall, f1

    per_label = {}
    for lab in labels:
        p_, r_, f_ = prf(tp[lab], n_pred[lab], n_gold[lab])
        per_label[lab] = {"precision": p_, "recall": r_, "f1": f_, "support": n_gold[lab]}
    t_all, p_all, g_all = sum(tp.values()), sum(n_pred.values()), sum(n_gold.values())
    precision, recall, f1 = prf(t_all, p_all, g_all)
    return {
        "n": len(gold),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "support": g_all,
        "predicted": p_all,
        "correct": t_all,
        "per_label": per_label,
    }


def _span_key(spans) -> set[tuple[int, int, str]]:
    return {(int(s["start"]), int(s["end"]), str(s["label"])) for s in spans or []}


def entity_f1(gold: list[dict], pred: list[dict]) -> float:
    """Entity-level F1 of one sentence (exact span and type); 1.0 when both are empty."""
    g, p = _span_key(gold), _span_key(pred)
    if not g and not p:
        return 1.0
    tp = len(g & p)
    if tp == 0:
        return 0.0
    precision, recall = tp / len(p), tp / len(g)
    return 2 * precision * recall / (precision + recall)

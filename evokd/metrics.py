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

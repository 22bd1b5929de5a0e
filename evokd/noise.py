"""Training on the teacher's labels without trusting all of them: per-text weights for a student's fit.

The teacher is wrong on ~10% of sst2 texts and ~35% of trec's (benchmarks/data/teacher_labels), and
its confidence says where: its most confident half is 18-30 points more accurate than the rest
(benchmarks/teacher_throughput.md). Two ways of using that, alone or together (`NOISE_MODES`):

- "confidence": each text is weighted by how much surer the teacher was than chance, squared:
  ((p - 1/K) / (1 - 1/K))^2 for a label given with probability p among K labels (a text without a
  confidence, such as a seed or a hand-labeled row, weighs 1).
- "clean": confident learning (Northcutt et al., 2021) on out-of-fold probabilities of the frozen
  MiniLM head (k-fold cross-validation over the texts): a text whose out-of-fold probability of its
  given label is below that label's average self-confidence, while another label's is above its own
  average and highest, is taken to be mislabeled and weighs 0.
- "agree": the anchored student (the frozen MiniLM head fitted on the trusted rows, such as the
  seeds, and the labels' descriptions) predicts every teacher-labeled text; a text where it names
  another label than the teacher weighs AGREE_FLOOR times as much. Measured on the teacher-labeled
  sets (one draw of 1,000, frozen minilm): where the two agree the teacher was right on 79-93% of
  the texts, where they disagree on 32-90% (trec 38%, ag_news 32%, sst2 90%). So it pays where the
  teacher is weak (trec, ag_news: +1.3 to +5.4 points over "confidence") and costs where it is strong
  (sst2: mpnet -1.4); benchmarks/students.md.

`noise_weights` returns the weights and what it did; the students that take sample weights
(`ClassifierStudent.takes_sample_weight`) train with them. Which mode is the default is decided in
benchmarks/students.md ("Noise-aware training").
"""

from __future__ import annotations

from collections import Counter

import numpy as np

NOISE_MODES = ("none", "confidence", "clean", "confidence+clean", "agree", "confidence+agree")
DEFAULT_NOISE = "confidence"  # what `evokd generate` and `evokd distill` use without --noise (students.md)
MIN_WEIGHT = 0.05  # a text the teacher gave at chance still counts a little
# Squared: on trec's teacher-labeled rows (46% wrong; frozen minilm, 3 draws of 1,000) the powers 1, 2, 3, 4, 8
# gave 60.9, 61.7, 61.5, 61.6, 60.7% against 59.9% unweighted. On sst2's (8% wrong) no power moved the frozen
# head by more than half a point either way (76.0-76.7 against 76.5).
CONFIDENCE_POWER = 2
CLEAN_FOLDS = 5
AGREE_FLOOR = 0.1  # the weight factor of a text the anchored student labels otherwise (0.3: 3.8 points less on trec, one draw)


def confidence_weights(confidence: list[float | None], n_labels: int) -> np.ndarray:
    """((p - 1/K) / (1 - 1/K)) ** CONFIDENCE_POWER, floored at MIN_WEIGHT; 1 where there is no confidence."""
    chance = 1.0 / max(2, n_labels)
    return np.array([1.0 if c is None else max(MIN_WEIGHT, max(0.0, (float(c) - chance) / (1.0 - chance)) ** CONFIDENCE_POWER)
                     for c in confidence])


def out_of_fold_probabilities(texts: list[str], labels: list[str], label_names: list[str], *,
                              label_texts: dict[str, str] | None = None, folds: int = CLEAN_FOLDS,
                              seed: int = 0) -> np.ndarray:
    """Each text's label probabilities from a frozen-MiniLM head that did not see it (columns: label_names)."""
    from sklearn.model_selection import StratifiedKFold

    from evokd.students.minilm import MiniLMStudent

    proba = np.zeros((len(texts), len(label_names)))
    counts = np.unique(labels, return_counts=True)[1]
    k = int(min(folds, counts.min()))
    if k < 2:
        raise ValueError("confident learning needs at least 2 texts of every label")
    for train, test in StratifiedKFold(k, shuffle=True, random_state=seed).split(np.zeros(len(labels)), labels):
        head = MiniLMStudent(random_state=seed).fit([texts[i] for i in train], [labels[i] for i in train],
                                                    label_texts=label_texts)
        p = head.predict_proba([texts[i] for i in test])
        for j, name in enumerate(head.labels_):
            proba[test, label_names.index(name)] = p[:, j]
    return proba


def mislabeled(labels: list[str], proba: np.ndarray, label_names: list[str]) -> np.ndarray:
    """Confident learning's off-diagonal of the confident joint: True where a text is likely mislabeled."""
    given = np.array([label_names.index(label) for label in labels])
    thresholds = np.array([proba[given == j, j].mean() if np.any(given == j) else 1.0 for j in range(len(label_names))])
    above = proba >= thresholds
    best = np.where(above, proba, -1.0).argmax(axis=1)
    confident_other = above[np.arange(len(labels)), best] & (best != given)
    return confident_other & (proba[np.arange(len(labels)), given] < thresholds[given])


def anchored_disagreement(texts: list[str], labels: list[str], trusted: np.ndarray, *,
                          label_texts: dict[str, str] | None = None, seed: int = 0) -> np.ndarray | None:
    """True where the frozen MiniLM head fitted on the trusted rows and the label descriptions (the
    anchored student) predicts another label than the given one; None when they hold fewer than 2
    labels."""
    from evokd.students.minilm import MiniLMStudent

    student = MiniLMStudent(random_state=seed)
    known = [i for i in range(len(texts)) if trusted[i]]
    anchors = dict(label_texts or {})  # each description one more example of its label, as the student weighs it
    fit_labels = [labels[i] for i in known] + list(anchors)
    if len(set(fit_labels)) < 2:
        return None
    head = student.fit([texts[i] for i in known] + list(anchors.values()), fit_labels,
                       sample_weight=[1.0] * len(known) + [float(student.anchor_weight)] * len(anchors))
    return np.array([p != label for p, label in zip(head.predict(texts), labels)]) & ~trusted


def noise_weights(texts: list[str], labels: list[str], confidence: list[float | None], label_names: list[str],
                  mode: str, *, label_texts: dict[str, str] | None = None, seed: int = 0) -> tuple[np.ndarray, dict]:
    """(one weight per text, what was done) for `mode` (one of NOISE_MODES).

    A text without a confidence (a seed, a hand-labeled or oracle-labeled row) is trusted: it weighs 1
    and is never dropped. Cleaning needs 2 texts of every label for its cross-validation; with fewer it
    is skipped, and the record says so."""
    if mode not in NOISE_MODES:
        raise ValueError(f"expected the noise handling to be one of {', '.join(NOISE_MODES)}, got {mode!r}")
    weights = np.ones(len(texts))
    trusted = np.array([c is None for c in confidence], dtype=bool)
    record: dict = {"mode": mode}
    if "confidence" in mode:
        weights = confidence_weights(confidence, len(label_names))
        record["mean_weight"] = round(float(weights.mean()), 4)
    if "clean" in mode and not trusted.all():
        counts = Counter(labels)
        if len(counts) < 2 or min(counts.values()) < 2:
            record["clean_skipped"] = "cross-validation needs 2+ texts of every label"
        else:
            proba = out_of_fold_probabilities(texts, labels, label_names, label_texts=label_texts, seed=seed)
            flagged = mislabeled(labels, proba, label_names) & ~trusted
            weights = np.where(flagged, 0.0, weights)
            record["dropped"] = int(flagged.sum())
    if "agree" in mode and not trusted.all():
        disagree = anchored_disagreement(texts, labels, trusted, label_texts=label_texts, seed=seed)
        if disagree is None:
            record["agree_skipped"] = "the trusted rows and label descriptions hold fewer than 2 labels"
        else:
            weights = np.where(disagree, weights * AGREE_FLOOR, weights)
            record["disagreed"] = int(disagree.sum())
    if not weights.sum() > 0:  # nothing left to learn from: train plainly rather than fail
        weights = np.ones(len(texts))
        record["fallback"] = "every text was weighted 0; trained on all of them unweighted"
    return weights, record


def training_weights(student, rows: list[dict], task, mode: str, seed: int = 0) -> tuple[np.ndarray | None, dict]:
    """The sample weights `student` trains with on a task's rows (their "teacher_confidence", when
    present), and the record of `noise_weights`; None when the mode is "none" or the student takes
    no weights (NER students, spacy-textcat)."""
    if mode not in NOISE_MODES:
        raise ValueError(f"expected the noise handling to be one of {', '.join(NOISE_MODES)}, got {mode!r}")
    if mode == "none" or not getattr(student, "takes_sample_weight", False):
        return None, {"mode": "none"} if mode == "none" else {"mode": "none", "why": f"{student.name} trains without weights"}
    return noise_weights([r["text"] for r in rows], [r[task.target_key] for r in rows],
                         [r.get("teacher_confidence") for r in rows], task.label_names, mode,
                         label_texts=task.label_descriptions, seed=seed)


def weights_once(rows: list[dict], task, mode: str, seed: int = 0):
    """`training_weights` for these rows as a function of the student, computed once for all the
    students that take weights (they get the same weights; "clean" cross-validates only once)."""
    memo: dict = {}

    def weigh(student) -> tuple[np.ndarray | None, dict]:
        takes = bool(getattr(student, "takes_sample_weight", False))
        key = True if takes else student.name
        if key not in memo:
            memo[key] = training_weights(student, rows, task, mode, seed)
        return memo[key]

    return weigh


def run_noise(config: dict) -> str:
    """The noise handling a run trained with, from its stored config (runs before `--noise` trained plainly)."""
    return (config or {}).get("noise", "none")


def fit_on_rows(name: str, rows: list[dict], task, mode: str, seed: int = 0):
    """A fresh `name` student fitted on a task's rows, weighing teacher labels as `mode` says: how
    `evokd compare` and the report train a run's student again (the loop's, with the record: fit_recorded)."""
    return fit_recorded(name, rows, task, mode, seed)[0]


def fit_recorded(name: str, rows: list[dict], task, mode: str, seed: int = 0) -> tuple:
    """(`fit_on_rows`'s student, what its training did with the teacher's labels): the record of
    `noise_weights` plus `teacher_rows`, how many rows carry a teacher's confidence. How the loop
    trains each round's student and says what it doubted."""
    from evokd.students import fit_student, make_student

    student = make_student(name)
    weights, record = training_weights(student, rows, task, mode, seed)
    record = {**record, "teacher_rows": sum(r.get("teacher_confidence") is not None for r in rows)}
    return fit_student(student, [r["text"] for r in rows], [r[task.target_key] for r in rows], task,
                       sample_weight=weights), record

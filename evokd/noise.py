"""Training on the teacher's labels without trusting all of them: per-text weights for a student's fit.

The teacher is wrong on ~10% of sst2 texts and ~35% of trec's (benchmarks/data/teacher_labels), and
its confidence says where: its most confident half is 18-30 points more accurate than the rest
(benchmarks/teacher_throughput.md). The ways of using that, some alone or together (`NOISE_MODES`):

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
- "fuse": the teacher's labels and the anchored student's probabilities fused into one label per
  text (Dawid & Skene, 1979, with the student as each text's prior): EM estimates how often the
  teacher names label j for a text of label i (its confusion matrix) from the texts themselves, and
  each text takes the label most probable given both; its weight is the "confidence" weight of that
  label's posterior probability. Where the teacher is reliable (sst2) the fused labels are its own;
  where it confuses two labels, or one label is mostly wrong (ag_news), the student's view decides
  those texts. This is the one mode that changes labels: `training_rows` relabels a run's rows
  before they are weighed (`fuse_labels`); the dataset keeps the teacher's labels. Measured on the
  seeds plus 1,000 teacher-labeled texts (3 draws, benchmarks/students.md): the fused labels are right
  on 92.3% of sst2's texts (the teacher's: 92.3%), 62.7% of trec's (54.7%), 73.4% of ag_news's (65.7%);
  mpnet trained on them scores trec 76.0% and ag_news 84.0% (with "confidence" 65.5% and 69.3%) and
  sst2 86.5% (87.4%).
- "auto" (the default): "fuse" where the fusion's EM estimates that the teacher names some label's texts
  right less than half the time (AUTO_FUSE_BELOW), "confidence" otherwise, decided afresh on every set
  of rows it trains on. Where the teacher is reliable, fusing keeps its labels and only swaps its
  confidence weights for the posterior's, which cost sst2 up to 1.5 points (frozen minilm, 16-256
  texts; mpnet 0.9 at 1,000); where it is not, fusing gained trec 2.4-13.8 and ag_news 5.7-13.5 points.
  On the teacher-labeled sets (5 draws at each of 16-1,000 texts, benchmarks/noise_auto.md) the
  lowest per-label estimate fell in two groups at every size: sst2's 0.66-0.99, trec's and ag_news's
  0.00-0.13; so "auto" took the better of the two modes on all three.

`noise_weights` returns the weights and what it did; the students that take sample weights
(`ClassifierStudent.takes_sample_weight`) train with them. Which mode is the default is decided in
benchmarks/noise_auto.md ("confidence" was, until 2026-12-07, by benchmarks/students.md).
"""

from __future__ import annotations

from collections import Counter

import numpy as np

NOISE_MODES = ("none", "confidence", "clean", "confidence+clean", "agree", "confidence+agree", "fuse", "auto")
DEFAULT_NOISE = "auto"  # what `evokd generate` and `evokd distill` use without --noise (benchmarks/noise_auto.md)
RELABELING_MODES = ("fuse", "auto")  # the modes whose `training_rows` may change labels (their weights: the rows' confidences)
MIN_WEIGHT = 0.05  # a text the teacher gave at chance still counts a little
# Squared: on trec's teacher-labeled rows (46% wrong; frozen minilm, 3 draws of 1,000) the powers 1, 2, 3, 4, 8
# gave 60.9, 61.7, 61.5, 61.6, 60.7% against 59.9% unweighted. On sst2's (8% wrong) no power moved the frozen
# head by more than half a point either way (76.0-76.7 against 76.5).
CONFIDENCE_POWER = 2
CLEAN_FOLDS = 5
AGREE_FLOOR = 0.1  # the weight factor of a text the anchored student labels otherwise (0.3: 3.8 points less on trec, one draw)
FUSE_ITERATIONS = 50  # EM steps of "fuse" (it settles within ~20 on the teacher-labeled sets)
FUSE_PSEUDO_COUNT = 1.0  # spread over each row of the teacher's confusion matrix, so no cell is ever 0
# "auto" fuses when the teacher is estimated to name some label's texts right less often than not (below it,
# its label for such a text is more often wrong than right); on the teacher-labeled sets any value from 0.14 to
# 0.65 makes the same choices (benchmarks/noise_auto.md)
AUTO_FUSE_BELOW = 0.5


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


def anchored_student(texts: list[str], labels: list[str], trusted: np.ndarray, *,
                     label_texts: dict[str, str] | None = None, seed: int = 0):
    """The frozen MiniLM head fitted on the trusted rows and the label descriptions (the anchored
    student); None when they hold fewer than 2 labels."""
    from evokd.students.minilm import MiniLMStudent

    student = MiniLMStudent(random_state=seed)
    known = [i for i in range(len(texts)) if trusted[i]]
    anchors = dict(label_texts or {})  # each description one more example of its label, as the student weighs it
    fit_labels = [labels[i] for i in known] + list(anchors)
    if len(set(fit_labels)) < 2:
        return None
    return student.fit([texts[i] for i in known] + list(anchors.values()), fit_labels,
                       sample_weight=[1.0] * len(known) + [float(student.anchor_weight)] * len(anchors))


def anchored_disagreement(texts: list[str], labels: list[str], trusted: np.ndarray, *,
                          label_texts: dict[str, str] | None = None, seed: int = 0) -> np.ndarray | None:
    """True where the anchored student (`anchored_student`) predicts another label than the given
    one; None when the trusted rows and descriptions hold fewer than 2 labels."""
    head = anchored_student(texts, labels, trusted, label_texts=label_texts, seed=seed)
    if head is None:
        return None
    return np.array([p != label for p, label in zip(head.predict(texts), labels)]) & ~trusted


def fused_posterior(prior: np.ndarray, given: np.ndarray, n_labels: int) -> tuple[np.ndarray, np.ndarray]:
    """(each text's posterior over the labels, the teacher's confusion matrix) by EM.

    `prior[i]` is the anchored student's probability of each label for text i, `given[i]` the index
    of the label the teacher gave it. The model: a text's true label is drawn from its prior, and the
    teacher names label j for a text of label i with probability confusion[i, j] (Dawid & Skene's,
    one annotator, the student's probabilities in place of a class prior). The confusion matrix starts
    at 70% on its diagonal, and FUSE_PSEUDO_COUNT is spread over each of its rows."""
    confusion = np.full((n_labels, n_labels), 0.3 / max(1, n_labels - 1))
    np.fill_diagonal(confusion, 0.7)
    prior = np.clip(prior, 1e-6, None)
    for _ in range(FUSE_ITERATIONS):
        posterior = prior * confusion[:, given].T
        posterior /= posterior.sum(axis=1, keepdims=True)
        counts = np.full((n_labels, n_labels), FUSE_PSEUDO_COUNT / n_labels)
        for j in range(n_labels):
            counts[:, j] += posterior[given == j].sum(axis=0)
        confusion = counts / counts.sum(axis=1, keepdims=True)
    return posterior, confusion


def fusion(texts: list[str], labels: list[str], confidence: list[float | None], label_names: list[str], *,
           label_texts: dict[str, str] | None = None, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray] | str:
    """(the indices of the teacher-labeled texts (those with a confidence), their posteriors over
    label_names, the teacher's confusion matrix) from `fused_posterior`, with the anchored student
    fitted on the trusted texts as the prior; or why there is no fusion: "" when no text is
    teacher-labeled, else a sentence (the trusted rows and descriptions do not name every label)."""
    trusted = np.array([c is None for c in confidence], dtype=bool)
    if trusted.all():  # nothing the teacher labeled (a run's round 0)
        return ""
    head = anchored_student(texts, labels, trusted, label_texts=label_texts, seed=seed)
    if head is None:
        return "the trusted rows and label descriptions hold fewer than 2 labels"
    unknown = [name for name in label_names if name not in head.labels_]
    if unknown:  # its prior would be ~0 for them, and every teacher label of theirs would be moved elsewhere
        return "no seed or description of label " + ", ".join(repr(name) for name in unknown) + \
            " for the anchored student to know it by"
    taught = np.flatnonzero(~trusted)
    proba = head.predict_proba([texts[i] for i in taught])
    prior = np.zeros((len(taught), len(label_names)))
    for j, name in enumerate(head.labels_):
        prior[:, label_names.index(name)] = proba[:, j]
    given = np.array([label_names.index(labels[i]) for i in taught])
    posterior, confusion = fused_posterior(prior, given, len(label_names))
    return taught, posterior, confusion


def fuse_labels(texts: list[str], labels: list[str], confidence: list[float | None], label_names: list[str], *,
                label_texts: dict[str, str] | None = None, seed: int = 0) -> tuple[list[str], list[float | None], dict]:
    """(labels, confidences, what was done) with every teacher label (a text with a confidence)
    replaced by the label `fused_posterior` finds most probable and its confidence by that label's
    posterior probability. Trusted texts (no confidence) keep theirs and fit the anchored student;
    unless they and the descriptions name every label, nothing changes and the record says why."""
    fused_rows = fusion(texts, labels, confidence, label_names, label_texts=label_texts, seed=seed)
    if isinstance(fused_rows, str):
        return list(labels), list(confidence), {"fuse_skipped": fused_rows} if fused_rows else {}
    taught, posterior, confusion = fused_rows
    fused, fused_confidence = list(labels), list(confidence)
    for row, i in enumerate(taught):
        fused[i] = label_names[int(posterior[row].argmax())]
        fused_confidence[i] = round(float(posterior[row].max()), 4)
    changed = sum(fused[i] != labels[i] for i in taught)
    teacher_right = {name: round(float(confusion[j, j]), 3) for j, name in enumerate(label_names)}
    return fused, fused_confidence, {"relabeled": int(changed), "of": int(len(taught)),
                                     "teacher_right_estimate": teacher_right}


def noise_weights(texts: list[str], labels: list[str], confidence: list[float | None], label_names: list[str],
                  mode: str, *, label_texts: dict[str, str] | None = None, seed: int = 0) -> tuple[np.ndarray, dict]:
    """(one weight per text, what was done) for `mode` (one of NOISE_MODES).

    A text without a confidence (a seed, a hand-labeled or oracle-labeled row) is trusted: it weighs 1
    and is never dropped. Cleaning needs 2 texts of every label for its cross-validation; with fewer it
    is skipped, and the record says so. For "fuse" the labels and confidences are `fuse_labels`' (as
    `training_rows` gives them), and the weights are their "confidence" weights; so are "auto"'s,
    whichever labels `training_rows` chose."""
    if mode not in NOISE_MODES:
        raise ValueError(f"expected the noise handling to be one of {', '.join(NOISE_MODES)}, got {mode!r}")
    weights = np.ones(len(texts))
    trusted = np.array([c is None for c in confidence], dtype=bool)
    record: dict = {"mode": mode}
    if "confidence" in mode or mode in RELABELING_MODES:  # fused rows carry fuse_labels' posteriors
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


def training_rows(rows: list[dict], task, mode: str, seed: int = 0) -> tuple[list[dict], dict]:
    """(the rows a student trains on, what was done): for "fuse", and for "auto" where it fuses
    (`auto_fuses`), copies of the teacher-labeled rows (those with a "teacher_confidence") with
    `fuse_labels`' label and confidence; the rows themselves otherwise. Every student trains on these,
    whether it takes weights or not. "auto"'s record says which it chose ("auto_chose") and why."""
    if mode not in RELABELING_MODES:
        return rows, {}
    if task.kind != "classification":
        why = "label fusion is for classification; entity spans are kept as the teacher gave them"
        return rows, {"fuse_skipped": why} if mode == "fuse" else {"auto_chose": "confidence", "auto_why": why}
    labels, confidence, record = fuse_labels(
        [r["text"] for r in rows], [r[task.target_key] for r in rows], [r.get("teacher_confidence") for r in rows],
        task.label_names, label_texts=task.label_descriptions, seed=seed)
    if mode == "auto":
        fuses, why = auto_fuses(record)
        if not fuses:  # the teacher's own labels, and only what the fusion estimated
            kept = {k: record[k] for k in ("teacher_right_estimate",) if k in record}
            return rows, {**kept, "auto_chose": "confidence", "auto_why": why}
        record = {**record, "auto_chose": "fuse", "auto_why": why}
    fused = [r if r.get("teacher_confidence") is None else {**r, task.target_key: label, "teacher_confidence": conf}
             for r, label, conf in zip(rows, labels, confidence)]
    return fused, record


def auto_fuses(record: dict) -> tuple[bool, str]:
    """(whether "auto" trains on the fused labels, why) from `fuse_labels`' record: yes when EM estimated
    that the teacher names some label's texts right less than AUTO_FUSE_BELOW of the time."""
    if "fuse_skipped" in record:
        return False, "no label fusion: " + record["fuse_skipped"]
    estimate = record.get("teacher_right_estimate")
    if not estimate:
        return False, "no teacher-labeled rows"
    label, lowest = min(estimate.items(), key=lambda item: item[1])
    if lowest < AUTO_FUSE_BELOW:
        return True, f"the teacher is estimated to name {label!r} texts right {lowest:.0%} of the time"
    return False, f"the teacher is estimated to name every label's texts right at least {lowest:.0%} of the time"


def training_weights(student, rows: list[dict], task, mode: str, seed: int = 0) -> tuple[np.ndarray | None, dict]:
    """The sample weights `student` trains with on a task's rows (their "teacher_confidence", when
    present), and the record of `noise_weights`; None when the mode is "none" or the student takes
    no weights (NER students, spacy-textcat)."""
    if mode not in NOISE_MODES:
        raise ValueError(f"expected the noise handling to be one of {', '.join(NOISE_MODES)}, got {mode!r}")
    if mode == "none" or not getattr(student, "takes_sample_weight", False):
        # "fuse" (and "auto") may still have changed the labels it trains on (training_rows): the record keeps the mode
        return None, {"mode": "none"} if mode == "none" else {"mode": mode if mode in RELABELING_MODES else "none",
                                                              "why": f"{student.name} trains without weights"}
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
    rows, fused = training_rows(rows, task, mode, seed)
    weights, record = training_weights(student, rows, task, mode, seed)
    record = {**record, **fused, "teacher_rows": sum(r.get("teacher_confidence") is not None for r in rows)}
    return fit_student(student, [r["text"] for r in rows], [r[task.target_key] for r in rows], task,
                       sample_weight=weights), record

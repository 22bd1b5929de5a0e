"""The Teacher's steps as DSPy programs the optimisers compile, and what is done to their demos."""

from __future__ import annotations

from collections import Counter

import dspy

from evokd.teacher.teacher import _generation_budget, _per_item


class LabelProgram(dspy.Module):
    """The Teacher's labeling step as a program of the text alone (the task fields are fixed)."""

    def __init__(self, teacher):
        super().__init__()
        self.label = teacher.label
        self.fixed = {"task": teacher.task.description, "labels": teacher.describe_labels(),
                      "demonstrations": teacher.demonstrations_text()}
        self.config = {"max_tokens": teacher.answers.label_max_tokens}  # what the Teacher's labeling call allows
        self.adapter = teacher.label_adapter()  # the format the loop asks in (plain question or JSON)
        if teacher.label_temperature is not None:  # the temperature of the loop's first labeling vote
            self.config["temperature"] = teacher.label_temperature

    def forward(self, text):
        with dspy.context(adapter=self.adapter):
            return self.label(**self.fixed, text=text, config=self.config)


class GenerateProgram(dspy.Module):
    """Class-conditioned generation: n texts of one label, hard/easy against a weakness analysis or varied."""

    def __init__(self, teacher):
        super().__init__()
        self.generate_class = teacher.generate_class
        self.fixed = {"task": teacher.task.description, "labels": teacher.describe_labels()}
        self.per_item = _per_item(teacher.max_chars)

    def forward(self, weaknesses, kind, label, n):
        return self.generate_class(**self.fixed, weaknesses=weaknesses, kind=kind, label=label, n=n,
                                   config={"max_tokens": _generation_budget(int(n), self.per_item)})


class AnalyzeProgram(dspy.Module):
    """Weakness analysis followed by hard generation for one label: the analysis is judged by that yield."""

    def __init__(self, teacher):
        super().__init__()
        self.analyze = teacher.analyze
        self.generate_class = teacher.generate_class
        self.fixed = {"task": teacher.task.description, "labels": teacher.describe_labels()}
        self.per_item = _per_item(teacher.max_chars)

    def forward(self, error_stats, wrong_examples, correct_examples, score_history, kind, label, n):
        analysis = self.analyze(**self.fixed, error_stats=error_stats, wrong_examples=wrong_examples,
                                correct_examples=correct_examples, score_history=score_history,
                                config={"max_tokens": 400})
        return self.generate_class(**self.fixed, weaknesses=analysis.weaknesses or "", kind=kind, label=label, n=n,
                                   config={"max_tokens": _generation_budget(int(n), self.per_item)})


# Fields kept in a saved demo: those that change from call to call. The task, label list and seed
# demonstrations are the same in every call and are already in the prompt; repeating them in each
# demo would multiply its length (and a 4k-token local context would not hold them).
_DEMO_FIELDS = {"label": ("text", "label", "entities"), "generate_class": ("weaknesses", "kind", "label", "n", "texts"),
                "analyze": ("error_stats", "wrong_examples", "correct_examples", "score_history", "weaknesses")}


def compact_demos(predictor, name: str) -> None:
    keep = _DEMO_FIELDS[name]
    demos = []
    for demo in predictor.demos:
        data = demo.toDict() if hasattr(demo, "toDict") else dict(demo)
        demos.append(dspy.Example(**{k: v for k, v in data.items() if k in keep}))
    predictor.demos = demos


def balance_label_demos(predictor, trainset: list, labels: list[str], k: int) -> None:
    """Classification labeling demos that show every label: bootstrapping keeps only the examples the
    teacher already got right, which for a weak teacher can leave whole labels without a demo. Keeps
    the bootstrapped demos' order, at most k // n_labels (>= 1) per label first, fills labels that have
    none from the labeled training examples, then tops up to k with the remaining demos."""
    if k < len(labels):
        return
    per = max(1, k // len(labels))
    demos = list(predictor.demos)
    texts = {d.get("text") for d in demos}
    chosen, rest = [], []
    count: Counter = Counter()
    for d in demos:
        if count[d.get("label")] < per:
            chosen.append(d)
            count[d.get("label")] += 1
        else:
            rest.append(d)
    for lab in labels:
        for ex in trainset:
            if count[lab] >= 1:
                break
            if ex.label == lab and ex.text not in texts:
                chosen.append(dspy.Example(text=ex.text, label=ex.label))
                count[lab] += 1
    chosen += rest[: max(0, k - len(chosen))]
    predictor.demos = chosen[:max(k, len(labels))]

"""Students: small models that learn from the teacher's data and ship as a folder the runtime loads.

Each student lives in its own module and follows `Student` in `base.py` (through
`ClassifierStudent` or `NerStudent`); `make_student` builds one by the name the CLI's
`--student` option takes. `CANDIDATES` lists, per task
kind, the students `evokd distill --student auto` trains and compares.
"""

from evokd.students.base import ClassifierStudent, NerStudent, ParityError, Student
from evokd.students.minilm import MiniLMStudent, MiniLMTunedStudent, MpnetStudent, MpnetTunedStudent  # torch and sentence-transformers load only when it trains
from evokd.students.spacy_ner import SpacyNerStudent
from evokd.students.spacy_textcat import SpacyTextcatStudent
from evokd.students.tagger import TaggerStudent  # torch is imported only when it trains
from evokd.students.tfidf import TfidfStudent

from evokd.task_kinds import kind_rules

STUDENTS: dict[str, type] = {
    "tfidf": TfidfStudent,
    "minilm": MiniLMStudent,
    "minilm-tuned": MiniLMTunedStudent,
    "mpnet": MpnetStudent,
    "mpnet-tuned": MpnetTunedStudent,
    "spacy-textcat": SpacyTextcatStudent,
    "tagger": TaggerStudent,
    "spacy-ner": SpacyNerStudent,
}
CANDIDATES: dict[str, tuple[str, ...]] = {
    # cheapest first (to fit: minilm-tuned's recipe runs 11-20 epochs, frozen mpnet encodes each text once)
    "classification": ("tfidf", "minilm", "spacy-textcat", "mpnet", "minilm-tuned", "mpnet-tuned"),
    "ner": ("tagger", "spacy-ner"),
}


def default_student(kind: str) -> str:
    """The student `generate`, `distill` and `optimize` train when `--student` is not given: the best
    measured one per task kind (`TaskKind.default_student`)."""
    return kind_rules(kind).default_student


def run_student(config: dict, kind: str) -> str:
    """The student a run trained, from its stored config. Runs record it; runs made before minilm became
    the default recorded none when --student was not given, and theirs was tfidf (tagger for NER)."""
    return (config or {}).get("student") or kind_rules(kind).legacy_student


def make_student(name: str, **params) -> Student:
    """Build the student registered as `name` with the given hyper-parameters."""
    try:
        cls = STUDENTS[name]
    except KeyError:
        raise ValueError(
            f"unknown student {name!r}; expected one of: {', '.join(STUDENTS)}"
        ) from None
    return cls(**params)


def fit_student(student: Student, texts: list[str], targets: list, task, sample_weight=None) -> Student:
    """Fit `student` on a task's rows; classification students also get the task's label
    descriptions (`TaskSpec.label_descriptions`), which minilm learns from (its label anchors), and
    `sample_weight` when given (`evokd.noise.training_weights`)."""
    if sample_weight is None:
        return student.fit_task(texts, targets, task)
    return student.fit_task(texts, targets, task, sample_weight=sample_weight)


__all__ = [
    "CANDIDATES", "STUDENTS", "ClassifierStudent", "MiniLMStudent", "MiniLMTunedStudent", "MpnetStudent", "MpnetTunedStudent", "NerStudent", "ParityError", "Student", "SpacyNerStudent", "SpacyTextcatStudent",
    "TaggerStudent", "TfidfStudent", "default_student", "fit_student", "make_student", "run_student",
]

"""The shape ARCHITECTURE.md promises, checked on the source: small modules, no import circles
(imports inside functions count), and what differs between task kinds asked of evokd.task_kinds
instead of branched on in place."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "evokd"
MAX_MODULE_LINES = 600
MAX_KIND_BRANCH_LINES = 10
# `is_ner`, `kind == "ner"`, `task_kind"] == "ner"`, `ner` booleans (`if ner`, `x if ner else y`, `run.ner`)
KIND_BRANCH = re.compile(r'is_ner|kind"?\]?\)? *[!=]= *"(ner|classification)"|\bif (not )?(self\.|run\.)?ner\b'
                         r'|\bner\b *(=|:) *(True|False|bool|info|task|run|result|any)|\brun\.ner\b')


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.with_suffix("").relative_to(ROOT).parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        for target in targets:
            while target not in modules and "." in target:
                target = target.rpartition(".")[0]
            if target in modules and target != name:
                found.add(target)
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_module_is_over_600_lines():
    long = {str(p.relative_to(ROOT)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES}
    assert not long, long


def test_no_import_circle_among_evokd_modules():
    modules = _modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    assert graph["evokd.loop.runner"] >= {"evokd.loop.sources", "evokd.store"}  # the parser sees imports at all
    assert _cycles(graph) == []


def test_task_kind_branches_are_few():
    hits = [f"{p.relative_to(ROOT)}:{i}: {line.strip()}" for p in PACKAGE.rglob("*.py")
            for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
            if KIND_BRANCH.search(line) and not line.lstrip().startswith("#")]
    assert len(hits) <= MAX_KIND_BRANCH_LINES, "\n".join(hits)
    assert KIND_BRANCH.search('if task.kind == "ner":') and KIND_BRANCH.search("x = a if run.ner else b")

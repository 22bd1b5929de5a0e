"""A clone stands on its own (issue 24): nothing the project runs reads the development setup's
sibling data folder, in any spelling — a path string, a path join or a `parents[n].parent` walk.
Code, configs, tests, the Makefile and CI are scanned; committed historical results may keep the
paths they were measured with, and the README names the folder only in its development note."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NAME = "sha" + "red"  # spelled in two parts so this file does not match its own patterns
PATTERNS = [
    re.compile(rf"\.\.[/\\]+{NAME}\b"),                 # the relative path, either slash
    re.compile(rf"\b{NAME}[/\\]+data\b"),                # NAME/data
    re.compile(rf"""["']{NAME}["']\s*[,/)]"""),          # a path join: "NAME" / "data", join(.., "NAME", ..)
    re.compile(rf"""["']\.\.["']\s*[,/]\s*["']{NAME}"""),  # "..", "NAME"
]
SCANNED_SUFFIXES = {".py", ".yaml", ".yml", ".toml", ".cfg", ".ini", ".sh", ".json", ".md", ".txt", ".jsonl"}
# The README's development note may name it (checked on its own below).
EXEMPT = re.compile(r"^README\.md$")


def tracked_files() -> list[str]:
    """The repository's files (tracked, and new ones git does not ignore) in a checkout, else every file outside .venv and caches."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT, capture_output=True, check=True).stdout
        return [f for f in out.decode().split("\0") if f]
    except (OSError, subprocess.CalledProcessError):
        skip = {".venv", ".git", "__pycache__", ".pytest_cache", "runs"}
        return [str(p.relative_to(ROOT)) for p in ROOT.rglob("*") if p.is_file() and not skip & set(p.parts)]


def scanned(path: str) -> bool:
    name = Path(path).name
    return (Path(path).suffix in SCANNED_SUFFIXES or name in {"Makefile", "run"} or path.startswith(".ci/")) \
        and not EXEMPT.match(path)


def test_the_patterns_catch_every_spelling():
    for spelling in (f"../{NAME}/data/sst2", f'ROOT.parent / "{NAME}" / "data"', f"os.path.join('..', '{NAME}')",
                     f'Path("..", "{NAME}", "data")', f"{NAME}/data/trec"):
        assert any(p.search(spelling) for p in PATTERNS), spelling
    for fine in ("the shared prompt prefix", "shared by every cell", "evokd.datadir", "$EVOKD_DATA/trec"):
        assert not any(p.search(fine) for p in PATTERNS), fine


def test_nothing_reads_the_development_data_folder():
    files = [f for f in tracked_files() if scanned(f)]
    assert "Makefile" in files and "evokd/cli/__init__.py" in files and "benchmarks/configs/smoke.yaml" in files
    hits = []
    for rel in files:
        try:
            text = (ROOT / rel).read_text(encoding="utf-8")
        except (UnicodeDecodeError, FileNotFoundError):
            continue
        for lineno, line in enumerate(text.splitlines(), start=1):
            if any(p.search(line) for p in PATTERNS):
                hits.append(f"{rel}:{lineno}: {line.strip()}")
    assert not hits, "\n".join(hits)


def test_the_readme_names_it_only_in_its_development_note():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    section, where, in_code = "", [], False
    for line in lines:
        if line.startswith("```"):
            in_code = not in_code
        elif line.startswith("#") and not in_code:
            section = line.lstrip("#").strip()
        if any(p.search(line) for p in PATTERNS):
            where.append(section)
    assert set(where) <= {"Development"}, where

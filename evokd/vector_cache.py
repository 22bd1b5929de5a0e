"""Frozen-encoder vectors kept on disk, so that a later process does not encode the same texts again.

The encoder students without fine-tuning (minilm, mpnet) predict from a pretrained encoder's vectors,
which `evokd.students.minilm.frozen_vectors` memoises per process. Every command on a run scores the
same eval rows with the same encoder: `evokd generate` (and a resumed one), `distill` (its parity check
runs them first) and `compare`. Encoding sst2's 872 eval sentences with mpnet takes ~15 s on 2 cores,
so a run keeps their vectors in RUN/vectors/, and the bench keeps its test rows' the same way.

A file is named by the encoder's key and a digest of the texts in order, so other texts or another
encoder never read it. The encoders' weights are pinned (mpnet's parts are SHA-256-checked, MiniLM
is one package version), so a key stands for one set of weights. A file that does not load, or holds
the wrong shape, is encoded again and replaced.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path
from typing import Callable

import numpy as np

VECTORS_DIR = "vectors"  # in a run folder


def frozen_encoder(student):
    """The pretrained encoder (`EncoderSpec`) whose memoised vectors `student` predicts from: an encoder
    student that is not fine-tuned. None for the others, whose predictions do not read the memo."""
    spec = getattr(student, "base_encoder", None)
    return spec if spec is not None and getattr(student, "fine_tune", None) == "none" else None


def vectors_file(folder: Path, prefix: str, texts: list[str]) -> Path:
    digest = hashlib.sha1("\n".join(texts).encode()).hexdigest()[:16]
    return Path(folder) / f"{prefix}-{len(texts)}-{digest}.npy"


def _read(path: Path, n: int, dim: int) -> np.ndarray | None:
    try:
        vectors = np.load(path)
    except (OSError, ValueError, EOFError):  # missing, truncated or not a .npy file
        return None
    return vectors if vectors.shape == (n, dim) and vectors.dtype == np.float32 else None


def cached(folder: Path, prefix: str, texts: list[str], dim: int, encode: Callable[[list[str]], np.ndarray]) -> np.ndarray:
    """`encode(texts)` (float32, one row of `dim` per text) as saved in `folder` under `prefix` by an
    earlier process; on a miss, encoded now and saved there (atomically; not at all where the folder
    cannot be written, as for a run someone else owns)."""
    path = vectors_file(folder, prefix, texts)
    vectors = _read(path, len(texts), dim)
    if vectors is None:
        vectors = encode(texts)
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.npy")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(tmp, vectors)
            os.replace(tmp, path)
        except OSError:  # a folder this process may not write to (a shared run): the vectors still serve now
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
    return vectors


def remember_vectors(folder: Path, texts: list[str], spec) -> np.ndarray:
    """`spec`'s vectors of `texts`, put in the encoder students' memo: read from `folder` when an
    earlier process saved them there, else encoded now and saved there."""
    from evokd.students import minilm

    if not texts:
        return np.zeros((0, spec.dim), dtype=np.float32)
    vectors = cached(folder, spec.key, texts, spec.dim, lambda missing: minilm.frozen_vectors(missing, spec=spec))
    minilm.remember_frozen_vectors(texts, vectors, spec)
    return vectors


def remember_for(student, folder: Path, texts: list[str]) -> None:
    """`remember_vectors` for the encoder `student` predicts from, when it reads frozen vectors."""
    spec = frozen_encoder(student)
    if spec is not None and spec.missing() is None:
        remember_vectors(folder, texts, spec)

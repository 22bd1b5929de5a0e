"""The MiniLM sentence encoder as one ONNX graph, for embedding large unlabeled pools.

The model `evokd.embed` loads, with its maths (mean pooling over real tokens, L2 normalisation,
EMBED_DIM floats), traced once into `$EVOKD_HOME/models/minilm-encoder/model.onnx` next to its
`tokenizer.json`; after that it needs only onnxruntime, `tokenizers` and numpy, which is what a Ray worker or a pool-embedding job
should carry. Texts are batched by length and padded to each batch's longest text.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tempfile
import threading
import warnings
from pathlib import Path

import numpy as np

from evokd import runtime
from evokd.embed import EMBED_DIM

EMBEDDING_OUTPUT = "embedding"
_build_lock = threading.Lock()


def encoder_dir() -> Path:
    from evokd.teacher.local import evokd_home

    return evokd_home() / "models" / "minilm-encoder"


def _build(target: Path) -> None:
    """Trace encoder + pooling + normalisation to ONNX and write it with the tokenizer, atomically."""
    import torch

    from evokd.embed import pool, save_tokenizer, sentence_transformer
    from evokd.students.minilm import ONNX_OPSET  # the opset of the minilm student's graph, traced alike

    model = sentence_transformer()

    class Encoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = model[0].auto_model

        def forward(self, input_ids, attention_mask):
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            return pool(hidden, attention_mask)

    example = model.tokenizer(["an example", "a slightly longer example text"], padding=True, return_tensors="pt")
    buffer = io.BytesIO()
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings; parity is tested against evokd.embed
        torch.onnx.export(Encoder().eval(), (example["input_ids"], example["attention_mask"]), buffer,
                          input_names=list(runtime.TOKEN_INPUTS), output_names=[EMBEDDING_OUTPUT],
                          dynamic_axes={name: {0: "batch", 1: "tokens"} for name in runtime.TOKEN_INPUTS}
                          | {EMBEDDING_OUTPUT: {0: "batch"}}, opset_version=ONNX_OPSET, dynamo=False)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".minilm-encoder-", dir=target.parent))
    try:
        (tmp / "model.onnx").write_bytes(buffer.getvalue())
        save_tokenizer(tmp / runtime.TOKENIZER_FILE)
        try:
            os.rename(tmp, target)  # another process may have won the race: theirs is identical
        except OSError:
            if not (target / "model.onnx").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def ensure_encoder() -> Path:
    """The encoder's folder, built on first use (a few seconds; needs torch once, offline)."""
    target = encoder_dir()
    if not (target / "model.onnx").is_file():
        with _build_lock:
            if not (target / "model.onnx").is_file():
                _build(target)
    return target


def encoder_digest(folder: Path | None = None) -> str:
    folder = folder or ensure_encoder()
    return hashlib.sha256((folder / "model.onnx").read_bytes()).hexdigest()[:16]


class OnnxEncoder:
    """L2-normalised MiniLM vectors from onnxruntime; one instance per process (or Ray actor)."""

    def __init__(self, folder: str | Path | None = None, threads: int = 1, batch_size: int = 64):
        folder = Path(folder) if folder else ensure_encoder()
        self.session = runtime.make_session(folder / "model.onnx", threads)
        self.feeds = runtime.TokenIdFeeds(folder / "model.onnx", {"student": "minilm-encoder"},
                                          [i.name for i in self.session.get_inputs()], max_batch_rows=batch_size)

    def encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), EMBED_DIM), dtype=np.float32)
        for index, feeds in self.feeds.batches(list(texts)):
            (batch,) = self.session.run([EMBEDDING_OUTPUT], feeds)
            out[index] = batch
        return out

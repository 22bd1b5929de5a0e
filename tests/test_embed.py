"""One MiniLM embedder: `evokd.embed` loads the model once per process and defines the vector size
that the store, the pool, the ONNX encoder and the minilm student use."""

from pathlib import Path

import numpy as np

import evokd
from evokd import embed

PACKAGE = Path(evokd.__file__).parent


def test_one_minilm_embedder():
    from evokd import encoder, pool, store
    from evokd.students import minilm

    assert store.EMBED_DIM == pool.DIM == embed.EMBED_DIM == 384
    assert encoder.EMBED_DIM is embed.EMBED_DIM
    assert minilm._sentence_transformer is embed.sentence_transformer and minilm.MAX_LENGTH == embed.MAX_LENGTH
    assert embed.encode([]).shape == (0, embed.EMBED_DIM)
    loaders = [p.relative_to(PACKAGE).as_posix() for p in sorted(PACKAGE.rglob("*.py"))
               if "SentenceTransformer(" in p.read_text(encoding="utf-8")]
    assert loaders == ["embed.py", "students/encoders.py"]  # MiniLM here; mpnet, for its students only, there


def test_frozen_vectors_are_the_embedders_vectors():
    from evokd.students import minilm

    texts = ["a gorgeous , witty film", "a dull mess", "a gorgeous , witty film"]
    vectors = embed.encode(texts)
    assert vectors.shape == (3, embed.EMBED_DIM) and vectors.dtype == np.float32
    # the same encoder, pooling and normalisation; frozen_vectors encodes the 2 distinct texts as one batch of 2,
    # and on some CPUs (a Xeon here) a batch of another shape moves the last bits (~1e-7), so not bit-equal
    np.testing.assert_allclose(minilm.frozen_vectors(texts, batch_size=64), vectors, rtol=0, atol=1e-6)
    assert embed.sentence_transformer() is embed.sentence_transformer()  # one instance per process

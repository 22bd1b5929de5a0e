"""Fine-tuning a sentence encoder together with a linear classification head (the `minilm-tuned` student).

The head starts where the frozen student ends: the logistic-regression head fitted on the pretrained
encoder's vectors (linear probing, then fine-tuning; Kumar et al., 2022, show this keeps the
pretrained features from being distorted by a random head's first gradients). Then every encoder
layer and the head train together with weighted cross-entropy on the same mean-pooled, L2-normalised
vectors the frozen student uses, so the result exports as the same one-graph ONNX.

Early stopping: when there are at least `MIN_HELD_OUT_TEXTS` texts, a stratified slice of them is held
out; after each epoch the weighted accuracy on that slice is measured (ties: the lower weighted
cross-entropy) and the best epoch's weights are kept (the slice is not trained on: it decides when
to stop). The frozen student is kept instead only when its head scores clearly better on the slice
than the best epoch, by more than 1/sqrt(n) on n held-out texts (about two standard errors): a slice
of a few dozen texts is noisy (on 512 sst2 texts, 77 are held out and one of them is 1.3 points).
With fewer texts every epoch trains on all of them and the last is kept.
"""

from __future__ import annotations

import copy
import random
import time

import numpy as np

from evokd.embed import pool

MIN_HELD_OUT_TEXTS = 40  # below this, no slice is held out for early stopping
TRAIN_MAX_TOKENS = 128  # training cuts texts here (prediction reads up to the encoder's MAX_LENGTH)


def held_out_split(labels: list[str], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(train, held-out) indices: `fraction` of each label's texts held out (at least one of a label with
    two or more), none when there are fewer than MIN_HELD_OUT_TEXTS texts."""
    everything = list(range(len(labels)))
    if len(labels) < MIN_HELD_OUT_TEXTS or fraction <= 0:
        return everything, []
    rng = random.Random(seed)
    by_label: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        by_label.setdefault(label, []).append(i)
    held = []
    for idx in by_label.values():
        if len(idx) >= 2:
            held += rng.sample(idx, max(1, round(len(idx) * fraction)))
    held_set = set(held)
    return [i for i in everything if i not in held_set], sorted(held)


def fine_tune_classifier(model, texts: list[str], targets: np.ndarray, weights: np.ndarray, coef: np.ndarray,
                         intercept: np.ndarray, train_idx: list[int], held_idx: list[int], *, epochs: int,
                         learning_rate: float, head_learning_rate: float, batch_size: int,
                         seed: int, on_epoch=None) -> tuple[np.ndarray, np.ndarray, dict]:
    """Fine-tune `model` (a sentence-transformers copy; changed in place) and a linear head on the rows
    `train_idx` of (texts, targets: class indices, weights: per-text loss weights), stopping early on the
    rows `held_idx` (see `held_out_split`; none: keep the last epoch). `coef`/`intercept` start the head
    (fitted on the train rows only, so the start is scored fairly); a binary head with one row
    (scikit-learn's form) becomes two rows [0, w] so that softmax equals scikit-learn's sigmoid.
    Returns (coef, intercept, record): record["best_epoch"] 0 means that the linear-probed start beat
    the best epoch on the held-out rows by more than 1/sqrt(their number) (about two standard errors of
    an accuracy there); the caller then keeps the frozen encoder, and what the model holds is moot.
    on_epoch, when given, is called after each epoch with {"epoch", "epochs", "seconds" (since the
    start), "held_out_accuracy" (None without held-out rows)}: how `evokd distill` shows its progress."""
    import torch

    torch.manual_seed(seed)
    if coef.shape[0] == 1:
        coef = np.vstack([np.zeros_like(coef), coef])
        intercept = np.r_[0.0, intercept]
    encoder, tokenizer = model[0].auto_model, model.tokenizer
    head = torch.nn.Linear(coef.shape[1], coef.shape[0])
    with torch.no_grad():
        head.weight.copy_(torch.tensor(coef, dtype=torch.float32))
        head.bias.copy_(torch.tensor(intercept, dtype=torch.float32))
    n_steps = max(1, epochs * -(-len(train_idx) // batch_size))
    warmup = max(1, n_steps // 10)
    optimizer = torch.optim.AdamW([{"params": encoder.parameters(), "lr": learning_rate},
                                   {"params": head.parameters(), "lr": head_learning_rate}], weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min((step + 1) / warmup, max(0.0, (n_steps - step) / max(1, n_steps - warmup))))

    def logits(batch: list[int]):
        features = tokenizer([texts[i] for i in batch], padding=True, truncation=True, max_length=TRAIN_MAX_TOKENS,
                             return_tensors="pt")
        hidden = encoder(input_ids=features["input_ids"], attention_mask=features["attention_mask"]).last_hidden_state
        return head(pool(hidden, features["attention_mask"]))

    def weighted_loss(batch: list[int], out):
        y = torch.tensor(targets[batch], dtype=torch.long)
        w = torch.tensor(weights[batch], dtype=out.dtype)
        return (torch.nn.functional.cross_entropy(out, y, reduction="none") * w).sum() / w.sum().clamp(min=1e-9)

    def held_out_score() -> tuple[float, float]:
        """(weighted accuracy, -weighted cross-entropy) on the held-out rows: higher is better."""
        encoder.eval()
        right = total = weight = 0.0
        with torch.no_grad():
            for at in range(0, len(held_idx), 64):
                batch = held_idx[at:at + 64]
                out = logits(batch)
                w = weights[batch]
                total += float(weighted_loss(batch, out)) * float(w.sum())
                right += float((w * (out.argmax(dim=1).numpy() == targets[batch])).sum())
                weight += float(w.sum())
        return right / max(weight, 1e-9), -total / max(weight, 1e-9)

    def state():
        return copy.deepcopy(encoder.state_dict()), copy.deepcopy(head.state_dict())

    rng = random.Random(seed)
    record = {"train_texts": len(train_idx), "held_out_texts": len(held_idx), "held_out": []}

    def measure() -> tuple[float, float]:
        score = held_out_score()
        record["held_out"].append({"accuracy": round(score[0], 4), "loss": round(-score[1], 4)})
        return score

    frozen_score = measure() if held_idx else None
    best = None
    started = time.perf_counter()
    try:
        for epoch in range(1, epochs + 1):
            encoder.train()
            order = list(train_idx)
            rng.shuffle(order)
            for at in range(0, len(order), batch_size):
                batch = order[at:at + batch_size]
                loss = weighted_loss(batch, logits(batch))
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                schedule.step()
            score = measure() if held_idx else None
            if score is not None and (best is None or score > best[0]):
                best = (score, epoch, state())
            if on_epoch is not None:
                on_epoch({"epoch": epoch, "epochs": epochs, "seconds": time.perf_counter() - started,
                          "held_out_accuracy": None if score is None else score[0]})
    finally:
        encoder.eval()
    if best is None:
        record["best_epoch"] = epochs
    elif best[0][0] < frozen_score[0] - 1 / np.sqrt(len(held_idx)):  # the start is clearly better: keep it (epoch 0)
        record["best_epoch"] = 0
    else:
        record["best_epoch"] = best[1]
        encoder.load_state_dict(best[2][0])
        head.load_state_dict(best[2][1])
    return head.weight.detach().numpy().astype(np.float64), head.bias.detach().numpy().astype(np.float64), record

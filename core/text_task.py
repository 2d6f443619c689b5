"""Causal-LM fine-tuning workload: a base LM with packed LoRA layers on prompt/completion or text data."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from core.data import Example
from core.specs import SpecError, TrialSpec
from core.workload import Batch, Workload

EVAL_EXAMPLES_MAX = 256  # cap on held-out examples scored per evaluation
# Text kept per example before tokenizing, per token of max_length: no tokenizer's token spans more
# characters on real text, and a 50 MB line is cut before it can take gigabytes in the tokenizer.
CHARS_PER_TOKEN_MAX = 64


def clip_text(text: str, max_length: int) -> str:
    """The first characters of ``text`` that can make up ``max_length`` tokens, never the whole of a huge text."""
    return text[: max_length * CHARS_PER_TOKEN_MAX]


def tokenize(examples: list[Example], tokenizer, max_length: int) -> list[tuple[list[int], list[int]]]:
    """Return (input_ids, labels) per example; labels are -100 on prompt tokens.

    Text is clipped (:func:`clip_text`) before it is encoded; examples left with no label token
    after truncation are dropped.
    """
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    out = []

    def encode(text: str) -> list[int]:
        return tokenizer.encode(text, add_special_tokens=False)

    for ex in examples:
        prompt = bos + (encode(clip_text(ex.prompt, max_length)) if ex.prompt else [])
        answer = encode(clip_text(ex.completion, max_length)) + eos
        ids = (prompt + answer)[:max_length]
        labels = ([-100] * len(prompt) + answer)[:max_length]
        if any(label != -100 for label in labels[1:]):  # position 0 is never predicted
            out.append((ids, labels))
    return out


def collate(rows: list[tuple[list[int], list[int]]], pad_id: int, device: torch.device) -> Batch:
    """Right-pad rows into a batch of input_ids, attention_mask and labels."""
    width = max(len(ids) for ids, _ in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (row_ids, row_labels) in enumerate(rows):
        ids[i, : len(row_ids)] = torch.tensor(row_ids)
        labels[i, : len(row_labels)] = torch.tensor(row_labels)
        mask[i, : len(row_ids)] = 1
    inputs = {"input_ids": ids.to(device), "attention_mask": mask.to(device), "labels": labels.to(device)}
    return Batch(inputs, tokens=int(mask.sum()), label_tokens=int((labels[:, 1:] != -100).sum()))


def token_losses(model, batch: Batch, n: int, labels_only: bool = False) -> torch.Tensor:
    """Summed next-token loss over label tokens for each of ``n`` replicas of the batch, shape (n,).

    With ``labels_only`` (see :func:`core.models.keeps_label_logits`) the model computes logits
    only at positions that predict a label; the losses are the same, the unlabeled positions
    having contributed nothing.
    """
    ids = batch.inputs["input_ids"].repeat(n, 1)  # (n*B, T): row-group i is config i's copy
    mask = batch.inputs["attention_mask"].repeat(n, 1)
    shifted = batch.inputs["labels"][:, 1:].repeat(n, 1)
    if labels_only:
        labeled = shifted != -100
        keep = torch.cat([labeled, labeled.new_zeros(labeled.shape[0], 1)], dim=1)  # position t predicts t+1
        logits = model(input_ids=ids, attention_mask=mask, logits_to_keep=keep).logits  # (labels, vocab)
        loss = F.cross_entropy(logits.float(), shifted[labeled], reduction="none")
        return loss.view(n, -1).sum(dim=1)  # every replica has the same labels, in row order
    logits = model(input_ids=ids, attention_mask=mask).logits
    loss = F.cross_entropy(logits[:, :-1].float().reshape(-1, logits.shape[-1]), shifted.reshape(-1),
                           ignore_index=-100, reduction="none")
    return loss.view(n, -1).sum(dim=1)


class TextWorkload(Workload):
    """A causal LM (shared, frozen) with packed LoRA layers and tokenized train/eval data."""

    def __init__(self, spec: TrialSpec, device: torch.device, base, train: list[Example],
                 evals: list[Example]):
        self.spec, self.device = spec, device
        self.model, tokenizer, self.layers, self.targets, self.labels_only = base
        self.pad_id = tokenizer.pad_token_id
        self.train_rows = tokenize(train, tokenizer, spec.max_length)
        self.eval_rows = tokenize(evals, tokenizer, spec.max_length)[:EVAL_EXAMPLES_MAX]
        if not self.train_rows or not self.eval_rows:
            raise SpecError("no example has a completion token left after truncation: raise --max-length")
        self.order = torch.Generator().manual_seed(spec.seed + 1)

    def train_batch(self, step: int) -> Batch:
        picks = torch.randint(len(self.train_rows), (self.spec.batch_size,), generator=self.order)
        return collate([self.train_rows[i] for i in picks.tolist()], self.pad_id, self.device)

    def losses(self, batch: Batch, n: int) -> torch.Tensor:
        return token_losses(self.model, batch, n, self.labels_only) / max(batch.label_tokens, 1)

    @torch.no_grad()
    def evaluate(self, n: int) -> torch.Tensor:
        total, count = torch.zeros(n, device=self.device), 0
        size = self.spec.batch_size
        for start in range(0, len(self.eval_rows), size):
            batch = collate(self.eval_rows[start:start + size], self.pad_id, self.device)
            total = total + token_losses(self.model, batch, n, self.labels_only)
            count += batch.label_tokens
        return total / max(count, 1)

    def describe(self) -> dict:
        return {"target_modules": self.targets, "train_examples": len(self.train_rows),
                "eval_examples": len(self.eval_rows)}

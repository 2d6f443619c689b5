"""Causal-LM fine-tuning workload: a base LM with a LoRA adapter on prompt/completion or text data."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from core.adapters import attach_lora, lora_config
from core.data import Example
from core.models import discover_target_modules, load_model_and_tokenizer
from core.specs import SpecError, TrialSpec
from core.workload import Batch, Workload

EVAL_EXAMPLES_MAX = 256  # cap on held-out examples scored per evaluation


def tokenize(examples: list[Example], tokenizer, max_length: int) -> list[tuple[list[int], list[int]]]:
    """Return (input_ids, labels) per example; labels are -100 on prompt tokens.

    Examples left with no label token after truncation are dropped.
    """
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    out = []
    for ex in examples:
        prompt = bos + (tokenizer.encode(ex.prompt, add_special_tokens=False) if ex.prompt else [])
        answer = tokenizer.encode(ex.completion, add_special_tokens=False) + eos
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
    return Batch(inputs, tokens=int(mask.sum()))


def token_losses(model, batch: Batch) -> tuple[torch.Tensor, int]:
    """Return (summed next-token loss over label tokens, number of label tokens)."""
    logits = model(input_ids=batch.inputs["input_ids"], attention_mask=batch.inputs["attention_mask"]).logits
    shifted = batch.inputs["labels"][:, 1:]
    loss = F.cross_entropy(logits[:, :-1].float().reshape(-1, logits.shape[-1]), shifted.reshape(-1),
                           ignore_index=-100, reduction="sum")
    return loss, int((shifted != -100).sum())


class TextWorkload(Workload):
    """A causal LM with a fresh LoRA adapter and tokenized train/eval data."""

    def __init__(self, spec: TrialSpec, device: torch.device, train: list[Example], evals: list[Example]):
        self.spec, self.device = spec, device
        base, tokenizer = load_model_and_tokenizer(spec.model, trust_remote_code=spec.trust_remote_code)
        self.pad_id = tokenizer.pad_token_id
        self.train_rows = tokenize(train, tokenizer, spec.max_length)
        self.eval_rows = tokenize(evals, tokenizer, spec.max_length)[:EVAL_EXAMPLES_MAX]
        if not self.train_rows or not self.eval_rows:
            raise SpecError("no example has a completion token left after truncation: raise --max-length")
        targets = list(spec.target_modules or discover_target_modules(base))
        torch.manual_seed(spec.seed)  # adapter init
        config = lora_config(rank=spec.rank, alpha=spec.alpha, rule=spec.rule, target_modules=targets,
                             lora_dropout=spec.lora_dropout, task_type="CAUSAL_LM")
        try:
            self.model = attach_lora(base, config).to(device)
        except ValueError as err:
            raise SpecError(f"cannot attach LoRA to {targets}: {str(err).splitlines()[0]}") from None
        self.targets = targets
        self.order = torch.Generator().manual_seed(spec.seed + 1)

    def train_batch(self, step: int) -> Batch:
        picks = torch.randint(len(self.train_rows), (self.spec.batch_size,), generator=self.order)
        return collate([self.train_rows[i] for i in picks.tolist()], self.pad_id, self.device)

    def loss(self, batch: Batch) -> torch.Tensor:
        total, count = token_losses(self.model, batch)
        return total / max(count, 1)

    @torch.no_grad()
    def evaluate(self) -> float:
        total, count = 0.0, 0
        size = self.spec.batch_size
        for start in range(0, len(self.eval_rows), size):
            batch_loss, n = token_losses(self.model, collate(self.eval_rows[start:start + size],
                                                             self.pad_id, self.device))
            total, count = total + float(batch_loss), count + n
        return total / max(count, 1)

    def describe(self) -> dict:
        return {"target_modules": self.targets, "train_examples": len(self.train_rows),
                "eval_examples": len(self.eval_rows)}

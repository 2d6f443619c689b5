"""core/text_task.py: per-replica token losses, with logits at label positions only or everywhere."""

import torch

from core.data import Example
from core.models import load_model_and_tokenizer
from core.factory import build_workload
from core.specs import TrialSpec
from core.text_task import collate, token_losses, tokenize


def test_label_only_logits_give_the_full_computations_losses_per_replica():
    model, tokenizer = load_model_and_tokenizer(None)
    examples = [Example("The capital of Velmora is", " Quandrel."), Example("", "A short text."),
                Example("Two plus two is", " four, as everyone knows.")]
    batch = collate(tokenize(examples, tokenizer, 32), tokenizer.pad_token_id, torch.device("cpu"))
    with torch.no_grad():
        full = token_losses(model, batch, 3)
        kept = token_losses(model, batch, 3, labels_only=True)
        single = token_losses(model, batch, 1)
    assert full.shape == kept.shape == (3,)
    torch.testing.assert_close(kept, full, rtol=1e-6, atol=1e-5)
    torch.testing.assert_close(kept, single.expand(3), rtol=1e-6, atol=1e-5)  # each replica is the batch's own
    assert batch.label_tokens > 0 and float(single) / batch.label_tokens < 8.0


def test_a_text_workload_on_the_tiny_lm_computes_logits_at_labels_only():
    assert build_workload(TrialSpec(task="tiny-facts", steps=1), torch.device("cpu")).labels_only

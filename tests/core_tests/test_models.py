"""core/models.py: which models can compute logits at label positions only."""

from torch import nn

from core.models import keeps_label_logits, load_model_and_tokenizer


class _NoOption(nn.Module):
    """A causal LM whose forward has no ``logits_to_keep`` (older transformers, some remote code)."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(16, 4)

    def forward(self, input_ids, attention_mask=None):
        return type("Out", (), {"logits": self.embed(input_ids)})()


class _IgnoresOption(_NoOption):
    """Takes ``logits_to_keep`` but returns every position's logits anyway."""

    def forward(self, input_ids, attention_mask=None, logits_to_keep=0):
        return super().forward(input_ids, attention_mask)


def test_the_tiny_lm_keeps_only_the_masked_positions_logits():
    model, _ = load_model_and_tokenizer(None)
    assert keeps_label_logits(model)


def test_a_model_without_the_option_or_ignoring_it_keeps_full_logits():
    assert not keeps_label_logits(_NoOption())
    assert not keeps_label_logits(_IgnoresOption())

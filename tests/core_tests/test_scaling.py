"""Scaling rules and alpha laws, and that PEFT applies exactly the gamma we record."""

import math

import pytest
import torch

from core.scaling import RSLORA, STANDARD, AlphaLaw, get_rule
from core.specs import TrialSpec
from core.adapters import applied_gamma, attach_lora, lora_config
from core.packed_lora import AdapterSetting
from core.synthetic import FrozenLinear


@pytest.mark.parametrize("rank", [1, 4, 16, 64, 256])
def test_standard_gamma_is_alpha_over_rank(rank):
    assert STANDARD.gamma(16.0, rank) == pytest.approx(16.0 / rank)


@pytest.mark.parametrize("rank", [1, 4, 16, 64, 256])
def test_rslora_gamma_is_alpha_over_sqrt_rank(rank):
    assert RSLORA.gamma(16.0, rank) == pytest.approx(16.0 / math.sqrt(rank))


def test_alpha_for_gamma_inverts_gamma():
    for rule in (STANDARD, RSLORA):
        assert rule.gamma(rule.alpha_for_gamma(0.37, 64), 64) == pytest.approx(0.37)


def test_sqrt_law_under_standard_equals_rslora_with_alpha_c():
    law = AlphaLaw(c=8.0, p=0.5)
    for rank in (4, 16, 64, 256):
        assert STANDARD.gamma(law.alpha(rank), rank) == pytest.approx(RSLORA.gamma(8.0, rank))


@pytest.mark.parametrize("bad", [0, -4, 2.5, True])
def test_rank_must_be_positive_integer(bad):
    with pytest.raises(ValueError, match="rank"):
        STANDARD.gamma(16.0, bad)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_alpha_must_be_positive_finite(bad):
    with pytest.raises(ValueError, match="alpha"):
        RSLORA.gamma(bad, 8)


def test_unknown_rule_names_known_rules():
    with pytest.raises(ValueError, match="standard, rslora"):
        get_rule("alpha-over-r")


def test_alpha_law_rejects_nonpositive_c():
    with pytest.raises(ValueError, match="positive"):
        AlphaLaw(c=0.0)


@pytest.mark.parametrize("rule", ["standard", "rslora"])
@pytest.mark.parametrize("rank", [4, 64])
def test_peft_and_the_packed_layer_apply_the_rule_gamma(rule, rank):
    spec = TrialSpec(task="synthetic-facts", rank=rank, alpha=16.0, rule=rule, device="cpu")
    config = lora_config(rank=rank, alpha=16.0, rule=rule, target_modules=["proj"])
    peft_model = attach_lora(FrozenLinear(torch.zeros(64, 64)), config)
    assert applied_gamma(peft_model) == pytest.approx(get_rule(rule).gamma(16.0, rank), rel=1e-12)
    assert AdapterSetting.from_spec(spec).gamma == pytest.approx(applied_gamma(peft_model), rel=1e-12)

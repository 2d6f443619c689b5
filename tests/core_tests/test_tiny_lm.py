"""The shipped tiny LM: loads offline, LoRA on every attention/MLP linear, rule signatures hold."""

import pytest

from core.models import TINY_LM, discover_target_modules, load_model_and_tokenizer
from core.scaling import get_rule
from core.specs import TrialSpec
from core.trainer import run_trial

LLAMA_LINEARS = ["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"]


def test_tiny_lm_is_a_small_standard_hf_folder():
    size = sum(p.stat().st_size for p in TINY_LM.iterdir())
    assert size < 10 * 1024 * 1024
    assert (TINY_LM / "model.safetensors").is_file() and (TINY_LM / "config.json").is_file()


def test_tiny_lm_loads_offline_and_scores_text(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model, tokenizer = load_model_and_tokenizer(None)
    ids = tokenizer("The capital of Velmora is Quandrel.", return_tensors="pt").input_ids
    loss = float(model(input_ids=ids, labels=ids).loss.detach())
    assert 0 < loss < 8.0  # below uniform over the 2048-token vocab (7.62) plus slack
    assert tokenizer.decode(tokenizer.encode("naïve\tcafé 🙂", add_special_tokens=False)) == "naïve\tcafé 🙂"


def test_target_modules_are_every_attention_and_mlp_linear():
    model, _ = load_model_and_tokenizer(None)
    assert discover_target_modules(model) == LLAMA_LINEARS


def _first_record(rule, rank):
    records = []
    spec = TrialSpec(task="tiny-facts", rank=rank, alpha=16.0, rule=rule, steps=1, batch_size=16, device="cpu")
    outcome = run_trial(spec, records.append)
    assert outcome.status == "completed", outcome.error
    assert outcome.gamma == pytest.approx(get_rule(rule).gamma(16.0, rank))
    assert outcome.info["target_modules"] == LLAMA_LINEARS
    return records[0]


def test_tiny_facts_standard_grad_norm_falls_with_sqrt_rank():
    ratio = _first_record("standard", 4)["grad_norm"] / _first_record("standard", 64)["grad_norm"]
    assert 3.0 < ratio < 5.3  # sqrt(64 / 4) = 4


def test_tiny_facts_rslora_grad_norm_flat_in_rank():
    ratio = _first_record("rslora", 4)["grad_norm"] / _first_record("rslora", 64)["grad_norm"]
    assert 0.8 < ratio < 1.25


def test_packed_scaling_on_the_tiny_lm_equals_rule_gamma():
    spec = TrialSpec(task="tiny-style", rank=8, alpha=12.0, rule="rslora", steps=1, device="cpu")
    assert run_trial(spec).gamma == pytest.approx(12.0 / 8**0.5, rel=1e-12)

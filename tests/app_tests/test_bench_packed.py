"""The bench's packed section (app/bench_packed.py): its comparison, its timing and its 1-ulp control."""

import torch

from app import bench_packed
from app.bench_packed import PackedCase, compare, perturbed_init, ulp_control
from core import packed_lora
from core.packed_lora import PackedLoRALinear
from core.specs import TrialSpec

TINY_CASE = PackedCase("tiny synthetic grid", "synthetic-facts", (4, 16), (16.0,), 6, 8, repeats=2, ulp_control=True)


def test_perturbed_init_moves_a_by_about_one_ulp_and_restores_peft_init():
    layers = [PackedLoRALinear(torch.nn.Linear(32, 16, bias=False))]
    (a, b), = packed_lora.peft_init(layers, 4, seed=3)
    with perturbed_init():
        (a2, b2), = packed_lora.peft_init(layers, 4, seed=3)
    assert torch.equal(b2, b) and torch.count_nonzero(b) == 0  # B starts at zero, as PEFT's
    ratio = (a2 / a).double()
    assert torch.allclose(ratio, torch.full_like(ratio, 1 + bench_packed.ULP), rtol=0, atol=1.5e-7)
    assert not torch.equal(a2, a)
    assert torch.equal(packed_lora.peft_init(layers, 4, seed=3)[0][0], a)  # the patch is gone


def test_compare_reports_speed_memory_and_deviation_per_rule():
    row = compare(TINY_CASE, "cpu", None)
    assert row["configs"] == 4 and row["statuses"]["packed"] == ["completed"] * 4
    assert row["speedup"] > 0 and row["sequential_seconds"] > 0 and row["packed_seconds"] > 0  # rounded to 0.01 s
    assert row["timing"] == "fastest of 2 runs per arm, arms in turns"
    assert set(row["max_final_loss_deviation_rel_by_rule"]) == {"standard", "rslora"}
    assert row["max_final_loss_deviation_rel"] < 1e-5  # fp32 on the CPU: packed equals one-at-a-time
    control = row["one_ulp_init_control"]
    assert set(control) == {"standard", "rslora"} and {c["rank"] for c in control.values()} == {16}
    assert all(c["deviation_rel"] is not None and c["deviation_rel"] < 1e-3 for c in control.values())


def test_the_control_reruns_each_rules_largest_rank_from_a_moved_init(monkeypatch):
    specs = TINY_CASE.specs("cpu", None)
    runs = []

    def fake_trial(spec: TrialSpec):
        runs.append((spec.rule, spec.rank, packed_lora.peft_init.__name__, packed_lora.peft_init is original))
        return type("Outcome", (), {"status": "completed", "final_loss": 2.0})()

    original = packed_lora.peft_init
    monkeypatch.setattr(bench_packed, "_fresh_trial", fake_trial)
    base = [type("Outcome", (), {"status": "completed", "final_loss": 1.0})() for _ in specs]
    out = ulp_control(specs, list(range(len(specs))), base)
    assert sorted((rule, rank, same) for rule, rank, _, same in runs) == [("rslora", 16, False), ("standard", 16, False)]
    assert out["rslora"]["deviation_rel"] == 1.0 and packed_lora.peft_init is original


def test_the_arms_run_in_turns_and_each_keeps_its_fastest_run(monkeypatch):
    order, seconds = [], iter([3.0, 2.0, 1.0, 4.0, 2.5, 0.5])
    monkeypatch.setattr(bench_packed, "_timed", lambda fn, device: {"seconds": next(seconds), "result": fn()})
    sequential, packed = bench_packed._fastest_interleaved(3, lambda: order.append("s") or "s",
                                                           lambda: order.append("p") or "p", "cpu")
    assert order == ["s", "p", "s", "p", "s", "p"]
    assert (sequential["seconds"], packed["seconds"]) == (1.0, 0.5)


def test_each_arm_loads_the_base_model_once_as_a_sweep_does(monkeypatch):
    from core import factory

    loads = []
    original = factory.load_model_and_tokenizer
    monkeypatch.setattr(factory, "load_model_and_tokenizer", lambda *a, **k: loads.append(1) or original(*a, **k))
    specs = [TrialSpec(task="tiny-facts", rank=r, steps=1, batch_size=2, eval_every=1, device="cpu") for r in (2, 4)]
    assert [o.status for o in bench_packed._one_at_a_time(specs)] == ["completed"] * 2 and len(loads) == 1
    assert [o.status for o in bench_packed._packed(specs)] == ["completed"] * 2 and len(loads) == 2

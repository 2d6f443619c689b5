"""The packed trainer: every config of a pack follows its own unpacked run and its plain PEFT run."""

import math

import pytest
import torch

from core import synthetic, trainer
from core.adapters import adapter_parameters, applied_gamma, attach_lora, lora_config
from core.factory import build_workload
from core.models import discover_target_modules, load_model_and_tokenizer
from core.spectra import SPECTRA
from core.specs import SpecError, TrialSpec
from core.trainer import lr_factor, run_pack

TOL = {"rel": 1e-5, "abs": 1e-7}


def _grid(task, steps, batch, ranks):
    """Mixed ranks (two configs share one rank), both rules, two learning rates, one clipped."""
    base = TrialSpec(task=task, steps=steps, batch_size=batch, eval_every=3, alpha=16.0, device="cpu")
    settings = [(ranks[0], "standard", 1e-3, None), (ranks[1], "rslora", 1e-3, None),
                (ranks[1], "standard", 3e-3, 0.05), (ranks[2], "rslora", 3e-3, None),
                (ranks[0], "rslora", 3e-3, None)]
    return [base.with_params(rank=r, rule=rule, lr=lr, max_grad_norm=clip) for r, rule, lr, clip in settings]


def _run(specs, pack_size=None, should_stop=None):
    curves = [[] for _ in specs]
    outcomes = run_pack(specs, lambda k, rec: curves[k].append(rec), should_stop, pack_size=pack_size,
                        return_adapters=True)
    return outcomes, curves


def _peft_run(spec):
    """The pre-packing trainer: torch.manual_seed, get_peft_model, one AdamW, one loss per step."""
    workload = build_workload(spec, torch.device("cpu"))  # its data order only
    if spec.task.startswith("synthetic"):
        base = synthetic.FrozenLinear(synthetic.make_target(SPECTRA[spec.task], workload.dim)[0])
        targets, task_type = ["proj"], None

        def loss_fn(model, batch):
            pred = model(batch.inputs["x"])
            return ((pred - batch.inputs["y"]) ** 2).sum(dim=1).mean() / workload.energy
    else:
        base, _ = load_model_and_tokenizer(spec.model)
        targets, task_type = discover_target_modules(base), "CAUSAL_LM"

        def loss_fn(model, batch):
            inputs = batch.inputs
            logits = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits
            shifted = inputs["labels"][:, 1:]
            total = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]),
                                                      shifted.reshape(-1), ignore_index=-100, reduction="sum")
            return total / int((shifted != -100).sum())

    torch.manual_seed(spec.seed)
    model = attach_lora(base, lora_config(rank=spec.rank, alpha=spec.alpha, rule=spec.rule,
                                          target_modules=targets, task_type=task_type))
    params = adapter_parameters(model)
    optimizer = torch.optim.AdamW(params, lr=spec.lr, weight_decay=0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, spec))
    losses, norms = [], []
    for step in range(spec.steps):
        loss = loss_fn(model, workload.train_batch(step))
        loss.backward()
        norms.append(float(torch.nn.utils.clip_grad_norm_(params, float("inf"))))
        if spec.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(params, spec.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
    weights = {name.replace("base_model.model.", "", 1).replace(".default", ""): p.detach().clone()
               for name, p in model.named_parameters() if p.requires_grad}
    return losses, norms, weights, applied_gamma(model)


def _assert_same_run(curve_a, curve_b):
    assert [r["step"] for r in curve_a] == [r["step"] for r in curve_b]
    for key in ("loss", "grad_norm", "lr", "eval_loss"):
        a = [r.get(key) for r in curve_a]
        b = [r.get(key) for r in curve_b]
        assert [x is None for x in a] == [x is None for x in b]
        assert [x for x in a if x is not None] == pytest.approx([x for x in b if x is not None], **TOL)


def _assert_same_weights(a, b):
    # AdamW turns last-bit differences in near-zero gradients into ~1e-6 weight differences
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-5, msg=name)


@pytest.mark.parametrize("task, steps, batch, ranks", [
    ("synthetic-facts", 6, 16, (4, 16, 64)),
    pytest.param("tiny-facts", 3, 8, (4, 8, 16), marks=pytest.mark.slow)])
def test_each_packed_config_equals_its_own_run_and_its_peft_run(task, steps, batch, ranks):
    specs = _grid(task, steps, batch, ranks)
    packed, packed_curves = _run(specs)
    alone, alone_curves = _run(specs, pack_size=1)
    assert [o.info["pack_size"] for o in packed] == [len(specs)] * len(specs)
    assert [o.info["pack_size"] for o in alone] == [1] * len(specs)
    for k, spec in enumerate(specs):
        assert packed[k].status == alone[k].status == "completed"
        assert len(packed_curves[k]) == steps
        _assert_same_run(packed_curves[k], alone_curves[k])
        _assert_same_weights(packed[k].adapter, alone[k].adapter)
        losses, norms, weights, gamma = _peft_run(spec)
        assert [r["loss"] for r in packed_curves[k]] == pytest.approx(losses, **TOL)
        assert [r["grad_norm"] for r in packed_curves[k]] == pytest.approx(norms, **TOL)
        _assert_same_weights(packed[k].adapter, weights)
        assert packed[k].gamma == pytest.approx(gamma, rel=1e-12)
        assert packed[k].final_loss == pytest.approx(alone[k].final_loss, **TOL)
        assert packed[k].eval_loss == pytest.approx(alone[k].eval_loss, **TOL)


def test_adapters_start_exactly_as_peft_draws_them():
    spec = TrialSpec(task="tiny-style", rank=8, steps=1, lr=1e-8, device="cpu", seed=3)  # B = 0: step 0 leaves A as drawn
    outcome, _ = _run([spec, spec.with_params(rank=4)])
    torch.manual_seed(3)
    base, _ = load_model_and_tokenizer(None)
    model = attach_lora(base, lora_config(rank=8, alpha=16.0, rule="standard",
                                          target_modules=discover_target_modules(base), task_type="CAUSAL_LM"))
    start = {name.replace("base_model.model.", "", 1).replace(".default", ""): p
             for name, p in model.named_parameters() if p.requires_grad}
    assert all(torch.equal(outcome[0].adapter[name], start[name]) for name in start if "lora_A" in name)


def test_a_diverging_config_drops_out_and_leaves_the_others_unchanged(monkeypatch):
    specs = _grid("synthetic-facts", 6, 16, (4, 16, 64))
    alone, alone_curves = _run(specs[:2] + specs[3:])
    # The spec limits keep alpha and lr where fp32 stays finite, so the third config's loss is
    # made NaN from step 2 on: a divergence exactly as the trainer sees one. Losses come in the
    # pack's row-group order, which the trainer's active list gives.
    losses, active_of, calls, active = synthetic.SyntheticWorkload.losses, trainer._PackRun._active, [0], []

    def remember_active(self):
        active[:] = active_of(self)
        return list(active)

    def diverge_third(self, batch, n):
        out = losses(self, batch, n)
        calls[0] += 1
        rows = [c.index for c in active]
        if calls[0] > 2 and 2 in rows:
            out = out.clone()
            out[rows.index(2)] = float("nan")
        return out

    monkeypatch.setattr(trainer._PackRun, "_active", remember_active)
    monkeypatch.setattr(synthetic.SyntheticWorkload, "losses", diverge_third)
    packed, curves = _run(specs)
    assert packed[2].status == "diverged" and "diverged at step" in packed[2].error
    assert packed[2].steps_done < 6 and len(curves[2]) == packed[2].steps_done
    for k_packed, k_alone in zip([0, 1, 3, 4], range(4)):
        assert packed[k_packed].status == "completed"
        _assert_same_run(curves[k_packed], alone_curves[k_alone])
        _assert_same_weights(packed[k_packed].adapter, alone[k_alone].adapter)


def test_a_stop_request_ends_only_that_config():
    specs = _grid("synthetic-facts", 6, 16, (4, 16, 64))
    seen = [0] * len(specs)

    def count(k, record):
        seen[k] += 1

    outcomes = run_pack(specs, count, lambda k: "pruned" if k == 1 and seen[1] >= 2 else None,
                        return_adapters=True)
    reference, ref_curves = _run(specs)
    assert outcomes[1].status == "pruned" and outcomes[1].steps_done == 2
    assert [o.status for k, o in enumerate(outcomes) if k != 1] == ["completed"] * 4
    for k in (0, 2, 3, 4):
        assert outcomes[k].final_loss == pytest.approx(reference[k].final_loss, **TOL)
        _assert_same_weights(outcomes[k].adapter, reference[k].adapter)


def test_dropout_in_one_config_leaves_the_others_unchanged():
    specs = _grid("synthetic-facts", 4, 16, (4, 16, 64))
    noisy = specs[1].with_params(lora_dropout=0.5)
    packed, curves = _run([specs[0], noisy, specs[2]])
    alone, alone_curves = _run([specs[0], specs[2]])
    assert [o.status for o in packed] == ["completed"] * 3
    assert all(math.isfinite(r["loss"]) for r in curves[1])
    _assert_same_run(curves[0], alone_curves[0])
    _assert_same_run(curves[2], alone_curves[1])


def test_an_out_of_memory_pack_is_split_and_retried(monkeypatch):
    real = synthetic.SyntheticWorkload.losses
    sizes = []

    def small_packs_only(self, batch, n):
        sizes.append(n)
        if n > 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(self, batch, n)

    specs = _grid("synthetic-facts", 4, 16, (4, 16, 64))
    alone, alone_curves = _run(specs, pack_size=1)
    monkeypatch.setattr(synthetic.SyntheticWorkload, "losses", small_packs_only)
    outcomes, curves = _run(specs)
    assert sizes[:2] == [5, 2] and max(sizes) == 5 and sizes.count(3) == 1  # 5 -> 2 + 3 -> 2 + 1 + 2
    assert [o.status for o in outcomes] == ["completed"] * 5
    for k in range(5):
        assert [r["step"] for r in curves[k]] == list(range(4))  # one clean pass, from step 0
        _assert_same_run(curves[k], alone_curves[k])


def test_a_lone_config_out_of_memory_is_an_outcome(monkeypatch):
    def boom(self, batch, n):
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(synthetic.SyntheticWorkload, "losses", boom)
    outcomes = run_pack(_grid("synthetic-facts", 4, 16, (4, 16, 64))[:2], pack_size=1)
    assert [o.status for o in outcomes] == ["oom", "oom"]


def test_specs_that_cannot_share_a_pack_are_refused():
    a = TrialSpec(task="synthetic-facts", steps=4, device="cpu")
    with pytest.raises(SpecError, match="pack_key"):
        run_pack([a, a.with_params(seed=1)])


def test_outcome_to_dict_leaves_weights_out():
    outcome = run_pack([TrialSpec(task="synthetic-style", rank=4, steps=2, device="cpu")],
                       return_adapters=True)[0]
    assert outcome.adapter and "adapter" not in outcome.to_dict()
    assert math.isfinite(outcome.to_dict()["final_loss"])

"""`lorascope bench`'s packed section: sequential trials vs the packed trainer, and PEFT overhead.

Sequential means one trial after another, as a sweep with ``--pack 1`` runs them: the base model
loaded once and reused by every trial; packed means one ``run_pack`` over the same specs, its
model loaded once too. Both run in the same process on the same device. Text cases can use a
random-init Llama-style model of a chosen size with the tiny LM's tokenizer, so nothing is
downloaded. Runs alone (``python -m app.bench_packed``) without Optuna, for machines that only
have torch, transformers and PEFT.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import shutil
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from core import packed_lora
from core.devices import autocast, pick_device
from core.factory import clear_base_cache
from core.models import TINY_LM, discover_target_modules, load_model_and_tokenizer
from core.specs import SpecError, TrialSpec
from core.tasks import TEXT_DATA
from core.text_task import collate, tokenize
from core.trainer import lr_factor, run_pack, run_trial

BF16_PEAK_FLOPS = 989e12  # H100/H200 SXM dense bf16 (spec sheet)
MODEL_SIZES = {"7M": (256, 8), "26M": (512, 8), "110M": (768, 14)}  # name -> (hidden, layers)


@dataclass(frozen=True)
class PackedCase:
    """One sequential-vs-packed comparison: a grid of configs sharing task, model, batch and steps."""

    name: str
    task: str
    ranks: tuple[int, ...]
    alphas: tuple[float, ...]
    steps: int
    batch_size: int
    lr: float = 1e-3
    model_size: str | None = None  # None: the task's own model; else a MODEL_SIZES key
    target_speedup: float | None = None
    sequential_every: int = 1  # run 1 in n configs sequentially and scale their time by n
    repeats: int = 1  # time each arm this many times and keep the fastest (short cases: less noise)
    ulp_control: bool = False  # also rerun the largest rank of each rule alone from a 1-ulp-perturbed init

    def specs(self, device: str, model: str | None) -> list[TrialSpec]:
        """The case's grid: ranks x both rules x alphas."""
        base = TrialSpec(task=self.task, model=model, steps=self.steps, batch_size=self.batch_size,
                         lr=self.lr, eval_every=self.steps, device=device)
        return [base.with_params(rank=r, rule=rule, alpha=a)
                for a in self.alphas for rule in ("standard", "rslora") for r in self.ranks]


CPU_CASES = [
    PackedCase("synthetic-facts demo grid, K=8", "synthetic-facts", (4, 16, 64, 256), (16.0,), 300, 64,
               target_speedup=3.0, repeats=5),
    PackedCase("tiny-facts, K=8, ranks 4-32", "tiny-facts", (4, 8, 16, 32), (16.0,), 30, 16, target_speedup=1.5,
               repeats=3),
    # ranks up to 4x the tiny LM's width: adapter FLOPs dominate, which packing does not save on a CPU
    PackedCase("tiny-facts, K=8, ranks 8-512", "tiny-facts", (8, 32, 128, 512), (16.0,), 30, 16, ulp_control=True,
               repeats=2),
]
GPU_CASES = [
    PackedCase("26M Llama, K=8", "tiny-facts", (8, 32, 128, 512), (16.0,), 100, 64, model_size="26M",
               target_speedup=8.0, ulp_control=True),
    PackedCase("26M Llama, K=32 (4 alphas)", "tiny-facts", (8, 32, 128, 512), (8.0, 16.0, 32.0, 64.0), 100, 64,
               model_size="26M", target_speedup=16.0, sequential_every=4),
]


def random_llama(size: str, folder: Path, seed: int = 0) -> str:
    """Save a random-init Llama-style model of ``size`` with the tiny LM's tokenizer; return its path."""
    from transformers import LlamaConfig, LlamaForCausalLM

    hidden, layers = MODEL_SIZES[size]
    config = LlamaConfig(vocab_size=2048, hidden_size=hidden, intermediate_size=hidden * 11 // 4,
                         num_hidden_layers=layers, num_attention_heads=hidden // 64,
                         num_key_value_heads=hidden // 64, max_position_embeddings=256,
                         tie_word_embeddings=True, bos_token_id=0, eos_token_id=0, pad_token_id=0)
    torch.manual_seed(seed)
    path = folder / f"llama-{size}"
    LlamaForCausalLM(config).save_pretrained(path)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(TINY_LM / name, path / name)
    return str(path)


def compare(case: PackedCase, device: str, model: str | None) -> dict[str, Any]:
    """Sequential (``--pack 1``) vs packed on ``case``'s grid: time, speed, memory, deviation."""
    specs = case.specs(device, model)
    # every n-th config, shifted per rank block so that the sample holds every rank, rule and alpha
    sequential_idx = [k for k in range(len(specs)) if (k + k // len(case.ranks)) % case.sequential_every == 0]
    run_pack([s.with_params(steps=2, eval_every=2) for s in specs[:2]])  # warm-up: kernels, allocator
    seq, packed = _fastest_interleaved(case.repeats, lambda: _one_at_a_time([specs[k] for k in sequential_idx]),
                                       lambda: _packed(specs), device)
    seq_seconds = seq["seconds"] * case.sequential_every
    by_rule: dict[str, list[float]] = {}
    for k, o in zip(sequential_idx, seq["result"]):
        if o.status == packed["result"][k].status == "completed":
            by_rule.setdefault(specs[k].rule, []).append(_relative(packed["result"][k].final_loss, o.final_loss))
    deviations = [d for values in by_rule.values() for d in values]
    tokens = sum(o.tokens_per_s * o.train_seconds for o in packed["result"] if o.tokens_per_s)
    out = {"case": case.name, "task": case.task, "model_size": case.model_size or "task's own",
           "configs": len(specs), "ranks": list(case.ranks), "alphas": list(case.alphas),
           "steps": case.steps, "batch_size": case.batch_size, "device": str(pick_device(device)),
           "sequential_seconds": round(seq_seconds, 2),
           "sequential_estimated_from": (f"{len(sequential_idx)} of {len(specs)} configs, time x"
                                         f"{case.sequential_every}" if case.sequential_every > 1 else None),
           "packed_seconds": round(packed["seconds"], 2),
           "timing": (f"fastest of {case.repeats} runs per arm, arms in turns" if case.repeats > 1
                      else "one run per arm"),
           "speedup": round(seq_seconds / packed["seconds"], 2),
           "target_speedup": case.target_speedup,
           "packed_tokens_per_s": round(tokens / packed["seconds"], 1),
           "sequential_tokens_per_s": round(tokens / seq_seconds, 1),
           "sequential_peak_memory_mb": seq["peak_mb"], "packed_peak_memory_mb": packed["peak_mb"],
           "max_final_loss_deviation_rel": max(deviations) if deviations else None,
           "max_final_loss_deviation_rel_by_rule": {rule: max(values) for rule, values in by_rule.items()},
           "one_ulp_init_control": ulp_control(specs, sequential_idx, seq["result"]) if case.ulp_control else None,
           "statuses": {"sequential": [o.status for o in seq["result"]],
                        "packed": [o.status for o in packed["result"]]}}
    if model and pick_device(device).type == "cuda":
        params = sum(p.numel() for p in load_model_and_tokenizer(model)[0].parameters())
        out["base_params"] = params
        out["bf16_peak_fraction"] = 6 * params * out["packed_tokens_per_s"] / BF16_PEAK_FLOPS
        out["bf16_peak_note"] = ("6 x base params x tokens per second (forward + backward through the "
                                 "frozen base, an approximation) over 989 TFLOP/s dense bf16")
    return out


ULP = 2.4e-7  # a relative change of about two fp32 ulps (float32 eps is 1.19e-7)


@contextlib.contextmanager
def perturbed_init(relative: float = ULP):
    """Within the block, every adapter's A starts multiplied by ``1 + relative``."""
    original = packed_lora.peft_init

    def peft_init(layers, rank, seed):
        return [(a * (1 + relative), b) for a, b in original(layers, rank, seed)]

    packed_lora.peft_init = peft_init
    try:
        yield
    finally:
        packed_lora.peft_init = original


def ulp_control(specs: list[TrialSpec], sequential_idx: list[int], sequential) -> dict[str, Any]:
    """How far a trial's final loss moves when its init moves by one ulp, for each rule's largest rank.

    Packing changes only the order of float additions (kernel shapes), a perturbation of the same
    size; where one ulp of init already moves the final loss by more than the packed deviation, the
    deviation is the trajectory's own sensitivity, not an error of the packed trainer.
    """
    out = {}
    for rule in sorted({specs[k].rule for k in sequential_idx}):
        k, base = max(((k, o) for k, o in zip(sequential_idx, sequential) if specs[k].rule == rule),
                      key=lambda pair: specs[pair[0]].rank)
        with perturbed_init():
            moved = _fresh_trial(specs[k])
        out[rule] = {"rank": specs[k].rank, "final_loss": base.final_loss, "perturbed_final_loss": moved.final_loss,
                     "deviation_rel": _relative(moved.final_loss, base.final_loss)
                     if base.status == moved.status == "completed" else None}
    return out


def _relative(value: float, reference: float) -> float:
    return abs(value - reference) / abs(reference)


def peft_overhead(device: str, model: str | None = None, steps: int = 30, batch_size: int = 16,
                  repeats: int = 2) -> dict[str, Any]:
    """One trial through lorascope vs the plain PEFT loop it replaces (best of ``repeats`` each)."""
    spec = TrialSpec(task="tiny-facts", model=model, rank=16, steps=steps, batch_size=batch_size,
                     lr=1e-3, eval_every=steps, device=device)
    ours, plain = [], []
    for _ in range(repeats):
        ours.append(_timed(lambda: _fresh_trial(spec), device)["seconds"])
        plain.append(_timed(lambda: _plain_peft_trial(spec), device)["seconds"])
    return {"task": spec.task, "rank": spec.rank, "steps": steps, "batch_size": batch_size,
            "lorascope_seconds": round(min(ours), 3), "peft_seconds": round(min(plain), 3),
            "overhead_pct": round(100 * (min(ours) / min(plain) - 1), 1), "target_overhead_pct": 5.0}


def packed_section(device: str = "auto", *, cases: str = "auto", model_size: str | None = None,
                   steps: int | None = None, batch_size: int | None = None) -> dict[str, Any]:
    """The packed section of ``lorascope bench``: CPU cases always, GPU cases on CUDA (or ``cases``)."""
    check_model_size(model_size)
    resolved = pick_device(device)
    chosen = {"cpu": CPU_CASES, "gpu": GPU_CASES, "all": CPU_CASES + GPU_CASES,
              "auto": CPU_CASES + (GPU_CASES if resolved.type == "cuda" else [])}[cases]
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        models: dict[str, str] = {}
        for case in chosen:
            size = (model_size or case.model_size) if case.task.startswith("tiny") else None
            if size and size != "tiny" and size not in models:
                models[size] = random_llama(size, Path(folder))
            case = replace(case, model_size=size, steps=steps or case.steps, batch_size=batch_size or case.batch_size)
            rows.append(compare(case, str(resolved), models.get(size)))
        overhead = peft_overhead(str(resolved), models.get(model_size or ""), steps=steps or 30,
                                 batch_size=batch_size or 16)
    return {"cases": rows, "single_trial_vs_peft": overhead}


def check_model_size(model_size: str | None) -> None:
    """Raise SpecError unless ``model_size`` is None, tiny or a MODEL_SIZES key."""
    if model_size not in (None, "tiny", *MODEL_SIZES):
        raise SpecError(f"unknown packed model size {model_size!r}: use tiny or one of {', '.join(MODEL_SIZES)}")


def summary_lines(section: dict[str, Any]) -> list[str]:
    """One line per case for the terminal."""
    lines = []
    for r in section["cases"]:
        lines.append(f"{r['case']:<30} packed {r['packed_seconds']:>7.1f}s vs sequential "
                     f"{r['sequential_seconds']:>7.1f}s: {r['speedup']:.2f}x (target {r['target_speedup'] or '-'}x), max final-loss deviation "
                     f"{r['max_final_loss_deviation_rel'] or 0:.2e}")
        for rule, c in (r.get("one_ulp_init_control") or {}).items():
            lines.append(f"  {rule} r={c['rank']}: a 1-ulp init change alone moves the final loss by "
                         f"{c['deviation_rel'] or 0:.2e}")
    o = section["single_trial_vs_peft"]
    lines.append(f"one trial vs plain PEFT: {o['lorascope_seconds']:.2f}s vs {o['peft_seconds']:.2f}s "
                 f"({o['overhead_pct']:+.1f}%, target <= {o['target_overhead_pct']}%)")
    return lines


def _fresh_trial(spec: TrialSpec):
    """One trial in a fresh process's state: its model loaded first, as the plain PEFT loop loads it."""
    return _one_at_a_time([spec])[0]


def _one_at_a_time(specs: list[TrialSpec]):
    """The trials one after another, as ``--pack 1`` runs them: the model loaded once, then reused."""
    clear_base_cache()
    return [run_trial(spec) for spec in specs]


def _packed(specs: list[TrialSpec]):
    """The trials as one pack, the model loaded once."""
    clear_base_cache()
    return run_pack(specs)


def _fastest_interleaved(repeats: int, sequential, packed, device: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The fastest of ``repeats`` timed runs of each arm, run in turns (sequential, packed, ...) so
    that a slow spell of a shared machine falls on both arms alike."""
    runs: tuple[list, list] = ([], [])
    for _ in range(repeats):
        runs[0].append(_timed(sequential, device))
        runs[1].append(_timed(packed, device))
    return tuple(min(arm, key=lambda run: run["seconds"]) for arm in runs)


def _timed(fn, device: str) -> dict[str, Any]:
    cuda = pick_device(device).type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    result = fn()
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    peak = round(torch.cuda.max_memory_allocated() / 2**20, 1) if cuda else None
    return {"result": result, "seconds": seconds, "peak_mb": peak}


def _plain_peft_trial(spec: TrialSpec) -> float:
    """The pre-packing trainer: load, get_peft_model, one AdamW, two host syncs a step; returns eval loss."""
    from peft import LoraConfig, get_peft_model

    device = pick_device(spec.device)
    base, tokenizer = load_model_and_tokenizer(spec.model)
    train, evals = TEXT_DATA[spec.task]()
    train_rows, eval_rows = tokenize(train, tokenizer, spec.max_length), tokenize(evals, tokenizer, spec.max_length)
    torch.manual_seed(spec.seed)
    model = get_peft_model(base, LoraConfig(r=spec.rank, lora_alpha=spec.alpha, task_type="CAUSAL_LM",
                                            target_modules=discover_target_modules(base))).to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=spec.lr, weight_decay=0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, spec))
    order = torch.Generator().manual_seed(spec.seed + 1)
    model.train()
    for _ in range(spec.steps):
        picks = torch.randint(len(train_rows), (spec.batch_size,), generator=order).tolist()
        batch = collate([train_rows[i] for i in picks], tokenizer.pad_token_id, device)
        with autocast(device):
            loss = _mean_token_loss(model, batch)
        float(loss.detach())
        loss.backward()
        float(torch.nn.utils.clip_grad_norm_(params, float("inf")))
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
    model.eval()
    with torch.no_grad(), autocast(device):
        losses = [float(_mean_token_loss(model, collate(eval_rows[i:i + spec.batch_size], tokenizer.pad_token_id,
                                                        device)))
                  for i in range(0, len(eval_rows), spec.batch_size)]
    return sum(losses) / len(losses)


def _mean_token_loss(model, batch) -> torch.Tensor:
    logits = model(input_ids=batch.inputs["input_ids"], attention_mask=batch.inputs["attention_mask"]).logits
    labels = batch.inputs["labels"][:, 1:]
    return torch.nn.functional.cross_entropy(logits[:, :-1].float().reshape(-1, logits.shape[-1]),
                                             labels.reshape(-1), ignore_index=-100)


def main() -> None:
    """``python -m app.bench_packed``: the packed section alone, as JSON."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--cases", default="auto", choices=("auto", "cpu", "gpu", "all"))
    parser.add_argument("--model-size", help=f"tiny or one of {', '.join(MODEL_SIZES)}")
    parser.add_argument("--steps", type=int, help="Override every case's step count (quick checks).")
    parser.add_argument("--batch-size", type=int, help="Override every case's batch size (quick checks).")
    parser.add_argument("--json", required=True)
    args = parser.parse_args()
    section = packed_section(args.device, cases=args.cases, model_size=args.model_size, steps=args.steps,
                             batch_size=args.batch_size)
    result = {"machine": {"python": platform.python_version(), "torch": torch.__version__,
                          "device": str(pick_device(args.device)),
                          "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None},
              "packed": section}
    Path(args.json).write_text(json.dumps(result, indent=2))
    print("\n".join(summary_lines(section)))


if __name__ == "__main__":
    main()

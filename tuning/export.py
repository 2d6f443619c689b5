"""Export a chosen LoRA config: PEFT adapter_config.json, a Python snippet, Axolotl and LLaMA-Factory YAML.

PEFT, Axolotl and LLaMA-Factory all type ``lora_alpha`` as an integer. A fractional alpha is
moved into the other rule's form when that gives an integer with the same gamma, and rounded
otherwise; either way the user is told what changed.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml

from core.scaling import RULES, get_rule
from core.specs import SpecError

FORMATS = ("peft", "python", "axolotl", "llama-factory")
DEFAULT_NAMES = {"peft": "adapter_config.json", "python": "lora_config.py",
                 "axolotl": "axolotl_lora.yaml", "llama-factory": "llamafactory_lora.yaml"}


@dataclass(frozen=True)
class ExportChoice:
    """The adapter to export."""

    rank: int
    alpha: float
    rule: str
    target_modules: tuple[str, ...]
    lora_dropout: float = 0.0
    base_model: str | None = None
    task_type: str | None = "CAUSAL_LM"
    notes: tuple[str, ...] = field(default=())

    @property
    def gamma(self) -> float:
        """The scale this choice applies."""
        return get_rule(self.rule).gamma(self.alpha, self.rank)


def integer_alpha(choice: ExportChoice) -> ExportChoice:
    """Return a choice with an integer alpha, keeping gamma exact where another rule allows it."""
    if _is_integer(choice.alpha):
        return replace(choice, alpha=float(round(choice.alpha)))
    gamma = choice.gamma
    for other in RULES.values():
        alpha = other.alpha_for_gamma(gamma, choice.rank)
        if other.name != choice.rule and _is_integer(alpha):
            note = (f"alpha {choice.alpha:.6g} under {choice.rule} written as {round(alpha)} under "
                    f"{other.name}: the same gamma {gamma:.6g}")
            return replace(choice, alpha=float(round(alpha)), rule=other.name, notes=choice.notes + (note,))
    rounded = max(1, round(choice.alpha))
    new_gamma = get_rule(choice.rule).gamma(rounded, choice.rank)
    note = (f"alpha {choice.alpha:.6g} rounded to {rounded} (frameworks take integers): gamma "
            f"{gamma:.6g} -> {new_gamma:.6g} ({100 * (new_gamma / gamma - 1):+.2f}%)")
    return replace(choice, alpha=float(rounded), notes=choice.notes + (note,))


def _is_integer(value: float) -> bool:
    return abs(value - round(value)) <= 1e-6 * max(1.0, abs(value)) and round(value) >= 1


def peft_config_dict(choice: ExportChoice) -> dict:
    """adapter_config.json contents, as PEFT writes it."""
    from core.adapters import lora_config

    config = lora_config(rank=choice.rank, alpha=int(choice.alpha), rule=choice.rule,
                         target_modules=list(choice.target_modules), lora_dropout=choice.lora_dropout,
                         task_type=choice.task_type)
    config.base_model_name_or_path = choice.base_model
    with tempfile.TemporaryDirectory() as folder:  # exactly what PEFT's own writer produces
        config.save_pretrained(folder)
        return json.loads((Path(folder) / "adapter_config.json").read_text())


def python_snippet(choice: ExportChoice) -> str:
    """A runnable snippet that builds the LoraConfig (and shows how to apply it)."""
    base = choice.base_model or "path/to/base-model"
    return f'''"""LoRA config exported by lorascope: rank {choice.rank}, gamma {choice.gamma:.6g} ({choice.rule})."""
from peft import LoraConfig

lora_config = LoraConfig(
    r={choice.rank},
    lora_alpha={int(choice.alpha)},
    use_rslora={get_rule(choice.rule).use_rslora},  # {"gamma = alpha / sqrt(r)" if get_rule(choice.rule).use_rslora else "gamma = alpha / r"}
    target_modules={list(choice.target_modules)!r},
    lora_dropout={choice.lora_dropout},
    bias="none",
    task_type={choice.task_type!r},
)

if __name__ == "__main__":
    # To train with it:
    #   from transformers import AutoModelForCausalLM
    #   from peft import get_peft_model
    #   model = get_peft_model(AutoModelForCausalLM.from_pretrained({base!r}), lora_config)
    print(lora_config)
'''


def axolotl_yaml(choice: ExportChoice) -> str:
    """Axolotl's LoRA keys."""
    data = {"adapter": "lora", "lora_r": choice.rank, "lora_alpha": int(choice.alpha),
            "peft_use_rslora": get_rule(choice.rule).use_rslora,
            "lora_target_modules": list(choice.target_modules), "lora_dropout": choice.lora_dropout}
    if choice.base_model:
        data = {"base_model": choice.base_model, **data}
    return _yaml(data, choice)


def llama_factory_yaml(choice: ExportChoice) -> str:
    """LLaMA-Factory's LoRA keys."""
    data = {"finetuning_type": "lora", "lora_rank": choice.rank, "lora_alpha": int(choice.alpha),
            "use_rslora": get_rule(choice.rule).use_rslora, "lora_target": ",".join(choice.target_modules),
            "lora_dropout": choice.lora_dropout}
    if choice.base_model:
        data = {"model_name_or_path": choice.base_model, **data}
    return _yaml(data, choice)


def _yaml(data: dict, choice: ExportChoice) -> str:
    head = f"# LoRA config exported by lorascope: rank {choice.rank}, gamma {choice.gamma:.6g} ({choice.rule})\n"
    return head + yaml.safe_dump(data, sort_keys=False)


def render(choice: ExportChoice, fmt: str) -> tuple[ExportChoice, str]:
    """Return (the integer-alpha choice, the text of ``fmt``) without writing anything."""
    if fmt not in FORMATS:
        raise SpecError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    choice = integer_alpha(choice)
    if fmt == "peft":
        return choice, json.dumps(peft_config_dict(choice), indent=2, sort_keys=True) + "\n"
    if fmt == "python":
        return choice, python_snippet(choice)
    if fmt == "axolotl":
        return choice, axolotl_yaml(choice)
    return choice, llama_factory_yaml(choice)


def write_export(choice: ExportChoice, fmt: str, out: str | Path, *, force: bool = False) -> tuple[Path, ExportChoice]:
    """Write ``fmt`` under ``out`` (a folder for peft, a file otherwise); never overwrite without force."""
    out = Path(out)
    choice, text = render(choice, fmt)
    for parent in [out, *out.parents]:
        if parent != out and parent.exists() and not parent.is_dir():
            raise SpecError(f"--out {out} lies inside the file {parent}: choose a folder path")
    if fmt == "peft":
        if out.exists() and not out.is_dir():
            raise SpecError(f"--out {out} is a file: the peft format writes a folder")
        target = out / "adapter_config.json"
    else:
        if out.is_dir():
            raise SpecError(f"--out {out} is a folder: give a file path for the {fmt} format")
        target = out
    if target.exists() and not force:
        raise SpecError(f"{target} already exists: pass --force to overwrite it")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    return target, choice

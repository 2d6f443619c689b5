"""Base causal LMs: the built-in tiny LM, local folders or hub ids, and target-module discovery.

Torch is imported inside the loaders, so resolving a model path (core.tasks.check_sources) stays
light enough for the CLI's up-front checks.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from core.specs import SpecError

if TYPE_CHECKING:
    from torch import nn

TINY_LM = Path(__file__).resolve().parent.parent / "assets" / "tiny-lm"
_NOT_ADAPTED = ("lm_head", "embed_out", "output_layer", "score", "classifier")


def resolve_model_path(model: str | None) -> str:
    """Return the model folder or hub id to load; None means the built-in tiny LM."""
    if model is None:
        if not (TINY_LM / "config.json").is_file():
            raise SpecError(f"built-in tiny LM not found at {TINY_LM}: run scripts/build_tiny_lm.py or pass --model")
        return str(TINY_LM)
    path = Path(model).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise SpecError(f"model folder {model} has no config.json: pass a Hugging Face model folder")
        return str(path)
    looks_like_path = model.startswith((".", "/", "~")) or model.count("/") > 1
    if looks_like_path:
        raise SpecError(f"model path {model} does not exist: pass an existing model folder or a hub id")
    return model


def load_model_and_tokenizer(model: str | None, *, trust_remote_code: bool = False):
    """Load (model, tokenizer) in fp32; raise SpecError with the reason when loading fails."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a bar per trial drowns the sweep's own progress
    # PEFT still calls this transformers API; the notice is not actionable for our users.
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*deprecated")

    name = resolve_model_path(model)
    offline = os.environ.get("HF_HUB_OFFLINE") == "1" or Path(name).exists()
    try:
        tokenizer = AutoTokenizer.from_pretrained(name, trust_remote_code=trust_remote_code,
                                                  local_files_only=offline)
        lm = AutoModelForCausalLM.from_pretrained(name, trust_remote_code=trust_remote_code,
                                                  dtype=torch.float32, local_files_only=offline)
    except (OSError, ValueError) as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        hint = ("pass --trust-remote-code if you trust this model's code"
                if "trust_remote_code" in str(err) else
                "check the path, or for a hub id that you are online")
        raise SpecError(f"could not load model {name}: {first_line} ({hint})") from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return lm, tokenizer


def discover_target_modules(model: nn.Module) -> list[str]:
    """Names (last path component) of every linear layer in attention and MLP blocks."""
    from torch import nn
    from transformers.pytorch_utils import Conv1D

    names = set()
    for full_name, module in model.named_modules():
        if isinstance(module, (nn.Linear, Conv1D)):
            leaf = full_name.rsplit(".", 1)[-1]
            if leaf not in _NOT_ADAPTED:
                names.add(leaf)
    if not names:
        raise SpecError("found no linear layers to adapt in this model: pass --target-modules")
    return sorted(names)


def keeps_label_logits(model: nn.Module) -> bool:
    """True when ``model`` takes a boolean ``logits_to_keep`` mask and returns just those positions' logits.

    transformers computes a causal LM's logits for every position by default; with the mask, the
    output projection and the loss run only where a label is (a third of the tokens on the
    built-in tasks). Checked once on a 3-token input against the full logits, so a model whose
    forward lacks the option (older transformers, remote code) keeps the full computation.
    """
    import inspect

    import torch

    from core.devices import is_out_of_memory

    if "logits_to_keep" not in inspect.signature(model.forward).parameters:
        return False
    device = next(model.parameters()).device
    ids = torch.zeros(1, 3, dtype=torch.long, device=device)
    keep = torch.tensor([[True, False, True]], device=device)
    try:
        with torch.no_grad():
            full = model(input_ids=ids).logits[0, [0, 2]]
            kept = model(input_ids=ids, logits_to_keep=keep).logits
    except (TypeError, IndexError, ValueError, RuntimeError) as err:
        if is_out_of_memory(err):
            raise
        return False
    return kept.shape == full.shape and torch.allclose(kept, full, rtol=1e-4, atol=1e-5)

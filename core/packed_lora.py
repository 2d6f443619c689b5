"""The packed LoRA layer: one frozen ``nn.Linear`` serving K adapters on K row-groups of a batch.

A pack of K configs sees the batch replicated K times, laid out as K groups of rows
(group i belongs to the i-th active config). The frozen base runs once over all K*B rows
(one large matmul); config k adds ``gamma_k * B_k A_k dropout(x_k)`` to its own rows only.
Configs of equal rank are batched with ``torch.bmm`` (no padding to the largest rank), so a
config's rows, weights and gradients never mix with another's and each follows the trajectory
of its own unpacked run. Adapters start exactly as PEFT would start them from the same seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from core.packed_delta import PackedDelta, SharedInputDelta, make_groups
from core.scaling import get_rule
from core.specs import SpecError


@dataclass(frozen=True)
class AdapterSetting:
    """One config's adapter: rank, the scale applied (gamma), dropout and init seed."""

    rank: int
    gamma: float
    dropout: float
    seed: int

    @classmethod
    def from_spec(cls, spec) -> "AdapterSetting":
        """The adapter a TrialSpec asks for (gamma from its scaling rule)."""
        return cls(spec.rank, get_rule(spec.rule).gamma(spec.alpha, spec.rank), spec.lora_dropout, spec.seed)


class Pack:
    """K adapter settings and the active ones, in batch order: row-group i is ``active[i]``.

    Active configs are kept sorted by rank so that equal ranks form contiguous row-groups,
    each handled by one batched matmul.
    """

    def __init__(self, settings: list[AdapterSetting], device: torch.device, shared_input: bool = False) -> None:
        self.settings = settings
        self.device = device
        # True: the layers receive the batch once (not K times), as when the input is the same for
        # every config; the base then runs once and all A's are applied in one matmul.
        self.shared_input = shared_input
        self.set_active(range(len(settings)))

    def set_active(self, configs) -> None:
        """Make ``configs`` (indices into settings) the configs with rows in the next batches."""
        self.active = sorted(configs, key=lambda k: (self.settings[k].rank, k))
        self.dropouts = [self.settings[k].dropout for k in self.active]
        self.groups = make_groups([self.settings[k].rank for k in self.active],
                                  [self.settings[k].gamma for k in self.active], self.device)


class PackedLoRALinear(nn.Module):
    """A frozen ``nn.Linear`` plus the K adapters of the current pack (litgpt-style LoRALinear)."""

    def __init__(self, base: nn.Linear) -> None:
        super().__init__()
        self.base = base
        self.base.weight.requires_grad_(False)
        if self.base.bias is not None:
            self.base.bias.requires_grad_(False)
        self.lora_A = nn.ParameterList()  # config k: (r_k, in_features)
        self.lora_B = nn.ParameterList()  # config k: (out_features, r_k)
        self._a: list[nn.Parameter] = []
        self._b: list[nn.Parameter] = []
        self.pack: Pack | None = None

    def attach(self, pack: Pack | None, weights: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        """Replace the adapters with ``weights`` (one (A, B) per config of ``pack``)."""
        self.pack = pack
        self.lora_A = nn.ParameterList([nn.Parameter(a) for a, _ in weights])
        self.lora_B = nn.ParameterList([nn.Parameter(b) for _, b in weights])
        self._a, self._b = list(self.lora_A), list(self.lora_B)  # plain lists: ParameterList indexing is slow

    def scaling(self, k: int) -> float:
        """The scale gamma applied to config ``k``'s adapter output."""
        return self.pack.settings[k].gamma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pack = self.pack
        if pack is None or not pack.active:
            return self.base(x)
        n = len(pack.active)
        dropout = self.training and any(pack.dropouts)
        if n == 1:  # a lone config: PEFT's own op sequence
            k = pack.active[0]
            xa = _adapter_input(x)
            xa = F.dropout(xa, pack.dropouts[0], training=True) if dropout else xa
            return self.base(x) + F.linear(F.linear(xa, self.lora_A[k]), self.lora_B[k]) * self.scaling(k)
        weights = [self._a[k] for k in pack.active] + [self._b[k] for k in pack.active]
        if pack.shared_input and not dropout:  # base once, one matmul against all A's
            y = self.base(x)
            out = SharedInputDelta.apply(_adapter_input(x).reshape(-1, x.shape[-1]), y.reshape(-1, y.shape[-1]),
                                         pack.groups, *weights)
            return out.reshape(n * y.shape[0], *y.shape[1:])
        if pack.shared_input:
            x = x.repeat(n, *[1] * (x.dim() - 1))  # each config draws its own dropout mask
        y = self.base(x)
        xs = _adapter_input(x).reshape(n, -1, x.shape[-1])  # (n, rows*T, in)
        if dropout:
            xs = torch.stack([F.dropout(xs[i], p, training=True) for i, p in enumerate(pack.dropouts)])
        return PackedDelta.apply(xs, y.reshape(n, -1, y.shape[-1]), pack.groups, *weights).reshape(y.shape)


def _adapter_input(x: torch.Tensor) -> torch.Tensor:
    """The adapters' input: fp32 like the adapters (as PEFT casts it), except under autocast,
    where the matmuls run in bf16 anyway and an fp32 copy of K*B rows would only cost memory."""
    return x if torch.is_autocast_enabled(x.device.type) else x.float()


def install_packed_layers(model: nn.Module, targets: list[str]) -> list[tuple[str, PackedLoRALinear]]:
    """Wrap every ``nn.Linear`` whose name ends in a target; return them in module order (PEFT's)."""
    found = []
    for name, module in list(model.named_modules()):
        leaf = name.rsplit(".", 1)[-1]
        if leaf not in targets:
            continue
        if isinstance(module, PackedLoRALinear):
            found.append((name, module))
            continue
        if not isinstance(module, nn.Linear):
            raise SpecError(f"cannot attach LoRA to {leaf} ({type(module).__name__}): packed LoRA adapts "
                            f"nn.Linear layers only; pass --target-modules naming linear layers")
        parent = model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else model
        wrapped = PackedLoRALinear(module)
        setattr(parent, leaf, wrapped)
        found.append((name, wrapped))
    if not found:
        raise SpecError(f"cannot attach LoRA to {targets}: no layer of the model has such a name; "
                        f"pass --target-modules naming its linear layers")
    return found


def peft_init(layers: list[PackedLoRALinear], rank: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(A, B) per layer exactly as ``torch.manual_seed(seed); get_peft_model(...)`` draws them.

    PEFT builds ``nn.Linear(in, r)`` and ``nn.Linear(r, out)`` (each drawing a kaiming-uniform
    weight), then redraws A kaiming-uniform(a=sqrt(5)) and zeroes B, layer by layer in module
    order; we consume the same draws from a generator seeded alike, on the CPU as PEFT does.
    """
    gen = torch.Generator().manual_seed(seed)
    out = []
    for layer in layers:
        a = torch.empty(rank, layer.base.in_features)
        b = torch.empty(layer.base.out_features, rank)
        nn.init.kaiming_uniform_(a, a=math.sqrt(5), generator=gen)
        nn.init.kaiming_uniform_(b, a=math.sqrt(5), generator=gen)
        nn.init.kaiming_uniform_(a, a=math.sqrt(5), generator=gen)
        out.append((a, b.zero_()))
    return out


def attach_pack(layers: list[PackedLoRALinear], settings: list[AdapterSetting], device: torch.device,
                shared_input: bool = False) -> Pack:
    """Give every layer fresh PEFT-initialised adapters for ``settings``; return the pack."""
    pack = Pack(settings, device, shared_input)
    per_config = [peft_init(layers, s.rank, s.seed) for s in settings]  # [k][layer] -> (A, B)
    for i, layer in enumerate(layers):
        layer.attach(pack, [(a.to(device), b.to(device)) for a, b in (w[i] for w in per_config)])
    return pack


def detach_pack(layers: list[PackedLoRALinear]) -> None:
    """Drop every layer's adapters (the base model stays, ready for the next pack)."""
    for layer in layers:
        layer.attach(None, [])


def config_parameters(layers: list[PackedLoRALinear], k: int) -> list[nn.Parameter]:
    """Config ``k``'s adapter parameters, A then B per layer (PEFT's order)."""
    return [p for layer in layers for p in (layer.lora_A[k], layer.lora_B[k])]

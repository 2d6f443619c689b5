"""The adapters' output for a whole pack as one autograd op, with its backward written out.

Through autograd, a pack's adapters cost a graph node per stack, slice, transpose, matmul and
scale, for every layer and every step: on a small model that bookkeeping, not the arithmetic, is
most of a step. These ops compute ``gamma_k * B_k A_k x_k`` for every config of the pack in one
node, and their backward computes each config's gradients with the matmuls autograd runs for
PEFT's ``lora_B(lora_A(x)) * scaling``. Configs of equal rank share one batched matmul
(``torch.bmm``); a config alone at its rank uses plain matmuls. Under autocast the backward runs
with the forward's autocast state, as ``torch.amp.custom_bwd`` does.
"""

from __future__ import annotations

import contextlib
from typing import NamedTuple

import torch



class Group(NamedTuple):
    """A run of equal-rank configs in the pack's row-group order, handled by one batched matmul."""

    start: int  # first row-group
    stop: int  # one past the last
    rank: int
    offset: int  # first row of the group's A's among all the pack's stacked A rows
    scales: float | torch.Tensor  # gamma: a float for a lone config, else (g, 1, 1) on the device

    @property
    def lone(self) -> bool:
        return self.stop - self.start == 1


def make_groups(ranks: list[int], gammas: list[float], device: torch.device) -> list[Group]:
    """The groups of configs with these ranks and gammas, given in row-group (rank-sorted) order."""
    groups, start, offset = [], 0, 0
    while start < len(ranks):
        stop = start
        while stop < len(ranks) and ranks[stop] == ranks[start]:
            stop += 1
        scales = gammas[start] if stop - start == 1 else torch.tensor(gammas[start:stop], device=device).view(-1, 1, 1)
        groups.append(Group(start, stop, ranks[start], offset, scales))
        offset += (stop - start) * ranks[start]
        start = stop
    return groups


class PackedDelta(torch.autograd.Function):
    """``y[i] + gamma_i * x[i] A_i^T B_i^T`` for n configs, each with its own input rows.

    Called as ``apply(x, y, groups, *A's, *B's)`` with ``x`` (n, rows, in) the adapters' input,
    ``y`` (n, rows, out) the frozen layer's output, and A's and B's in row-group order; returns
    (n, rows, out).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, y: torch.Tensor, groups: list[Group], *weights: torch.Tensor) -> torch.Tensor:
        a_list, b_list = _split(weights)
        ctx.groups, ctx.autocast = groups, _autocast_state(x.device.type)
        a_stacks, b_stacks, hs, outs = [], [], [], []
        for group in groups:
            a, b = _stacked(a_list, group), _stacked(b_list, group)
            xs = x[group.start] if group.lone else x[group.start:group.stop]
            h = _matmul(xs, a.transpose(-1, -2))  # (g, rows, r)
            outs.append(_matmul(h, b.transpose(-1, -2)))
            a_stacks.append(a)
            b_stacks.append(b)
            hs.append(h)
        ctx.save_for_backward(x, *a_stacks, *b_stacks, *hs)
        return _plus_scaled(y, outs, groups, shared=False)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        groups = ctx.groups
        x, *saved = ctx.saved_tensors
        a_stacks, b_stacks, hs = (saved[i * len(groups):(i + 1) * len(groups)] for i in range(3))
        grads_a, grads_b = [], []
        grad_x = torch.empty_like(x) if ctx.needs_input_grad[0] else None  # every row-group is written
        with _autocast_like(ctx, x):
            for group, a, b, h in zip(groups, a_stacks, b_stacks, hs):
                xs = x[group.start] if group.lone else x[group.start:group.stop]
                grad_out = _times_scales(grad[group.start] if group.lone else grad[group.start:group.stop], group)
                grads_b.append(_matmul(grad_out.transpose(-1, -2), h))
                grad_h = _matmul(grad_out, b)  # (g, rows, r)
                grads_a.append(_matmul(grad_h.transpose(-1, -2), xs))
                if grad_x is not None:
                    grad_x[group.start:group.stop] = _matmul(grad_h, a)
        grad_y = grad if ctx.needs_input_grad[1] else None
        return (grad_x, grad_y, None, *_cast([*_unbind(grads_a), *_unbind(grads_b)], b_stacks[0].dtype))


class SharedInputDelta(torch.autograd.Function):
    """``y + gamma_i * x A_i^T B_i^T`` for n configs that all see the same input ``x`` (rows, in).

    Called as ``apply(x, y, groups, *A's, *B's)`` with ``y`` (rows, out) the frozen layer's output;
    all A's are applied in one matmul, laid out so that each rank group's part is contiguous in the
    forward and the backward alike. Returns (n, rows, out).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, y: torch.Tensor, groups: list[Group], *weights: torch.Tensor) -> torch.Tensor:
        a_list, b_list = _split(weights)
        ctx.groups, ctx.autocast = groups, _autocast_state(x.device.type)
        a_all = torch.cat(a_list)  # (sum r, in)
        h_t = a_all @ x.T  # (sum r, rows): a rank group's rows form one contiguous (g, r, rows) block
        b_stacks, outs = [], []
        for group in groups:
            b = _stacked(b_list, group)
            outs.append(_matmul(_block(h_t, group).transpose(-1, -2), b.transpose(-1, -2)))  # (g, rows, out)
            b_stacks.append(b)
        ctx.ranks = [a.shape[0] for a in a_list]
        ctx.save_for_backward(x, a_all, h_t, *b_stacks)
        return _plus_scaled(y, outs, groups, shared=True)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        groups = ctx.groups
        x, a_all, h_t, *b_stacks = ctx.saved_tensors
        grads_b = []
        with _autocast_like(ctx, x):
            grad_h_t = torch.empty_like(h_t)  # (sum r, rows), filled block by block
            for group, b in zip(groups, b_stacks):
                grad_out = _times_scales(grad[group.start] if group.lone else grad[group.start:group.stop], group)
                grads_b.append(_matmul(grad_out.transpose(-1, -2), _block(h_t, group).transpose(-1, -2)))
                _block(grad_h_t, group).copy_(_matmul(b.transpose(-1, -2), grad_out.transpose(-1, -2)))
            grads_a = (grad_h_t @ x).split(ctx.ranks)
            grad_x = (grad_h_t.T @ a_all).to(x.dtype) if ctx.needs_input_grad[0] else None
        grad_y = grad.sum(0) if ctx.needs_input_grad[1] else None
        return (grad_x, grad_y, None, *_cast([*grads_a, *_unbind(grads_b)], a_all.dtype))


def _split(weights):
    n = len(weights) // 2
    return weights[:n], weights[n:]


def _stacked(tensors, group: Group) -> torch.Tensor:
    """The group's weights: the tensor itself for a lone config, else stacked (g, ...)."""
    return tensors[group.start] if group.lone else torch.stack(tensors[group.start:group.stop])


def _matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a @ b: ``torch.bmm`` for a group's (g, ...) stacks, a plain matmul for a lone config."""
    return torch.bmm(a, b) if a.dim() == 3 else a @ b


def _block(h_t: torch.Tensor, group: Group) -> torch.Tensor:
    """The group's rows of ``h_t`` (sum r, rows), as a (r, rows) or (g, r, rows) view."""
    block = h_t[group.offset:group.offset + (group.stop - group.start) * group.rank]
    return block if group.lone else block.view(group.stop - group.start, group.rank, -1)


def _times_scales(t: torch.Tensor, group: Group) -> torch.Tensor:
    """``t`` times each config's gamma (a float for a lone config, as PEFT multiplies)."""
    if group.lone:
        return t * group.scales
    return t * (group.scales if group.scales.dtype == t.dtype else group.scales.to(t.dtype))


def _plus_scaled(y: torch.Tensor, outs: list[torch.Tensor], groups: list[Group], shared: bool) -> torch.Tensor:
    """(n, rows, out): the frozen output plus each group's product times each config's gamma.

    One pass per group, and the same roundings as PEFT's ``result + lora_out * scaling``.
    """
    n = groups[-1].stop
    result = outs[0].new_empty(n, *outs[0].shape[-2:], dtype=torch.promote_types(y.dtype, outs[0].dtype))
    for out, group in zip(outs, groups):
        if group.lone:
            torch.add(y if shared else y[group.start], out, alpha=group.scales, out=result[group.start])
        else:
            scales = group.scales if group.scales.dtype == out.dtype else group.scales.to(out.dtype)
            torch.addcmul(y if shared else y[group.start:group.stop], out, scales,
                          out=result[group.start:group.stop])
    return result


def _unbind(grads: list[torch.Tensor]) -> list[torch.Tensor]:
    """Per-config tensors from per-group ones ((g, ...) stacks, or a lone config's tensor)."""
    return [g for grad in grads for g in (grad.unbind(0) if grad.dim() == 3 else (grad,))]


def _cast(grads: list[torch.Tensor], dtype: torch.dtype) -> list[torch.Tensor]:
    """Gradients in the weights' dtype (under autocast the matmuls ran in a lower precision)."""
    return grads if all(g.dtype == dtype for g in grads) else [g.to(dtype) for g in grads]


def _autocast_state(device_type: str) -> tuple[bool, torch.dtype]:
    """Whether autocast is on for ``device_type`` and its dtype, to run the backward alike."""
    return torch.is_autocast_enabled(device_type), torch.get_autocast_dtype(device_type)


def _autocast_like(ctx, x: torch.Tensor):
    """The forward's autocast state for the backward (nothing to enter when it was off)."""
    enabled, dtype = ctx.autocast
    return torch.autocast(x.device.type, dtype=dtype) if enabled else contextlib.nullcontext()

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

import torch

# (first row-group, end, scales (g, 1, 1)) per run of equal-rank configs, in row-group order
Groups = list[tuple[int, int, torch.Tensor]]


class PackedDelta(torch.autograd.Function):
    """``delta[i] = gamma_i * x[i] A_i^T B_i^T`` for n configs, each with its own input rows.

    Called as ``apply(x, groups, *A's, *B's)`` with ``x`` of shape (n, rows, in), A's and B's in
    row-group order; returns (n, rows, out).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, groups: Groups, *weights: torch.Tensor) -> torch.Tensor:
        a_list, b_list = _split(weights)
        ctx.groups, ctx.autocast = groups, _autocast_state(x.device.type)
        a_stacks, b_stacks, hs, outs = [], [], [], []
        for start, stop, _ in groups:
            a, b = _stacked(a_list, start, stop), _stacked(b_list, start, stop)
            h = _matmul(x[start] if stop - start == 1 else x[start:stop], a, transpose_b=True)  # (g, rows, r)
            outs.append(_matmul(h, b, transpose_b=True))
            a_stacks.append(a)
            b_stacks.append(b)
            hs.append(h)
        ctx.save_for_backward(x, *a_stacks, *b_stacks, *hs)
        return _scaled(outs, groups, len(a_list))

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        groups = ctx.groups
        x, *saved = ctx.saved_tensors
        a_stacks, b_stacks, hs = (saved[i * len(groups):(i + 1) * len(groups)] for i in range(3))
        grads_a, grads_b = [], []
        grad_x = torch.empty_like(x) if ctx.needs_input_grad[0] else None  # every row-group is written
        with _autocast_like(ctx, x):
            for (start, stop, scales), a, b, h in zip(groups, a_stacks, b_stacks, hs):
                xs = x[start] if stop - start == 1 else x[start:stop]
                grad_out = _grad_out(grad, start, stop, scales)
                grads_b.append(_matmul(grad_out, h, transpose_a=True))
                grad_h = _matmul(grad_out, b)  # (g, rows, r)
                grads_a.append(_matmul(grad_h, xs, transpose_a=True))
                if grad_x is not None:
                    grad_x[start:stop] = _matmul(grad_h, a)
        return (grad_x, None, *_cast([*_unbind(grads_a), *_unbind(grads_b)], b_stacks[0].dtype))


class SharedInputDelta(torch.autograd.Function):
    """``delta[i] = gamma_i * x A_i^T B_i^T`` for n configs that all see the same input ``x`` (rows, in).

    Called as ``apply(x, groups, *A's, *B's)``; all A's are applied in one matmul, laid out so that
    each rank group's part is contiguous in the forward and the backward alike. Returns (n, rows, out).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, groups: Groups, *weights: torch.Tensor) -> torch.Tensor:
        a_list, b_list = _split(weights)
        ctx.groups, ctx.autocast = groups, _autocast_state(x.device.type)
        a_all = torch.cat(a_list)  # (sum r, in)
        h_t = a_all @ x.T  # (sum r, rows): a rank group's rows form one contiguous (g, r, rows) block
        b_stacks, outs = [], []
        ctx.ranks = [a.shape[0] for a in a_list]
        for (start, stop, _), block in zip(groups, _blocks(h_t, ctx.ranks, groups)):
            b = _stacked(b_list, start, stop)
            outs.append(_matmul(block, b, transpose_a=True, transpose_b=True))  # (g, rows, out)
            b_stacks.append(b)
        ctx.save_for_backward(x, a_all, h_t, *b_stacks)
        return _scaled(outs, groups, len(a_list))

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        groups = ctx.groups
        x, a_all, h_t, *b_stacks = ctx.saved_tensors
        grads_b = []
        with _autocast_like(ctx, x):
            grad_h_t = torch.empty_like(h_t)  # (sum r, rows), filled block by block
            for (start, stop, scales), b, block, grad_block in zip(
                    groups, b_stacks, _blocks(h_t, ctx.ranks, groups), _blocks(grad_h_t, ctx.ranks, groups)):
                grad_out = _grad_out(grad, start, stop, scales)
                grads_b.append(_matmul(grad_out, block, transpose_a=True, transpose_b=True))
                grad_block.copy_(_matmul(b, grad_out, transpose_a=True, transpose_b=True))  # (g, r, rows)
            grads_a = (grad_h_t @ x).split(ctx.ranks)
            grad_x = (grad_h_t.T @ a_all).to(x.dtype) if ctx.needs_input_grad[0] else None
        return (grad_x, None, *_cast([*grads_a, *_unbind(grads_b)], a_all.dtype))


def _split(weights):
    n = len(weights) // 2
    return weights[:n], weights[n:]


def _stacked(tensors, start: int, stop: int) -> torch.Tensor:
    """The group's weights: the tensor itself for a lone config, else stacked (g, ...)."""
    return tensors[start] if stop - start == 1 else torch.stack(tensors[start:stop])


def _matmul(a: torch.Tensor, b: torch.Tensor, transpose_a: bool = False, transpose_b: bool = False) -> torch.Tensor:
    """a @ b over the last two dims (``torch.bmm`` for a group, a plain matmul for a lone config)."""
    a = a.transpose(-1, -2) if transpose_a else a
    b = b.transpose(-1, -2) if transpose_b else b
    return torch.bmm(a, b) if a.dim() == 3 else a @ b


def _blocks(h_t: torch.Tensor, ranks: list[int], groups: Groups):
    """Each rank group's rows of ``h_t`` (sum r, rows), as (r, rows) or (g, r, rows) views."""
    offset = 0
    for start, stop, _ in groups:
        rank = ranks[start]
        block = h_t[offset:offset + (stop - start) * rank]
        offset += (stop - start) * rank
        yield block if stop - start == 1 else block.view(stop - start, rank, -1)


def _scaled(outs: list[torch.Tensor], groups: Groups, n: int) -> torch.Tensor:
    """The (n, rows, out) delta: each group's product times each config's gamma."""
    delta = outs[0].new_empty(n, *outs[0].shape[-2:])
    for out, (start, stop, scales) in zip(outs, groups):
        if stop - start == 1:
            torch.mul(out, scales[0, 0, 0], out=delta[start])
        else:
            torch.mul(out, scales.to(out.dtype), out=delta[start:stop])
    return delta


def _grad_out(grad: torch.Tensor, start: int, stop: int, scales: torch.Tensor) -> torch.Tensor:
    """The gradient reaching the group's products: the delta's gradient times each gamma."""
    if stop - start == 1:
        return grad[start] * scales[0, 0, 0]
    return grad[start:stop] * scales.to(grad.dtype)


def _unbind(grads: list[torch.Tensor]) -> list[torch.Tensor]:
    """Per-config tensors from per-group ones ((g, ...) stacks, or a lone config's tensor)."""
    return [g for grad in grads for g in (grad.unbind(0) if grad.dim() == 3 else (grad,))]


def _cast(grads: list[torch.Tensor], dtype: torch.dtype) -> list[torch.Tensor]:
    """Gradients in the weights' dtype (under autocast the matmuls ran in a lower precision)."""
    return [g.to(dtype) for g in grads]


def _autocast_state(device_type: str) -> tuple[bool, torch.dtype]:
    """Whether autocast is on for ``device_type`` and its dtype, to run the backward alike."""
    return torch.is_autocast_enabled(device_type), torch.get_autocast_dtype(device_type)


def _autocast_like(ctx, x: torch.Tensor):
    enabled, dtype = ctx.autocast
    return torch.autocast(x.device.type, dtype=dtype, enabled=enabled)

"""core/packed_delta.py: the pack's adapter op equals PEFT's per-config arithmetic, forward and backward."""

import pytest
import torch

from core.packed_delta import PackedDelta, SharedInputDelta

RANKS = [2, 4, 4, 4, 8]  # a lone rank, a group of three, another lone rank (row-group order: sorted)
GAMMAS = [0.5, 2.0, 1.0, 0.25, 3.0]
ROWS, IN, OUT = 6, 5, 7


def _groups(dtype):
    """Runs of equal rank as the pack builds them: (start, stop, scales (g, 1, 1))."""
    groups, start = [], 0
    while start < len(RANKS):
        stop = start
        while stop < len(RANKS) and RANKS[stop] == RANKS[start]:
            stop += 1
        groups.append((start, stop, torch.tensor(GAMMAS[start:stop], dtype=dtype).view(-1, 1, 1)))
        start = stop
    return groups


def _weights(dtype, seed=0):
    gen = torch.Generator().manual_seed(seed)
    a = [torch.randn(r, IN, generator=gen, dtype=dtype, requires_grad=True) for r in RANKS]
    b = [torch.randn(OUT, r, generator=gen, dtype=dtype, requires_grad=True) for r in RANKS]
    return a + b


def _reference(x, weights, shared):
    """PEFT's ``lora_B(lora_A(x)) * scaling`` per config, through autograd."""
    n = len(RANKS)
    a, b = weights[:n], weights[n:]
    return torch.stack([(x if shared else x[k]) @ a[k].T @ b[k].T * GAMMAS[k] for k in range(n)])


@pytest.mark.parametrize("shared", [False, True])
def test_gradients_pass_gradcheck_in_float64(shared):
    shape = (ROWS, IN) if shared else (len(RANKS), ROWS, IN)
    x = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    op = SharedInputDelta if shared else PackedDelta
    groups = _groups(torch.float64)
    assert torch.autograd.gradcheck(lambda x, *w: op.apply(x, groups, *w), (x, *_weights(torch.float64)))


@pytest.mark.parametrize("shared", [False, True])
def test_forward_and_gradients_equal_pefts_arithmetic_in_float32(shared):
    shape = (ROWS, IN) if shared else (len(RANKS), ROWS, IN)
    x = torch.randn(*shape, requires_grad=True)
    ours, theirs = _weights(torch.float32), _weights(torch.float32)
    op = SharedInputDelta if shared else PackedDelta
    out = op.apply(x, _groups(torch.float32), *ours)
    ref = _reference(x, theirs, shared)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    upstream = torch.randn_like(out)
    grads = torch.autograd.grad(out, [x, *ours], upstream)
    ref_grads = torch.autograd.grad(ref, [x, *theirs], upstream)
    for got, want in zip(grads, ref_grads):
        assert got.shape == want.shape and got.dtype == want.dtype
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_an_input_without_gradient_gets_none_and_weights_still_get_theirs():
    x = torch.randn(len(RANKS), ROWS, IN)
    weights = _weights(torch.float32)
    PackedDelta.apply(x, _groups(torch.float32), *weights).sum().backward()
    assert all(w.grad is not None and torch.isfinite(w.grad).all() for w in weights)


@pytest.mark.parametrize("shared", [False, True])
def test_under_bf16_autocast_weights_get_fp32_gradients_close_to_autograds(shared):
    """The GPU path: bf16 matmuls, fp32 weights; the backward runs under the forward's autocast state."""
    shape = (ROWS, IN) if shared else (len(RANKS), ROWS, IN)
    x = torch.randn(*shape, requires_grad=True)
    ours, theirs = _weights(torch.float32), _weights(torch.float32)
    op = SharedInputDelta if shared else PackedDelta
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = op.apply(x, _groups(torch.float32), *ours)
        ref = _reference(x, theirs, shared)
    assert out.dtype == torch.bfloat16
    upstream = torch.randn(out.shape)
    grads = torch.autograd.grad(out.float(), [x, *ours], upstream)
    ref_grads = torch.autograd.grad(ref.float(), [x, *theirs], upstream)
    for got, want in zip(grads, ref_grads):
        assert got.dtype == torch.float32
        torch.testing.assert_close(got, want, rtol=5e-2, atol=5e-2)

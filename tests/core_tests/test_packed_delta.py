"""core/packed_delta.py: the pack's adapter op equals PEFT's ``result + lora_B(lora_A(x)) * scaling`` per config."""

import pytest
import torch

from core.packed_delta import PackedDelta, SharedInputDelta, make_groups

DEVICES = [pytest.param("cpu"), pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(),
                                                                              reason="no CUDA GPU"))]
RANKS = [2, 4, 4, 4, 8]  # a lone rank, a group of three, another lone rank (row-group order: sorted)
GAMMAS = [0.5, 2.0, 1.0, 0.25, 3.0]
ROWS, IN, OUT = 6, 5, 7


def each_op_and_device(test):
    """Run ``test`` for both ops (per-config input and shared input) on each device."""
    return pytest.mark.parametrize("device", DEVICES)(pytest.mark.parametrize("shared", [False, True])(test))


def _op_and_weights(shared, device):
    """The op under test, and two equal sets of fp32 weights: ours for the op, theirs for PEFT's arithmetic."""
    return (SharedInputDelta if shared else PackedDelta), _weights(torch.float32, device), _weights(torch.float32, device)


def _groups(dtype, device="cpu"):
    """Runs of equal rank as the pack builds them (row-group order), scales in ``dtype``."""
    return [group._replace(scales=group.scales if group.lone else group.scales.to(dtype))
            for group in make_groups(RANKS, GAMMAS, torch.device(device))]


def _weights(dtype, device="cpu", seed=0):
    gen = torch.Generator().manual_seed(seed)
    a = [torch.randn(r, IN, generator=gen, dtype=dtype).to(device).requires_grad_() for r in RANKS]
    b = [torch.randn(OUT, r, generator=gen, dtype=dtype).to(device).requires_grad_() for r in RANKS]
    return a + b


def _reference(x, y, weights, shared):
    """PEFT's ``result + lora_B(lora_A(x)) * scaling`` per config, through autograd."""
    n = len(RANKS)
    a, b = weights[:n], weights[n:]
    return torch.stack([(y if shared else y[k]) + (x if shared else x[k]) @ a[k].T @ b[k].T * GAMMAS[k]
                        for k in range(n)])


def _inputs(shared, dtype=torch.float32, device="cpu"):
    """The adapters' input and the frozen output, both needing gradients (as inside a text model)."""
    x = torch.randn(*((ROWS, IN) if shared else (len(RANKS), ROWS, IN)), dtype=dtype, device=device, requires_grad=True)
    y = torch.randn(*((ROWS, OUT) if shared else (len(RANKS), ROWS, OUT)), dtype=dtype, device=device,
                    requires_grad=True)
    return x, y


def _assert_same_gradients(out, ref, inputs, ref_inputs, tolerance):
    """The gradients of ``out`` and ``ref`` for one random upstream gradient agree, shape, dtype and value."""
    upstream = torch.randn_like(out)
    grads = torch.autograd.grad(out, inputs, upstream, retain_graph=True)  # the inputs' graph may be shared
    ref_grads = torch.autograd.grad(ref, ref_inputs, upstream)
    for got, want in zip(grads, ref_grads):
        assert got.shape == want.shape and got.dtype == want.dtype
        torch.testing.assert_close(got, want, rtol=tolerance, atol=tolerance)


@each_op_and_device
def test_gradients_pass_gradcheck_in_float64(shared, device):
    x, y = _inputs(shared, torch.float64, device)
    op = SharedInputDelta if shared else PackedDelta
    groups = _groups(torch.float64, device)
    weights = _weights(torch.float64, device)
    assert torch.autograd.gradcheck(lambda x, y, *w: op.apply(x, y, groups, *w), (x, y, *weights))


@each_op_and_device
def test_forward_and_gradients_equal_pefts_arithmetic_in_float32(shared, device):
    x, y = _inputs(shared, device=device)
    op, ours, theirs = _op_and_weights(shared, device)
    out = op.apply(x, y, _groups(torch.float32, device), *ours)
    ref = _reference(x, y, theirs, shared)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    _assert_same_gradients(out, ref, [x, y, *ours], [x, y, *theirs], tolerance=1e-5)


def test_inputs_without_gradient_get_none_and_weights_still_get_theirs():
    x, y = torch.randn(len(RANKS), ROWS, IN), torch.randn(len(RANKS), ROWS, OUT)
    weights = _weights(torch.float32)
    PackedDelta.apply(x, y, _groups(torch.float32), *weights).sum().backward()
    assert all(w.grad is not None and torch.isfinite(w.grad).all() for w in weights)


@each_op_and_device
def test_under_bf16_autocast_weights_get_fp32_gradients_close_to_autograds(shared, device):
    """The GPU path: bf16 matmuls, fp32 weights; the backward runs under the forward's autocast state."""
    x, _ = _inputs(shared, device=device)
    op, ours, theirs = _op_and_weights(shared, device)
    base = torch.nn.Linear(IN, OUT).to(device)
    with torch.autocast(device, dtype=torch.bfloat16):
        y = base(x)  # bf16, as a frozen layer's output is under autocast
        out = op.apply(x, y, _groups(torch.float32, device), *ours)
        ref = _reference(x, y, theirs, shared)
    assert out.dtype == torch.bfloat16
    _assert_same_gradients(out.float(), ref.float(), [x, *ours], [x, *theirs], tolerance=5e-2)
    assert all(w.dtype == torch.float32 for w in ours)

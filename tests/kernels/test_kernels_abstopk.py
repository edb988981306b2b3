"""AbsTopK on the reference path: exact k, tie rule, gradients, errors."""

import pytest
import torch
from kernel_oracles import INPUT_KINDS, make_input, oracle_rows

from sparsepipe.kernels import abstopk, abstopk_reference, select_torch
from sparsepipe.kernels.keys import bits_view

DTYPES = (torch.float32, torch.bfloat16, torch.float16, torch.float64)
SHAPES = ((7, 1), (5, 37), (3, 4, 129), (64, 1024))


def _ks(n: int) -> list[int]:
    return sorted({1, max(1, n // 4), n})


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("kind", INPUT_KINDS)
def test_keeps_exactly_the_k_largest_magnitudes(dtype, shape, kind):
    x = make_input(kind, shape, dtype)
    for k in _ks(shape[-1]):
        keep = oracle_rows(x, k, absolute=True)
        expected = torch.where(keep, x, 0.0)
        out = abstopk(x, k)
        assert out.dtype == dtype and out.shape == x.shape
        assert torch.equal(bits_view(out), bits_view(expected)), f"k={k}"
        assert torch.equal(select_torch.select_rows(x, k, absolute=True), keep), f"torch path, k={k}"
        assert bool(((out != 0).sum(-1) <= k).all())


def test_ties_go_to_the_lower_index():
    x = torch.tensor([[0.5, -2.0, 2.0, 1.0, -2.0], [3.0, 3.0, -3.0, 3.0, 1.0]])
    out = abstopk(x, 2)
    assert torch.equal(out, torch.tensor([[0.0, -2.0, 2.0, 0.0, 0.0], [3.0, 3.0, 0.0, 0.0, 0.0]]))


def test_signed_zeros_tie_and_nan_counts_as_largest():
    x = torch.tensor([[-0.0, 0.0, 0.0], [1.0, float("nan"), float("inf")]])
    out = abstopk(x, 1)
    assert torch.equal(bits_view(out[0]), bits_view(torch.tensor([-0.0, 0.0, 0.0])))
    assert out[1, 1].isnan() and out[1, 0] == 0 and out[1, 2] == 0


def test_all_zero_rows_pass_the_gradient_through_their_first_k_positions():
    x = torch.zeros(2, 6, requires_grad=True)
    out = abstopk(x, 2)
    assert torch.equal(out, torch.zeros(2, 6))
    out.backward(torch.ones(2, 6))
    assert torch.equal(x.grad, torch.tensor([[1.0, 1, 0, 0, 0, 0]] * 2))


def test_k_equal_to_dim_is_the_identity_and_k_1_keeps_the_max():
    x = make_input("randn", (4, 9), torch.float32)
    assert torch.equal(abstopk(x, 9), x)
    argmax = x.abs().argmax(-1, keepdim=True)
    assert torch.equal(abstopk(x, 1), torch.zeros_like(x).scatter(-1, argmax, x.gather(-1, argmax)))


def test_gradient_is_the_incoming_gradient_on_kept_entries():
    x = make_input("randn", (3, 5, 40), torch.float32).requires_grad_()
    upstream = make_input("randn", (3, 5, 40), torch.float32, seed=1)
    out = abstopk(x, 10)
    out.backward(upstream)
    assert torch.equal(x.grad, torch.where(oracle_rows(x.detach(), 10, absolute=True), upstream, 0.0))


def test_gradcheck_float64():
    x = make_input("randn", (3, 8), torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: abstopk(t, 3), (x,))


def test_backward_saves_a_bool_mask_not_x():
    x = make_input("randn", (4, 16), torch.float32).requires_grad_()
    saved = abstopk(x, 4).grad_fn.saved_tensors
    assert [t.dtype for t in saved] == [torch.bool]


def test_no_grad_and_views_give_the_same_values():
    x = make_input("randn", (16, 24), torch.float32)
    with torch.no_grad():
        plain = abstopk(x, 5)
    transposed = abstopk(x.t().contiguous().t(), 5)  # non-contiguous input
    assert torch.equal(plain, transposed)
    assert abstopk(torch.empty(0, 7), 3).shape == (0, 7)


@pytest.mark.parametrize("k", [0, -1, 8])
def test_k_outside_1_to_dim_is_a_value_error(k):
    with pytest.raises(ValueError, match=r"abstopk: k=.* outside \[1, 7\]"):
        abstopk(torch.randn(2, 7), k)


def test_non_int_k_and_non_float_x_are_type_errors():
    with pytest.raises(TypeError):
        abstopk(torch.randn(2, 7), 2.5)
    with pytest.raises(TypeError, match="floating"):
        abstopk_reference(torch.ones(2, 7, dtype=torch.int32), 2)

"""The Triton kernels on a real GPU, at training sizes, against the reference."""

import pytest
import torch
from kernel_oracles import make_input

from sparsepipe.kernels import (
    abstopk_reference,
    abstopk_triton,
    row_topk_mask_reference,
    row_topk_mask_triton,
    weight_topk_mask_reference,
    weight_topk_mask_triton,
)
from sparsepipe.kernels.keys import bits_view

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]


@pytest.mark.parametrize("dtype", (torch.float32, torch.bfloat16), ids=str)
@pytest.mark.parametrize("kind", ("randn", "ties"))
@pytest.mark.parametrize(("shape", "k"), [((4096, 1024), 256), ((300, 3000), 7), ((64, 8192), 8192)], ids=str)
def test_abstopk_and_row_mask_match_the_reference(dtype, kind, shape, k):
    x = make_input(kind, shape, dtype).requires_grad_()
    x_cuda = x.detach().cuda().requires_grad_()
    upstream = make_input("randn", shape, dtype, seed=1)
    expected = abstopk_reference(x, k)
    expected.backward(upstream)
    out = abstopk_triton(x_cuda, k)
    out.backward(upstream.cuda())
    assert torch.equal(bits_view(out.detach().cpu()), bits_view(expected.detach()))
    assert torch.equal(x_cuda.grad.cpu(), x.grad)
    assert torch.equal(row_topk_mask_triton(x.cuda(), k).cpu(), row_topk_mask_reference(x, k))


@pytest.mark.parametrize("dtype", (torch.float32, torch.bfloat16), ids=str)
@pytest.mark.parametrize("kind", ("randn", "ties"))
def test_weight_topk_matches_the_reference(dtype, kind):
    w = make_input(kind, (2048, 8192), dtype)
    protected = torch.rand(w.shape, generator=torch.Generator().manual_seed(3)) < 0.001
    for k, mask in ((w.numel() // 64, None), (w.numel() // 64, protected), (w.numel() // 2, None)):
        expected = weight_topk_mask_reference(w, k, mask)
        got = weight_topk_mask_triton(w.cuda(), k, None if mask is None else mask.cuda())
        assert torch.equal(got.cpu(), expected), f"k={k}, protected={mask is not None}"

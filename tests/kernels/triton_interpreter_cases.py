"""Triton kernels vs the reference under TRITON_INTERPRET=1 (run as a script).

Triton decides at import whether @triton.jit compiles or interprets, so these
cases run in their own process (test_kernels_triton_interpreter.py starts it)
and print one JSON line per case: {"group", "case", "error"}. Shapes stay small:
the interpreter executes every block op in numpy.
"""

import json
import os
import sys
import traceback

os.environ["TRITON_INTERPRET"] = "1"

import torch  # noqa: E402
from kernel_oracles import INPUT_KINDS, make_input  # noqa: E402

import sparsepipe.kernels as kernels  # noqa: E402
from sparsepipe.kernels.keys import bits_view  # noqa: E402

DTYPES = (torch.float32, torch.bfloat16)
ROW_SHAPES = ((3, 1), (4, 37), (2, 3, 130))
# (70, 130) spans 3 blocks of the whole-matrix kernels, so tie offsets cross blocks
MATRIX_SHAPES = ((5, 37), (70, 130))


def abstopk_case(x, k):
    x = x.clone().requires_grad_()
    x_ref = x.detach().clone().requires_grad_()
    out, expected = kernels.abstopk_triton(x, k), kernels.abstopk_reference(x_ref, k)
    assert torch.equal(bits_view(out.detach()), bits_view(expected.detach())), "values differ"
    upstream = make_input("randn", tuple(x.shape), x.dtype, seed=1)
    out.backward(upstream)
    expected.backward(upstream)
    assert torch.equal(bits_view(x.grad), bits_view(x_ref.grad)), "gradients differ"


def row_mask_case(x, j):
    assert torch.equal(kernels.row_topk_mask_triton(x, j), kernels.row_topk_mask_reference(x, j))


def weight_case(w, k, protected):
    got = kernels.weight_topk_mask_triton(w, k, protected)
    assert torch.equal(got, kernels.weight_topk_mask_reference(w, k, protected))


def cases():
    for dtype in DTYPES:
        for kind in INPUT_KINDS:
            for shape in ROW_SHAPES:
                x = make_input(kind, shape, dtype)
                for k in sorted({1, max(1, shape[-1] // 4), shape[-1]}):
                    yield "abstopk", f"{dtype} {kind} {shape} k={k}", abstopk_case, (x, k)
            x = make_input(kind, (4, 37), dtype)
            for j in (1, 4, 37):
                yield "row_topk_mask", f"{dtype} {kind} (4, 37) j={j}", row_mask_case, (x, j)
            for shape in MATRIX_SHAPES:
                w = make_input(kind, shape, dtype)
                n = w.numel()
                protected = torch.zeros(shape, dtype=torch.bool)
                protected.view(-1)[:: max(1, n // 10)] = True
                for k in sorted({1, n // 64, n // 2, n}):
                    yield "weight_topk_mask", f"{dtype} {kind} {shape} k={k}", weight_case, (w, k, None)
                name = f"{dtype} {kind} {shape} protected"
                yield "weight_topk_mask", name, weight_case, (w, n // 4, protected)


def main() -> None:
    for group, name, check, args in cases():
        try:
            check(*args)
            error = None
        except Exception:  # every failure is reported, the run goes on
            error = traceback.format_exc(limit=3)
        print(json.dumps({"group": group, "case": name, "error": error}), flush=True)


if __name__ == "__main__":
    sys.exit(main())

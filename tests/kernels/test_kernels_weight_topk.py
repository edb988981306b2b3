"""Per-matrix weight top-k and the per-row top-j mask on the reference path."""

import pytest
import torch
from kernel_oracles import INPUT_KINDS, make_input, oracle_rows, oracle_whole

from sparsepipe.kernels import row_topk_mask, select_torch, weight_topk_mask

DTYPES = (torch.float32, torch.bfloat16, torch.float64)
SHAPES = ((1,), (5, 37), (4, 5, 6), (300, 700))


def _ks(n: int) -> list[int]:
    return sorted({0, 1, max(1, n // 64), n // 2, n})


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("kind", INPUT_KINDS)
def test_weight_topk_keeps_exactly_the_k_largest_magnitudes(dtype, shape, kind):
    w = make_input(kind, shape, dtype)
    for k in _ks(w.numel()):
        keep = weight_topk_mask(w, k)
        assert keep.dtype == torch.bool and keep.shape == w.shape
        assert int(keep.sum()) == k
        assert torch.equal(keep, oracle_whole(w, k)), f"k={k}"


@pytest.mark.parametrize("dtype", (torch.float32, torch.bfloat16), ids=str)
@pytest.mark.parametrize("kind", ("randn", "ties"))
def test_large_matrices_split_over_threads_with_wide_digits(dtype, kind):
    w = make_input(kind, (1024, 1024), dtype)
    for k in (1, w.numel() // 64, w.numel() // 2):
        assert torch.equal(weight_topk_mask(w, k), oracle_whole(w, k)), f"k={k}"


@pytest.mark.parametrize("shape", [(5, 37), (1024, 1024)], ids=str)
def test_protected_entries_are_kept_and_count_toward_k(shape):
    w = make_input("ties", shape, torch.float32)
    protected = torch.rand(shape, generator=torch.Generator().manual_seed(1)) < 0.05
    k = int(protected.sum()) + w.numel() // 10
    keep = weight_topk_mask(w, k, protected)
    assert int(keep.sum()) == k
    assert bool(keep[protected].all())
    assert torch.equal(keep, oracle_whole(w, k, protected))
    assert torch.equal(weight_topk_mask(w, int(protected.sum()), protected), protected)


def test_more_protected_entries_than_k_names_both_numbers():
    protected = torch.zeros(4, 4, dtype=torch.bool)
    protected[0] = True
    with pytest.raises(ValueError, match=r"4 protected entries exceed k=3"):
        weight_topk_mask(torch.randn(4, 4), 3, protected)
    with pytest.raises(ValueError, match="bool mask"):
        weight_topk_mask(torch.randn(4, 4), 3, protected.float())


def test_surplus_ties_are_dropped_by_flat_index_across_threads():
    w = torch.zeros(1 << 20)
    k = (1 << 19) + 3
    keep = weight_topk_mask(w, k)
    assert bool(keep[:k].all()) and not bool(keep[k:].any())


def test_weight_topk_is_deterministic_and_torch_path_agrees():
    w = make_input("ties", (64, 96), torch.bfloat16)
    protected = torch.zeros(64, 96, dtype=torch.bool)
    protected[:, 0] = True
    first = weight_topk_mask(w, 500, protected)
    assert torch.equal(first, weight_topk_mask(w, 500, protected))
    assert torch.equal(first, select_torch.select_whole(w, 500 - 64, protected))


@pytest.mark.parametrize("k", [-1, 6 * 7 + 1])
def test_weight_k_outside_0_to_numel_is_a_value_error(k):
    with pytest.raises(ValueError, match=r"weight_topk_mask: k=.* outside \[0, 42\]"):
        weight_topk_mask(torch.randn(6, 7), k)


@pytest.mark.parametrize("dtype", (torch.float32, torch.bfloat16), ids=str)
@pytest.mark.parametrize("kind", INPUT_KINDS)
def test_row_topk_mask_keeps_the_j_largest_signed_scores(dtype, kind):
    scores = make_input(kind, (33, 70), dtype)
    for j in (0, 1, 4, 70):
        keep = row_topk_mask(scores, j)
        assert bool((keep.sum(-1) == j).all())
        assert torch.equal(keep, oracle_rows(scores, j, absolute=False)), f"j={j}"
        if j:
            torch_path = select_torch.select_rows(scores, j, absolute=False)
            assert torch.equal(torch_path, keep), f"torch path, j={j}"


def test_row_topk_mask_is_signed_and_breaks_ties_by_index():
    scores = torch.tensor([[-5.0, 1.0, 1.0, -0.5, 1.0]])
    assert torch.equal(row_topk_mask(scores, 2), torch.tensor([[False, True, True, False, False]]))


def test_row_topk_mask_of_the_transpose_selects_per_column():
    scores = make_input("ties", (6, 9), torch.float32)
    per_column = row_topk_mask(scores.t(), 2).t()
    assert bool((per_column.sum(0) == 2).all())
    assert torch.equal(per_column, oracle_rows(scores.t(), 2, absolute=False).t())


def test_row_topk_mask_j_outside_0_to_n_is_a_value_error():
    with pytest.raises(ValueError, match=r"row_topk_mask: j=9 is outside \[0, 8\]"):
        row_topk_mask(torch.randn(3, 8), 9)


def test_parameters_are_accepted_as_they_are():
    weight = torch.nn.Parameter(make_input("randn", (8, 16), torch.float32))
    assert int(weight_topk_mask(weight, 10).sum()) == 10
    assert bool((row_topk_mask(weight, 2).sum(-1) == 2).all())

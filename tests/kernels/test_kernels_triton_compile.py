"""The Triton kernels compile for a real GPU (sm_90), with no GPU attached.

The interpreter runs the kernels as numpy and forgives what the compiler does
not (types of loop-carried values, unsupported ops); compiling every kernel
down to a cubin catches those on CPU-only CI.
"""

import pytest

triton = pytest.importorskip("triton")
GPUTarget = pytest.importorskip("triton.backends.compiler").GPUTarget
ASTSource = pytest.importorskip("triton.compiler").ASTSource

from sparsepipe.kernels import triton_rows, triton_whole  # noqa: E402
from sparsepipe.kernels.dispatch import triton_interpreting  # noqa: E402

pytestmark = [
    pytest.mark.skipif(triton_interpreting(), reason="kernels are interpreted in this process"),
    pytest.mark.filterwarnings("ignore:TRITON_DEFAULT_FP_FUSION"),
]

HOPPER = GPUTarget("cuda", 90, 32)


def _signature(kernel, names_and_types: str, constexprs: dict) -> dict:
    """The kernel's parameters in declaration order, typed."""
    types = dict(pair.split(":") for pair in names_and_types.split())
    types.update({name: "constexpr" for name in constexprs})
    return {name: types[name] for name in kernel.arg_names}


ROW_ARGS = "keep_ptr:*u8 n_cols:i32 k:i32 stride_bits_row:i32 stride_keep_row:i32 stride_values_row:i32"
WHOLE_ARGS = "bits_ptr:*i16 protected_ptr:*u8 state_ptr:*i64 n_elements:i32"

# name: (kernel, runtime arguments as name:type, compile-time arguments)
KERNELS = {
    "row_topk fp32 abs values": (
        triton_rows._row_topk_kernel,
        f"bits_ptr:*i32 values_ptr:*i32 {ROW_ARGS}",
        dict(ABSOLUTE=True, WRITE_VALUES=True, SIGN_SHIFT=31, BLOCK_SIZE=1024),
    ),
    "row_topk bf16 signed mask": (
        triton_rows._row_topk_kernel,
        f"bits_ptr:*i16 values_ptr:*i16 {ROW_ARGS}",
        dict(ABSOLUTE=False, WRITE_VALUES=False, SIGN_SHIFT=15, BLOCK_SIZE=128),
    ),
    "mask_grad": (
        triton_rows._mask_grad_kernel,
        "grad_bits_ptr:*i32 keep_ptr:*u8 out_bits_ptr:*i32 n_elements:i32",
        dict(BLOCK_SIZE=1024),
    ),
    "digit_histogram first level": (
        triton_whole._digit_histogram_kernel,
        f"{WHOLE_ARGS} histogram_ptr:*i32",
        dict(SHIFT=8, FIRST_LEVEL=True, HAS_PROTECTED=True, SIGN_SHIFT=15, RADIX_BITS=8, BLOCK_SIZE=4096),
    ),
    "digit_histogram later level": (
        triton_whole._digit_histogram_kernel,
        f"{WHOLE_ARGS} histogram_ptr:*i32",
        dict(SHIFT=0, FIRST_LEVEL=False, HAS_PROTECTED=False, SIGN_SHIFT=15, RADIX_BITS=8, BLOCK_SIZE=4096),
    ),
    "pick_digit": (
        triton_whole._pick_digit_kernel,
        "histogram_ptr:*i32 state_ptr:*i64",
        dict(SHIFT=0, RADIX_BITS=8),
    ),
    "count_ties": (
        triton_whole._count_ties_kernel,
        f"{WHOLE_ARGS} block_ties_ptr:*i64",
        dict(HAS_PROTECTED=True, SIGN_SHIFT=15, BLOCK_SIZE=4096),
    ),
    "write_keep": (
        triton_whole._write_keep_kernel,
        f"{WHOLE_ARGS} ties_before_block_ptr:*i64 keep_ptr:*u8",
        dict(HAS_PROTECTED=True, SIGN_SHIFT=15, BLOCK_SIZE=4096),
    ),
}


@pytest.mark.parametrize("name", KERNELS)
def test_kernel_compiles_for_sm90(name):
    kernel, args, constexprs = KERNELS[name]
    source = ASTSource(fn=kernel, signature=_signature(kernel, args, constexprs), constexprs=constexprs)
    compiled = triton.compile(source, target=HOPPER, options={"num_warps": 4})
    assert compiled.asm["cubin"]

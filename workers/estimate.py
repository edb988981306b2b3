"""What a cell costs before it runs: FLOPs, memory, and the work that is not FLOPs.

Each stage that computes declares `Stage.estimate`, a "module:function" called as
function(cell, config, cells, device_type) -> CellCost | None, where `cells` maps every listed
cell's ref to its Cell (a prune cell reads its checkpoint's model from there) and device_type is
"cuda" or "cpu" (what `precision: auto` resolves against). `sparsepipe plan --estimate` turns the
costs into times and a fit check for a named device (pipeline/estimate.py); nothing here knows devices.

The model of a transformer's cost is the usual one (Kaplan et al. 2020, Korthikanti et al. 2022):
2 FLOPs per weight-matrix entry per token forward, twice that backward, plus attention's QK^T and AV;
weight sparsity saves no FLOPs (the weights are dense tensors holding zeros). Activations are counted
per token and layer from what the forward saves for the backward (gpt.py), for one microbatch of a step
(`train.microbatches`: the backward frees a microbatch's before the next forward); the estimates are meant
to be right within a factor of about 1.5, which is what deciding "does it fit, roughly how long" needs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from .nn.config import ModelConfig, TrainConfig

FP32, BF16 = 4, 2
# Bytes of memory traffic per parameter per optimizer step: read and write the weight, its gradient and
# AdamW's two moments (32), plus the weight top-k's passes over the matrices (~8).
STEP_BYTES_PER_PARAM = 40


@dataclass(frozen=True)
class CellCost:
    """One cell's work; memory is per device (one data-parallel worker, or one concurrent trial)."""

    flops: float  # all floating-point work of the cell, summed over its workers
    param_bytes: int
    optimizer_bytes: int = 0  # gradients and optimizer moments
    activation_bytes: int = 0  # the peak of one step: saved activations and the logits
    bytes_moved: float = 0.0  # memory traffic that is not matmuls (optimizer steps), summed over workers
    bf16: bool = False  # the FLOPs run under bf16 autocast
    workers: int = 1  # data-parallel workers sharing the FLOPs (execution.train_workers)
    accelerated: bool = True  # False: runs on CPU cores even where GPUs are (e.g. prune trials with no GPU asked)
    concurrent: int = 1  # units of the cell that run at once (CARBS trials of one iteration), each with the memory
    device_share: float = 1.0  # the fraction of one GPU each unit gets (tune.gpus_per_trial)
    cpu_seconds: float = 0.0  # work that is not FLOPs (BPE encoding), in seconds of one core of this project's CPU
    reduce: tuple[str, ...] = ()  # changes that lower the memory per device ("lower prune.batch_pairs"), best first
    note: str = ""

    @property
    def memory_bytes(self) -> int:
        return self.param_bytes + self.optimizer_bytes + self.activation_bytes


@dataclass(frozen=True)
class ModelCost:
    params: int  # every parameter, as GPT(config) holds them
    matmul_params: int  # the entries that multiply activations per token: blocks' matrices and the unembedding
    layers: int
    width_per_token: int  # activation elements one layer saves per token for the backward
    vocab: int
    n_ctx: int
    n_head: int
    attention_width: int  # n_head * d_head
    d_model: int

    def forward_flops(self, tokens: float, context: int | None = None, logits: bool = True) -> float:
        """FLOPs of a forward pass over `tokens` tokens in rows of `context` tokens; `logits` False: the
        unembedding runs at a few positions only (pruning reads the candidates' logits at the answer)."""
        context = context or self.n_ctx
        matmul = self.matmul_params - (0 if logits else self.vocab * self.d_model)
        return tokens * (2 * matmul + 4 * self.layers * context * self.attention_width)

    def activation_bytes(
        self, tokens: int, context: int, element: int, device_type: str, passes: float = 1.0, logits: float = 1.0
    ) -> int:
        """The peak of a forward and backward over `tokens` tokens: saved activations, and the logits in fp32
        (the logits, their fp32 copy and the bigram table's gather, the softmax's gradient). The CPU's attention
        materialises its scores, (T + 1) per head and token (the sink slot); CUDA's fused attention does not.
        `passes` whole-model passes and `logits` unembeddings held for one backward (bridges: many of each)."""
        per_layer_token = self.width_per_token * element
        if device_type == "cpu":
            per_layer_token += 2 * self.n_head * (context + 1) * element
        per_token = passes * self.layers * per_layer_token + logits * 4 * self.vocab * FP32
        return int(tokens * per_token)


@lru_cache(maxsize=64)
def _parameter_count(model_json: str) -> int:
    import torch

    from .nn.gpt import GPT

    with torch.device("meta"):  # shapes only: no memory, no init cost, exact for every model option
        model = GPT(ModelConfig.model_validate_json(model_json))
    return sum(p.numel() for p in model.parameters())


def model_cost(model: ModelConfig, vocab_size: int) -> ModelCost:
    """The cost figures of `model`; `vocab_size` fills a model whose vocab comes from the tokenizer."""
    if model.vocab_size is None:
        model = model.model_copy(update={"vocab_size": vocab_size})
    vocab = model.vocab_size or vocab_size
    inner, mlp = model.n_head * model.d_head, model.mlp_width
    # Saved per layer and token: the residual and norm outputs (3 d_model + 2 d_in), q/k/v before and after
    # AbsTopK and the attention output (8 inner), the MLP's pre-activation, activation and top-k output (4 mlp).
    width = 3 * model.d_model + 2 * model.d_in + 8 * inner + 4 * mlp
    return ModelCost(
        params=_parameter_count(model.model_dump_json()),
        matmul_params=model.matrix_params + vocab * model.d_model,
        layers=model.n_layer,
        width_per_token=width,
        vocab=vocab,
        n_ctx=model.n_ctx,
        n_head=model.n_head,
        attention_width=inner,
        d_model=model.d_model,
    )


def uses_bf16(precision: str, device_type: str) -> bool:
    from .nn.training import uses_bf16 as resolve

    return resolve(precision, device_type)


@dataclass(frozen=True)
class TrainShape:
    """What a training cell runs: steps of `batch_size` rows over `workers` data-parallel workers."""

    train: TrainConfig
    vocab_size: int
    workers: int = 1
    # Extra forward-and-backward passes per step, in units of the model's own (bridges' hybrid passes), and the
    # extra unembeddings they end in (a hybrid pass from a late boundary is a small part of a model, but all of
    # its logits); all held until the step's one backward.
    extra_passes: float = 0.0
    extra_logits: float = 0.0
    extra_forward_flops_per_token: float = 0.0  # a frozen model's forward per token (bridges' dense model)
    reduce: tuple[str, ...] = field(default_factory=tuple)


def training_cost(shape: TrainShape, device_type: str) -> CellCost:
    """A training cell: steps forward + backward (3x the forward), evaluations, optimizer steps."""
    train = shape.train
    cost = model_cost(train.model, shape.vocab_size)
    tokens_per_step = train.batch_size * train.model.n_ctx
    step_flops = 3 * cost.forward_flops(tokens_per_step) * (1 + shape.extra_passes)
    step_flops += shape.extra_forward_flops_per_token * tokens_per_step
    evaluations = math.ceil(train.steps / train.eval_every)
    eval_flops = evaluations * train.eval_batches * cost.forward_flops(tokens_per_step)
    bf16 = uses_bf16(train.precision, device_type)
    microbatch_tokens = tokens_per_step // (shape.workers * train.microbatches)
    element = BF16 if bf16 else FP32
    passes, logits = 1 + shape.extra_passes, 1 + shape.extra_logits
    activations = cost.activation_bytes(microbatch_tokens, train.model.n_ctx, element, device_type, passes, logits)
    return CellCost(
        flops=train.steps * step_flops + eval_flops,
        param_bytes=cost.params * FP32,
        optimizer_bytes=cost.params * 3 * FP32,
        activation_bytes=activations,
        bytes_moved=float(train.steps * cost.params * STEP_BYTES_PER_PARAM * shape.workers),
        bf16=bf16,
        workers=shape.workers,
        reduce=shape.reduce,
    )


def checkpoint_model(cells: dict[Any, Any], ref: Any) -> TrainConfig | None:
    """The training config a checkpoint cell was listed with, or None (an imported model: its params differ)."""
    cell = cells.get(ref)
    if cell is None:
        return None
    try:  # pretrain and dense cells' params are a TrainConfig; bridges cells' hold one under "train"
        return TrainConfig.model_validate(cell.params.get("train", cell.params))
    except ValueError:
        pass
    # A checkpoint chosen among or derived from trained ones (matched_dense, random_init) has their shape: the model
    # of its trained inputs, the last first (a matched_dense cell lists the sparse model it matches first).
    for upstream in reversed(list(cell.inputs.values())):
        found = checkpoint_model(cells, upstream) if upstream != ref else None
        if found is not None:
            return found
    return None

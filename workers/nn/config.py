"""The model's config beside the model, and the training step's: ModelConfig, SparsityConfig, OptimConfig, TrainConfig.

NODE_LOCATIONS is the one list of node locations: the config name of each
(what `afrac_locations` and pruning use) and its hook name within a layer (the
reference release's), in forward order.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from ..stage import StrictModel

# Config location name -> hook name within a layer, in forward order.
NODE_LOCATIONS: dict[str, str] = {
    "attn_in": "attn.act_in",
    "attn_q": "attn.q",
    "attn_k": "attn.k",
    "attn_v": "attn.v",
    "attn_out": "attn.resid_delta",
    "mlp_in": "mlp.act_in",
    "mlp_neuron": "mlp.post_act",
    "mlp_out": "mlp.resid_delta",
}
ALL_NODE_LOCATIONS: tuple[str, ...] = tuple(NODE_LOCATIONS)
NodeLocation = Literal[ALL_NODE_LOCATIONS]  # type: ignore[valid-type]
# The residual stream after each sublayer's addition (and `residual_activation`): AbsTopK may act there too
# (the reference release's resid_post_attn / resid_post_mlp); these are not node locations.
RESIDUAL_LOCATIONS: tuple[str, ...] = ("resid_post_attn", "resid_post_mlp")
TopkLocation = Literal[ALL_NODE_LOCATIONS + RESIDUAL_LOCATIONS]  # type: ignore[valid-type]


class ModelConfig(StrictModel):
    n_layer: int = Field(2, ge=1)
    d_model: int = Field(128, ge=4)
    n_head: int = Field(8, ge=1)
    d_head: int = Field(16, ge=1)
    d_mlp: int | None = Field(None, ge=1, description="Defaults to 4 * d_model.")
    n_ctx: int = Field(256, ge=8)
    vocab_size: int | None = Field(None, description="Taken from the tokenizer when None.")
    bigram_table: bool = True
    attn_sink: bool = True
    pos_emb: Literal["none", "learned", "concat"] = Field(
        "none",
        description="none; learned: a learned [n_ctx, d_model] table added to the token embedding; concat: a learned "
        "[n_ctx, d_pos_emb] table, normed per block (ln_p1, ln_p2) and concatenated to every attention and MLP "
        "input (read-only position channels: act_in is d_model + d_pos_emb wide).",
    )
    d_pos_emb: int | None = Field(None, ge=1, description="Width of the concatenated positions (pos_emb=concat).")
    afrac: float | None = Field(
        0.25, gt=0, le=1, description="AbsTopK keeps afrac of each node location; None disables."
    )
    afrac_locations: list[TopkLocation] = Field(default_factory=lambda: list(ALL_NODE_LOCATIONS))
    abstopk_ties: Literal["lowest_index", "torch_topk"] = Field(
        "lowest_index",
        description="Among equal magnitudes AbsTopK keeps the lowest index; torch_topk: torch.topk's "
        "implementation-defined choice (the reference release). Differs only on exact ties.",
    )
    activation: Literal["gelu", "relu"] = "gelu"
    residual_activation: Literal["identity", "relu"] = Field(
        "identity", description="relu: a ReLU on the residual stream after each sublayer's addition."
    )
    norm: Literal["rms", "layer"] = Field("rms", description="RMSNorm, or LayerNorm (mean-centred).")
    norm_bias: bool = Field(False, description="LayerNorm with a learned bias (norm=layer only).")
    bias: bool = Field(True, description="Biases in every Linear of the blocks.")
    tied_embeddings: bool = Field(False, description="The unembedding is the token embedding's matrix.")
    final_logits_bias: bool = Field(False, description="A fixed [vocab] buffer added to the logits.")
    norm_eps: float | None = Field(
        None,
        gt=0,
        description="RMSNorm epsilon; None: torch's default, the machine epsilon of the activations' dtype "
        "(as the reference release). 1e-6 changes the forward on small residual streams, and AbsTopK then keeps "
        "different entries. LayerNorm (norm=layer): None is torch's default, 1e-5.",
    )
    init_std: float = 0.02

    @model_validator(mode="after")
    def _consistent(self) -> "ModelConfig":
        if (self.pos_emb == "concat") != (self.d_pos_emb is not None):
            raise ValueError("model.d_pos_emb is set exactly when model.pos_emb is 'concat'")
        if self.norm_bias and self.norm != "layer":
            raise ValueError("model.norm_bias needs model.norm='layer' (RMSNorm has no bias)")
        return self

    @property
    def mlp_width(self) -> int:
        return self.d_mlp or 4 * self.d_model

    @property
    def d_in(self) -> int:
        """Width of every attention and MLP input: d_model, plus the concatenated positions."""
        return self.d_model + (self.d_pos_emb or 0)

    @property
    def matrix_params(self) -> int:
        """Entries of the weight matrices (attention c_attn and c_proj, MLP c_fc and c_proj): the parameters
        whose nonzero fraction is `sparsity.target_l0` (embeddings and biases have their own fractions)."""
        inner, mlp = self.n_head * self.d_head, self.mlp_width
        return self.n_layer * (3 * inner * self.d_in + inner * self.d_model + mlp * self.d_in + mlp * self.d_model)


# ----------------------------------------------------------------------- training


class SparsityConfig(StrictModel):
    enabled: bool = True
    target_l0: float = Field(
        1 / 64, gt=0, le=1, description="Nonzero fraction of every weight matrix at the end of annealing."
    )
    embed_l0: float | None = Field(
        None, gt=0, le=1, description="Nonzero fraction of embedding/unembedding; None: same as target_l0 * 4."
    )
    bias_l0: float | None = Field(
        None,
        gt=0,
        le=1,
        description=(
            "Nonzero fraction of biases; None: same as the embedding fraction (paper: all biases "
            "sparse); 1 keeps them dense (reference code)."
        ),
    )
    anneal_start_frac: float = Field(0.0, ge=0, lt=1)
    anneal_end_frac: float = Field(0.5, gt=0, le=1, description="L0 reaches its target at this fraction of training.")
    anneal: Literal["linear", "exp"] = "linear"
    min_alive_per_neuron: int = Field(
        4, ge=0, description="Nonzero weights kept per neuron / attention channel, along the neuron axis."
    )

    @model_validator(mode="after")
    def _ordered(self) -> "SparsityConfig":
        if self.anneal_end_frac <= self.anneal_start_frac:
            raise ValueError("sparsity.anneal_end_frac must be greater than sparsity.anneal_start_frac")
        return self


class OptimConfig(StrictModel):
    lr: float = Field(
        1e-2,
        gt=0,
        description=(
            "Base lr: the peak of the warmup-then-linear-decay schedule at weight L0 = 1. With lr_l0_scaling the "
            "applied lr is lr / sqrt(L0(t)) (paper A.2), so a sparse model ends annealing at lr / sqrt(target_l0). "
            "The reference release's train.py multiplies by sqrt(target_l0 / L0(t)) instead: its lr X is this "
            "lr = X * sqrt(target_l0). Sweep it per variant (pretrain.variants[].lr)."
        ),
    )
    beta1: float = Field(0.9, ge=0, lt=1)
    beta2: float = Field(0.95, ge=0, lt=1)
    eps: float = Field(0.1, gt=0)
    weight_decay: float = Field(0.1, ge=0)
    warmup_frac: float = Field(0.01, ge=0, lt=1)
    lr_l0_scaling: bool = Field(True, description="Multiply lr by 1/sqrt(current L0 fraction) (the paper's sharkfin).")
    grad_clip_rms: float | None = Field(
        1.0, gt=0, description="Clip the global gradient RMS to this value; None disables."
    )
    grad_rms_mode: Literal["clip", "normalize"] = Field(
        "clip",
        description=(
            "clip: scale gradients down when their RMS exceeds grad_clip_rms (paper); normalize: always "
            "scale to it (reference code)."
        ),
    )
    weight_decay_mode: Literal["adamw", "after_topk"] = Field(
        "adamw",
        description=(
            "adamw: decoupled AdamW decay (paper); after_topk: Adam, then p -= lr*wd*p after the weight "
            "top-k (reference code)."
        ),
    )


class TrainConfig(StrictModel):
    model: ModelConfig = Field(default_factory=ModelConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    sparsity: SparsityConfig = Field(default_factory=SparsityConfig)
    batch_size: int = Field(32, ge=1)
    microbatches: int = Field(
        1,
        ge=1,
        description="Run each step's batch as this many equal microbatches, forward and backward one at a time, "
        "their gradients summed before the one optimizer step: the same step (the loss is the whole batch's mean; "
        "bridges' NMSE keeps the whole batch's normaliser) with about 1/microbatches of the activation memory. "
        "Must divide batch_size, and on data-parallel ranks each rank's batch_size / execution.train_workers rows.",
    )
    steps: int = Field(1000, ge=1)
    eval_every: int = Field(100, ge=1)
    eval_batches: int = Field(8, ge=1)
    checkpoint_every: int = Field(200, ge=1)
    keep_every: int = Field(
        0,
        ge=0,
        description="Keep the model's weights at every evaluation whose step is a multiple of this, beside the final "
        "ones (kept/ in the artifact, kept.json their val losses): the dense run's earlier checkpoints, for the "
        "comparison at matched pretraining loss. 0 keeps none.",
    )
    keep_until: int | None = Field(
        None,
        ge=1,
        description="Keep no checkpoint after this step (None: up to the end). A kept checkpoint is a whole model "
        "(with a 2048-token vocabulary's bigram table, 17 MB and more): bound them to where matches can be.",
    )
    precision: Literal["fp32", "bf16", "auto"] = Field(
        "fp32",
        description="fp32; bf16: the forward and backward under bf16 autocast, with fp32 master weights, optimizer "
        "state, weight top-k and loss (the reference trains in fp16 with a GradScaler; bf16 needs none); auto: bf16 "
        "on CUDA, fp32 elsewhere (a CPU's bf16 speed depends on its bf16 instructions).",
    )
    seed: int = 0

    @field_validator("microbatches")
    @classmethod
    def _divides_batch(cls, microbatches: int, info: ValidationInfo) -> int:
        batch_size = info.data.get("batch_size")  # absent when batch_size itself failed validation
        if batch_size is not None and batch_size % microbatches:
            raise ValueError(
                f"microbatches={microbatches} does not divide batch_size={batch_size} into equal microbatches; "
                "choose a divisor of batch_size"
            )
        return microbatches

    @model_validator(mode="before")
    @classmethod
    def _renamed_dtype(cls, data: Any) -> Any:
        if isinstance(data, dict) and "dtype" in data:
            raise ValueError(
                f"dtype={data['dtype']!r}: the key is now `precision` (fp32, bf16 or auto), e.g. precision: bf16"
            )
        return data

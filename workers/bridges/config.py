"""The bridges stage's settings (the `bridges` section) and its values in each preset.

The bridged sparse model trains like a pretrain variant (`train`, `variants`, as in
`train/config.py`) and must match the dense model's n_layer, n_ctx and vocabulary;
the preset values below share the dense model's shapes for that reason.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from ..nn.config import TrainConfig
from ..nn.flavours import MODEL_FLAVOURS
from ..stage import StrictModel
from ..train.config import SMOKE_SCHEDULE, ModelVariant, PretrainConfig, apply_variant, train_settings


class InterventionConfig(StrictModel):
    """Bridge interventions (paper A.4, Fig. 9), run at the end of every bridges cell."""

    tasks: list[str] = Field(
        default_factory=lambda: ["single_double_quote", "while_return_true"],
        description="Tasks to steer; [] skips interventions.",
    )
    nodes: dict[str, str] = Field(
        default_factory=dict,
        description="task -> node of the bridged sparse model at a post-norm read: 'L.attn.act_in[c]' or "
        "'L.mlp.act_in[c]', or without [c] to pick the channel whose activation differs most between the prompts "
        "of a pair. Default: the last layer's attn.act_in (mlp.act_in for while_return_true), channel picked.",
    )
    present_second: list[str] = Field(
        default_factory=lambda: ["while_return_true"],
        description="Tasks whose second prompt is presented and steered toward the first, as Fig. 9 steers "
        "while_return_true (presented `return True`, steered toward `while True`: the dense model's probability of "
        "the loop body's indentation should rise); the others present their first prompt (single_double_quote: "
        "the `(\"` string, steered toward `('`, as in Fig. 9).",
    )
    rank_max_nodes: int = Field(
        256,
        ge=1,
        description="The interventions stage ablates at most this many of a circuit's read nodes one by one to rank "
        "them (a val pass each); a circuit with more is pre-screened by the first-order estimate of each node's "
        "effect (one backward).",
    )
    pairs: int = Field(32, ge=1, description="Task pairs (test split) averaged into each curve.")
    strengths: int = Field(11, ge=2, description="Steering strengths, evenly spaced from 0 to 1.")
    reference_batches: int = Field(
        4, ge=1, description="Val batches over which the RMS of the residual streams is averaged."
    )
    controls: int = Field(
        16,
        ge=1,
        description="Random channels and random directions drawn as controls (that many of each): the first of "
        "each is drawn as a whole curve, every one's log-odds shift at strength 1 is recorded beside the node's.",
    )
    max_tokens: int = Field(128, ge=8)
    seed: int = 0


class BridgesConfig(StrictModel):
    """A weight-sparse model trained jointly with bridges to the frozen dense model (paper §2.3, A.3).

    `train` is the sparse model's training (same schedule and sparsity as pretrain); it must have
    the dense model's n_layer, n_ctx and vocabulary. One cell per variant."""

    enabled: bool = False
    train: TrainConfig = Field(default_factory=TrainConfig)
    variants: list[ModelVariant] = Field(default_factory=lambda: [ModelVariant(name="base")])
    encoder_afrac: float = Field(
        0.25, gt=0, le=1, description="AbsTopK of each bridge encoder keeps this fraction of the sparse d_model."
    )
    coef_ce: float = Field(1.0, ge=0, description="The sparse model's next-token loss.")
    coef_nmse: float = Field(
        1.0, ge=0, description="Sum over locations of NMSE(enc(h_dense), h_sparse) + NMSE(dec(h_sparse), h_dense)."
    )
    nmse_d2s_target: Literal["live", "detached"] = Field(
        "detached",
        description="The d->s NMSE term's target, the sparse model's own residual: 'detached' trains only the "
        "encoders with it (as jacobcd52/sparse_pretrain_public does); 'live' keeps its gradient, so the term also "
        "pulls the sparse model toward what the encoder predicts from the dense model (A.3's formula read without a "
        "stop-gradient). Side by side on tiny (BENCHMARKS.md, 'Fig. 9 on tiny'), detached gave the better sparse "
        "model, bridges and KLs and the steeper Fig. 9 curve.",
    )
    coef_kl_d2s: float = Field(
        1.0, ge=0, description="Sum over locations of KL(dense logits || dense -> encoder -> sparse logits)."
    )
    coef_kl_s2d: float = Field(
        1.0, ge=0, description="Sum over locations of KL(dense logits || sparse -> decoder -> dense logits)."
    )
    interventions: InterventionConfig = Field(default_factory=InterventionConfig)

    @field_validator("variants")
    @classmethod
    def _unique_names(cls, variants: list[ModelVariant]) -> list[ModelVariant]:
        return PretrainConfig._unique_names(variants)

    def variant_train_config(self, variant: ModelVariant) -> TrainConfig:
        return apply_variant(self.train, variant)


# ------------------------------------------------------------------- presets

PRESETS: dict[str, dict[str, Any]] = {
    "smoke": {
        "bridges": {
            "enabled": True,
            "train": train_settings(
                MODEL_FLAVOURS["smoke"],
                **SMOKE_SCHEDULE,
                sparsity={"target_l0": 0.25},
            ),
            "variants": [{"name": "smoke"}],
            "interventions": {"pairs": 8, "strengths": 5, "reference_batches": 2},
        }
    },
    # Off: a bridges step costs ~6.5x a sparse pretrain step at this shape (BENCHMARKS.md), past the
    # default run's time budget. `--set bridges.enabled=true` trains it against the tiny dense model.
    "tiny": {
        "bridges": {
            "enabled": False,
            "train": train_settings(
                MODEL_FLAVOURS["tiny"],
                steps=600,
                batch=32,
                eval_every=100,
                checkpoint_every=100,
                sparsity={"target_l0": 1 / 16},
                optim={"lr": 1e-2},
            ),
            "variants": [{"name": "tiny"}],
        }
    },
    "small": {
        "bridges": {
            "enabled": True,
            "train": train_settings(
                MODEL_FLAVOURS["small"], steps=10_000, batch=64, eval_every=500, checkpoint_every=1000, precision="auto"
            ),
        }
    },
    "paper": {
        "bridges": {
            "enabled": True,
            # The paper preset's dense model has 4 layers (train/config.py); bridges pair them one to one.
            "train": train_settings(
                {**MODEL_FLAVOURS["paper"], "n_layer": 4},
                steps=100_000,
                batch=512,
                eval_every=2000,
                checkpoint_every=2000,
                precision="auto",
            ),
        }
    },
}

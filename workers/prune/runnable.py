"""A pruned circuit you can run: the model with everything outside the circuit ablated exactly as pruning did.

`load_circuit(artifact, inputs)` rebuilds one prune cell's circuit from its committed files (circuit.json,
result.json) and the folders the cell read (`inputs`: "checkpoint", "mean_cache", "tokens", as in its
WorkContext). Nothing here re-implements the ablation: the node mask goes through `MaskedModel`
(masked.py) over `NodeLayout` and `ablation_values` (nn/masks.py), and `Circuit.loss` is `two_way_loss`
over the same chunks of the same pairs, so `circuit.loss("test")` is result.json's `circuit_loss` and
`circuit.loss("test", ablate="inverse")` its `inverse_loss`.

ablate: "circuit" keeps only the circuit (every other node frozen at its ablation value), "inverse" ablates
only the circuit's nodes (paper Fig. 32), "none" runs the unmasked model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Sequence

import torch
from tokenizers import Tokenizer
from torch import Tensor

from ...tasks import TaskBatch, load_tokenizer
from ...tasks.tokenization import eot_id
from ..mean_cache.means import load_means
from ..nn.gpt import GPT, load_checkpoint
from ..nn.masks import NodeLayout, ablation_values
from .config import PruneConfig
from .losses import chunks, load_split, two_way_loss
from .masked import MaskedModel
from .result import CIRCUIT_FILE, RESULT_FILE

Ablate = Literal["circuit", "inverse", "none"]
ABLATE_CHOICES = ("circuit", "inverse", "none")
# The input folders a prune cell reads (prune/stage.py's cell inputs), by the names the cell knows them by.
CHECKPOINT_INPUT, MEAN_CACHE_INPUT, TOKENS_INPUT = "checkpoint", "mean_cache", "tokens"


@dataclass
class Circuit:
    """One prune cell's circuit, ready to run. `nodes`, `edges` and `losses` are circuit.json's; `result` is
    result.json; `ablation[location]` is what every node at that location is frozen at when ablated."""

    task: str
    cell: str
    checkpoint: str  # the pruned model's cell ("pretrain/tiny")
    model: GPT
    tokenizer: Tokenizer
    settings: PruneConfig
    kept: dict[str, list[int]]
    nodes: list[dict[str, Any]]
    edges: list[dict[str, Any]]
    losses: dict[str, float | None]
    calibration: dict[str, float]
    result: dict[str, Any]
    layout: NodeLayout
    masked: MaskedModel
    inputs: dict[str, Path]  # the folders the prune cell read, by input name

    @property
    def ablation(self) -> dict[str, Tensor]:
        return {name: values.cpu() for name, values in self.layout.split(self.masked.ablation).items()}

    @property
    def device(self) -> torch.device:
        return self.masked.device

    def node_mask(self, ablate: Ablate = "circuit") -> Tensor | None:
        """The node-space mask of `ablate` (1 = the node runs, 0 = it is ablated); None for "none"."""
        if ablate not in ABLATE_CHOICES:
            raise ValueError(f"ablate must be one of {', '.join(ABLATE_CHOICES)}, got {ablate!r}")
        if ablate == "none":
            return None
        mask = torch.zeros(self.layout.n_nodes)
        for name, indices in self.kept.items():
            mask[self.layout.node_slices[name].start + torch.tensor(indices, dtype=torch.long)] = 1.0
        return (mask if ablate == "circuit" else 1 - mask).to(self.device)

    def encode(self, prompts: str | Sequence[str]) -> tuple[Tensor, Tensor]:
        """Prompts as the tasks encode them: <|endoftext|> first, right-padded with it. Returns (tokens [B, T],
        lengths [B]); logits at position lengths - 1 predict each prompt's next token."""
        texts = [prompts] if isinstance(prompts, str) else list(prompts)
        eot = eot_id(self.tokenizer)
        rows = [([eot] if eot is not None else []) + self.tokenizer.encode(text).ids for text in texts]
        width = max((len(row) for row in rows), default=0)
        if width > self.model.config.n_ctx:
            raise ValueError(f"a prompt is {width} tokens long; the model reads at most {self.model.config.n_ctx}")
        tokens = torch.full((len(rows), width), eot if eot is not None else 0, dtype=torch.long)
        for i, row in enumerate(rows):
            tokens[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        return tokens, torch.tensor([len(row) for row in rows], dtype=torch.long)

    @torch.no_grad()
    def run(self, prompts_or_tokens: str | Sequence[str] | Tensor, ablate: Ablate = "circuit") -> Tensor:
        """Logits [B, T, vocab] of the model under `ablate`. Strings are encoded with `encode` (right padding:
        the logits at padded positions are not the prompt's); a tensor is token ids [B, T] or [T]."""
        if isinstance(prompts_or_tokens, Tensor):
            tokens = prompts_or_tokens if prompts_or_tokens.dim() == 2 else prompts_or_tokens[None, :]
        else:
            tokens, _ = self.encode(prompts_or_tokens)
        mask = self.node_mask(ablate)
        interventions = None if mask is None else self.masked.interventions(mask)
        logits, _ = self.model(tokens.to(self.device), interventions=interventions)
        return logits

    def pairs(self, split: str = "test") -> TaskBatch:
        """The task pairs of `split` that pruning used ("train" pool, "val" selection, "test" reporting)."""
        max_tokens = min(self.settings.max_tokens, self.model.config.n_ctx)
        return load_split(self.task, self.tokenizer, self.settings, max_tokens, split)

    @torch.no_grad()
    def loss(self, pairs: str | TaskBatch = "test", ablate: Ablate = "circuit", calibrated: bool = False) -> float:
        """The task loss (settings.loss_reduction) of `pairs` (a split name or a TaskBatch) under `ablate`,
        computed as pruning reported it; `calibrated` applies the circuit's fitted logit scale and bias."""
        batch = (self.pairs(pairs) if isinstance(pairs, str) else pairs).to(self.device)
        gaps = self.masked.gaps(chunks(batch, self.settings.batch_pairs), self.node_mask(ablate))
        scale, shift = (self.calibration["logit_scale"], self.calibration["logit_bias"]) if calibrated else (1.0, 0.0)
        return float(two_way_loss(gaps, batch.correct, scale, shift, reduction=self.settings.loss_reduction))

    def __repr__(self) -> str:
        return (
            f"Circuit({self.checkpoint}:{self.task}, {len(self.nodes)} nodes, {len(self.edges)} edges, "
            f"test loss {self.losses.get('circuit')})"
        )


def load_circuit(artifact: Path, inputs: dict[str, Path], device: str = "cpu") -> Circuit:
    """The circuit of the prune artifact in folder `artifact`, with the input folders its cell read."""
    artifact = Path(artifact)
    missing = [name for name in (CHECKPOINT_INPUT, TOKENS_INPUT) if name not in inputs]
    if missing or not (artifact / CIRCUIT_FILE).is_file():
        raise ValueError(f"{artifact} is not a prune artifact with its inputs (missing: {missing or CIRCUIT_FILE})")
    data = json.loads((artifact / CIRCUIT_FILE).read_text())
    result = json.loads((artifact / RESULT_FILE).read_text())
    settings = PruneConfig.model_validate(data["settings"])
    model = load_checkpoint(inputs[CHECKPOINT_INPUT], device=device).eval().requires_grad_(False)
    means = None
    if settings.ablation == "mean":
        if MEAN_CACHE_INPUT not in inputs:
            raise ValueError(f"{artifact} was pruned with mean ablation: its {MEAN_CACHE_INPUT!r} input is needed")
        means = load_means(inputs[MEAN_CACHE_INPUT])
    layout = NodeLayout(model.config, tie_qk=settings.tie_qk_masks)
    return Circuit(
        task=data["task"],
        cell=data["cell"],
        checkpoint=data["checkpoint"],
        model=model,
        tokenizer=load_tokenizer(inputs[TOKENS_INPUT]),
        settings=settings,
        kept={name: list(indices) for name, indices in data["kept"].items()},
        nodes=data["nodes"],
        edges=data["edges"],
        losses=data["losses"],
        calibration=data["calibration"],
        result=result,
        layout=layout,
        masked=MaskedModel(model, layout, ablation_values(layout, means, settings.ablation)),
        inputs={name: Path(folder) for name, folder in inputs.items()},
    )

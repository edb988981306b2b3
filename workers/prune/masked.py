"""The frozen model under node masks, read out as candidate logit gaps, and the count of the passes it ran."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor

from ...tasks import TaskBatch
from ..nn.gpt import GPT
from ..nn.masks import NodeLayout, mask_interventions
from .binarize import StepFunctions
from .losses import candidate_gap, concat_pairs
from .resample import pattern_for


@dataclass
class Work:
    """The forward passes a trial ran: a deterministic measure of its cost (wall time is not)."""

    forwards: int = 0  # model calls
    rows: int = 0  # prompts through the model
    tokens: int = 0  # token positions through the model (padded batch width x rows)
    backward_tokens: int = 0  # token positions through a backward pass (mask training)

    def add(self, batch: TaskBatch) -> None:
        self.forwards += 1
        self.rows += int(batch.tokens.shape[0])
        self.tokens += int(batch.tokens.numel())

    @property
    def cost(self) -> int:
        """Token-forwards, a backward pass counted as two forwards (the usual FLOP ratio)."""
        return self.tokens + 2 * self.backward_tokens

    def to_json(self) -> dict[str, int]:
        return {**asdict(self), "cost": self.cost}


class MaskedModel:
    """The frozen model under node masks, read out as candidate logit gaps at the eval positions."""

    def __init__(self, model: GPT, layout: NodeLayout, ablation: Tensor):
        self.model = model
        self.layout = layout
        self.device = next(model.parameters()).device
        self.ablation = ablation.to(self.device)
        self.work = Work()

    def ablation_for(self, tokens: Tensor) -> Tensor:
        """What deleted nodes are frozen at for a batch of prompts [B, T]: [n_nodes], or with resample patterns
        [contexts, n_ctx, n_nodes] one context's [T, n_nodes] per batch (`resample.py`)."""
        return self.ablation if self.ablation.dim() == 1 else pattern_for(self.ablation, tokens)

    def interventions(
        self, node_mask: Tensor, steps: StepFunctions | None = None, tokens: Tensor | None = None
    ) -> dict[str, Any]:
        """The mask gates at every node location, then the step functions `steps` at their nodes (App. C).
        `tokens`: the batch the gates apply to (resample ablation chooses its pattern by it)."""
        ablation = self.ablation if tokens is None else self.ablation_for(tokens)
        gates = mask_interventions(self.layout, node_mask, ablation)
        if steps is None:
            return gates
        return {name: steps.intervention(gates[name], s) for name, s in self.layout.node_slices.items()}

    def gap(self, batch: TaskBatch, node_mask: Tensor | None, steps: StepFunctions | None = None) -> Tensor:
        """Candidate logit gaps [2N]; node_mask None runs the unmasked model. Counted in `work`."""
        self.work.add(batch)
        return self.forward_gap(batch, node_mask, steps)

    def forward_gap(self, batch: TaskBatch, node_mask: Tensor | None, steps: StepFunctions | None = None) -> Tensor:
        """`gap` without counting the pass (the caller counts it); node_mask may be a stack [M, n_nodes] over M
        equal blocks of the batch's rows (`nn.masks.mask_interventions`)."""
        interventions = None if node_mask is None else self.interventions(node_mask, steps, batch.tokens)
        logits, _ = self.model(batch.tokens, interventions=interventions, positions=batch.eval_pos)
        return candidate_gap(logits, batch)

    @torch.no_grad()
    def gaps_each(self, batches: list[TaskBatch], node_masks: Tensor, steps: StepFunctions | None = None) -> Tensor:
        """Candidate logit gaps [M, 2N] of M variants: the masks of a stack node_masks [M, n_nodes], or one mask
        [n_nodes] under the M variants of a stack of step functions (`steps`, levels [M, n]). One forward per batch
        with M copies of its rows (a trial dimension), each copy counted in `work`."""
        stacked_masks = node_masks.dim() == 2
        count = node_masks.shape[0] if stacked_masks else steps.variants if steps is not None else None
        if count is None:
            raise ValueError("gaps_each needs a stack of node masks [M, n_nodes] or of step functions")
        if self.ablation.dim() > 1:  # resample: a pattern per batch of prompts, so one variant per forward
            return torch.stack(
                [
                    self.gaps(batches, node_masks[i], steps)
                    if stacked_masks
                    else self.gaps(batches, node_masks, steps.variant(i))  # type: ignore[union-attr]
                    for i in range(count)
                ]
            )
        out = []
        for batch in batches:
            for _ in range(count):
                self.work.add(batch)
            out.append(self.forward_gap(concat_pairs([batch] * count), node_masks, steps).view(count, -1))
        return torch.cat(out, dim=1)

    @torch.no_grad()
    def gaps(self, batches: list[TaskBatch], node_mask: Tensor | None, steps: StepFunctions | None = None) -> Tensor:
        return torch.cat([self.gap(batch, node_mask, steps) for batch in batches])

    @torch.no_grad()
    def activations(self, batches: list[TaskBatch], node_mask: Tensor, nodes: Tensor) -> Tensor:
        """The activations [positions, len(nodes)] of node-space indices `nodes` under `node_mask`, at every
        real position (up to each prompt's eval position; padding after it is left out)."""
        rows = []
        for batch in batches:
            self.work.add(batch)
            _, recorded = self.model(
                batch.tokens,
                record=self.layout.names,
                interventions=self.interventions(node_mask, tokens=batch.tokens),
                positions=batch.eval_pos,
            )
            flat = torch.cat([recorded[name] for name in self.layout.names], dim=-1)  # [B, T, n_nodes]
            real = torch.arange(flat.shape[1], device=flat.device)[None, :] <= batch.eval_pos[:, None]
            rows.append(flat[real][:, nodes.to(flat.device)].float().cpu())
        return torch.cat(rows)

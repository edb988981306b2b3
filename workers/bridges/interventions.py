"""Steer the dense model through the bridges with one node of the sparse model (paper A.4, Fig. 9).

For a task pair (presented prompt A, counterfactual prompt B, same length) and a
node (layer L, channel c) at a post-norm residual read of the bridged sparse model
(`L.attn.act_in` or `L.mlp.act_in`):

1. delta[t] = act_c(B)[t] - act_c(A)[t] at every token t of the sparse model.
2. The bridge at the residual just before that read (boundary 2L, or 2L + 1 for the
   MLP) decodes sparse -> dense; its column c, times rms(sparse residual) /
   rms(dense residual) at that boundary (averaged over reference batches), turns a
   post-norm sparse change into a post-norm dense one: both post-norm streams have
   the same scale, the pre-norm ones do not.
3. The dense model runs on prompt A with `strength * delta[t] * column` added to its
   own post-norm read at the same place, strength from 0 (no change) to 1.
4. Recorded: the dense model's probability of each candidate at the answer position,
   averaged over pairs, per strength; plus the dense model on B unsteered.

Only pairs whose prompts have the same token length are used (the difference is
per token). The node's channel, when not given, is the one whose activation differs
most between the prompts (mean over pairs of sum over tokens of |delta|).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable

import torch
from torch import Tensor

from ...tasks import TaskBatch
from ..nn.gpt import GPT, residual_boundaries
from ..plots import GRID_ALPHA, LEGEND_FONTSIZE, new_figure, save
from .bridges import Bridges
from .config import InterventionConfig

NODE_PATTERN = re.compile(r"^(\d+)\.(attn|mlp)\.act_in(?:\[(\d+)\])?$")
# Fig. 9: the quote-type channel is read by the last attention, the line-start channel by the last MLP.
DEFAULT_SUBLAYER = {"while_return_true": "mlp"}


@dataclass(frozen=True)
class NodeSpec:
    layer: int
    sublayer: str  # "attn" | "mlp"
    channel: int | None

    @property
    def hook(self) -> str:
        return f"{self.layer}.{self.sublayer}.act_in"

    @property
    def boundary(self) -> int:
        """Index into residual_boundaries of the pre-norm residual this read normalises."""
        return 2 * self.layer + (0 if self.sublayer == "attn" else 1)


def parse_node(spec: str, n_layer: int) -> NodeSpec:
    match = NODE_PATTERN.match(spec)
    if not match:
        raise ValueError(f"intervention node {spec!r}: expected 'L.attn.act_in[c]' or 'L.mlp.act_in[c]' (c optional)")
    layer = int(match.group(1))
    if layer >= n_layer:
        raise ValueError(f"intervention node {spec!r}: the model has layers 0..{n_layer - 1}")
    return NodeSpec(layer, match.group(2), int(match.group(3)) if match.group(3) is not None else None)


def default_node(task: str, n_layer: int) -> NodeSpec:
    return NodeSpec(n_layer - 1, DEFAULT_SUBLAYER.get(task, "attn"), None)


@torch.no_grad()
def residual_rms(model: GPT, batches: Iterable[Tensor]) -> Tensor:
    """[2 * n_layer + 1] RMS over d_model of the residual at every boundary, averaged over tokens."""
    names = residual_boundaries(model.config)
    total, count = torch.zeros(len(names), dtype=torch.float64), 0
    for batch in batches:
        _, recorded = model(batch[:, :-1], record=names)
        total += torch.stack([recorded[n].double().pow(2).mean(-1).sqrt().sum().cpu() for n in names])
        count += batch[:, :-1].numel()
    return (total / count).float()


@dataclass
class InterventionCurve:
    task: str
    node: str  # "L.attn.act_in[c]"
    channel_choice: str  # "given" or "largest pair difference"
    pairs: int
    strengths: list[float]
    candidates: list[str]  # [presented prompt's answer, counterfactual prompt's answer] (token strings)
    prob_presented: list[float]  # dense model's probability of the presented candidate, per strength
    prob_counterfactual: list[float]
    dense_on_counterfactual: list[float]  # dense model unsteered on prompt B: [p(presented), p(counterfactual)]
    bridge_scale: float  # rms(sparse) / rms(dense) at the boundary

    def write(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{self.task}.json").write_text(json.dumps(asdict(self), indent=1))
        plot_curve(self, folder / f"{self.task}.png")


def same_length_pairs(batch: TaskBatch) -> list[int]:
    return [i for i in range(batch.n_pairs) if int(batch.eval_pos[2 * i]) == int(batch.eval_pos[2 * i + 1])]


@torch.no_grad()
def intervention_curve(
    dense: GPT,
    sparse: GPT,
    bridges: Bridges,
    batch: TaskBatch,
    node: NodeSpec,
    strengths: list[float],
    rms_sparse: Tensor,
    rms_dense: Tensor,
    candidate_names: list[str] | None = None,
) -> InterventionCurve:
    keep = same_length_pairs(batch)
    if not keep:
        raise ValueError(
            f"task {batch.task}: no pair has prompts of equal token length; the per-token difference is undefined"
        )
    batch = batch.select(keep)
    a_rows, b_rows = batch.tokens[0::2], batch.tokens[1::2]
    eval_pos = batch.eval_pos[0::2]
    valid = (torch.arange(a_rows.shape[1], device=a_rows.device)[None, :] <= eval_pos[:, None]).float()  # [N, T]

    _, recorded = sparse(batch.tokens, record=[node.hook])
    acts = recorded[node.hook].float()  # [2N, T, d_sparse]
    delta_all = (acts[1::2] - acts[0::2]) * valid[..., None]  # [N, T, d_sparse]
    channel, choice = node.channel, "given"
    if channel is None:
        channel, choice = int(delta_all.abs().sum(1).mean(0).argmax()), "largest pair difference"
    delta = delta_all[..., channel]  # [N, T]

    scale = float(rms_sparse[node.boundary] / rms_dense[node.boundary])
    direction = bridges.decoders[node.boundary].weight[:, channel].float() * scale  # [d_dense]
    candidates = batch.candidates[0::2]  # [N, 2]: column 0 is A's answer, 1 is B's
    rows = torch.arange(len(eval_pos), device=eval_pos.device)

    def probabilities(tokens: Tensor, strength: float) -> Tensor:
        def steer(x: Tensor) -> Tensor:
            return x + (strength * delta[..., None] * direction).to(x.dtype)

        logits, _ = dense(tokens, interventions={node.hook: steer}, positions=eval_pos)
        probs = torch.softmax(logits.float(), dim=-1)
        return probs[rows[:, None], candidates].mean(0)  # [2]

    curve = torch.stack([probabilities(a_rows, s) for s in strengths])  # [S, 2]
    reference = probabilities(b_rows, 0.0)
    return InterventionCurve(
        task=batch.task,
        node=f"{node.hook}[{channel}]",
        channel_choice=choice,
        pairs=len(keep),
        strengths=list(strengths),
        candidates=candidate_names or [str(int(c)) for c in candidates[0]],
        prob_presented=curve[:, 0].tolist(),
        prob_counterfactual=curve[:, 1].tolist(),
        dense_on_counterfactual=reference.tolist(),
        bridge_scale=scale,
    )


def strengths_of(config: InterventionConfig) -> list[float]:
    return [i / (config.strengths - 1) for i in range(config.strengths)]


def plot_curve(curve: InterventionCurve, path: Path) -> None:
    """Fig. 9: the dense model's probability of each candidate vs steering strength."""
    fig = new_figure(5.5, 4)
    ax = fig.subplots()
    presented, counterfactual = curve.candidates
    ax.plot(curve.strengths, curve.prob_presented, "o-", ms=3, label=f"p({presented!r}) presented")
    ax.plot(curve.strengths, curve.prob_counterfactual, "o-", ms=3, label=f"p({counterfactual!r}) counterfactual")
    ax.axhline(curve.dense_on_counterfactual[1], color="grey", ls="--", lw=1, label="dense on counterfactual prompt")
    ax.set_xlabel("steering strength")
    ax.set_ylabel("dense model probability")
    ax.set_ylim(bottom=0)
    ax.set_title(f"{curve.task}: {curve.node} ({curve.pairs} pairs)", fontsize=9)
    ax.legend(fontsize=LEGEND_FONTSIZE)
    ax.grid(alpha=GRID_ALPHA)
    save(fig, path)

"""Steer the dense model through the bridges with one node of the sparse model (paper A.4, Fig. 9).

For a task pair (presented prompt A, counterfactual prompt B, same length; A is the
task's first prompt, or its second for the tasks in `interventions.present_second`) and a
node (layer L, channel c) at a post-norm residual read of the bridged sparse model
(`L.attn.act_in` or `L.mlp.act_in`):

1. delta[t] = act_c(B)[t] - act_c(A)[t] at every token t of the sparse model.
2. The bridge at the residual just before that read (boundary 2L, or 2L + 1 for the
   MLP) decodes sparse -> dense pre-norm residuals. A post-norm change delta of
   channel c is a pre-norm change delta * rms_s / g_s[c] (g: the norm's gain, rms:
   the residual RMS at that boundary averaged over reference batches); decoded and
   read through the dense norm it is the post-norm dense change
   delta * g_d * column_c * rms_s / (g_s[c] * rms_d) (`steering_direction`). The paper
   folds the norm gains into the next matrices (A.1), so its "ratio of RMS" is this
   with g = 1; our models keep the gains in the norm, so they are folded in here,
   and strength 1 is the patched activation exactly (to first order in the RMS).
3. The dense model runs on prompt A with `strength * delta[t] * direction` added to
   its own post-norm read at the same place, strength from 0 (no change) to 1.
4. Recorded: the dense model's probability of each candidate at the answer position,
   averaged over pairs, per strength; the dense model on B unsteered; and two kinds
   of control: a random other channel of the same read steered the same way (its own
   delta and direction; outside the circuit, unless the circuit keeps every channel of
   the read, as one cut short does: then flagged), and the node's delta along a random
   direction of the same norm as its own. `controls` of each are drawn: the first of
   each as a whole curve (plotted), every one's shift at strength 1. The shift is the
   change of log p(counterfactual) - log p(presented) from strength 0 to 1; a node whose
   shift its controls reach is a generic perturbation, not the feature.

Only pairs whose prompts have the same token length are used (the difference is
per token). The node's channel, when not given, is the one whose activation differs
most between the prompts (mean over pairs of sum over tokens of |delta|).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import torch
from torch import Tensor, nn

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
    gain_sparse: float  # g_s[c]: the sparse norm's gain of the node's channel, divided out of the direction
    control_channel: str  # the random other channel of the first control
    prob_presented_random_channel: list[float]
    prob_counterfactual_random_channel: list[float]
    prob_presented_random_direction: list[float]
    prob_counterfactual_random_direction: list[float]
    # True when the circuit keeps every channel of the read (a circuit cut short): the control is a circuit channel
    control_channel_in_circuit: bool = False
    shift: float = 0.0  # the node's log-odds shift toward the counterfactual, strength 0 -> 1 (nats)
    control_channels: list[str] = field(default_factory=list)  # every random-channel control, the plotted first
    control_shifts_random_channel: list[float] = field(default_factory=list)  # their shifts, in that order
    control_shifts_random_direction: list[float] = field(default_factory=list)

    @property
    def control_shifts(self) -> list[float]:
        return self.control_shifts_random_channel + self.control_shifts_random_direction

    @property
    def controls_at_or_above(self) -> int:
        """How many controls (of both kinds) shift the dense model at least as far as the node does."""
        return sum(shift >= self.shift for shift in self.control_shifts)

    def summary(self) -> dict[str, object]:
        """The curve's numbers for a cell's metrics."""
        return {
            "node": self.node,
            "pairs": self.pairs,
            "prob_presented_at_0": self.prob_presented[0],
            "prob_presented_at_1": self.prob_presented[-1],
            "prob_counterfactual_at_0": self.prob_counterfactual[0],
            "prob_counterfactual_at_1": self.prob_counterfactual[-1],
            "control_channel": self.control_channel,
            "prob_counterfactual_at_1_random_channel": self.prob_counterfactual_random_channel[-1],
            "prob_counterfactual_at_1_random_direction": self.prob_counterfactual_random_direction[-1],
            "shift": self.shift,
            "controls": len(self.control_shifts),
            "control_shift_max": max(self.control_shifts),
            "controls_at_or_above": self.controls_at_or_above,
        }

    def write(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{self.task}.json").write_text(json.dumps(asdict(self), indent=1))
        plot_curve(self, folder / f"{self.task}.png")


def same_length_pairs(batch: TaskBatch) -> list[int]:
    return [i for i in range(batch.n_pairs) if int(batch.eval_pos[2 * i]) == int(batch.eval_pos[2 * i + 1])]


def read_norm(model: GPT, node: NodeSpec) -> nn.Module:
    """The norm whose output the node's read (`act_in`) is."""
    block = model.blocks[node.layer]
    return block.ln_1 if node.sublayer == "attn" else block.ln_2


def norm_gains(norm: nn.Module, width: int) -> Tensor:
    weight = getattr(norm, "weight", None)
    return weight.detach().float() if weight is not None else torch.ones(width)


def steering_direction(
    sparse: GPT, dense: GPT, bridges: Bridges, node: NodeSpec, channel: int, rms_sparse: Tensor, rms_dense: Tensor
) -> tuple[Tensor, float]:
    """The dense post-norm change [d_dense] per unit post-norm change of the sparse channel, the norm gains of
    both models folded in (see the module docstring), and the sparse gain g_s[channel]."""
    if channel >= sparse.config.d_model:
        raise ValueError(
            f"channel {channel} of {node.hook} is a concatenated position channel (d_model {sparse.config.d_model}); "
            "the bridges map residual channels only"
        )
    gain_sparse = float(norm_gains(read_norm(sparse, node), sparse.config.d_model)[channel])
    if abs(gain_sparse) < 1e-8:
        raise ValueError(f"{node.hook}[{channel}] has a zero norm gain: the read carries nothing of this channel")
    column = bridges.decoders[node.boundary].weight[:, channel].detach().float()
    if dense.config.norm == "layer":  # the dense norm removes the mean of whatever is added before it
        column = column - column.mean()
    gain_dense = norm_gains(read_norm(dense, node), dense.config.d_model).to(column.device)
    ratio = float(rms_sparse[node.boundary] / rms_dense[node.boundary])
    return gain_dense * column * (ratio / gain_sparse), gain_sparse


def random_direction_like(direction: Tensor, generator: torch.Generator) -> Tensor:
    """A direction drawn uniformly on the sphere, with the norm of `direction`."""
    draw = torch.randn(direction.shape, generator=generator).to(direction.device)
    return draw * (direction.norm() / draw.norm())


def control_channels(channel: int, width: int, exclude: set[int], count: int, generator: torch.Generator) -> list[int]:
    """Up to `count` distinct random channels of the read other than `channel` and those in `exclude` (e.g. the
    circuit's); fewer when fewer are left."""
    choices = [c for c in range(width) if c != channel and c not in exclude]
    if not choices:
        raise ValueError("no channel is left for the random-channel control")
    order = torch.randperm(len(choices), generator=generator)[:count]
    return [choices[int(i)] for i in order]


def log_odds_shift(presented: Tensor, counterfactual: Tensor) -> float:
    """log p(counterfactual) - log p(presented) at the last strength minus at the first (nats)."""
    odds = torch.log(counterfactual.double()) - torch.log(presented.double())
    return float(odds[-1] - odds[0])


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
    decode: Callable[[int], str] | None = None,
    seed: int = 0,
    exclude: set[int] | None = None,
    present_second: bool = False,
    controls: int = 1,
) -> InterventionCurve:
    """The Fig. 9 curve of `node` with `controls` random channels and random directions (seeded by `seed`;
    `exclude`: channels the random-channel controls must not take, beside the node's own). Prompt A is presented
    and steered toward B, or B toward A with `present_second`; `decode` names the candidates."""
    keep = same_length_pairs(batch)
    if not keep:
        raise ValueError(
            f"task {batch.task}: no pair has prompts of equal token length; the per-token difference is undefined"
        )
    batch = batch.select(keep)
    shown, other = (1, 0) if present_second else (0, 1)
    presented_rows, counterfactual_rows = batch.tokens[shown::2], batch.tokens[other::2]
    eval_pos = batch.eval_pos[shown::2]  # the same in both rows of a kept pair
    valid = (torch.arange(presented_rows.shape[1], device=eval_pos.device)[None, :] <= eval_pos[:, None]).float()

    _, recorded = sparse(batch.tokens, record=[node.hook])
    acts = recorded[node.hook].float()  # [2N, T, d_sparse]
    delta_all = (acts[other::2] - acts[shown::2]) * valid[..., None]  # [N, T, d_sparse]
    channel, choice = node.channel, "given"
    if channel is None:
        residual = delta_all[..., : sparse.config.d_model]  # position channels have no bridge
        channel, choice = int(residual.abs().sum(1).mean(0).argmax()), "largest pair difference"
    direction, gain_sparse = steering_direction(sparse, dense, bridges, node, channel, rms_sparse, rms_dense)
    generator = torch.Generator().manual_seed(seed)
    width, exclude = sparse.config.d_model, exclude or set()
    in_circuit = set(range(width)) - {channel} <= exclude
    others = control_channels(channel, width, set() if in_circuit else exclude, controls, generator)
    other_directions = [
        steering_direction(sparse, dense, bridges, node, other, rms_sparse, rms_dense)[0] for other in others
    ]
    random_directions = [random_direction_like(direction, generator) for _ in range(controls)]
    # [N, 2]: the presented prompt's answer, then the counterfactual prompt's
    candidates = torch.stack([batch.correct_ids[shown::2], batch.wrong_ids[shown::2]], dim=1)
    rows = torch.arange(len(eval_pos), device=eval_pos.device)

    def probabilities(tokens: Tensor, strength: float, delta: Tensor, along: Tensor) -> Tensor:
        def steer(x: Tensor) -> Tensor:
            return x + (strength * delta[..., None] * along).to(x.dtype)

        logits, _ = dense(tokens, interventions={node.hook: steer}, positions=eval_pos)
        probs = torch.softmax(logits.float(), dim=-1)
        return probs[rows[:, None], candidates].mean(0)  # [2]

    def sweep(delta: Tensor, along: Tensor) -> Tensor:
        return torch.stack([probabilities(presented_rows, s, delta, along) for s in strengths])  # [S, 2]

    curve = sweep(delta_all[..., channel], direction)

    def shift_at_one(delta: Tensor, along: Tensor) -> float:  # a control's shift without its whole curve
        at_one = probabilities(presented_rows, strengths[-1], delta, along)
        return log_odds_shift(torch.stack([curve[0, 0], at_one[0]]), torch.stack([curve[0, 1], at_one[1]]))

    random_channel = sweep(delta_all[..., others[0]], other_directions[0])
    random_direction = sweep(delta_all[..., channel], random_directions[0])
    channel_shifts = [log_odds_shift(random_channel[:, 0], random_channel[:, 1])] + [
        shift_at_one(delta_all[..., other], along) for other, along in zip(others[1:], other_directions[1:])
    ]
    direction_shifts = [log_odds_shift(random_direction[:, 0], random_direction[:, 1])] + [
        shift_at_one(delta_all[..., channel], along) for along in random_directions[1:]
    ]
    reference = probabilities(counterfactual_rows, 0.0, delta_all[..., channel], direction)
    return InterventionCurve(
        task=batch.task,
        node=f"{node.hook}[{channel}]",
        channel_choice=choice,
        pairs=len(keep),
        strengths=list(strengths),
        candidates=[decode(int(c)) if decode else str(int(c)) for c in candidates[0]],
        prob_presented=curve[:, 0].tolist(),
        prob_counterfactual=curve[:, 1].tolist(),
        dense_on_counterfactual=reference.tolist(),
        bridge_scale=float(rms_sparse[node.boundary] / rms_dense[node.boundary]),
        gain_sparse=gain_sparse,
        control_channel=f"{node.hook}[{others[0]}]",
        prob_presented_random_channel=random_channel[:, 0].tolist(),
        prob_counterfactual_random_channel=random_channel[:, 1].tolist(),
        prob_presented_random_direction=random_direction[:, 0].tolist(),
        prob_counterfactual_random_direction=random_direction[:, 1].tolist(),
        control_channel_in_circuit=in_circuit,
        shift=log_odds_shift(curve[:, 0], curve[:, 1]),
        control_channels=[f"{node.hook}[{other}]" for other in others],
        control_shifts_random_channel=channel_shifts,
        control_shifts_random_direction=direction_shifts,
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
    for suffix, label, style in (
        (
            "random_channel",
            f"control: {curve.control_channel}" + (" (in the circuit)" * curve.control_channel_in_circuit),
            "--",
        ),
        ("random_direction", "control: random direction, same norm", ":"),
    ):
        for which, color in (("presented", "tab:blue"), ("counterfactual", "tab:orange")):
            values = getattr(curve, f"prob_{which}_{suffix}")
            ax.plot(curve.strengths, values, style, color=color, alpha=0.6, lw=1, label=f"{which}, {label}")
    ax.axhline(curve.dense_on_counterfactual[1], color="grey", ls="--", lw=1, label="dense on counterfactual prompt")
    ax.set_xlabel("steering strength")
    ax.set_ylabel("dense model probability")
    ax.set_ylim(bottom=0)
    ax.set_title(
        f"{curve.task}: {curve.node} ({curve.pairs} pairs)\nlog-odds shift {curve.shift:+.2f} nats; "
        f"{len(curve.control_shifts)} controls: max {max(curve.control_shifts):+.2f}, "
        f"{curve.controls_at_or_above} at or above",
        fontsize=9,
    )
    ax.legend(fontsize=LEGEND_FONTSIZE)
    ax.grid(alpha=GRID_ALPHA)
    save(fig, path)

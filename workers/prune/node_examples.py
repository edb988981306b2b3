"""What each kept node of a circuit responds to: the activation examples of its circuit page.

Two kinds, as in the paper's node figures (Fig. 4, 5, 40, 41) and the reference viewer:

- pretraining contexts: over the first `example_rows` rows of the tokenized corpus's val split,
  the full model's `examples` most positive and `examples` most negative activations of the node
  (an example is a position; two examples of one row are more than `context_after` + 1 tokens
  apart), each a strip of tokens around the position with the node's activation on every token;
- task prompts: the node's activation in the circuit (every other node ablated, as the circuit
  is evaluated) on both prompts of the first `task_pairs` test pairs, on the last tokens up to
  the position where the task reads its answer.

Activations are stored to 4 significant digits; token ids are shared through one `tokens` table
(id -> text). Everything here is JSON-able and goes into circuit.json under "activations".
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from tokenizers import Tokenizer
from torch import Tensor

from ...tasks import TaskBatch
from ..nn.circuit import node_id
from ..nn.gpt import GPT
from .config import ViewerConfig

Intervention = Callable[[Tensor], Tensor]


def rounded(value: float) -> float:
    """4 significant digits: what the page shows, and all a reader can compare by eye."""
    return float(f"{value:.4g}")


@torch.no_grad()
def record_kept(
    model: GPT,
    rows: Tensor,
    kept: dict[str, list[int]],
    interventions: dict[str, Intervention] | None = None,
    batch_rows: int = 16,
) -> dict[str, Tensor]:
    """{location: [N, T, kept channels]} on the CPU: the kept nodes' activations on `rows` [N, T]."""
    locations = [location for location, indices in kept.items() if indices]
    device = next(model.parameters()).device
    parts: dict[str, list[Tensor]] = {location: [] for location in locations}
    for start in range(0, rows.shape[0], batch_rows):
        _, recorded = model(rows[start : start + batch_rows].to(device), record=locations, interventions=interventions)
        for location in locations:
            columns = torch.tensor(kept[location], device=device)
            parts[location].append(recorded[location].index_select(-1, columns).float().cpu())
    return {location: torch.cat(chunks) for location, chunks in parts.items()}


def pick_positions(values: Tensor, count: int, sign: int, min_gap: int) -> list[tuple[int, int]]:
    """Up to `count` (row, position) of values [N, T] with the largest sign * value (> 0 only),
    best first; a position within `min_gap` of one already picked in its row is skipped."""
    flat = values.flatten() * sign
    pool = min(flat.numel(), count * (2 * min_gap + 2))
    best, order = torch.topk(flat, pool)
    picked: list[tuple[int, int]] = []
    taken: dict[int, list[int]] = {}
    width = values.shape[1]
    for value, index in zip(best.tolist(), order.tolist()):
        if value <= 0 or len(picked) == count:
            break
        row, position = divmod(index, width)
        if any(abs(position - other) <= min_gap for other in taken.get(row, ())):
            continue
        taken.setdefault(row, []).append(position)
        picked.append((row, position))
    return picked


def _strip(tokens: Tensor, acts: Tensor, start: int, stop: int, focus: int) -> dict[str, Any]:
    return {
        "tokens": tokens[start:stop].tolist(),
        "acts": [rounded(a) for a in acts[start:stop].tolist()],
        "focus": focus - start,
    }


def pretraining_examples(
    model: GPT, rows: Tensor, kept: dict[str, list[int]], viewer: ViewerConfig
) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """{node id: {"top": [strip], "bottom": [strip]}} over `rows` [N, T] of pretraining tokens."""
    examples: dict[str, dict[str, list[dict[str, Any]]]] = {}
    if viewer.examples == 0:
        return examples
    acts = record_kept(model, rows, kept)
    width = rows.shape[1]
    for location, per_node in acts.items():
        for column, index in enumerate(kept[location]):
            values = per_node[:, :, column]
            sides = {}
            for side, sign in (("top", 1), ("bottom", -1)):
                strips = []
                for row, position in pick_positions(values, viewer.examples, sign, viewer.context_after + 1):
                    start = max(0, position - viewer.context_before)
                    stop = min(width, position + viewer.context_after + 1)
                    strips.append(_strip(rows[row], values[row], start, stop, position))
                sides[side] = strips
            examples[node_id(location, index)] = sides
    return examples


def task_examples(
    model: GPT,
    batch: TaskBatch,
    kept: dict[str, list[int]],
    interventions: dict[str, Intervention],
    viewer: ViewerConfig,
) -> tuple[list[list[dict[str, Any]]], dict[str, list[list[list[float]]]]]:
    """The prompts of `batch` (pairs of two) as token strips ending at their answer position, and
    {node id: per pair, per prompt, the node's activation on each strip token} in the circuit."""
    if batch.n_pairs == 0:
        return [], {}
    acts = record_kept(model, batch.tokens.cpu(), kept, interventions)
    window = viewer.context_before + viewer.context_after + 1
    tokens, eval_pos = batch.tokens.cpu(), batch.eval_pos.cpu().tolist()
    correct, wrong = batch.correct_ids.cpu().tolist(), batch.wrong_ids.cpu().tolist()
    spans = [(max(0, end + 1 - window), end + 1) for end in eval_pos]
    prompts = [
        [
            {"tokens": tokens[row, start:stop].tolist(), "answer": correct[row], "alternative": wrong[row]}
            for row, (start, stop) in ((r, spans[r]) for r in (2 * pair, 2 * pair + 1))
        ]
        for pair in range(batch.n_pairs)
    ]
    per_node: dict[str, list[list[list[float]]]] = {}
    for location, values in acts.items():
        for column, index in enumerate(kept[location]):
            per_node[node_id(location, index)] = [
                [
                    [rounded(a) for a in values[row, start:stop, column].tolist()]
                    for row, (start, stop) in ((r, spans[r]) for r in (2 * pair, 2 * pair + 1))
                ]
                for pair in range(batch.n_pairs)
            ]
    return prompts, per_node


def node_examples(
    model: GPT,
    pretraining_rows: Tensor,
    task_batch: TaskBatch,
    kept: dict[str, list[int]],
    interventions: dict[str, Intervention],
    tokenizer: Tokenizer,
    viewer: ViewerConfig,
) -> dict[str, Any]:
    """The "activations" section of circuit.json (empty nodes when the circuit is over viewer.max_nodes)."""
    n_nodes = sum(len(indices) for indices in kept.values())
    section: dict[str, Any] = {"nodes": {}, "task_prompts": [], "tokens": {}, "pretraining_rows": 0}
    if n_nodes == 0 or n_nodes > viewer.max_nodes:
        section["skipped"] = f"{n_nodes} nodes (examples are stored for circuits of 1 to {viewer.max_nodes} nodes)"
        return section
    pretraining = pretraining_examples(model, pretraining_rows, kept, viewer)
    prompts, on_task = task_examples(model, task_batch, kept, interventions, viewer)
    used: set[int] = set()
    for sides in pretraining.values():
        for strips in sides.values():
            for strip in strips:
                used.update(strip["tokens"])
    for pair in prompts:
        for prompt in pair:
            used.update([*prompt["tokens"], prompt["answer"], prompt["alternative"]])
    section["nodes"] = {
        key: {**pretraining.get(key, {"top": [], "bottom": []}), "task": on_task.get(key, [])}
        for key in (node_id(location, index) for location, indices in kept.items() for index in indices)
    }
    section["task_prompts"] = prompts
    section["tokens"] = {str(i): tokenizer.decode([i]) for i in sorted(used)}
    section["pretraining_rows"] = int(pretraining_rows.shape[0]) if viewer.examples else 0
    return section

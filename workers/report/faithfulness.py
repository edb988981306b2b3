"""The faithfulness table: every circuit beside what the same pruning finds on its controls (README, "Controls").

Control cells (`prune.controls`) are named like any prune cell:

    random_init/<checkpoint>:<task>     the never-trained twin of the checkpoint, same task
    <checkpoint>:<task>__flipped        the task with the other candidate always correct
    <checkpoint>:<task>__shuffled       the task with a pseudo-random half of the pairs' answers swapped

One row per (trained checkpoint, task) that has at least one control: the circuit's edges at the target, the
random-init control's edges at the same target (or "not reached"), whether each twin reaches the target on test
and at what size, the full model's loss on each twin, and the circuit's inverse and random-circuit losses. A control
that reaches the target means pruning finds circuits there too: the circuit's size alone says little about the
model, only its difference from the control's does.

The ablation table: each circuit's test loss under mean, zero and resample ablation with the same masks.
"""

from __future__ import annotations

import html
from typing import Any

from ...tasks.variants import TWIN_KINDS, TWIN_SEPARATOR
from ..random_init import STAGE_NAME as RANDOM_INIT
from ..random_init import control_checkpoint, control_source

CONTROL_KINDS = (RANDOM_INIT, *TWIN_KINDS)
ABLATIONS = ("mean", "zero", "resample")


def control_kind(checkpoint: str, task: str) -> str | None:
    """Which control a cell is ("random_init", "flipped", "shuffled"), None for a circuit of a trained model."""
    if control_source(checkpoint) is not None:
        return RANDOM_INIT
    base, _, kind = task.rpartition(TWIN_SEPARATOR)
    return kind if base and kind in TWIN_KINDS else None


def _control_summary(row: dict[str, Any] | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {
        "test_reached_target": row.get("test_reached_target"),
        "edges": row["edges"],
        "nodes": row["nodes"],
        "circuit_loss": row.get("circuit_loss"),
        "full_model_loss": row.get("full_model_loss"),
    }


def faithfulness_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (trained checkpoint, task) with a control among `rows` (the report's cell rows)."""
    by_cell = {(r["checkpoint"], r["task"]): r for r in rows}
    table = []
    for row in rows:
        if row.get("control"):
            continue
        checkpoint, task = row["checkpoint"], row["task"]
        controls = {
            RANDOM_INIT: by_cell.get((control_checkpoint(checkpoint), task)),
            **{kind: by_cell.get((checkpoint, f"{task}{TWIN_SEPARATOR}{kind}")) for kind in TWIN_KINDS},
        }
        if not any(controls.values()):
            continue
        table.append(
            {
                "checkpoint": checkpoint,
                "task": task,
                "target_loss": row.get("target_loss"),
                "circuit": _control_summary(row),
                "inverse_loss": row.get("inverse_loss"),
                "random_circuit_loss": row.get("random_circuit_loss"),
                **{kind: _control_summary(control) for kind, control in controls.items()},
                # Which controls reach the target on test: each one that does is a finding to read the circuit by.
                "controls_reaching_target": [
                    kind for kind, control in controls.items() if control and control.get("test_reached_target")
                ],
            }
        )
    return table


def ablation_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each circuit's test loss (and inverse loss) under every ablation, the masks trained once."""
    return [
        {"checkpoint": r["checkpoint"], "task": r["task"], **r["ablation_losses"]}
        for r in rows
        if r.get("ablation_losses")
    ]


def _size(control: dict[str, Any] | None) -> str:
    if control is None:
        return "–"
    if not control["test_reached_target"]:
        return "not reached"
    return f"{control['edges']} edges"


def _loss(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, (int, float)) else "–"


FAITHFULNESS_HEADERS = (
    "checkpoint",
    "task",
    "circuit (test)",
    "random-init",
    "flipped twin",
    "full model on flipped",
    "shuffled twin",
    "full model on shuffled",
    "inverse",
    "random circuit",
)


def _cells(row: dict[str, Any]) -> list[str]:
    flipped, shuffled = row["flipped"] or {}, row["shuffled"] or {}
    return [
        row["checkpoint"],
        row["task"],
        _size(row["circuit"]),
        _size(row[RANDOM_INIT]),
        _size(row["flipped"]),
        _loss(flipped.get("full_model_loss")),
        _size(row["shuffled"]),
        _loss(shuffled.get("full_model_loss")),
        _loss(row["inverse_loss"]),
        _loss(row["random_circuit_loss"]),
    ]


def faithfulness_markdown(table: list[dict[str, Any]], ablations: list[dict[str, Any]]) -> str:
    if not table and not ablations:
        return ""
    lines = [
        "## Controls",
        "",
        "Circuit size where the target is reached on test, else 'not reached'; losses on test. A control that "
        "reaches the target means pruning finds a circuit where the model has none to find (README, 'Controls').",
        "",
        "| " + " | ".join(FAITHFULNESS_HEADERS) + " |",
        "|---" * len(FAITHFULNESS_HEADERS) + "|",
    ]
    lines += ["| " + " | ".join(_cells(row)) + " |" for row in table]
    if ablations:
        lines += ["", "Circuit test loss under each ablation (the same masks; `trained under` found them):", ""]
        lines += ["| checkpoint | task | trained under | " + " | ".join(ABLATIONS) + " |", "|---" * 6 + "|"]
        for row in ablations:
            losses = " | ".join(_loss((row.get(a) or {}).get("circuit_loss")) for a in ABLATIONS)
            lines.append(f"| {row['checkpoint']} | {row['task']} | {row['trained_under'] or '–'} | {losses} |")
    return "\n".join(lines) + "\n"


def faithfulness_html(table: list[dict[str, Any]], ablations: list[dict[str, Any]]) -> str:
    if not table and not ablations:
        return ""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in FAITHFULNESS_HEADERS)
    body = "".join(
        f"<tr class='{'miss' if row['controls_reaching_target'] else 'ok'}'>"
        + "".join(f"<td>{html.escape(cell)}</td>" for cell in _cells(row))
        + "</tr>"
        for row in table
    )
    ablation_head = "".join(f"<th>{a}</th>" for a in ABLATIONS)
    ablation_body = "".join(
        f"<tr><td>{html.escape(r['checkpoint'])}</td><td>{html.escape(r['task'])}</td>"
        f"<td>{html.escape(r['trained_under'] or '–')}</td>"
        + "".join(f"<td>{_loss((r.get(a) or {}).get('circuit_loss'))}</td>" for a in ABLATIONS)
        + "</tr>"
        for r in ablations
    )
    return (
        "<h2>Controls</h2><p>Each circuit beside what the same pruning finds on a never-trained twin of its model "
        "and on two nonsense twins of its task; circuit size where the target is reached on test. A control that "
        "reaches the target (grey row) means pruning finds circuits where the model has none to find.</p>"
        f"<table><tr>{head}</tr>{body}</table>"
        "<h3>One circuit, three ablations</h3><p>Test loss of each circuit with the nodes outside it mean-, zero- "
        "and resample-ablated; the masks are the ones trained under 'trained under', never retrained.</p>"
        f"<table><tr><th>checkpoint</th><th>task</th><th>trained under</th>{ablation_head}</tr>{ablation_body}</table>"
    )

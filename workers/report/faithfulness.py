"""The faithfulness table: every circuit beside what the same pruning finds on its controls (README, "Controls").

Control cells (`prune.controls`) are named like any prune cell, and their result.json records which circuit they
stand beside (`control`: kind, checkpoint, task; `prune/controls.py`):

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

CONTROL_KINDS = ("random_init", "flipped", "shuffled")
ABLATIONS = ("mean", "zero", "resample")


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
    """One row per (trained checkpoint, task) with a control among `rows` (the report's cell rows, whose
    `control_of` is the prune result's `control`: the kind and the circuit it stands beside)."""
    controls: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for row in rows:
        if row.get("control_of"):
            of = row["control_of"]
            controls.setdefault((of["checkpoint"], of["task"]), {})[of["kind"]] = row
    table = []
    for row in rows:
        found = controls.get((row["checkpoint"], row["task"]))
        if row.get("control_of") or not found:
            continue
        table.append(
            {
                "checkpoint": row["checkpoint"],
                "task": row["task"],
                "target_loss": row.get("target_loss"),
                "circuit": _control_summary(row),
                "inverse_loss": row.get("inverse_loss"),
                "random_circuit_loss": row.get("random_circuit_loss"),
                **{kind: _control_summary(found.get(kind)) for kind in CONTROL_KINDS},
                # Which controls reach the target on test: each one that does is a finding to read the circuit by.
                "controls_reaching_target": [
                    kind for kind in CONTROL_KINDS if kind in found and found[kind].get("test_reached_target")
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
        _size(row["random_init"]),
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

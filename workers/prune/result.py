"""What a prune cell hands downstream, written down once: its files, its cell name and result.json's fields.

Prune writes result.json through `write_result` and the report reads it through `read_result`, so a field
is renamed or dropped in one place and a mismatch fails where it is written, not as a KeyError in another
stage. `PruneResult` names the fields readers rely on; result.json holds more (the bisection, the curve,
the kept indices), which it keeps as extra fields.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from .degenerate import CIRCUIT

RESULT_FILE = "result.json"  # PruneResult
CIRCUIT_FILE = "circuit.json"  # the circuit graph and its viewer sections (nn.circuit.circuit_to_json)
CIRCUIT_PAGE = "circuit.html"  # the circuit page, self-contained
CURVE_PLOT = "loss_vs_k.png"  # loss vs circuit size

# A prune cell is "<checkpoint>:<task>", e.g. "pretrain/tiny:bracket_counting" (task names hold no ':').
CELL_SEPARATOR = ":"


def cell_name(checkpoint: str, task: str) -> str:
    return f"{checkpoint}{CELL_SEPARATOR}{task}"


def split_cell(name: str) -> tuple[str, str]:
    """(checkpoint, task) of a prune cell name."""
    checkpoint, separator, task = name.rpartition(CELL_SEPARATOR)
    if not separator or not checkpoint or not task:
        raise ValueError(f"{name!r} is not a prune cell name: expected '<checkpoint>{CELL_SEPARATOR}<task>'")
    return checkpoint, task


class PruneResult(BaseModel):
    """result.json: the circuit at the tuned target and its losses (test split), plus one circuit per swept
    target (`sweep`)."""

    model_config = ConfigDict(extra="allow")

    cell: str
    checkpoint: str
    task: str
    # The target loss the hyperparameters were chosen at (CARBS when tuning, else prune.hyper as given): the
    # circuit above is the one at this target; `sweep` holds every target's, this one included.
    tuned_target: float
    target_loss: float
    loss_reduction: str
    nodes: int
    edges: int
    total_nodes: int
    reached_target: bool  # val-split selection
    circuit: str = CIRCUIT  # or a degenerate one: "empty", "whole model", "not reached" (`degenerate`)
    test_reached_target: bool | None = None
    test_pairs: int | None = None
    circuit_loss: float | None = None
    binarized_loss: float | None = None
    calibrated_loss: float | None = None
    full_model_loss: float | None = None
    inverse_loss: float | None = None
    random_circuit_loss: float | None = None
    kept: dict[str, list[int]]  # the circuit: kept channel indices per node location
    sweep: list[dict[str, Any]] = []
    model_info: dict[str, Any] = {}
    # prune.seeds (seeds.py): one row per seed (seed, nodes, edges, reached_target, selection_loss,
    # test_reached_target, circuit_loss, full_model_loss; or seed and error), the written circuit's first, and
    # {"nodes"|"edges"|"circuit_loss": {"median", "min", "max"}} over them.
    seeds: list[dict[str, Any]] = []
    seed_spread: dict[str, dict[str, float]] = {}
    # {loss name: [low, high]}: bootstrap 95% interval over the test pairs of every reported loss (intervals.py).
    intervals: dict[str, list[float] | None] = {}


def write_result(folder: Path, data: dict[str, Any]) -> None:
    """Validates `data` as a PruneResult and writes it, every field as given, to folder/result.json."""
    PruneResult.model_validate(data)
    (Path(folder) / RESULT_FILE).write_text(json.dumps(data, indent=1))


def read_result(folder: Path) -> PruneResult:
    path = Path(folder) / RESULT_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{folder} holds no {RESULT_FILE}: it is not a prune cell's artifact")
    return PruneResult.model_validate_json(path.read_text())

"""A verdict on every circuit: named checks on one circuit's evidence, and whether a reader may trust it.

A circuit is one prune cell's result row (`worker.summarize`), "<checkpoint>:<task>". Its checks:

    model_performs  the full model's test loss is at or under the target: a circuit of a model that does not do
                    the task describes the masks, not the model
    within_model    the circuit's test loss is not under the full model's by more than `exceed_margin`: one that
                    is "exceeds its model" (the masks and the ablation values compute it, App. E's argument fails)
    holds_on_test   the circuit's test loss is at or under the target (bisection chose it on val)
    controls_clear  what the same pruning finds on the controls: the random-init twin of the checkpoint
                    ("random_init/<checkpoint>:<task>") and the flipped twin ("<checkpoint>:<task>__flipped") do
                    not reach the target on test, not even within their bootstrap interval; the shuffled twin
                    ("<checkpoint>:<task>__shuffled") reaching it is a leak of the held-out pairs; each of the
                    three fails the check
    necessary       ablating the circuit (the inverse, every other node kept) raises the test loss over the full
                    model's by at least `necessary_margin` (paper Fig. 32)
    stable          across mask seeds, the largest node and edge counts are at most `stable_factor` times the smallest

Each check is "pass", "fail", or "not measured" when its evidence is absent (controls not run, one mask seed, a
failed cell): that is not a pass. The verdict is "trusted" when every check passes, else the list of the checks
that did not. Control cells are evidence for the circuit they control, not circuits of their own: their verdict
is "control" and they have no checks.

Evidence is read with .get: a result from before a check's evidence existed gets "not measured", never an error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from .config import ReportConfig

PASS, FAIL, NOT_MEASURED = "pass", "fail", "not measured"
TRUSTED, CONTROL = "trusted", "control"
CHECKS = ("model_performs", "within_model", "holds_on_test", "controls_clear", "necessary", "stable")

RANDOM_INIT = "random_init/"  # checkpoint prefix of a random-init control
FLIPPED, SHUFFLED = "__flipped", "__shuffled"  # task suffixes of the two task twins
CONTROL_ROLES = ("random_init", "flipped", "shuffled")


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # PASS, FAIL or NOT_MEASURED
    rule: str
    numbers: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "rule": self.rule, **self.numbers}


# ----------------------------------------------------------------------------- evidence


def _number(value: Any) -> float | None:
    """A finite number, else None (absent, null, NaN or a bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _interval(cell: dict[str, Any], loss: str) -> list[float] | None:
    """The bootstrap 95% interval of `loss` ("full_model_loss") over test pairs, if the cell has one."""
    intervals = cell.get("intervals")
    if not isinstance(intervals, dict):
        return None
    found = intervals.get(loss, intervals.get(loss.removesuffix("_loss")))
    return list(found) if isinstance(found, (list, tuple)) and len(found) == 2 else None


def holds(cell: dict[str, Any] | None) -> bool | None:
    """Whether a cell's circuit reaches its target on test; None when the cell says nothing about it."""
    if not cell:
        return None
    if isinstance(cell.get("test_reached_target"), bool):
        return cell["test_reached_target"]
    loss, target = _number(cell.get("circuit_loss")), _number(cell.get("target_loss"))
    return None if loss is None or target is None else loss <= target


def _with_interval(numbers: dict[str, Any], cell: dict[str, Any], loss: str) -> dict[str, Any]:
    interval = _interval(cell, loss)
    return numbers if interval is None else {**numbers, f"{loss}_interval": interval}


# ------------------------------------------------------------------------------- checks


def model_performs(cell: dict[str, Any]) -> Check:
    full, target = _number(cell.get("full_model_loss")), _number(cell.get("target_loss"))
    rule = "full model's test loss <= target loss"
    numbers = _with_interval({"full_model_loss": full, "target_loss": target}, cell, "full_model_loss")
    if full is None or target is None:
        return Check("model_performs", NOT_MEASURED, rule, numbers)
    return Check("model_performs", PASS if full <= target else FAIL, rule, numbers)


def within_model(cell: dict[str, Any], exceed_margin: float) -> Check:
    circuit, full = _number(cell.get("circuit_loss")), _number(cell.get("full_model_loss"))
    rule = f"circuit's test loss >= full model's - {exceed_margin:g} (else the circuit exceeds its model)"
    numbers: dict[str, Any] = {"circuit_loss": circuit, "full_model_loss": full, "exceed_margin": exceed_margin}
    if circuit is None or full is None:
        return Check("within_model", NOT_MEASURED, rule, numbers)
    exceeds = circuit < full - exceed_margin
    numbers = _with_interval(
        {**numbers, "exceeds_model": exceeds, "circuit_minus_model": circuit - full}, cell, "circuit_loss"
    )
    return Check("within_model", FAIL if exceeds else PASS, rule, numbers)


def holds_on_test(cell: dict[str, Any]) -> Check:
    rule = "circuit's test loss <= target loss (bisection chose it on val)"
    numbers = _with_interval(
        {
            "circuit_loss": _number(cell.get("circuit_loss")),
            "target_loss": _number(cell.get("target_loss")),
            "reached_target_on_val": cell.get("reached_target"),
        },
        cell,
        "circuit_loss",
    )
    held = holds(cell)
    if held is None:
        return Check("holds_on_test", NOT_MEASURED, rule, numbers)
    return Check("holds_on_test", PASS if held else FAIL, rule, numbers)


def within_reach(cell: dict[str, Any]) -> bool:
    """Whether a control's test loss may be at the target: the lower end of its bootstrap interval is at or under
    it. A control at 0.154 with an interval of [0.134, 0.174] against a 0.15 target has not shown that it misses."""
    interval, target = _interval(cell, "circuit_loss"), _number(cell.get("target_loss"))
    return interval is not None and target is not None and interval[0] <= target


def controls_clear(controls: dict[str, tuple[str, dict[str, Any] | None]]) -> Check:
    """`controls`: role ("random_init", "flipped", "shuffled") -> (the control cell's name, its row or None).

    A control fails the check when it reaches the target on test, or when its test loss misses the target by less
    than its bootstrap interval (`within_reach`): the evidence a control gives is that pruning does *not* get there,
    so a miss inside the noise is not that evidence."""
    rule = (
        "on test, the random-init twin and the flipped twin do not reach the target, not even within their "
        "95% interval; the shuffled twin does not either (else the held-out pairs leak)"
    )
    numbers: dict[str, Any] = {}
    reached, missing = [], []
    for role in CONTROL_ROLES:
        name, cell = controls[role]
        held = holds(cell)
        if held is None:
            missing.append(role)
            numbers[role] = {"cell": name, "status": "not run" if cell is None else NOT_MEASURED}
            continue
        near = not held and within_reach(cell)
        numbers[role] = {
            "cell": name,
            "test_reached_target": held,
            "within_interval_of_target": near,
            "circuit_loss": _number(cell.get("circuit_loss")),
            "circuit_loss_interval": _interval(cell, "circuit_loss"),
            "edges": cell.get("edges"),
        }
        if held or near:
            reached.append(role)
    if reached:
        numbers["reached_target"] = reached
        if "shuffled" in reached:
            numbers["leak"] = True
        return Check("controls_clear", FAIL, rule, numbers)
    if missing:
        numbers["not_measured"] = missing
        return Check("controls_clear", NOT_MEASURED, rule, numbers)
    return Check("controls_clear", PASS, rule, numbers)


def necessary(cell: dict[str, Any], necessary_margin: float) -> Check:
    # The inverse loss at the circuit, on test pairs; the curve along the sweep (loss_vs_k, on val pairs) is
    # the faithfulness table's.
    inverse, full = _number(cell.get("inverse_loss")), _number(cell.get("full_model_loss"))
    rule = f"test loss with the circuit ablated >= full model's + {necessary_margin:g} (paper Fig. 32)"
    numbers: dict[str, Any] = {"inverse_loss": inverse, "full_model_loss": full, "necessary_margin": necessary_margin}
    if inverse is None or full is None:
        return Check("necessary", NOT_MEASURED, rule, numbers)
    numbers = _with_interval({**numbers, "ablation_cost": inverse - full}, cell, "inverse_loss")
    return Check("necessary", PASS if inverse - full >= necessary_margin else FAIL, rule, numbers)


def _seed_range(cell: dict[str, Any], size: str) -> tuple[float, float] | None:
    """(min, max) of `size` ("nodes", "edges") across mask seeds: `seed_spread`, else the `seeds` list."""
    spread = cell.get("seed_spread")
    if isinstance(spread, dict) and isinstance(spread.get(size), dict):
        low, high = _number(spread[size].get("min")), _number(spread[size].get("max"))
        if low is not None and high is not None:
            return low, high
    values = [_number(seed.get(size)) for seed in cell.get("seeds") or [] if isinstance(seed, dict)]
    values = [v for v in values if v is not None]
    return (min(values), max(values)) if values else None


def stable(cell: dict[str, Any], stable_factor: float) -> Check:
    seeds = cell.get("seeds")
    count = len(seeds) if isinstance(seeds, list) else None
    rule = f"across mask seeds, max / min of nodes and of edges <= {stable_factor:g}"
    numbers: dict[str, Any] = (
        {"stable_factor": stable_factor} if count is None else {"seeds": count, "stable_factor": stable_factor}
    )
    ranges = {size: _seed_range(cell, size) for size in ("nodes", "edges")}
    if (count is not None and count < 2) or any(r is None for r in ranges.values()):
        return Check("stable", NOT_MEASURED, rule + " (needs two or more seeds)", numbers)
    ratios = {}
    for size, (low, high) in ranges.items():  # type: ignore[misc]
        numbers[size] = [low, high]
        ratios[size] = high / max(low, 1.0)  # an empty circuit counts as size 1, as in the geometric means
    numbers["max_over_min"] = ratios
    return Check("stable", PASS if all(r <= stable_factor for r in ratios.values()) else FAIL, rule, numbers)


# ------------------------------------------------------------------------------ verdict


def control_of(checkpoint: str, task: str) -> str | None:
    """The "<checkpoint>:<task>" a control cell is evidence for; None for a circuit of the study."""
    if not (checkpoint.startswith(RANDOM_INIT) or task.endswith((FLIPPED, SHUFFLED))):
        return None
    base_task = task.removesuffix(FLIPPED).removesuffix(SHUFFLED)
    return f"{checkpoint.removeprefix(RANDOM_INIT)}:{base_task}"


def control_cells(checkpoint: str, task: str) -> dict[str, tuple[str, str]]:
    """role -> the (checkpoint, task) of the circuit's control cell of that role."""
    return {
        "random_init": (f"{RANDOM_INIT}{checkpoint}", task),
        "flipped": (checkpoint, f"{task}{FLIPPED}"),
        "shuffled": (checkpoint, f"{task}{SHUFFLED}"),
    }


def circuit_checks(
    cell: dict[str, Any], controls: dict[str, tuple[str, dict[str, Any] | None]], settings: ReportConfig
) -> list[Check]:
    return [
        model_performs(cell),
        within_model(cell, settings.exceed_margin),
        holds_on_test(cell),
        controls_clear(controls),
        necessary(cell, settings.necessary_margin),
        stable(cell, settings.stable_factor),
    ]


def verdict_of(checks: list[Check]) -> str | list[str]:
    """ "trusted" when every check passes, else the names of those that did not (failed or not measured)."""
    failing = [check.name for check in checks if check.status != PASS]
    return failing or TRUSTED


def judge(rows: list[dict[str, Any]], settings: ReportConfig) -> list[dict[str, Any]]:
    """Adds `checks` and `verdict` to every row (a control row: verdict "control", `control_for`, no checks);
    returns the rows."""
    by_cell = {(row["checkpoint"], row["task"]): row for row in rows}
    for row in rows:
        controlled = control_of(row["checkpoint"], row["task"])
        if controlled is not None or row.get("control"):
            row.update({"verdict": CONTROL, "control_for": controlled, "checks": {}})
            continue
        controls = {
            role: (f"{checkpoint}:{task}", by_cell.get((checkpoint, task)))
            for role, (checkpoint, task) in control_cells(row["checkpoint"], row["task"]).items()
        }
        checks = circuit_checks(row, controls, settings)
        row["checks"] = {check.name: check.to_json() for check in checks}
        row["verdict"] = verdict_of(checks)
    return rows


def is_control(row: dict[str, Any]) -> bool:
    return row.get("verdict") == CONTROL


def is_trusted(row: dict[str, Any]) -> bool:
    return row.get("verdict") == TRUSTED


def exceeds_model(row: dict[str, Any]) -> bool:
    return bool(row.get("checks", {}).get("within_model", {}).get("exceeds_model"))


def failing_checks(row: dict[str, Any]) -> dict[str, str]:
    """check name -> "fail" or "not measured", for a judged circuit row."""
    return {name: check["status"] for name, check in row.get("checks", {}).items() if check["status"] != PASS}

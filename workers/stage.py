"""What a stage declares, and what the controller reads from it.

Every stage package under `workers/` holds a `stage.py` that fills in one (or
two) `Stage` records: its upstream stages, a version, the config sections it
owns with their models and preset values, a function that lists its cells from
the resolved config, and the function a cell runs in the worker process.
`workers/registry.py` lists them, one line per stage; the controller in
`pipeline/` builds the config model, the DAG and the cache keys from that list
and names no stage itself.

This module imports nothing from the controller: workers depend on it, the
controller depends on it, and neither depends on the other through it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """Unknown keys are errors, so a typo never silently falls back to a default."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ConfigError(ValueError):
    """A bad key or value in any config source; the message names the key and the source."""


@dataclass(frozen=True)
class Resources:
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    actor: bool = False  # stateful trainers run in an actor, stateless units as tasks
    # > 1: a data-parallel unit. Each of `workers` workers gets num_cpus and num_gpus; the actor itself none.
    workers: int = 1


@dataclass(frozen=True)
class CellRef:
    stage: str
    cell: str = ""

    def __str__(self) -> str:
        return f"{self.stage}/{self.cell}" if self.cell else self.stage


@dataclass
class Cell:
    stage: str
    cell: str
    params: dict[str, Any]
    inputs: dict[str, CellRef] = field(default_factory=dict)
    resources: Resources = field(default_factory=Resources)

    @property
    def ref(self) -> CellRef:
        return CellRef(self.stage, self.cell)


@dataclass(frozen=True)
class Benchmark:
    """One `sparsepipe bench NAME` command.

    `run` is "module:function", called as function(quick) or, when `ray` is true, as
    function(quick, submit=..., cpus=...) inside a private local Ray instance (submit runs Ray tasks).
    When `takes_workers` is true the command also takes `--workers 1,2` and, when it is given, passes
    workers=(1, 2); the function raises benchmarking.BenchmarkOptionError, before measuring, for counts
    it cannot run.
    """

    name: str
    help: str
    run: str
    ray: bool = False
    takes_workers: bool = False


class Upstream(dict[str, list[Cell]]):
    """The cells listed so far, by stage name, with the Stage records that listed them.

    A stage that reads every artifact of a kind (each checkpoint) asks `of_kind` rather than naming the
    stages that provide it, so a new provider is picked up by its `provides` alone.
    """

    def __init__(self, stages: dict[str, Stage], cells: dict[str, list[Cell]] | None = None):
        super().__init__(cells or {})
        self.stages = stages

    def providers(self, kind: str) -> list[str]:
        """The listed stages that provide `kind`, in listing (dependency) order."""
        return [name for name in self if kind in self.stages[name].provides]

    def of_kind(self, kind: str) -> list[Cell]:
        return [cell for name in self.providers(kind) for cell in self[name]]

    def named_only(self) -> set[str]:
        """The listed stages whose cells a selection of `all` leaves out (`Stage.named_only`)."""
        return {name for name in self if self.stages[name].named_only}


# (the resolved pipeline config, the cells listed so far by upstream stages) -> this stage's cells
CellLister = Callable[[Any, Upstream], list[Cell]]
# the resolved pipeline config -> the problems found, each naming the keys involved (empty: none)
ConfigCheck = Callable[[Any], list[str]]


@dataclass(frozen=True)
class Stage:
    """One node of the DAG.

    `run` is "module:function", called as function(ctx, params_dict) in the worker process; the cache
    key's code fingerprint covers every project module that module imports, directly or not.
    `config` maps the top-level config sections this stage owns to their models, in the order they are
    shown; `presets` maps a preset name to this stage's partial values for those sections.
    `records` are globs of output files that record how a run went (timings, hosts) rather than what it
    computed; they are committed like any file but left out of the artifact's content identity, which
    downstream keys hash.
    `provides` names the kinds of artifact tools look up by kind ("tokenizer", "checkpoint"), e.g.
    `sparsepipe tasks eval`, which evaluates every committed checkpoint; "report" marks the artifact
    whose index.html `sparsepipe status` points to.
    `dep_kinds` are deps by kind: the stage depends on every registered stage that provides one of these
    kinds (but itself), so a new provider needs no edit of its readers; the controller expands them.
    `named_only`: a selection of `all` over this kind's cells leaves this stage's cells out; they are read
    only when named (imported models read their own tokenizer's ids).
    `shortcuts` maps a `run`/`plan` option (tasks, checkpoints) to the config key it sets.
    `checks` see the whole resolved config, for what no single section's model can: this stage's values
    against an upstream's (a model's n_ctx against the token rows'). Any problem they return is a config
    error (exit 2) before anything runs, not a failure inside a worker after the upstream stages ran.
    `committed_cells`: besides the cells `cells` lists, every cell committed in the store is listed, with the
    params it was committed with (cells a command commits, as `sparsepipe import`; such a stage has no deps).
    `accepts_failed_inputs`: a cell whose inputs failed runs without them (once every other input is committed)
    instead of being skipped; `ctx.failed_inputs` maps their names to their one-line errors, and each enters the
    key as its error, so the cell runs again once that input commits (a report built from what succeeded).
    `estimate` is "module:function", called as function(cell, config, cells, device_type) -> CellCost | None
    (workers/estimate.py) by `sparsepipe plan --estimate`; it is not part of any cell's code fingerprint.
    """

    name: str
    version: str
    deps: tuple[str, ...]
    cells: CellLister
    run: str
    description: str = ""
    matrix: bool = False
    config: dict[str, type[StrictModel]] = field(default_factory=dict)
    presets: dict[str, dict[str, Any]] = field(default_factory=dict)
    records: tuple[str, ...] = ()
    provides: tuple[str, ...] = ()
    shortcuts: dict[str, str] = field(default_factory=dict)
    checks: tuple[ConfigCheck, ...] = ()
    committed_cells: bool = False
    dep_kinds: tuple[str, ...] = ()
    named_only: bool = False
    accepts_failed_inputs: bool = False
    estimate: str = ""

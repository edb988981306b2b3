"""Stages, cells, cache keys and plans.

A stage (`workers/stage.py`) declares its dependencies, a version, the function
its cells run (whose import closure is fingerprinted into every key, see
`fingerprint.py`) and a function that lists its cells from the config.  A cell is
one unit of work: a single-cell stage has the cell "", a matrix stage one cell
per model variant or per (checkpoint, task).  Every cell has its own key:

    key = sha256(canonical JSON of {schema, stage, version, cell, code, params, inputs, env})

where `inputs` maps each input to the upstream artifact's content identity (its
key, generation and file digests; `content_identity`), so a changed param, code
or upstream artifact gives a new key (a Merkle chain), while the volatile
fields of a MANIFEST (commit time, timings, pid, attempt) do not enter it: the
same code and data give the same keys in any store.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from fnmatch import fnmatch
from importlib import metadata
from typing import Any, Callable

from ..workers.stage import Cell, CellLister, CellRef, Resources, Stage, Upstream
from .config import PipelineConfig
from .fingerprint import code_fingerprint
from .integrity import summarize
from .store import Manifest, Store, canonical_json
from .tracking import TRACKER_RECORDS

__all__ = [
    "Cell",
    "CellLister",
    "CellRef",
    "Resources",
    "Stage",
    "Upstream",
    "Registry",
    "Planner",
    "CellPlan",
    "HIT",
    "RUN",
    "DAMAGED",
    "code_fingerprint",
]

KEY_SCHEMA = 2  # 2: upstreams enter by content identity, code by import closure


class Registry:
    def __init__(self, stages: list[Stage]):
        self.stages = {stage.name: stage for stage in stages}
        self._deps = {stage.name: self._expand(stage) for stage in stages}
        self.order = self._topological([s.name for s in stages])

    def _expand(self, stage: Stage) -> tuple[str, ...]:
        """`deps`, then every other stage that provides one of `dep_kinds`, in registration order."""
        by_kind = [
            other.name
            for other in self.stages.values()
            if other.name != stage.name and set(other.provides) & set(stage.dep_kinds)
        ]
        return tuple(dict.fromkeys([*stage.deps, *by_kind]))

    def deps(self, name: str) -> tuple[str, ...]:
        """The stages `name` reads from: its declared deps and, by kind, every provider of its `dep_kinds`."""
        return self._deps[name]

    def _topological(self, names: list[str]) -> list[str]:
        order: list[str] = []
        visiting: set[str] = set()

        def visit(name: str) -> None:
            if name in order:
                return
            if name in visiting:
                raise ValueError(f"stage dependency cycle through {name!r}")
            visiting.add(name)
            for dep in self._deps[name]:
                if dep not in self.stages:
                    raise ValueError(f"stage {name!r} depends on unknown stage {dep!r}")
                visit(dep)
            visiting.discard(name)
            order.append(name)

        for name in names:
            visit(name)
        return order

    def __getitem__(self, name: str) -> Stage:
        return self.stages[name]

    def closure(self, targets: list[str]) -> list[str]:
        """The targets and everything they depend on, in topological order."""
        needed: set[str] = set()

        def add(name: str) -> None:
            if name not in needed:
                needed.add(name)
                for dep in self._deps[name]:
                    add(dep)

        for target in targets:
            add(target)
        return [name for name in self.order if name in needed]

    def list_cells(
        self, config: PipelineConfig, stages: list[str], committed: Callable[[str], list[Cell]] | None = None
    ) -> Upstream:
        """Every stage's cells; `committed(stage)` adds the cells committed in the store, for stages that
        declare `committed_cells` (a cell the config lists too keeps the config's params)."""
        cells = Upstream(self.stages)
        for name in stages:
            listed = self.stages[name].cells(config, cells)
            if committed is not None and self.stages[name].committed_cells:
                names = {cell.cell for cell in listed}
                listed += [cell for cell in committed(name) if cell.cell not in names]
            cells[name] = listed
        return cells


def default_registry() -> Registry:
    """The registered stages (`workers/registry.py`)."""
    from ..workers.registry import STAGES

    return Registry(list(STAGES))


# --------------------------------------------------------------------- keys


def content_identity(manifest: Manifest, records: tuple[str, ...] = ()) -> str:
    """What a downstream key hashes for an upstream artifact: its key, generation and file digests.

    Files matching `records` (the producing stage's run records) are left out.
    """
    files = {
        path: info["sha256"]
        for path, info in sorted(manifest.files.items())
        if not any(fnmatch(path, glob) for glob in records)
    }
    return hashlib.sha256(
        canonical_json({"key": manifest.key, "generation": manifest.generation, "files": files})
    ).hexdigest()


def environment_facts() -> dict[str, str]:
    # Read from metadata: importing torch would cost every `plan` a second.
    return {"torch": ".".join(metadata.version("torch").split(".")[:2])}


def preimage(stage: Stage, cell: Cell, input_digests: dict[str, str]) -> dict[str, Any]:
    return {
        "schema": KEY_SCHEMA,
        "stage": stage.name,
        "version": stage.version,
        "cell": cell.cell,
        "code": code_fingerprint(stage.run.partition(":")[0]),
        "params": cell.params,
        "inputs": dict(sorted(input_digests.items())),
        "env": environment_facts(),
    }


def cache_key(pre: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(pre)).hexdigest()


# -------------------------------------------------------------------- plans

HIT, RUN = "HIT", "RUN"
# A committed artifact whose files no longer match its manifest: never served, rebuilt as a new generation.
DAMAGED = "DAMAGED"


@dataclass
class CellPlan:
    cell: Cell
    status: str  # HIT, RUN or DAMAGED (runs, like RUN)
    reason: str
    key: str | None = None  # None while an upstream still has to run
    preimage: dict[str, Any] | None = None
    manifest: Manifest | None = None
    generation: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "stage": self.cell.stage,
            "cell": self.cell.cell,
            "status": self.status,
            "reason": self.reason,
            "key": self.key,
            "generation": self.generation
            if self.status != HIT
            else (self.manifest.generation if self.manifest else None),
        }


def _changed_params(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        changed = []
        for key in sorted(set(old) | set(new)):
            changed.extend(_changed_params(old.get(key), new.get(key), f"{prefix}{key}."))
        return changed
    return [] if old == new else [prefix.rstrip(".")]


def explain_change(old: dict[str, Any], new: dict[str, Any]) -> str:
    """Which component of the key pre-image changed since the last build of the same cell."""
    reasons = []
    if old.get("version") != new.get("version"):
        reasons.append(f"stage version {old.get('version')} -> {new.get('version')}")
    if old.get("code") != new.get("code"):
        reasons.append("code changed")
    changed = _changed_params(old.get("params", {}), new.get("params", {}))
    if changed:
        shown = ", ".join(changed[:4]) + (f" (+{len(changed) - 4} more)" if len(changed) > 4 else "")
        reasons.append(f"params changed: {shown}")
    old_inputs, new_inputs = old.get("inputs", {}), new.get("inputs", {})
    for name in sorted(set(old_inputs) | set(new_inputs)):
        if old_inputs.get(name) != new_inputs.get(name):
            reasons.append(f"upstream {name} changed")
    if old.get("env") != new.get("env"):
        reasons.append(f"environment changed: {old.get('env')} -> {new.get('env')}")
    return "; ".join(reasons) or "key changed"


def needed_cells(cells: dict[str, list[Cell]], targets: list[str]) -> dict[str, list[Cell]]:
    """Only the cells of the target stages and the cells they read, transitively.

    A stage that is merely upstream of a target (a checkpoint stage the target's cell selection
    leaves out) keeps only the cells some selected cell needs.
    """
    by_ref = {cell.ref: cell for stage_cells in cells.values() for cell in stage_cells}
    needed: set[CellRef] = set()
    stack = [cell.ref for name in targets for cell in cells.get(name, [])]
    while stack:
        ref = stack.pop()
        if ref in needed or ref not in by_ref:
            continue
        needed.add(ref)
        stack.extend(by_ref[ref].inputs.values())
    return {name: [cell for cell in stage_cells if cell.ref in needed] for name, stage_cells in cells.items()}


class Planner:
    """Decides HIT or RUN for every cell, given what the store holds."""

    def __init__(self, registry: Registry, store: Store, verify_inputs: bool = False):
        self.registry = registry
        self.store = store
        self.verify_inputs = verify_inputs  # re-hash every file of every HIT, not just sizes
        self._history: dict[str, list[Manifest]] = {}
        self.warnings: list[str] = []  # unusable manifest files met while planning

    def committed_cells(self, stage: str) -> list[Cell]:
        """The cells committed in the store for `stage`, each as its newest commit built it, by cell name."""
        newest: dict[str, Manifest] = {}
        self._previous(stage, "")  # reads the stage's manifests once
        for manifest in self._history[stage]:
            newest[manifest.cell] = manifest
        return [
            Cell(stage, cell, manifest.data.get("preimage", {}).get("params", {}))
            for cell, manifest in sorted(newest.items())
        ]

    def _previous(self, stage: str, cell: str) -> Manifest | None:
        if stage not in self._history:
            pattern = self.store._path(stage, "*", "MANIFEST.*.json")
            manifests = [
                self.store._read_manifest(p) for p in self.store._io("listing manifests", self.store.fs.glob, pattern)
            ]
            self._history[stage] = sorted((m for m in manifests if m), key=lambda m: m.data.get("committed_at", 0))
        matches = [m for m in self._history[stage] if m.cell == cell]
        return matches[-1] if matches else None

    def plan_cell(
        self,
        cell: Cell,
        committed: dict[CellRef, Manifest],
        running: set[CellRef],
        forced: set[str],
        failed: dict[CellRef, str] | None = None,
    ) -> CellPlan:
        """`failed` maps the cells that failed in this run to their errors: a stage that `accepts_failed_inputs`
        is planned without them, each entering the key as its error."""
        stage = self.registry[cell.stage]
        failed = failed if stage.accepts_failed_inputs and failed else {}
        pending = [name for name, ref in cell.inputs.items() if ref not in committed and ref not in failed]
        if pending:
            blocked = ", ".join(str(cell.inputs[n]) for n in pending)
            why = "will run" if any(cell.inputs[n] in running for n in pending) else "is not built"
            return CellPlan(cell, RUN, f"upstream {blocked} {why}")
        digests = {
            name: content_identity(committed[ref], self.registry[ref.stage].records + TRACKER_RECORDS)
            if ref in committed
            else f"failed: {failed[ref]}"
            for name, ref in cell.inputs.items()
        }
        pre = preimage(stage, cell, digests)
        key = cache_key(pre)
        found = self.store.manifests_of(cell.stage, key)
        valid = [m for m in found if isinstance(m, Manifest)]
        manifest = valid[-1] if valid else None
        bad = [m for m in found if not isinstance(m, Manifest)]
        for item in bad:
            warning = f"{cell.ref}: skipping {item.describe()}"
            if warning not in self.warnings:
                self.warnings.append(warning)
        # Every manifest file holds its generation, valid or not: a rebuild takes the next free one.
        generation = max((m.generation or 0 for m in found), default=-1) + 1
        if cell.stage in forced:
            return CellPlan(cell, RUN, f"--force (generation {generation})", key, pre, manifest, generation)
        if manifest is not None:
            problems = self.store.check(manifest, full=self.verify_inputs)
            if problems:
                return CellPlan(
                    cell,
                    DAMAGED,
                    f"generation {manifest.generation} is damaged ({summarize(problems)}); "
                    f"rebuilding as generation {generation}",
                    key,
                    pre,
                    None,
                    generation,
                )
            return CellPlan(
                cell, HIT, f"committed generation {manifest.generation}", key, pre, manifest, manifest.generation
            )
        if bad:
            return CellPlan(
                cell,
                RUN,
                f"{bad[-1].path.rsplit('/', 1)[-1]} is {bad[-1].problem.split(':')[0]}; "
                f"building generation {generation}",
                key,
                pre,
                None,
                generation,
            )
        previous = self._previous(cell.stage, cell.cell)
        reason = "never built" if previous is None else explain_change(previous.data.get("preimage", {}), pre)
        return CellPlan(cell, RUN, reason, key, pre, None, 0)

    def plan(self, config: PipelineConfig, targets: list[str], forced: set[str] | None = None) -> list[CellPlan]:
        """A static plan: cells whose upstream must run first are RUN without a key yet."""
        forced = forced or set()
        stages = self.registry.closure(targets)
        cells = needed_cells(self.registry.list_cells(config, stages, self.committed_cells), targets)
        committed: dict[CellRef, Manifest] = {}
        running: set[CellRef] = set()
        plans = []
        for name in stages:
            for cell in cells[name]:
                plan = self.plan_cell(cell, committed, running, forced)
                if plan.status == HIT and plan.manifest is not None:
                    committed[cell.ref] = plan.manifest
                else:
                    running.add(cell.ref)
                plans.append(plan)
        return plans

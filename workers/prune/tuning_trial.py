"""The pruning trials of a CARBS-tuned cell, as they run in a Ray task (or in-process without a cluster).

A task runs up to `prune.trials_per_task` trials of one iteration, their masks trained together on a trial
dimension (`trial.run_trials`); a cluster spreads an iteration's tasks over its nodes. A task gets picklable
input handles, so it runs on any node: each handle fetches its input where the task runs. Loaded inputs stay in
a per-process LRU, so a Ray worker that runs several tasks of a cell loads the model and the task data once.
"""

from __future__ import annotations

import math
import socket
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from ...kernels.device import pick_device
from ..context import InputHandle
from .config import PruneConfig, PruneHyperparams
from .inputs import PruneInputs, load_prune_inputs
from .trial import TrialRanking, TrialResult, run_trial, run_trials


@dataclass(frozen=True)
class TrialInputs:
    """What every trial of a cell shares: where its inputs are, its settings and its resources."""

    checkpoint: InputHandle
    mean_cache: InputHandle | None  # None for zero ablation
    tokens: InputHandle
    task: str
    settings: PruneConfig
    cpus: float
    gpus: float


@dataclass(frozen=True)
class TrialAssignment:
    id: str
    iteration: int  # 1-based
    seed: int
    hyper: dict[str, float]


@dataclass
class TrialRecord:
    """A finished trial: its assignment, its TrialResult JSON (None when it raised) and where and when it ran, and
    the ranking its circuit's loss-vs-size curve is computed from if it is the one written (not in its JSON)."""

    id: str
    iteration: int
    seed: int
    hyper: dict[str, float]
    start: float  # unix time, just before run_trial (after the inputs were loaded)
    end: float
    load_s: float
    host: str
    node: str  # Ray node id; "" when Ray is not running
    result: dict[str, Any] | None
    error: str | None = None
    trained_together: int = 1  # trials whose masks trained in the same forward passes (start/end are theirs)
    ranking: TrialRanking | None = field(default=None, repr=False, compare=False)  # TrialResult.ranking

    @property
    def seconds(self) -> float:
        """Wall time of the trial: recorded, never the tuner's cost (it varies with the machine's load)."""
        return self.end - self.start

    @property
    def cost(self) -> float:
        """The deterministic work the trial did (TrialResult.cost, token-forwards); NaN when it raised."""
        return math.nan if self.result is None else float(self.result["cost"])

    @property
    def reached_target(self) -> bool:
        return self.result is not None and self.result["reached_target"]

    @property
    def edges(self) -> int | None:
        return None if self.result is None else self.result["edges"]

    @property
    def loss(self) -> float | None:
        """The circuit's val loss, the one selection may use (circuit_loss is test: reported, never compared)."""
        return None if self.result is None else self.result["selection_loss"]

    def trial_result(self) -> TrialResult:
        assert self.result is not None, f"trial {self.id} raised ({self.error}); it has no result"
        return replace(TrialResult.from_json(self.result), ranking=self.ranking)

    def to_json(self) -> dict[str, Any]:
        data = asdict(replace(self, ranking=None))
        del data["ranking"]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrialRecord:
        return cls(**data)


@lru_cache(maxsize=2)
def _load_cached(
    checkpoint: str, mean_cache: str | None, tokens: str, task: str, settings_json: str, device: str
) -> PruneInputs:
    settings = PruneConfig.model_validate_json(settings_json)
    return load_prune_inputs(
        Path(checkpoint), None if mean_cache is None else Path(mean_cache), Path(tokens), task, settings, device
    )


def cached_prune_inputs(
    checkpoint: Path, mean_cache: Path | None, tokens: Path, task: str, settings: PruneConfig, device: str
) -> PruneInputs:
    """load_prune_inputs, remembered per process by input paths, task, settings and device."""
    return _load_cached(
        str(checkpoint),
        None if mean_cache is None else str(mean_cache),
        str(tokens),
        task,
        settings.model_dump_json(),
        device,
    )


def _running_ray() -> ModuleType | None:
    ray = sys.modules.get("ray")  # never import Ray just to ask
    return ray if ray is not None and ray.is_initialized() else None


def ray_node_id() -> str:
    ray = _running_ray()
    return "" if ray is None else ray.get_runtime_context().get_node_id()


def schedulable_gpus(requested: float) -> float:
    """`requested`, or 0 on a Ray cluster without GPUs, where a task asking for one would wait forever
    (the runner does the same for cells)."""
    ray = _running_ray()
    if requested > 0 and ray is not None and not ray.cluster_resources().get("GPU"):
        return 0.0
    return requested


def run_tuning_trial(inputs: TrialInputs, assignment: TrialAssignment) -> TrialRecord:
    """Prune with the assignment's hyperparameters: `run_tuning_trials` of one."""
    return run_tuning_trials(inputs, [assignment])[0]


def run_tuning_trials(inputs: TrialInputs, assignments: list[TrialAssignment]) -> list[TrialRecord]:
    """Prune with each assignment's hyperparameters, the masks trained together. A trial that raises becomes a
    failed record, so one bad corner of the search space cannot stop the cell (the loop raises when a whole
    iteration does): when trials trained together raise, each is run again alone, so only its own error counts."""
    torch.set_num_threads(max(1, int(inputs.cpus)))
    device = pick_device(inputs.gpus)
    loading = time.time()
    mean_cache = None if inputs.mean_cache is None else inputs.mean_cache.local_path()
    loaded = cached_prune_inputs(
        inputs.checkpoint.local_path(), mean_cache, inputs.tokens.local_path(), inputs.task, inputs.settings, device
    )
    load_s = time.time() - loading
    if len(assignments) > 1:
        start = time.time()
        try:
            hypers = [PruneHyperparams.model_validate(a.hyper) for a in assignments]
            results = run_trials(
                loaded.model,
                loaded.means,
                loaded.task_data,
                hypers,
                inputs.settings,
                [a.seed for a in assignments],
                task=inputs.task,
            )
        except Exception:  # noqa: BLE001 - found again, per trial, below
            results = None
        if results is not None:
            end = time.time()
            return [_record(a, start, end, load_s, r, None, len(assignments)) for a, r in zip(assignments, results)]
    return [_run_alone(loaded, inputs, a, load_s) for a in assignments]


def _run_alone(loaded: PruneInputs, inputs: TrialInputs, assignment: TrialAssignment, load_s: float) -> TrialRecord:
    start = time.time()
    result, error = None, None
    try:
        hyper = PruneHyperparams.model_validate(assignment.hyper)
        result = run_trial(
            loaded.model, loaded.means, loaded.task_data, hyper, inputs.settings, assignment.seed, task=inputs.task
        )
    except Exception as exc:  # recorded as a failed trial, see run_tuning_trials
        error = f"{type(exc).__name__}: {exc}"
    return _record(assignment, start, time.time(), load_s, result, error, 1)


def _record(
    assignment: TrialAssignment,
    start: float,
    end: float,
    load_s: float,
    result: TrialResult | None,
    error: str | None,
    together: int,
) -> TrialRecord:
    return TrialRecord(
        id=assignment.id,
        iteration=assignment.iteration,
        seed=assignment.seed,
        hyper=dict(assignment.hyper),
        start=start,
        end=end,
        load_s=load_s,
        host=socket.gethostname(),
        node=ray_node_id(),
        result=None if result is None else result.to_json(),
        error=error,
        trained_together=together,
        ranking=None if result is None else result.ranking,
    )

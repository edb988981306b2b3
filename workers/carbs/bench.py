"""Benchmark of the CARBS tuner: suggest() latency, and best value reached vs random search.

    python -m sparsepipe.workers.carbs.bench [--quick] [--seeds N] [--out results.json]

Toy problems (from the reference notes on CARBS, reference/carbs.md section 4):
- readme: the upstream README demo, minimise (log10 lr + 3)^2 * 512 / epochs + U(0, 0.1) with
  cost = epochs; momentum is a distractor.  Bounds are added so random search has a box.
- bump10: PufferLib's comparison, maximise prod_i 2^-(x_i - x*_i)^2 * (1 + 0.1 eps) in 10-D,
  x* ~ N(0, 1), cost 1, on [-4, 4]^10 (PufferLib used [-10, 10]) centred at 0.
- failing_lr (used by the tests): runs with lr > 1e-2 fail.
Both methods get the same number of evaluations; CARBS runs in the tuner's batch mode (8
suggestions, then 8 observations), as the paper's 8 parallel pruning jobs do.  Random search
samples uniformly in basic coordinates (log-uniform for LogSpace) inside the bounds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import scipy

from .tuner import Carbs, CarbsConfig, LinearSpace, LogitSpace, LogSpace, ObservationInput, Param

# (output, cost, is_failure) for user params; the generator supplies the noise.
Evaluate = Callable[[dict[str, Any], np.random.Generator], tuple[float, float, bool]]


@dataclass(frozen=True)
class ToyProblem:
    name: str
    params: list[Param]
    evaluate: Evaluate
    better_direction_sign: int


def readme_problem() -> ToyProblem:
    def evaluate(p: dict[str, Any], rng: np.random.Generator) -> tuple[float, float, bool]:
        loss = (np.log10(p["lr"]) + 3.0) ** 2 * 512.0 / p["epochs"] + rng.uniform(0.0, 0.1)
        return float(loss), float(p["epochs"]), False

    params = [
        Param("lr", LogSpace(scale=0.5, min=1e-6, max=1e-1), 1e-4),
        Param("momentum", LogitSpace(scale=1.0, min=0.5, max=0.999), 0.9),
        Param("epochs", LogSpace(scale=1.0, min=2, max=512, is_integer=True), 10),
    ]
    return ToyProblem("readme", params, evaluate, better_direction_sign=-1)


def bump_problem(dim: int = 10, optimum_seed: int = 0) -> ToyProblem:
    optimum = np.random.default_rng(optimum_seed).standard_normal(dim)

    def evaluate(p: dict[str, Any], rng: np.random.Generator) -> tuple[float, float, bool]:
        x = np.array([p[f"x{i}"] for i in range(dim)])
        value = 2.0 ** -np.sum((x - optimum) ** 2) * (1.0 + 0.1 * rng.standard_normal())
        return float(value), 1.0, False

    params = [Param(f"x{i}", LinearSpace(min=-4.0, max=4.0), 0.0) for i in range(dim)]
    return ToyProblem(f"bump{dim}", params, evaluate, better_direction_sign=1)


def failing_lr_problem() -> ToyProblem:
    """Minimise (log10 lr + 2.3)^2 (best at lr ~ 5e-3) where every run with lr > 1e-2 fails."""

    def evaluate(p: dict[str, Any], rng: np.random.Generator) -> tuple[float, float, bool]:
        if p["lr"] > 1e-2:
            return float("nan"), 1.0, True
        return float((np.log10(p["lr"]) + 2.3) ** 2 + 0.01 * rng.standard_normal() + (p["wd"] - 0.1) ** 2), 1.0, False

    params = [
        Param("lr", LogSpace(scale=0.5, min=1e-6, max=1.0), 1e-3),
        Param("wd", LinearSpace(min=0.0, max=1.0), 0.1),
    ]
    return ToyProblem("failing_lr", params, evaluate, better_direction_sign=-1)


def run_carbs(problem: ToyProblem, budget: int, seed: int, batch_size: int = 8, **config: Any) -> Carbs:
    """CARBS on `problem` for `budget` evaluations: suggest `batch_size`, evaluate all, observe all, repeat."""
    tuner = Carbs(problem.params, CarbsConfig(better_direction_sign=problem.better_direction_sign, seed=seed, **config))
    noise = np.random.default_rng([seed, 1])
    while len(tuner.observations) < budget:
        batch = [tuner.suggest() for _ in range(min(batch_size, budget - len(tuner.observations)))]
        for suggestion in batch:
            output, cost, failed = problem.evaluate(suggestion.params, noise)
            tuner.observe(ObservationInput(suggestion.id, output, cost, failed))
    return tuner


def run_random_search(problem: ToyProblem, budget: int, seed: int) -> list[float]:
    """Outputs of `budget` points drawn uniformly (in basic coordinates) inside the params' bounds."""
    rng, noise = np.random.default_rng([seed, 2]), np.random.default_rng([seed, 1])
    space = Carbs(problem.params).space
    points = space.round(rng.uniform(space.low, space.high, size=(budget, space.dim)))
    outputs = []
    for point in points:
        output, _, failed = problem.evaluate(space.to_user(point), noise)
        outputs.append(float("nan") if failed else output)
    return outputs


def best_output(outputs: list[float], better_direction_sign: int) -> float:
    finite = [o for o in outputs if np.isfinite(o)]
    return max(finite, key=lambda o: o * better_direction_sign) if finite else float("nan")


def compare_with_random_search(problem: ToyProblem, budget: int, seeds: int) -> dict[str, Any]:
    carbs_best, random_best = [], []
    for seed in range(seeds):
        tuner = run_carbs(problem, budget, seed)
        carbs_best.append(best_output([o.output for o in tuner.observations], problem.better_direction_sign))
        random_best.append(best_output(run_random_search(problem, budget, seed), problem.better_direction_sign))
    return {
        "budget": budget,
        "direction": "maximise" if problem.better_direction_sign > 0 else "minimise",
        "carbs_mean": statistics.fmean(carbs_best),
        "random_mean": statistics.fmean(random_best),
        "carbs_median": statistics.median(carbs_best),
        "random_median": statistics.median(random_best),
        "carbs_per_seed": carbs_best,
        "random_per_seed": random_best,
    }


# Eight dimensions of the three space kinds, as the pruning space has (`prune/space.py`; the carbs library
# imports no stage): a suggest() costs the same on any space of this size.
LATENCY_SPACE = [
    *(Param(f"log{i}", LogSpace(scale=1.0, min=1e-8, max=1e2), 1e-3) for i in range(5)),
    Param("linear", LinearSpace(scale=0.5, min=-1.0, max=1.0), 0.1),
    *(Param(f"logit{i}", LogitSpace(scale=1.0, min=1e-4, max=0.5), 5e-2) for i in range(2)),
]


def _latency_tuner(num_observations: int, seed: int = 0) -> Carbs:
    """A tuner on an eight-dimensional space holding `num_observations` runs around its centre (10% failed)."""
    params = LATENCY_SPACE
    filler = Carbs(params, CarbsConfig(seed=seed, num_random_samples=10**9, better_direction_sign=-1))
    rng = np.random.default_rng([seed, 3])
    for _ in range(num_observations):
        suggestion = filler.suggest()
        basic = filler.outstanding[suggestion.id] - filler.space.center
        loss = float(np.sum(basic**2) + np.sin(3 * basic[0]) + 0.1 * rng.standard_normal())
        cost = float(np.exp(basic[0] - basic[4]))  # k_coef and lr change how long a trial runs
        filler.observe(ObservationInput(suggestion.id, loss, cost, is_failure=rng.uniform() < 0.1))
    state = filler.state_dict()
    state["config"].update(num_random_samples=4, resample_frequency=0)
    return Carbs.from_state_dict(state)


def measure_suggest_latency(num_observations: int, repeats: int, outstanding: int) -> dict[str, float]:
    """Median wall and CPU seconds of one model-based suggest() with `outstanding` suggestions already out.

    CPU time is reported beside wall time because a shared machine's load inflates wall time;
    suggest() runs single-threaded, so its CPU time is what it takes on an idle core.
    """
    tuner = _latency_tuner(num_observations)
    for _ in range(outstanding):
        tuner.suggest()
    wall, cpu = [], []
    for _ in range(repeats):
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        suggestion = tuner.suggest()
        wall.append(time.perf_counter() - start_wall)
        cpu.append(time.process_time() - start_cpu)
        tuner.forget(suggestion.id)
    return {"wall_s": statistics.median(wall), "cpu_s": statistics.median(cpu)}


def machine_info() -> dict[str, Any]:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu_count": os.cpu_count(),
        "usable_cpus": usable,
        "load_average_1min": os.getloadavg()[0],
        "platform": platform.platform(),
        "processor": platform.processor(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
    }


def run_carbs_benchmark(quick: bool = False, seeds: int = 5) -> dict[str, Any]:
    """Latency at 32/128/256 observations and best value vs random search on the toy problems (JSON-serialisable)."""
    seeds = min(seeds, 2) if quick else seeds
    repeats = 3 if quick else 7
    latency = {
        str(n): {
            "sequential": measure_suggest_latency(n, repeats, outstanding=0),
            "with_7_outstanding": measure_suggest_latency(n, repeats, outstanding=7),
        }
        for n in (32, 128, 256)
    }
    problems = [(readme_problem(), 24 if quick else 48), (bump_problem(), 48 if quick else 96)]
    quality = {problem.name: compare_with_random_search(problem, budget, seeds) for problem, budget in problems}
    return {
        "machine": machine_info(),
        "seeds": seeds,
        "quick": quick,
        "suggest_latency_median": latency,
        "toy_problems": quality,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer seeds, repeats and evaluations")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args()
    result = json.dumps(run_carbs_benchmark(args.quick, args.seeds), indent=2)
    print(result)
    if args.out:
        with open(args.out, "w") as f:
            f.write(result + "\n")


if __name__ == "__main__":
    main()

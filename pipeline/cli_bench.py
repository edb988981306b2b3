"""`sparsepipe bench`: performance targets as benchmarks, each ratio measured side by side in one run."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Annotated, Any, Callable, Optional

import typer

from .console import make_console
from .store import git_commit

app = typer.Typer(
    no_args_is_help=True,
    help=(
        "Measure throughput and speed-ups. Every ratio compares two implementations on the same inputs in the same run, "
        "so a noisy shared machine moves both sides. Results are JSON (--json on stdout, --out to a file), with the device named."
    ),
)
err = make_console(stderr=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]
OutOpt = Annotated[Optional[Path], typer.Option("--out", help="Also write the JSON result to this file.")]
QuickOpt = Annotated[bool, typer.Option("--quick", help="Small shapes and budgets: seconds, for smoke tests; the numbers are not targets.")]


def _device_name() -> str:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _emit(name: str, measure: Callable[[], dict[str, Any]], as_json: bool, out: Path | None) -> dict[str, Any]:
    err.print(f"benchmark {name} ...")
    started = time.time()
    result = {"benchmark": name, "device": _device_name(), "git_commit": git_commit(), "started_at": started, **measure()}
    result["wall_seconds"] = round(time.time() - started, 3)
    text = json.dumps(result, indent=2)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
    if as_json:
        print(text)
    else:
        err.print(text)
    return result


def _measure_tokenize(quick: bool) -> dict[str, Any]:
    import ray

    from ..workers.tokenize_bench import bench_tokenize
    from .execute import ray_submit

    ray.init(address="local", include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        return bench_tokenize(max_documents=200 if quick else None, submit=ray_submit, num_threads=int(ray.cluster_resources()["CPU"]))
    finally:
        ray.shutdown()


def _measure_train(quick: bool) -> dict[str, Any]:
    from ..kernels.bench import bench_kernels
    from ..workers.train_bench import bench_step_times

    return {"kernels": bench_kernels(quick=quick), "steps": bench_step_times(quick=quick)}


def _measure_carbs(quick: bool) -> dict[str, Any]:
    from ..workers.carbs_bench import run_carbs_benchmark

    return run_carbs_benchmark(quick=quick)


MEASURES = {"tokenize": _measure_tokenize, "train": _measure_train, "carbs": _measure_carbs}


@app.command()
def tokenize(as_json: JsonOpt = False, out: OutOpt = None, quick: QuickOpt = False) -> None:
    """Tokenize stage (parallel Ray units) vs one HF tokenizers process on the same files: MB/s, tokens/s, ratio."""
    _emit("tokenize", lambda: _measure_tokenize(quick), as_json, out)


@app.command()
def train(as_json: JsonOpt = False, out: OutOpt = None, quick: QuickOpt = False) -> None:
    """AbsTopK and weight top-k kernels vs torch.topk, and a sparse training step vs a dense one."""
    _emit("train", lambda: _measure_train(quick), as_json, out)


@app.command()
def carbs(as_json: JsonOpt = False, out: OutOpt = None, quick: QuickOpt = False) -> None:
    """CARBS suggest() latency at 32/128/256 observations, and CARBS vs random search on toy problems."""
    _emit("carbs", lambda: _measure_carbs(quick), as_json, out)


@app.command("all")
def run_all(as_json: JsonOpt = False, out: OutOpt = None, quick: QuickOpt = False) -> None:
    """Every benchmark, one JSON document."""
    _emit("all", lambda: {name: measure(quick) for name, measure in MEASURES.items()}, as_json, out)

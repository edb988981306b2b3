"""`sparsepipe bench`: performance targets as benchmarks, each ratio measured side by side in one run."""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path
from typing import Annotated, Any, Callable, Optional

import typer

from ..workers.benchmarking import BenchmarkOptionError, private_local_ray
from ..workers.registry import BENCHMARKS
from ..workers.stage import Benchmark
from .console import EXIT_USAGE, err, fail
from .store import git_commit

app = typer.Typer(
    no_args_is_help=True,
    help=(
        "Measure throughput and speed-ups. Every ratio compares two implementations on the same inputs in the "
        "same run, "
        "so a noisy shared machine moves both sides. Results are JSON (--json on stdout, --out to a file), with "
        "the device named."
    ),
)
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]
OutOpt = Annotated[Optional[Path], typer.Option("--out", help="Also write the JSON result to this file.")]
QuickOpt = Annotated[
    bool,
    typer.Option("--quick", help="Small shapes and budgets: seconds, for smoke tests; the numbers are not targets."),
]
WorkersOpt = Annotated[
    Optional[str],
    typer.Option(
        "--workers",
        metavar="N,M,...",
        help=(
            "Also measure data-parallel training on this many Ray Train workers (a comma list, e.g. 1,2; one CPU "
            "or GPU each) side by side with the in-process single-worker cell, and report tokens/s and the "
            "scaling efficiency under data_parallel. Ray Train with 1 worker is always measured, as the baseline."
        ),
    ),
]


def _device_name() -> str:
    from ..kernels.device import device_name

    return device_name()


def _emit(name: str, measure: Callable[[], dict[str, Any]], as_json: bool, out: Path | None) -> dict[str, Any]:
    err.print(f"benchmark {name} ...")
    started = time.time()
    result = {
        "benchmark": name,
        "device": _device_name(),
        "git_commit": git_commit(),
        "started_at": started,
        **measure(),
    }
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


def _measure(benchmark: Benchmark, quick: bool, workers: tuple[int, ...] | None = None) -> dict[str, Any]:
    from .execute import ray_submit, resolve_function

    function = resolve_function(benchmark.run)
    options = {"workers": workers} if workers is not None else {}
    if not benchmark.ray:
        return function(quick, **options)
    import ray

    with private_local_ray():
        return function(quick, submit=ray_submit, cpus=int(ray.cluster_resources()["CPU"]), **options)


def parse_worker_counts(text: str) -> tuple[int, ...]:
    """`--workers 1,2` -> (1, 2); anything but a comma list of positive whole numbers is a usage error."""
    parts = [part.strip() for part in text.split(",")]
    if not all(part.isdecimal() and int(part) >= 1 for part in parts):
        fail(f"--workers takes a comma list of worker counts of at least 1, e.g. 1,2; got {text!r}", EXIT_USAGE)
    return tuple(int(part) for part in parts)


def _run(benchmark: Benchmark, quick: bool, workers: str | None, as_json: bool, out: Path | None) -> None:
    counts = parse_worker_counts(workers) if workers is not None else None
    try:
        _emit(benchmark.name, lambda: _measure(benchmark, quick, counts), as_json, out)
    except BenchmarkOptionError as error:
        fail(str(error), EXIT_USAGE)


def _add_command(benchmark: Benchmark) -> None:
    if benchmark.takes_workers:

        def command(
            as_json: JsonOpt = False, out: OutOpt = None, quick: QuickOpt = False, workers: WorkersOpt = None
        ) -> None:
            _run(benchmark, quick, workers, as_json, out)

    else:

        def command(as_json: JsonOpt = False, out: OutOpt = None, quick: QuickOpt = False) -> None:
            _run(benchmark, quick, None, as_json, out)

    command.__doc__ = benchmark.help
    app.command(benchmark.name)(command)


for _benchmark in BENCHMARKS:
    _add_command(_benchmark)


@app.command("all")
def run_all(as_json: JsonOpt = False, out: OutOpt = None, quick: QuickOpt = False) -> None:
    """Every benchmark, one JSON document."""
    _emit("all", lambda: {b.name: _measure_or_skip(b, quick) for b in BENCHMARKS}, as_json, out)


def _measure_or_skip(benchmark: Benchmark, quick: bool) -> dict[str, Any]:
    """A benchmark that runs Ray units is recorded as skipped where Ray is not installed (a GPU image)."""
    if benchmark.ray and importlib.util.find_spec("ray") is None:
        return {"skipped": "needs Ray, which is not installed here"}
    return _measure(benchmark, quick)

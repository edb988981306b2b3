"""The prune stage (stage.py) and its benchmark, `sparsepipe bench prune` (bench.py)."""

from ..stage import Benchmark

BENCHMARK = Benchmark(
    name="prune",
    help=(
        "A pruning trial's phases on the tiny model shape (and 4 x 256 without --quick), with the tiny preset's "
        "settings: mask step over bare forward+backward, whole trial over its mask steps, and trials trained "
        "together over one trial per task."
    ),
    run="sparsepipe.workers.prune.bench:measure",
)

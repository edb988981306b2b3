"""The CARBS tuner (tuner.py: suggest/observe, JSON state) and its benchmark."""

from ..stage import Benchmark

BENCHMARK = Benchmark(
    name="carbs",
    help="CARBS suggest() latency at 32/128/256 observations, and CARBS vs random search on toy problems.",
    run="sparsepipe.workers.carbs.bench:run_carbs_benchmark",
)

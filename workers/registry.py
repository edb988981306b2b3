"""The stages of the pipeline, one line each, in the order `sparsepipe dag` and `config show` list them.

Adding a stage: write its package (config.py, stage.py, its code) and add its Stage here;
a benchmark (`sparsepipe bench`) is one line in BENCHMARKS.
"""

from __future__ import annotations

from .bridges.stage import BENCHMARK as BRIDGES_BENCHMARK
from .bridges.stage import BRIDGES
from .carbs import BENCHMARK as CARBS_BENCHMARK
from .imported.stage import IMPORTED
from .interventions.stage import INTERVENTIONS
from .matched.stage import MATCHED_DENSE
from .mean_cache.stage import MEAN_CACHE
from .prune import BENCHMARK as PRUNE_BENCHMARK
from .prune.stage import PRUNE
from .random_init.stage import RANDOM_INIT
from .report.stage import REPORT
from .stage import Benchmark, Stage
from .tokenize.stage import BENCHMARK as TOKENIZE_BENCHMARK
from .tokenize.stage import TOKENIZE
from .train.stage import BENCHMARK as TRAIN_BENCHMARK
from .train.stage import DENSE, PRETRAIN

STAGES: tuple[Stage, ...] = (
    TOKENIZE,
    PRETRAIN,
    DENSE,
    MATCHED_DENSE,
    BRIDGES,
    IMPORTED,
    RANDOM_INIT,
    MEAN_CACHE,
    PRUNE,
    INTERVENTIONS,
    REPORT,
)

# `sparsepipe bench NAME`, one line each.
BENCHMARKS: tuple[Benchmark, ...] = (
    TOKENIZE_BENCHMARK,
    TRAIN_BENCHMARK,
    BRIDGES_BENCHMARK,
    CARBS_BENCHMARK,
    PRUNE_BENCHMARK,
)

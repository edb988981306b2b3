"""The stages of the pipeline, one line each, in the order `sparsepipe dag` and `config show` list them.

Adding a stage: write its package (config.py, stage.py, its code) and add its Stage here.
"""

from __future__ import annotations

from .mean_cache.stage import MEAN_CACHE
from .prune.stage import PRUNE
from .report.stage import REPORT
from .stage import Stage
from .tokenize.stage import TOKENIZE
from .train.stage import DENSE, PRETRAIN

STAGES: tuple[Stage, ...] = (
    TOKENIZE,
    PRETRAIN,
    DENSE,
    MEAN_CACHE,
    PRUNE,
    REPORT,
)

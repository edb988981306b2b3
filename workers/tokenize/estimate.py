"""The cost of the tokenize cell before it runs (see workers/estimate.py): BPE work, not FLOPs.

Measured (BENCHMARKS.md, "The whole tiny pipeline"): the tiny preset's 16 MB corpus took 18 s from a fresh
clone on the 2-core VM (89 s under load 10-20), i.e. ~0.9 MB/s of corpus per run on 2 cores, so ~0.45 MB/s
per core. The default corpus (every .py file of the running Python, max_bytes unset) was 265 MB there.
"""

from __future__ import annotations

from typing import Any

from ..estimate import CellCost
from ..stage import Cell

CORPUS_BYTES_PER_CORE_SECOND = 0.45e6
DEFAULT_CORPUS_BYTES = 265e6  # the default corpus on the VM the figure above was measured on (README)


def estimate_tokenize_cell(cell: Cell, config: Any, cells: dict[Any, Cell], device_type: str) -> CellCost:
    tokenize = config.tokenize
    size = tokenize.corpus.max_bytes
    note = "" if size is not None else "corpus size assumed: the default corpus measured 265 MB (README)"
    corpus = float(size if size is not None else DEFAULT_CORPUS_BYTES)
    return CellCost(
        flops=0.0,
        param_bytes=0,
        accelerated=False,
        concurrent=64,  # encoded in parallel Ray tasks, one per core
        cpu_seconds=corpus / CORPUS_BYTES_PER_CORE_SECOND,
        note=note,
    )

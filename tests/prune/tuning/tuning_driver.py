"""Runs one tuned prune cell in this process, serially: `python tuning_driver.py SPEC.json`.

SPEC.json: {"inputs": {name: folder}, "out": folder, "progress": folder, "params": cell params}.
The resume test starts it as a subprocess and kills it mid-cell.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from sparsepipe.workers.context import local_context
from sparsepipe.workers.prune.stage import run_prune_cell


def main(spec_file: str) -> None:
    spec = json.loads(Path(spec_file).read_text())
    torch.set_num_threads(1)
    ctx = local_context(
        Path(spec["out"]), inputs={k: Path(v) for k, v in spec["inputs"].items()}, progress_dir=Path(spec["progress"])
    )
    run_prune_cell(ctx, spec["params"])


if __name__ == "__main__":
    main(sys.argv[1])

"""`sparsepipe export-circuit`: a committed circuit in the reference release's viewer layout (viz_data.pt).

The circuit is loaded through the public API (pipeline/api.py: the prune cell's artifact and the inputs it
read), and written by workers/prune/viz_export.py under OUT/viz/<model>/<task>/<sweep>/<k>/viz_data.pt, the
layout the release's Streamlit viewer lists (README, "Circuits in the authors' viewer").
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .console import EXIT_USAGE, STORE_READ, StoreOpt, err, fail, load_config, open_store


def export_circuit(
    checkpoint: Annotated[str, typer.Argument(help="The pruned checkpoint's cell, e.g. pretrain/tiny.")],
    task: Annotated[str, typer.Argument(help="The task, e.g. single_double_quote.")],
    out_dir: Annotated[Path, typer.Argument(help="Folder to write viz/<model>/<task>/<sweep>/<k>/viz_data.pt into.")],
    store: StoreOpt = None,
    model_name: Annotated[
        Optional[str], typer.Option("--model-name", help="The viewer's model folder; default: the checkpoint, / as _.")
    ] = None,
    sweep: Annotated[str, typer.Option("--sweep", help="The viewer's 'pruning method' folder.")] = "sparsepipe",
    tokenizer_name: Annotated[
        str,
        typer.Option(
            "--tokenizer-name",
            help="The tiktoken encoding the viewer decodes tokens with (beeg_model_config.tokenizer_name).",
        ),
    ] = "tinypython_2k",
    rows: Annotated[
        int, typer.Option("--rows", min=1, help="Pretraining rows (val split) the samples come from.")
    ] = 64,
    task_pairs: Annotated[int, typer.Option("--task-pairs", min=1, help="Test pairs in task_samples.")] = 16,
) -> None:
    """Write a committed circuit in the layout the authors' viewer (openai/circuit_sparsity viz.py) reads."""
    from ..workers.prune.inputs import pretraining_rows
    from ..workers.prune.viz_export import viz_data, write_viz_data
    from .api import NotInStore, ResultStore

    cfg = load_config(None, None, [], store)
    results = ResultStore(open_store(cfg, STORE_READ))
    try:
        circuit = results.load_circuit(checkpoint, task)
    except NotInStore as error:
        fail(str(error), EXIT_USAGE)
    samples = pretraining_rows(circuit.inputs["tokens"], rows)[:, : circuit.model.config.n_ctx]
    data = viz_data(circuit, samples, tokenizer_name, task_pairs)
    name = model_name or checkpoint.replace("/", "_")
    path = write_viz_data(data, out_dir, name, task, sweep, int(circuit.result["masks_kept"]))
    err.print(f"wrote {path} ({len(circuit.nodes)} nodes)", highlight=False, soft_wrap=True)

"""The imported stage: the reference release's trained models, converted to our checkpoints (`sparsepipe import`).

Its cells are not listed by the config: `sparsepipe import SOURCE --name NAME` commits the cell
`imported/NAME` (params: the source and the sha256 of its files), and from then on every command that plans
against that store lists it (`Stage.committed_cells`), so `--checkpoints imported/NAME` selects it for
mean_cache, prune, `tasks eval` and the report. A re-plan after a code change re-imports from the source.
"""

from __future__ import annotations

from typing import Any

from ..context import WorkContext
from ..stage import Cell, Resources, Stage


def imported_cell(name: str, source: str, digests: dict[str, str]) -> Cell:
    return Cell("imported", name, {"source": source, "sha256": dict(sorted(digests.items()))}, {}, Resources())


def run_import_cell(ctx: WorkContext, params: dict[str, Any]) -> None:
    import json

    from ..nn.gpt import save_checkpoint
    from .release import CONFIG_FILE, read_release

    model, raw, digests = read_release(params["source"])
    if digests != params["sha256"]:
        changed = sorted(name for name in digests if digests[name] != params["sha256"].get(name))
        raise ValueError(
            f"{params['source']}: {', '.join(changed)} changed since `sparsepipe import` named it; import it again"
        )
    save_checkpoint(model, ctx.out_dir)
    (ctx.out_dir / f"release_{CONFIG_FILE}").write_text(json.dumps(raw, indent=2))
    c = model.config
    ctx.metrics.update(
        {
            "source": params["source"],
            "parameters": sum(p.numel() for p in model.parameters()),
            "nonzero": sum(int((p != 0).sum()) for p in model.parameters()),
            "n_layer": c.n_layer,
            "d_model": c.d_model,
            "vocab_size": c.vocab_size,
            "afrac": c.afrac,
        }
    )


IMPORTED = Stage(
    name="imported",
    version="1",
    deps=(),
    cells=lambda config, upstream: [],
    run="sparsepipe.workers.imported.stage:run_import_cell",
    description="the reference release's models, converted (cells committed by `sparsepipe import`)",
    matrix=True,
    provides=("checkpoint",),
    committed_cells=True,
    named_only=True,  # they read their own tokenizer's ids (`tokenize.tokenizer`): `all` leaves them out
)

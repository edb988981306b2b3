"""`sparsepipe import` and `sparsepipe export`: the reference release's checkpoint layout in and out.

`import` commits one cell of the stage that declares `committed_cells` and provides checkpoints (the
conversion itself is that stage's run function, in the worker package); it runs in this process, as the
runner would run it in a Ray task, so no Ray instance starts for a file conversion.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated

import typer

from .console import (
    EXIT_FAILED,
    EXIT_STORE,
    EXIT_USAGE,
    ConfigOpt,
    JsonOpt,
    PresetOpt,
    SetOpt,
    StoreOpt,
    err,
    load_config,
    open_store,
    registry,
)
from .console import fail as _fail


def _import_stage():
    stages = [s for s in registry().stages.values() if s.committed_cells and "checkpoint" in s.provides]
    assert len(stages) == 1, "exactly one stage imports checkpoints"
    return stages[0]


def import_checkpoint(
    source: Annotated[
        str, typer.Argument(help="A release checkpoint: a folder, its beeg_config.json or final_model.pt, or s3://...")
    ],
    name: Annotated[str, typer.Option("--name", help="The cell name: the checkpoint becomes imported/NAME.")],
    preset: PresetOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Import a model of the reference release (openai/circuit_sparsity) as the checkpoint imported/NAME.

    The source holds the release's layout: beeg_config.json and final_model.pt (a torch state dict, read
    with weights_only=True). A config value sparsepipe cannot reproduce exactly is refused (exit 2, naming
    the key). Then: `sparsepipe run prune --checkpoints imported/NAME --set tokenize.tokenizer=TOKENIZER`.
    """
    from ..workers.imported.release import (
        UnsupportedRelease,
        model_config,
        read_bytes,
        read_release_config,
        source_files,
    )
    from ..workers.imported.stage import imported_cell
    from .dag import HIT, Planner
    from .execute import UnitRequest, execute_unit
    from .store import StoreError

    if not name or "/" in name or name != name.strip():
        _fail(f"--name {name!r}: a cell name, without '/' or surrounding spaces", EXIT_USAGE)
    cfg = load_config(preset, config, set_, store)
    backend = open_store(cfg)
    stage = _import_stage()
    try:
        model_config(read_release_config(source))  # refuses an unsupported config before reading the weights
        digests = {Path(url).name: hashlib.sha256(read_bytes(url)).hexdigest() for url in source_files(source)}
    except UnsupportedRelease as error:
        _fail(f"{source}: {error}", EXIT_USAGE)
    except OSError as error:
        _fail(f"{source} cannot be read: {error}", EXIT_USAGE)
    cell = imported_cell(name, source, digests)
    try:
        plan = Planner(registry(), backend).plan_cell(cell, {}, set(), set())
        if plan.status != HIT:
            request = UnitRequest(
                stage=stage.name,
                cell=name,
                run=stage.run,
                key=plan.key or "",
                generation=plan.generation,
                params=cell.params,
                preimage=plan.preimage or {},
                inputs={},
            )
            execute_unit(backend.spec, request)
    except UnsupportedRelease as error:
        _fail(f"{source}: {error}", EXIT_USAGE)
    except StoreError as error:
        _fail(str(error), EXIT_STORE)
    except (ValueError, OSError) as error:
        _fail(f"importing {source} failed: {error}", EXIT_FAILED)
    manifest = backend.lookup(stage.name, plan.key or "")
    label = f"{stage.name}/{name}"
    if as_json:
        print(json.dumps({"checkpoint": label, "key": plan.key, "cached": plan.status == HIT, **manifest.metrics}))
        return
    err.print(
        f"{label} {'was already committed' if plan.status == HIT else 'committed'} (key {(plan.key or '')[:12]}) "
        f"in {cfg.store}; prune it with `sparsepipe run prune --checkpoints {label}` and the release's tokenizer "
        "(--set tokenize.tokenizer=PATH)",
        soft_wrap=True,
        highlight=False,
    )


def export_checkpoint(
    checkpoint: Annotated[str, typer.Argument(help="A committed checkpoint (pretrain/tiny) or a checkpoint folder.")],
    out_dir: Annotated[Path, typer.Argument(help="Folder to write beeg_config.json and final_model.pt into.")],
    preset: PresetOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    store: StoreOpt = None,
) -> None:
    """Write a checkpoint in the reference release's layout (beeg_config.json + final_model.pt).

    A model option the release cannot express (an RMSNorm epsilon other than torch's default) is refused
    (exit 2, naming the key). The release picks among exactly equal AbsTopK magnitudes with torch.topk,
    sparsepipe trains with the lowest index: the two differ only on exact ties.
    """
    from ..workers.imported.release import UnsupportedRelease, write_release
    from ..workers.nn.gpt import CheckpointError, load_checkpoint
    from .cli_tasks import StoreSettings

    folder = Path(checkpoint)
    if not folder.is_dir():
        (_, folder), *_ = StoreSettings(preset, config, set_, store).committed("checkpoint", [checkpoint])
    try:
        write_release(load_checkpoint(folder), out_dir)
    except UnsupportedRelease as error:
        _fail(f"{checkpoint}: {error}", EXIT_USAGE)
    except CheckpointError as error:
        _fail(str(error), EXIT_USAGE)
    err.print(f"wrote {out_dir}/beeg_config.json and final_model.pt", highlight=False, soft_wrap=True)

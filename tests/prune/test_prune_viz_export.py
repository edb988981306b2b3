"""`export-circuit`: a circuit in the reference release's viz_data.pt layout, checked by our reading of the
viewer's access paths and, with a local copy of the release (CIRCUIT_SPARSITY_SRC=a checkout of
openai/circuit_sparsity), by the release's own loading code (`load_data`, `load_graph_data`, `GPTConfig`)."""

from __future__ import annotations

import ast
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pytest
import torch
from stage_inputs import TASK, commit_prune_cell, write_prune_cell

from sparsepipe.pipeline.store import StoreSpec
from sparsepipe.workers.nn.circuit import node_id
from sparsepipe.workers.prune.inputs import pretraining_rows
from sparsepipe.workers.prune.runnable import load_circuit
from sparsepipe.workers.prune.viz_export import FRACS, VIZ_FILE, viz_data, write_viz_data

CHECKPOINT = "pretrain/tiny"
TASK_PAIRS = 4


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[Path, dict[str, Path]]:
    built = write_prune_cell(tmp_path_factory.mktemp("cell"), CHECKPOINT)
    circuit = load_circuit(built["prune"], {k: v for k, v in built.items() if k != "prune"})
    data = viz_data(circuit, pretraining_rows(built["tokens"], 8), "tinypython_2k", TASK_PAIRS)
    out = tmp_path_factory.mktemp("viz")
    path = write_viz_data(data, out, "pretrain_tiny", TASK, "sparsepipe", int(circuit.result["masks_kept"]))
    return path, built


def test_viz_data_has_what_the_viewer_reads(exported):
    path, built = exported
    result = json.loads((built["prune"] / "result.json").read_text())
    assert path.parts[-6:] == ("viz", "pretrain_tiny", TASK, "sparsepipe", str(result["masks_kept"]), VIZ_FILE)
    data = torch.load(path, weights_only=True, map_location="cpu")
    kept = data["circuit_data"]
    assert {name: v.tolist() for name, v in kept.items() if len(v)} == result["kept"]
    assert sum(v.numel() for v in kept.values()) == result["nodes"]
    importances = data["importances"]
    # The release stores losses as its per-pair sum: twice our mean.
    assert importances["loss"] == pytest.approx(2 * result["full_model_loss"], abs=1e-6)
    assert importances["interv_loss"] == pytest.approx(2 * result["circuit_loss"], abs=1e-6)
    per_node = importances["ch_interv_losses"]
    assert list(per_node) == list(kept) and all(len(per_node[n]) == len(kept[n]) for n in kept)
    circuit_json = json.loads((built["prune"] / "circuit.json").read_text())
    # The circuit page's per-node losses (circuit.json, small circuits), from the same trial function.
    without = circuit_json["node_ablation"]["without_node"]
    for name, indices in kept.items():
        for position, index in enumerate(indices.tolist()):
            assert per_node[name][position] == pytest.approx(2 * without[node_id(name, index)], abs=1e-6)
    n_layer = circuit_json["model"]["n_layer"]
    assert set(importances["layer_interv_losses"]) == {f"{i}.{p}" for i in range(n_layer) for p in ("attn", "mlp")}
    # The viewer's build_figure asserts that each location's node names match its row of node losses.
    for matrix, sources, targets, (source, target) in importances["pair_data"]:
        assert sources == kept[source].tolist() and targets == kept[target].tolist()
        assert tuple(matrix.shape) == (len(sources), len(targets))
    docs, acts = importances["task_samples"]
    assert docs.shape[0] == 2 * TASK_PAIRS and (docs[:, 0] != 0).all()
    assert all(a.shape == docs.shape for channels in acts.values() for a in channels.values())
    for name, channels in data["samples"].items():
        assert sorted(channels) == kept[name].tolist()
        for bands in channels.values():
            assert sorted(bands) == list(FRACS)
            for bottom, top in bands.values():
                for tokens, activations, position in bottom[:5] + top[:5]:
                    assert tokens.shape == activations.shape and 0 <= position < len(tokens)
            # the top 0.1% holds the node's largest activation, the bottom its smallest
            top_value = bands[FRACS[0]][1][0]
            bottom_value = bands[FRACS[0]][0][0]
            assert top_value[1][top_value[2]] >= bottom_value[1][bottom_value[2]]
    assert data["num_total_nodes"] == result["total_nodes"]
    assert importances["beeg_model_config"]["tokenizer_name"] == "tinypython_2k"


@pytest.mark.slow  # the command recomputes every per-node loss in a fresh process: about 30 s of CPU
def test_export_circuit_command_writes_it_from_a_store(exported, sparsepipe, tmp_path):
    _, built = exported
    commit_prune_cell(StoreSpec(str(tmp_path / "store")).open(), built, CHECKPOINT)
    done = sparsepipe(
        "export-circuit", CHECKPOINT, TASK, str(tmp_path / "out"), "--store", str(tmp_path / "store"), "--rows", "4",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (path,) = (tmp_path / "out" / "viz" / "pretrain_tiny" / TASK / "sparsepipe").glob(f"*/{VIZ_FILE}")
    assert torch.load(path, weights_only=True)["num_total_nodes"] > 0
    missing = sparsepipe("export-circuit", CHECKPOINT, "no_task", "x", "--store", str(tmp_path / "store"), cwd=tmp_path)
    assert missing.returncode == 2 and "pretrain/tiny:single_double_quote" in missing.stderr


def _release_functions(checkout: Path, module: str, names: set[str], namespace: dict) -> dict:
    """The named top-level functions and classes of one release module, executed from the local checkout."""
    tree = ast.parse((checkout / module).read_text())
    wanted = [node for node in tree.body if getattr(node, "name", None) in names]
    assert {node.name for node in wanted} == names, f"{module} no longer defines {names}"
    code = compile(ast.Module(body=wanted, type_ignores=[]), str(checkout / module), "exec")
    exec(code, namespace)
    return namespace


@pytest.mark.skipif(not os.environ.get("CIRCUIT_SPARSITY_SRC"), reason="needs a local copy of the release")
def test_the_releases_own_loader_reads_the_export(exported, monkeypatch):
    from tiktoken.load import read_file_cached

    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")  # read the file, no cache
    checkout = Path(os.environ["CIRCUIT_SPARSITY_SRC"])
    streamlit = type("st", (), {"cache_resource": staticmethod(lambda **_: lambda f: f)})
    namespace = {"torch": torch, "io": io, "np": np, "st": streamlit, "read_file_cached": read_file_cached}
    namespace.update(
        {"dataclass": dataclass, "Literal": Literal, "list_join": lambda xss: [x for xs in xss for x in xs]}
    )
    _release_functions(checkout, "circuit_sparsity/inference/gpt.py", {"GPTConfig"}, namespace)
    _release_functions(checkout, "circuit_sparsity/viz.py", {"load_data", "load_graph_data"}, namespace)
    path, built = exported
    data = namespace["load_data"](str(path))
    config = data["importances"]["beeg_model_config"]
    assert type(config).__name__ == "GPTConfig" and config.n_layer == 1 and config.d_head == 8
    layers, row_names, pair_data, _, _, layer_imps, task_samples = namespace["load_graph_data"](data["importances"])
    assert row_names == list(data["circuit_data"]) and len(pair_data) == 6
    assert set(layer_imps) == {"0.attn", "0.mlp"} and len(task_samples[0]) == 2 * TASK_PAIRS

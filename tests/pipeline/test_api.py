"""The public Python API (`import sparsepipe`) on a local and an S3 store: a committed prune cell's circuit,
loaded and run, reproduces the losses pruning stored (result.json's test circuit_loss and inverse_loss)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

import sparsepipe
from sparsepipe.pipeline.store import StoreSpec
from sparsepipe.workers.mean_cache.means import load_means
from sparsepipe.workers.prune.losses import candidate_gap, two_way_loss


def _import_by_path(path: Path):
    if path.stem not in sys.modules:
        spec = importlib.util.spec_from_file_location(path.stem, path)
        sys.modules[path.stem] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[path.stem])
    return sys.modules[path.stem]


stage_inputs = _import_by_path(Path(__file__).parents[1] / "prune" / "stage_inputs.py")
TASK, CHECKPOINT = stage_inputs.TASK, "pretrain/tiny"


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    return stage_inputs.write_prune_cell(tmp_path_factory.mktemp("built"), CHECKPOINT)


def test_a_loaded_circuit_reproduces_the_stored_test_losses(store_url, built):
    stage_inputs.commit_prune_cell(StoreSpec(store_url).open(), built, CHECKPOINT)
    store = sparsepipe.open_store(store_url)
    assert store.checkpoints() == [CHECKPOINT]
    assert [tuple(ref) for ref in store.circuits()] == [(CHECKPOINT, TASK)]

    circuit = store.load_circuit(CHECKPOINT, TASK)
    result = json.loads((built["prune"] / "result.json").read_text())
    assert 0 < result["nodes"] < result["total_nodes"]  # a real circuit: the inverse run differs from it
    assert circuit.kept == result["kept"] and len(circuit.nodes) == result["nodes"]
    assert len(circuit.edges) > 0 and circuit.losses["circuit"] == result["circuit_loss"]
    means = load_means(built["mean_cache"])
    assert all(torch.equal(circuit.ablation[name], means[name].float()) for name in means)

    # The test pairs, run through circuit.run in one batch (pruning ran them in chunks of batch_pairs).
    test = circuit.pairs("test")
    assert test.n_pairs == result["test_pairs"]
    for ablate, stored in (("circuit", result["circuit_loss"]), ("inverse", result["inverse_loss"])):
        gaps = candidate_gap(circuit.run(test.tokens, ablate=ablate), test)
        assert float(two_way_loss(gaps, test.correct)) == pytest.approx(stored, abs=1e-5)
        assert circuit.loss("test", ablate=ablate) == pytest.approx(stored, abs=1e-6)
    assert circuit.loss("test", ablate="none") == pytest.approx(result["full_model_loss"], abs=1e-6)
    assert circuit.loss("test", calibrated=True) == pytest.approx(result["calibrated_loss"], abs=1e-6)

    model = store.load_model(CHECKPOINT)
    assert "0.attn.q" in model.hook_points
    prompt = test.pairs[0].prompts[0]
    logits = circuit.run([prompt], ablate="none")
    tokens, lengths = circuit.encode([prompt])
    assert torch.equal(tokens[0, : int(lengths[0])], test.tokens[0, : int(test.eval_pos[0]) + 1])
    assert torch.allclose(logits, model(tokens)[0], atol=1e-6)


def test_unknown_names_say_what_the_store_has(tmp_path, built):
    stage_inputs.commit_prune_cell(StoreSpec(str(tmp_path / "store")).open(), built, CHECKPOINT)
    store = sparsepipe.open_store(tmp_path / "store")
    with pytest.raises(sparsepipe.NotInStore, match="pretrain/tiny:single_double_quote"):
        store.load_circuit(CHECKPOINT, "no_such_task")
    with pytest.raises(sparsepipe.NotInStore, match="it has: pretrain/tiny"):
        store.load_model("pretrain/base")
    with pytest.raises(sparsepipe.NotInStore, match="with key 0123"):
        store.load_circuit(CHECKPOINT, TASK, key="0123")
    key = store.circuit_manifest(CHECKPOINT, TASK).key
    assert store.load_circuit(CHECKPOINT, TASK, key=key[:12]).kept == store.load_circuit(CHECKPOINT, TASK).kept
    with pytest.raises(FileNotFoundError, match="no store at"):
        sparsepipe.open_store(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="ablate must be one of"):
        store.load_circuit(CHECKPOINT, TASK).run("x", ablate="outside")

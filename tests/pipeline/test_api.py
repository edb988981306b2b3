"""The public Python API (`import sparsepipe`) on a local and an S3 store: a committed prune cell's circuit,
loaded and run, reproduces the losses pruning stored (result.json's test circuit_loss and inverse_loss)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

import sparsepipe
from sparsepipe.pipeline.store import CommitRecord, Store, StoreSpec
from sparsepipe.tasks import load_tokenizer
from sparsepipe.workers.context import local_context
from sparsepipe.workers.mean_cache.worker import load_means
from sparsepipe.workers.nn.gpt import load_checkpoint
from sparsepipe.workers.nn.masks import NodeLayout, ablation_values
from sparsepipe.workers.prune.losses import candidate_gap, load_split, two_way_loss
from sparsepipe.workers.prune.masked import MaskedModel
from sparsepipe.workers.prune.worker import run_prune


def _import_by_path(path: Path):
    if path.stem not in sys.modules:
        spec = importlib.util.spec_from_file_location(path.stem, path)
        sys.modules[path.stem] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[path.stem])
    return sys.modules[path.stem]


stage_inputs = _import_by_path(Path(__file__).parents[1] / "prune" / "stage_inputs.py")
SETTINGS = stage_inputs.small_prune_config(binarize_pairs=0)


def _target_between_empty_and_full(inputs: dict[str, Path]) -> float:
    """A target loss (val) between the empty circuit's and the whole model's, so that bisection keeps a circuit
    that is neither: the random model does the task barely better than its mean-ablated self."""
    model = load_checkpoint(inputs["checkpoint"]).eval()
    layout = NodeLayout(model.config)
    masked = MaskedModel(model, layout, ablation_values(layout, load_means(inputs["mean_cache"]), "mean"))
    tokenizer = load_tokenizer(inputs["tokens"])
    val = load_split(TASK, tokenizer, SETTINGS, stage_inputs.N_CTX, "val")
    empty, full = (
        float(two_way_loss(masked.gaps([val], mask), val.correct)) for mask in (torch.zeros(layout.n_nodes), None)
    )
    assert full < empty, (full, empty)
    return (full + empty) / 2


TASK, CHECKPOINT = stage_inputs.TASK, "pretrain/tiny"


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    """The folders of one prune cell's inputs and of its artifact, built by the stage workers."""
    root = tmp_path_factory.mktemp("built")
    tokens = stage_inputs.write_tokens(root / "tokens")
    checkpoint = stage_inputs.write_checkpoint(root / "checkpoint")
    mean_cache = root / "mean_cache"
    stage_inputs.write_mean_cache(mean_cache, tokens, checkpoint, SETTINGS)
    inputs = {"checkpoint": checkpoint, "tokens": tokens, "mean_cache": mean_cache}
    torch.set_num_threads(1)
    target = _target_between_empty_and_full(inputs)
    params = SETTINGS.model_copy(update={"target_loss": target, "targets": [target]})
    run_prune(local_context(root / "prune", inputs=inputs, cell=f"{CHECKPOINT}:{TASK}"), params, TASK)
    return {**inputs, "prune": root / "prune"}


def _commit_all(store: Store, built: dict[str, Path]) -> None:
    """Commit the folders as the runner would: the prune cell's manifest names its inputs as parents."""
    cells = {"tokens": ("tokenize", ""), "checkpoint": ("pretrain", "tiny"), "mean_cache": ("mean_cache", CHECKPOINT)}
    parents = {}
    for name, (stage, cell) in cells.items():
        key = hashlib.sha256(f"{stage}/{cell}".encode()).hexdigest()
        manifest, _ = store.commit(CommitRecord(stage, key, cell, {}, {}), built[name], 0)
        parents[name] = {"stage": stage, "cell": cell, "key": key, "digest": manifest.digest}
    record = CommitRecord("prune", "f" * 64, f"{CHECKPOINT}:{TASK}", {}, parents)
    store.commit(record, built["prune"], 0)


def test_a_loaded_circuit_reproduces_the_stored_test_losses(store_url, built):
    _commit_all(StoreSpec(store_url).open(), built)
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
    _commit_all(StoreSpec(str(tmp_path / "store")).open(), built)
    store = sparsepipe.open_store(tmp_path / "store")
    with pytest.raises(sparsepipe.NotInStore, match="pretrain/tiny:single_double_quote"):
        store.load_circuit(CHECKPOINT, "no_such_task")
    with pytest.raises(sparsepipe.NotInStore, match="it has: pretrain/tiny"):
        store.load_model("pretrain/base")
    with pytest.raises(FileNotFoundError, match="no store at"):
        sparsepipe.open_store(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="ablate must be one of"):
        store.load_circuit(CHECKPOINT, TASK).run("x", ablate="outside")

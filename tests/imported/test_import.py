"""Importing the reference release's checkpoint layout, and exporting to it.

Fixtures are written here in the release's layout from known weights: a `beeg_config.json` with the
release's key names (its alias n_mlp, the leftover n_embd and training keys of the published configs) and a
`final_model.pt` written with torch.save, whose names carry the `transformer.` prefix. The imported model's
logits are checked against the forward written out by hand in tests/nn/test_gpt_options.py.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from sparsepipe.pipeline.cli import app
from sparsepipe.workers.imported.release import (
    UnsupportedRelease,
    model_from_release,
    read_release,
    write_release,
)
from sparsepipe.workers.nn.gpt import GPT, load_checkpoint, save_checkpoint

sys.path.insert(0, str(Path(__file__).parents[1] / "nn"))
from test_gpt_options import build, manual_logits, tokens  # noqa: E402

runner = CliRunner()


def release_names(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our names -> the release's, written out by hand for the fixtures."""
    renamed = {}
    for name, tensor in state.items():
        if name == "bigram":
            name = "bigram_table"
        elif name.startswith("blocks."):
            name = "transformer.h." + name[len("blocks.") :]
            name = name.replace(".attn.sink", ".attn.attn_imp.sink_logit")
        elif name not in ("lm_head.weight", "final_logits_bias"):
            name = "transformer." + name
        renamed[name] = tensor.detach().clone().float()
    return renamed


def release_config(model, **changes) -> dict:
    c = model.config
    config = {  # as the published configs: aliases, leftover keys, no eps
        "block_size": c.n_ctx,
        "vocab_size": c.vocab_size,
        "n_layer": c.n_layer,
        "n_head": c.n_head,
        "d_head": c.d_head,
        "d_model": c.d_model,
        "n_embd": c.d_model,
        "n_mlp": c.mlp_width,
        "bias": c.bias,
        "rms_norm": c.norm == "rms",
        "ln_bias": c.norm_bias,
        "residual_activation_type": c.residual_activation,
        "activation_type": c.activation,
        "afrac": c.afrac,
        "afrac_loctypes": ",".join(c.afrac_locations),
        "tied_unembed": c.tied_embeddings,
        "enable_bigram_table": c.bigram_table,
        "learnable_bigram_table": True,
        "d_pos_emb": c.d_pos_emb,
        "sink": c.attn_sink,
        "pfrac": 0.125,
        "expansion_factor": 1,
        "afrac_approx": False,
        "sparse_matmul_impl": "cuda",
        "rtopk": True,
        "debug_exact_topk": False,
        "ignore_dw_grad": False,
        "bigram_table_rank": None,
        "tokenizer_name": "tinypython_2k",
        "dropout": 0.0,
        "grad_checkpointing": True,
        "flash": True,
    }
    config.update(changes)
    return config


def write_fixture(folder: Path, model, config: dict | None = None, state: dict | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    state = release_names(model.state_dict()) if state is None else state
    if model.config.pos_emb == "none":  # the release always has a position table
        state["transformer.wpe.weight"] = torch.zeros(model.config.n_ctx, model.config.d_model)
    (folder / "beeg_config.json").write_text(json.dumps(config or release_config(model)))
    torch.save(state, folder / "final_model.pt")
    return folder


RELEASE_OPTIONS = {
    "published_sparse": {
        "afrac": 0.25,
        "afrac_locations": ["attn_in", "attn_out", "mlp_in", "mlp_out", "mlp_neuron", "attn_v"],
    },
    "final_logits_bias": {"final_logits_bias": True},
    "learned_positions": {"pos_emb": "learned"},
    "concat_positions": {"pos_emb": "concat", "d_pos_emb": 6},
    "layer_norm_bias": {"norm": "layer", "norm_bias": True},
    "layer_norm": {"norm": "layer"},
    "residual_relu_topk": {"residual_activation": "relu", "afrac_locations": ["resid_post_attn", "resid_post_mlp"]},
    "tied": {"tied_embeddings": True},
    "no_bias": {"bias": False},
    "dense_no_sink_no_bigram": {"afrac": None, "attn_sink": False, "bigram_table": False},
}


@pytest.mark.parametrize("option", list(RELEASE_OPTIONS))
def test_import_matches_the_hand_computation(tmp_path, option):
    original = build(**RELEASE_OPTIONS[option])
    source = write_fixture(tmp_path / "release", original)
    imported, raw, digests = read_release(str(source))
    assert set(digests) == {"beeg_config.json", "final_model.pt"} and raw["n_mlp"] == original.config.mlp_width
    c = imported.config
    assert c.abstopk_ties == "torch_topk" and c.norm_eps is None
    for field in ("pos_emb", "norm", "norm_bias", "residual_activation", "tied_embeddings", "bias", "afrac"):
        assert getattr(c, field) == getattr(original.config, field), field
    assert set(c.afrac_locations) == set(original.config.afrac_locations) or c.afrac is None
    idx = tokens()
    expected = manual_logits(original, idx)
    assert torch.allclose(imported.double()(idx)[0], expected, atol=1e-5)


def test_release_defaults_apply_to_missing_keys(tmp_path):
    """The release's GPTConfig defaults: tied unembedding, LayerNorm with bias, AbsTopK on four locations."""
    original = build(
        norm="layer",
        norm_bias=True,
        tied_embeddings=True,
        afrac=0.5,
        bigram_table=False,
        attn_sink=False,
        afrac_locations=["attn_in", "attn_out", "mlp_in", "mlp_out"],
    )
    config = release_config(original)
    for key in ("tied_unembed", "rms_norm", "ln_bias", "afrac_loctypes", "bias", "enable_bigram_table", "sink"):
        del config[key]
    imported, _, _ = read_release(str(write_fixture(tmp_path, original, config)))
    assert imported.config.tied_embeddings and imported.config.norm == "layer" and imported.config.norm_bias
    assert torch.allclose(imported.double()(tokens())[0], manual_logits(original, tokens()), atol=1e-5)


def test_zero_tables_import_as_absent_and_a_nonzero_logits_bias_is_kept(tmp_path):
    original = build()
    state = release_names(original.state_dict())
    state["final_logits_bias"] = torch.zeros(original.config.vocab_size)
    imported, _, _ = read_release(str(write_fixture(tmp_path / "a", original, state=state)))
    assert imported.wpe is None and imported.final_logits_bias is None
    state["final_logits_bias"] = torch.linspace(-3, 3, original.config.vocab_size)
    imported, _, _ = read_release(str(write_fixture(tmp_path / "b", original, state=state)))
    assert torch.equal(imported.final_logits_bias, state["final_logits_bias"])
    shift = imported(tokens())[0] - read_release(str(tmp_path / "a"))[0](tokens())[0]
    assert torch.allclose(shift, state["final_logits_bias"].expand_as(shift), atol=1e-5)


@pytest.mark.parametrize(
    "change, key",
    [
        ({"activation_type": "swiglu"}, "activation_type"),
        ({"residual_activation_type": "tanh"}, "residual_activation_type"),
        ({"afrac_loctypes": "attn_in,attn_y"}, "afrac_loctypes"),
        ({"use_tied_aux_matrix": True}, "use_tied_aux_matrix"),
        ({"n_embd": 99}, "n_embd"),
        ({"some_new_option": 1}, "some_new_option"),
        ({"afrac": 0.01}, "afrac"),  # int(0.01 * 16) = 0: the release keeps nothing, we would keep one
        ({"n_head": 3}, "n_head"),
    ],
)
def test_unsupported_configs_are_refused_naming_the_key(tmp_path, change, key):
    original = build()
    source = write_fixture(tmp_path, original, release_config(original, **change))
    with pytest.raises(UnsupportedRelease) as error:
        read_release(str(source))
    assert error.value.key == key and key in str(error.value)


def test_weights_that_do_not_match_the_config_are_refused(tmp_path):
    original = build()
    state = release_names(original.state_dict())
    state["transformer.h.0.mlp.c_fc.weight"] = state["transformer.h.0.mlp.c_fc.weight"][:, :-1]
    with pytest.raises(UnsupportedRelease, match="transformer.h.0.mlp.c_fc.weight"):
        read_release(str(write_fixture(tmp_path / "shape", original, state=state)))
    state = release_names(original.state_dict())
    del state["transformer.h.1.attn.attn_imp.sink_logit"]
    with pytest.raises(UnsupportedRelease, match="sink_logit.*missing"):
        read_release(str(write_fixture(tmp_path / "missing", original, state=state)))
    state = release_names(original.state_dict())
    state["_orig_mod.lm_head.weight"] = state["lm_head.weight"]
    with pytest.raises(UnsupportedRelease, match="_orig_mod"):
        read_release(str(write_fixture(tmp_path / "unknown", original, state=state)))


class NotATensor:
    def __reduce__(self):  # what a malicious pickle would do on a plain torch.load
        return (print, ("unpickled!",))


def test_only_tensors_are_unpickled(tmp_path, capsys):
    original = build()
    state = release_names(original.state_dict())
    state["payload"] = NotATensor()
    with pytest.raises(UnsupportedRelease, match="weights-only"):
        read_release(str(write_fixture(tmp_path, original, state=state)))
    assert "unpickled!" not in capsys.readouterr().out


@pytest.mark.parametrize("option", ["default", "tied", "concat_positions", "layer_norm_bias", "final_logits_bias"])
def test_export_then_import_gives_identical_logits(tmp_path, option):
    overrides = {"default": {}, **RELEASE_OPTIONS}[option]
    model = build(**overrides).float()
    write_release(model, tmp_path / "release")
    saved = torch.load(tmp_path / "release" / "final_model.pt", weights_only=True)
    assert "transformer.wpe.weight" in saved and "transformer.h.0.attn.c_attn.weight" in saved
    raw = json.loads((tmp_path / "release" / "beeg_config.json").read_text())
    back = model_from_release(raw, saved)
    assert back.config.abstopk_ties == "torch_topk"
    twin = GPT(model.config.model_copy(update={"abstopk_ties": "torch_topk"}))  # the same tie rule on both sides
    twin.load_state_dict(model.state_dict())
    assert torch.equal(back(tokens())[0], twin.eval()(tokens())[0])


def test_export_refuses_what_the_release_cannot_express(tmp_path):
    with pytest.raises(UnsupportedRelease, match="norm_eps"):
        write_release(build(norm_eps=1e-6), tmp_path)


def test_cli_import_commits_a_checkpoint_that_prune_selects(tmp_path):
    original = build(afrac=0.5).float()
    source = write_fixture(tmp_path / "release", original)
    store = str(tmp_path / "store")
    result = runner.invoke(app, ["import", str(source), "--name", "tiny", "--store", store, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["checkpoint"] == "imported/tiny"
    again = runner.invoke(app, ["import", str(source / "final_model.pt"), "--name", "tiny", "--store", store, "--json"])
    assert again.exit_code == 0 and json.loads(again.stdout)["cached"] is False  # another source path: a new key
    plan = runner.invoke(
        app, ["plan", "mean_cache", "--preset", "smoke", "--checkpoints", "imported/tiny", "--store", store, "--json"]
    )
    assert plan.exit_code == 0, plan.output
    cells = {(c["stage"], c["cell"]): c["status"] for c in json.loads(plan.stdout)["cells"]}
    assert cells[("imported", "tiny")] == "HIT" and cells[("mean_cache", "imported/tiny")] == "RUN"
    everything = runner.invoke(app, ["plan", "mean_cache", "--preset", "smoke", "--store", store, "--json"])
    assert "imported/tiny" not in everything.stdout  # `all` leaves imported models out: they are named
    exported = tmp_path / "exported"
    assert (
        runner.invoke(app, ["export", "imported/tiny", str(exported), "--preset", "smoke", "--store", store]).exit_code
        == 0
    )
    back, _, _ = read_release(str(exported))
    assert torch.equal(back(tokens())[0], read_release(str(source))[0](tokens())[0])


def test_cli_import_from_s3_commits_the_same_model(tmp_path, s3_url):
    """`sparsepipe import s3://...`: the release folder on a real S3-protocol server (moto, loopback)."""
    import s3fs

    original = build(afrac=0.5).float()
    source = write_fixture(tmp_path / "release", original)
    s3fs.S3FileSystem.clear_instance_cache()
    fs = s3fs.S3FileSystem(skip_instance_cache=True, use_listings_cache=False)
    for file in source.iterdir():
        fs.put_file(str(file), f"{s3_url}/release/{file.name}")
    store = str(tmp_path / "store")
    result = runner.invoke(app, ["import", f"{s3_url}/release", "--name", "remote", "--store", store, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["checkpoint"] == "imported/remote"
    exported = tmp_path / "exported"
    assert runner.invoke(app, ["export", "imported/remote", str(exported), "--store", store]).exit_code == 0
    back, _, _ = read_release(str(exported))
    assert torch.equal(back(tokens())[0], original(tokens())[0])
    missing = runner.invoke(app, ["import", f"{s3_url}/nowhere", "--name", "x", "--store", store])
    assert missing.exit_code == 2 and "nowhere" in missing.output


def test_cli_import_refuses_an_unsupported_config_with_exit_2(tmp_path):
    original = build()
    source = write_fixture(tmp_path / "release", original, release_config(original, activation_type="silu"))
    result = runner.invoke(app, ["import", str(source), "--name", "x", "--store", str(tmp_path / "store")])
    assert result.exit_code == 2 and "activation_type" in result.output
    missing = runner.invoke(app, ["import", str(tmp_path / "nowhere"), "--name", "x", "--store", str(tmp_path / "s")])
    assert missing.exit_code == 2 and "nowhere" in missing.output


def test_our_checkpoint_folder_exports(tmp_path):
    model = build().float()
    save_checkpoint(model, tmp_path / "ours")
    result = runner.invoke(app, ["export", str(tmp_path / "ours"), str(tmp_path / "release")])
    assert result.exit_code == 0, result.output
    back, _, _ = read_release(str(tmp_path / "release"))
    assert torch.allclose(back(tokens())[0], load_checkpoint(tmp_path / "ours")(tokens())[0], atol=1e-6)


@pytest.mark.slow
def test_import_then_prune_end_to_end(sparsepipe, tmp_path):
    """`sparsepipe run prune --checkpoints imported/NAME` on an imported smoke-sized model: mean cache, prune."""
    model = build(n_layer=1, d_model=32, n_head=2, d_head=8, n_ctx=128, vocab_size=2048).float()
    write_fixture(tmp_path / "release", model)
    imported = sparsepipe("import", str(tmp_path / "release"), "--name", "tiny", cwd=tmp_path)
    assert imported.returncode == 0, imported.stderr[-2000:]
    result = sparsepipe(
        "run", "prune", "--preset", "smoke", "--set", "tune.enabled=false", "--checkpoints", "imported/tiny",
        "--tasks", "single_double_quote", "--set", "prune.controls=[]", "--json", cwd=tmp_path, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    cells = {(c["stage"], c["cell"]): c for c in json.loads(result.stdout)["cells"]}
    assert cells[("imported", "tiny")]["status"] == "HIT"
    assert cells[("mean_cache", "imported/tiny")]["metrics"]["locations"] == 8
    prune = [c for (stage, _), c in cells.items() if stage == "prune"]
    assert len(prune) == 1 and "edges" in prune[0]["metrics"]
    assert not any(stage in ("pretrain", "dense", "bridges") for stage, _ in cells)

    scored = sparsepipe(
        "tasks", "eval", "--preset", "smoke", "--checkpoints", "imported/tiny", "--task", "single_double_quote",
        "--n-pairs", "8", "--json", cwd=tmp_path,
    )  # fmt: skip
    assert scored.returncode == 0, scored.stderr[-2000:]
    assert {row["checkpoint"] for row in json.loads(scored.stdout)} == {"imported/tiny"}
    everything = sparsepipe("tasks", "eval", "--preset", "smoke", "--task", "single_double_quote", cwd=tmp_path)
    # `all` means this config's own models (none built here), as prune.checkpoints does: never imported/tiny
    assert everything.returncode == 2 and "imported/tiny" not in everything.stderr.split("this config has")[0]

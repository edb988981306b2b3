"""The command line: help, config errors and exit codes (in-process, no Ray)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sparsepipe.pipeline.artifacts import providers
from sparsepipe.pipeline.cli import app
from sparsepipe.pipeline.dag import default_registry

runner = CliRunner()


def _commands(typer_app, prefix=()):
    import typer.main

    group = typer.main.get_command(typer_app)
    stack = [(prefix, group)]
    while stack:
        path, command = stack.pop()
        yield path
        for name, sub in getattr(command, "commands", {}).items():
            stack.append((path + (name,), sub))


@pytest.mark.parametrize("path", sorted(_commands(app)), ids=lambda p: " ".join(p) or "sparsepipe")
def test_every_command_has_help(path):
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_config_show_json_resolves_sources(monkeypatch, tmp_path):
    config_file = tmp_path / "c.yaml"
    config_file.write_text("prune:\n  target_loss: 0.3\n  steps: 5\n")
    monkeypatch.setenv("SPARSEPIPE_PRUNE__STEPS", "7")
    result = runner.invoke(
        app,
        ["config", "show", "--preset", "smoke", "--config", str(config_file), "--set", "tune.iterations=4", "--json"],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["prune"]["target_loss"] == 0.3  # file over preset
    assert data["prune"]["steps"] == 7  # environment over file
    assert data["tune"]["iterations"] == 4  # --set over everything
    assert data["preset"] == "smoke"


@pytest.mark.parametrize(
    "args, named",
    [
        (["--set", "pretrain.train.stepz=3"], "pretrain.train.stepz"),
        (["--set", "tune.iterations=many"], "tune.iterations"),
        (["--set", "noequals"], "noequals"),
        (["--preset", "huge"], "huge"),
    ],
)
def test_bad_config_exits_2_naming_the_key(args, named, tmp_path):
    result = runner.invoke(app, ["plan", "--store", str(tmp_path / "s"), *args])
    assert result.exit_code == 2
    assert named in result.output


def test_bad_config_file_exits_2(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[prune]\nunknown_knob = 1\n")
    result = runner.invoke(app, ["plan", "--config", str(bad), "--store", str(tmp_path / "s")])
    assert result.exit_code == 2 and "prune.unknown_knob" in result.output and str(bad) in result.output


def test_unknown_stage_and_force_exit_2(tmp_path):
    assert runner.invoke(app, ["run", "nosuchstage", "--store", str(tmp_path / "s")]).exit_code == 2
    assert runner.invoke(app, ["run", "tokenize", "--force", "nosuch", "--store", str(tmp_path / "s")]).exit_code == 2


def test_plan_json_lists_every_cell(tmp_path):
    result = runner.invoke(app, ["plan", "full", "--preset", "smoke", "--store", str(tmp_path / "s"), "--json"])
    assert result.exit_code == 0, result.output
    cells = json.loads(result.stdout)["cells"]
    assert cells[0]["stage"] == "tokenize" and cells[0]["status"] == "RUN" and cells[0]["reason"] == "never built"


def test_dead_cluster_address_is_a_clear_error(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = runner.invoke(
        app, ["run", "tokenize", "--preset", "smoke", "--store", str(tmp_path / "s"), "--cluster", f"127.0.0.1:{port}"]
    )
    assert result.exit_code == 5
    assert "no Ray cluster answers" in result.output and "ray start --head" in result.output


def test_unreachable_store_exits_4(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    monkeypatch.setenv("SPARSEPIPE_S3__ENDPOINT_URL", "http://127.0.0.1:9")
    result = runner.invoke(app, ["status", "--store", "s3://nobucket/p"])
    assert result.exit_code == 4 and "cannot reach the store" in result.output


def test_dag_prints_every_stage_and_edge():
    result = runner.invoke(app, ["dag"])
    assert result.exit_code == 0, result.output
    registry = default_registry()
    for name in registry.order:
        assert name in result.output
        for dep in registry.deps(name):
            assert f"{dep} -> {name}" in result.output


def test_dag_json_lists_stages_in_dependency_order():
    result = runner.invoke(app, ["dag", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    order = [stage["name"] for stage in data["stages"]]
    registry = default_registry()
    assert order == registry.order
    for upstream, downstream in data["edges"]:
        assert order.index(upstream) < order.index(downstream)
    assert ["mean_cache", "prune"] in data["edges"]
    # Deps by kind: every checkpoint stage feeds mean_cache and prune, none named in their Stage records.
    for provider in providers(registry, "checkpoint"):
        assert [provider, "mean_cache"] in data["edges"] and [provider, "prune"] in data["edges"]
    assert next(s for s in data["stages"] if s["name"] == "prune")["config"] == ["prune", "tune"]


def test_bench_commands_come_from_the_registered_benchmarks():
    from sparsepipe.workers.registry import BENCHMARKS

    result = runner.invoke(app, ["bench", "--help"])
    assert result.exit_code == 0
    for benchmark in BENCHMARKS:
        assert benchmark.name in result.output
    assert [b.name for b in BENCHMARKS] == ["tokenize", "train", "bridges", "carbs", "prune"]


def test_a_benchmark_runs_through_its_reference(tmp_path, monkeypatch):
    from sparsepipe.pipeline import cli_bench
    from sparsepipe.workers.stage import Benchmark

    module = tmp_path / "bench_demo.py"
    module.write_text("def measure(quick):\n    return {'quick': quick}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert cli_bench._measure(Benchmark("demo", "a demo", "bench_demo:measure"), quick=True) == {"quick": True}


def test_the_bridges_experiment_config_plans_only_the_cells_fig9_needs(tmp_path):
    """infra/bridges-tiny.yaml over tiny: tokenizer, dense, bridges, its mean cache, one prune cell, one interventions
    cell; no sparse pretraining and no controls (its header says so; BENCHMARKS.md times it)."""
    config = Path(__file__).resolve().parents[2] / "infra" / "bridges-tiny.yaml"
    args = ["plan", "interventions", "--config", str(config), "--store", str(tmp_path / "s"), "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    cells = [(c["stage"], c["cell"]) for c in json.loads(result.stdout)["cells"]]
    assert [stage for stage, _ in cells] == ["tokenize", "dense", "bridges", "mean_cache", "prune", "interventions"]
    assert cells[-2:] == [
        ("prune", "bridges/tiny:single_double_quote"),
        ("interventions", "bridges/tiny:single_double_quote"),
    ]

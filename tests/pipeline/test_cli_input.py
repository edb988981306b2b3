"""Bad input gets exit 2 (usage/config) or 4 (store) with one clear line, never a traceback.

Issue 13, items 5-11, 16, 17, 19.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sparsepipe.pipeline.cli import app
from sparsepipe.pipeline.cli_options import normalize_cluster_args
from sparsepipe.pipeline.config import ENV_SWITCHES, resolve_config

cli = CliRunner()
REPO = Path(__file__).resolve().parents[2]


def _one_clear_line(result, code: int, *named: str) -> None:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    for text in named:
        assert text in result.output, result.output


# ----------------------------------------------------------------- item 5, 6, 11: --store


@pytest.mark.parametrize(
    "command", [["run", "tokenize", "--preset", "smoke"], ["status"], ["verify"], ["gc"], ["plan", "--preset", "smoke"]]
)
@pytest.mark.parametrize("kind", ["file", "below-file", "proc", "sys", "unknown-protocol", "bare-s3"])
def test_bad_store_exits_4_naming_it(command, kind, tmp_path):
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    store = {
        "file": str(a_file),
        "below-file": str(a_file / "store"),
        "proc": "/proc/sparsepipe-store",
        "sys": "/sys/sparsepipe",
        "unknown-protocol": "gs2://x/y",
        "bare-s3": "s3://",
    }[kind]
    result = cli.invoke(app, [*command, "--store", store])
    _one_clear_line(result, 4, store)
    assert len(result.output.strip().splitlines()) == 1


def test_unwritable_store_exits_4_before_any_work(tmp_path):
    import shutil

    store = tmp_path / "readonly"
    store.mkdir()
    store.chmod(0o555)
    immutable = os.geteuid() == 0  # root writes through modes: make the folder immutable instead
    if immutable:
        if (
            shutil.which("chattr") is None
            or subprocess.run(["chattr", "+i", str(store)], capture_output=True).returncode != 0
        ):
            pytest.skip("running as root without chattr: no way to make a folder unwritable")
    try:
        result = cli.invoke(app, ["run", "tokenize", "--preset", "smoke", "--store", str(store)])
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(store)], check=True)
    _one_clear_line(result, 4, "not writable", str(store))


def test_read_only_commands_do_not_create_a_missing_store(tmp_path):
    missing = tmp_path / "no-such-store"
    for command in (["verify"], ["status"], ["gc"]):
        _one_clear_line(cli.invoke(app, [*command, "--store", str(missing)]), 4, "does not exist")
    assert not missing.exists()
    assert cli.invoke(app, ["plan", "tokenize", "--preset", "smoke", "--store", str(missing)]).exit_code == 0
    assert not missing.exists()  # planning reads only


def test_missing_s3_bucket_prefix_is_fine_but_missing_bucket_is_4(s3_env):
    result = cli.invoke(app, ["status", "--store", "s3://no-such-bucket-here/p"])
    _one_clear_line(result, 4, "no-such-bucket-here")


# ---------------------------------------------------------------------- item 7: --config


def test_config_that_is_a_folder_or_not_utf8_exits_2(tmp_path):
    folder = tmp_path / "conf.yaml"
    folder.mkdir()
    _one_clear_line(cli.invoke(app, ["config", "show", "--config", str(folder)]), 2, "is a folder")
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("prune:\n  tasks: ['caf\xe9']\n".encode("latin-1"))
    _one_clear_line(cli.invoke(app, ["config", "show", "--config", str(latin)]), 2, "not UTF-8", str(latin))


# ------------------------------------------------------------------ item 8: cross-stage


@pytest.mark.parametrize(
    "assignments, named",
    [
        (["tokenize.n_ctx=1000000"], ["tokenize.n_ctx"]),
        (["pretrain.train.model.n_ctx=4096"], ["pretrain.train.model.n_ctx", "tokenize.n_ctx"]),
        (["dense.train.model.n_ctx=64"], ["dense.train.model.n_ctx", "tokenize.n_ctx"]),
        (["pretrain.train.model.vocab_size=1000"], ["pretrain.train.model.vocab_size", "tokenize.vocab_size"]),
    ],
)
def test_values_that_cannot_work_exit_2_at_config_time(assignments, named, tmp_path):
    args = [a for item in assignments for a in ("--set", item)]
    result = cli.invoke(app, ["run", "full", "--preset", "smoke", "--store", str(tmp_path / "s"), *args])
    _one_clear_line(result, 2, *named)
    assert not (tmp_path / "s" / "tokenize").exists()  # nothing ran


def test_consistent_n_ctx_change_is_accepted():
    config = resolve_config(
        "smoke",
        assignments=["tokenize.n_ctx=64", "pretrain.train.model.n_ctx=64", "dense.train.model.n_ctx=64"],
        environ={},
    )
    assert config.pretrain.train.model.n_ctx == 64
    for preset in ("smoke", "tiny", "small", "paper"):
        resolve_config(preset, environ={})


# --------------------------------------------------------------------- item 9: --cluster


@pytest.mark.parametrize(
    "args, expected",
    [
        (["run", "--cluster"], ["run", "--cluster=auto"]),
        (["run", "--cluster", "tokenize"], ["run", "--cluster=auto", "tokenize"]),
        (["run", "--cluster", "--preset", "smoke"], ["run", "--cluster=auto", "--preset", "smoke"]),
        (["run", "--cluster", "10.0.0.5:6379", "tokenize"], ["run", "--cluster", "10.0.0.5:6379", "tokenize"]),
        (["run", "--cluster", "ray://head:10001"], ["run", "--cluster", "ray://head:10001"]),
        (["run", "--cluster=1.2.3.4:6379"], ["run", "--cluster=1.2.3.4:6379"]),
    ],
)
def test_cluster_value_is_optional(args, expected):
    assert normalize_cluster_args(args) == expected


@pytest.mark.parametrize("position", ["last", "before-option", "before-stage"])
def test_bare_cluster_uses_ray_address_wherever_it_is(position, tmp_path, monkeypatch):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{port}")
    store = ["--store", str(tmp_path / "s")]
    args = {
        "last": ["run", "tokenize", "--preset", "smoke", *store, "--cluster"],
        "before-option": ["run", "tokenize", "--cluster", "--preset", "smoke", *store],
        "before-stage": ["run", "--cluster", "tokenize", "--preset", "smoke", *store],
    }[position]
    result = cli.invoke(app, args)
    _one_clear_line(result, 5, f"127.0.0.1:{port}", "no Ray cluster answers")


def test_no_deprecated_click_option_is_used():
    assert "flag_value" not in (REPO / "pipeline" / "cli.py").read_text()
    assert "is_flag' and 'flag_value" not in (REPO / "pyproject.toml").read_text()


# ------------------------------------------------------------ item 10: environment switches


def test_every_sparsepipe_variable_the_code_reads_is_allowed(monkeypatch, tmp_path):
    read = set()
    for folder in ("pipeline", "workers", "kernels", "tasks", "infra"):
        for path in (REPO / folder).rglob("*.py"):
            read |= set(re.findall(r"\"(SPARSEPIPE_[A-Z_]+)\"", path.read_text()))
    switches = {name for name in read if not name.endswith("_") and "__" not in name and name != "SPARSEPIPE_STORE"}
    assert {"SPARSEPIPE_CACHE", "SPARSEPIPE_RAY_LOGS"} <= switches
    assert switches <= set(ENV_SWITCHES), switches - set(ENV_SWITCHES)
    environ = {"SPARSEPIPE_CACHE": str(tmp_path), "SPARSEPIPE_RAY_LOGS": "1", "SPARSEPIPE_KERNELS": "reference"}
    resolve_config("smoke", environ=environ)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    assert cli.invoke(app, ["config", "show", "--preset", "smoke", "--json"]).exit_code == 0


# --------------------------------------------------------------------- item 16: piped output


def test_piped_output_is_never_cut_or_wrapped(tmp_path, monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    long_path = tmp_path / ("a-very-long-folder-name-" * 5) / "store-file"
    long_path.parent.mkdir(parents=True)
    long_path.write_text("x")
    command = [sys.executable, "-m", "sparsepipe.pipeline", "status", "--store", str(long_path)]
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 4
    assert str(long_path) in result.stderr and len(result.stderr.strip().splitlines()) == 1


# --------------------------------------------------------------------------- item 17: gc


def test_gc_rejects_a_negative_age(tmp_path):
    (tmp_path / "s").mkdir()
    result = cli.invoke(app, ["gc", "--store", str(tmp_path / "s"), "--older-than", "-5"])
    assert result.exit_code == 2 and "Traceback" not in result.output


# ------------------------------------------------------------------------------ item 19: -h


@pytest.mark.parametrize(
    "path", [[], ["run"], ["status"], ["config", "show"], ["tasks", "list"], ["bench", "tokenize"]]
)
def test_dash_h_is_help(path):
    result = cli.invoke(app, [*path, "-h"])
    assert result.exit_code == 0 and "Usage" in result.output


def test_readme_names_the_dev_server_bucket():
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("### S3-compatible stores") :]
    assert "--bucket" in section and "sparsepipe" in section

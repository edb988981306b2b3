"""--cluster against a real `ray start --head` with token authentication (Ray 2.60's default).

The slow tests start their own head on loopback (tests/pipeline/ray_head.py) and stop it by PID.
The token is found where Ray keeps it: RAY_AUTH_TOKEN, the file RAY_AUTH_TOKEN_PATH, ~/.ray/auth_token.
"""

from __future__ import annotations

import json
import secrets
import time

import pytest
from ray_head import RayHead

from sparsepipe.pipeline import cluster


@pytest.fixture
def no_token(monkeypatch, tmp_path):
    """No token in this process's environment, and HOME elsewhere (not this machine's ~/.ray/auth_token)."""
    for name in (cluster.AUTH_MODE, cluster.AUTH_TOKEN, cluster.AUTH_TOKEN_PATH):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_token_is_found_in_rays_order(no_token, monkeypatch, tmp_path):
    assert cluster.find_token() is None
    (no_token / ".ray").mkdir(parents=True)
    (no_token / ".ray" / "auth_token").write_text("from-home\n")
    assert cluster.find_token() == cluster.Token("from-home", str(no_token / ".ray" / "auth_token"))
    (tmp_path / "tok").write_text("from-path")
    monkeypatch.setenv(cluster.AUTH_TOKEN_PATH, str(tmp_path / "tok"))
    assert cluster.find_token().value == "from-path"
    monkeypatch.setenv(cluster.AUTH_TOKEN, "from-env")
    assert cluster.find_token().value == "from-env"


def test_a_missing_token_path_is_an_auth_error(no_token, monkeypatch, tmp_path):
    monkeypatch.setenv(cluster.AUTH_TOKEN_PATH, str(tmp_path / "absent"))
    with pytest.raises(cluster.ClusterAuthError, match="RAY_AUTH_TOKEN_PATH=.*absent cannot be read"):
        cluster.find_token()


def test_token_mode_without_a_token_is_an_auth_error_not_a_crash(no_token, monkeypatch):
    monkeypatch.setenv(cluster.AUTH_MODE, "token")
    with pytest.raises(cluster.ClusterAuthError, match="no authentication token"):
        cluster.enable_token_auth()


def test_forwarded_auth_env_carries_the_token_by_value(no_token, monkeypatch, tmp_path):
    (tmp_path / "tok").write_text("secret")
    monkeypatch.setenv(cluster.AUTH_TOKEN_PATH, str(tmp_path / "tok"))
    monkeypatch.setenv(cluster.AUTH_MODE, "token")
    assert cluster.auth_env(cluster.find_token()) == {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "secret"}


@pytest.fixture(scope="module")
def token_head():
    head = RayHead(token=secrets.token_hex(16), num_cpus=2).start()
    yield head
    head.stop()


@pytest.mark.slow
@pytest.mark.parametrize("token", [None, "wrong"])
def test_a_refused_token_is_one_line_and_exit_5(sparsepipe, tmp_path, token_head, no_token, token):
    env = {"RAY_AUTH_TOKEN": secrets.token_hex(16)} if token else {}
    started = time.time()
    result = sparsepipe("run", "tokenize", "--preset", "smoke", "--cluster", token_head.address, cwd=tmp_path, env=env)
    assert result.returncode == 5, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "token authentication" in lines[0] and "RAY_AUTH_TOKEN" in lines[0]
    assert ("RAY_AUTH_TOKEN" if token else "no token") in lines[0]
    assert time.time() - started < 20  # no retry wall


@pytest.mark.slow
def test_smoke_pipeline_on_a_token_head_with_rays_default_token_file(sparsepipe, tmp_path, token_head, no_token):
    home = no_token
    (home / ".ray").mkdir(parents=True)
    (home / ".ray" / "auth_token").write_text(token_head.token)
    result = sparsepipe(
        "run",
        "full",
        "--preset",
        "smoke",
        "--set",
        "tune.enabled=false",
        "--cluster",
        token_head.address,
        "--json",
        cwd=tmp_path,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert f"Ray cluster at {token_head.address} (1 nodes, 2 CPUs)" in result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] and len(report["cells"]) == 14

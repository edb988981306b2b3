"""--cluster and --detach against a real `ray start --head` with token authentication (Ray 2.60's default).

The slow tests share one head on loopback with a dashboard (tests/pipeline/ray_head.py), stopped by PID.
The token is found where Ray keeps it: RAY_AUTH_TOKEN, the file RAY_AUTH_TOKEN_PATH, ~/.ray/auth_token.
"""

from __future__ import annotations

import json
import re
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
    head = RayHead(token=secrets.token_hex(16), num_cpus=2, dashboard=True).start()
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


def _home_with_token(home, token: str):
    (home / ".ray").mkdir(parents=True)
    (home / ".ray" / "auth_token").write_text(token)


@pytest.mark.slow
def test_cluster_run_on_a_token_head_with_rays_default_token_file(sparsepipe, tmp_path, token_head, no_token):
    _home_with_token(no_token, token_head.token)
    result = sparsepipe("run", "tokenize", "--preset", "smoke", "--cluster", token_head.address, "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-4000:]
    assert f"Ray cluster at {token_head.address} (1 nodes, 2 CPUs)" in result.stderr
    assert json.loads(result.stdout)["ok"]


@pytest.mark.slow
def test_plan_on_the_cluster_refuses_training_workers_it_cannot_hold(sparsepipe, tmp_path, token_head, no_token):
    _home_with_token(no_token, token_head.token)
    # a batch that splits over 2 and 3 ranks, so that the cluster's CPUs are what refuses 3
    plan = ["plan", "pretrain", "--preset", "smoke", "--cluster", token_head.address, "--json"]
    plan += [arg for stage in ("pretrain", "dense", "bridges") for arg in ("--set", f"{stage}.train.batch_size=6")]
    too_many = sparsepipe(*plan, "--set", "execution.train_workers=3", cwd=tmp_path)
    assert too_many.returncode == 5, too_many.stderr[-2000:]
    assert "needs 3 training workers x 1 CPU = 3 CPU, but the cluster has 2 CPU" in too_many.stderr
    fits = sparsepipe(*plan, "--set", "execution.train_workers=2", cwd=tmp_path)
    assert fits.returncode == 0, fits.stderr[-2000:]
    assert {c["stage"] for c in json.loads(fits.stdout)["cells"]} == {"tokenize", "pretrain"}
    assert not (tmp_path / "artifacts" / "pretrain").exists()  # planned, nothing ran


def _wait_for_job(sparsepipe, cwd, address: str, job_id: str, timeout_s: float = 420) -> dict:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        listed = sparsepipe("jobs", "list", "--cluster", address, "--json", cwd=cwd)
        assert listed.returncode == 0, listed.stderr
        job = next(j for j in json.loads(listed.stdout)["jobs"] if j["id"] == job_id)
        if job["status"] in ("SUCCEEDED", "FAILED", "STOPPED"):
            return job
        time.sleep(5)
    sparsepipe("jobs", "stop", job_id, "--cluster", address, cwd=cwd)
    raise AssertionError(f"job {job_id} still running after {timeout_s}s")


@pytest.mark.slow
def test_detached_smoke_pipeline_finishes_after_the_submitter_exits(sparsepipe, tmp_path, token_head, no_token):
    _home_with_token(no_token, token_head.token)
    store = tmp_path / "store"
    command = ["run", "full", "--preset", "smoke", "--set", "tune.enabled=false", "--set", "prune.controls=[]"]
    command += ["--store", str(store)]
    submitted = sparsepipe(*command, "--cluster", token_head.address, "--detach", cwd=tmp_path)
    assert submitted.returncode == 0, submitted.stderr[-3000:]
    job_id = submitted.stdout.strip()  # the submitting process has exited; the job runs on the cluster
    assert job_id.startswith("sparsepipe-full-")
    job = _wait_for_job(sparsepipe, tmp_path, token_head.address, job_id)
    logs = sparsepipe("jobs", "logs", job_id, "--cluster", token_head.address, cwd=tmp_path)
    assert job["status"] == "SUCCEEDED", logs.stdout[-4000:]
    ran = re.search(r"(\d+) cells ran, 0 were cached", logs.stdout)
    assert logs.returncode == 0 and ran, logs.stdout[-4000:]
    assert f"job {job_id}: SUCCEEDED" in logs.stderr
    status = sparsepipe("status", "--store", str(store), "--json", cwd=tmp_path)
    artifacts = json.loads(status.stdout)["artifacts"]
    assert len(artifacts) == int(ran.group(1)) and "report" in {a["stage"] for a in artifacts}

    # The same command detached again resumes: everything is committed, nothing runs. Followed to the end.
    again = sparsepipe(*command, "--cluster", token_head.dashboard_url, "--detach", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    followed = sparsepipe(
        "jobs", "logs", again.stdout.strip(), "--follow", "--cluster", token_head.address, cwd=tmp_path
    )
    cached = f"0 cells ran, {ran.group(1)} were cached"
    assert followed.returncode == 0 and cached in followed.stdout, followed.stdout[-3000:]


@pytest.mark.slow
def test_jobs_commands_name_an_unknown_job_in_one_line(sparsepipe, tmp_path, token_head, no_token):
    _home_with_token(no_token, token_head.token)
    result = sparsepipe("jobs", "logs", "no-such-job", "--cluster", token_head.address, cwd=tmp_path)
    assert result.returncode == 5 and result.stderr.startswith("error: job no-such-job"), result.stderr

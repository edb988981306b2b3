"""Shared fixtures: a real S3-protocol server (moto's, as a subprocess on loopback) and a smoke tokenizer."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

S3_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(autouse=True)
def private_artifact_cache(monkeypatch):
    """Each test (and the `sparsepipe` it starts) caches S3 artifacts in its own folder, removed after it:
    never the user's ~/.cache, and never gigabytes piling up over the suite."""
    import shutil
    import tempfile

    folder = tempfile.mkdtemp(prefix="sptest-cache-")
    monkeypatch.setenv("SPARSEPIPE_CACHE", folder)
    yield
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def s3_server():
    """An S3 server in its own process; yields the environment that points clients at it."""
    env = {**os.environ, **S3_CREDENTIALS}
    env.pop("AWS_PROFILE", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "sparsepipe.infra.s3_server", "--port", "0", "--bucket", "sparsepipe-test"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    line = process.stdout.readline().strip()
    if not line.startswith("export "):
        process.kill()
        pytest.fail(f"the S3 server did not start: {line!r}")
    variables = dict(item.split("=", 1) for item in line.removeprefix("export ").split())
    yield variables
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
def s3_env(s3_server, monkeypatch):
    for name, value in s3_server.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return s3_server


@pytest.fixture
def s3_url(s3_env):
    """A fresh prefix in the test bucket, so tests never see each other's artifacts."""
    return f"s3://sparsepipe-test/{uuid.uuid4().hex[:12]}"


@pytest.fixture(params=["local", "s3"])
def store_url(request, tmp_path):
    if request.param == "local":
        return str(tmp_path / "store")
    return request.getfixturevalue("s3_url")


@pytest.fixture
def sparsepipe():
    """Run the real `sparsepipe` command in a subprocess: sparsepipe(*args, cwd=..., env=..., timeout=...)."""

    def run(*args: str, cwd: Path, env: dict | None = None, timeout: float = 400) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "sparsepipe.pipeline", *args]
        return subprocess.run(
            command, cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=timeout
        )

    return run


@pytest.fixture
def one_torch_thread():
    """Tests that time or compare CPU work run torch on one thread (and restore it after)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def local_ray():
    """A private local Ray instance of 2 CPUs in this process (Ray Train workers, placement checks)."""
    from sparsepipe.workers.benchmarking import private_local_ray

    os.environ.setdefault("RAY_DASHBOARD_STARTUP_TIMEOUT_S", "300")  # 60 by default: short on a busy 2-core box
    with private_local_ray(num_cpus=2):
        yield


@pytest.fixture
def ray_tmpdir():
    """A short private TMPDIR for a `sparsepipe` subprocess (Ray puts its sockets below it); removed after."""
    import shutil
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="sp", dir="/tmp"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)

"""Detached runs: the driver itself as a Ray Job on the cluster (`ray.job_submission`).

`run --cluster ADDR --detach` resolves the config here, writes it into a
one-file working directory that travels in the job's runtime environment with
the store settings (AWS_*, SPARSEPIPE_*) and the cluster's authentication
(RAY_AUTH_*), and submits `python -m sparsepipe.pipeline run ... --cluster` as
the job's entrypoint: the cluster's `python` must have sparsepipe installed (the
image in infra/ has). Inside the job Ray sets RAY_ADDRESS, which a bare
`--cluster` reads, so the detached driver joins the cluster as any driver does.
Progress lives in the store, so `sparsepipe status` works from anywhere that
reaches it, and running the same command again resumes as always.
"""

from __future__ import annotations

import asyncio
import shlex
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

import yaml

from .cluster import ClusterAccess, ClusterError, check_reachable, enable_token_auth, open_cluster, resolve_address
from .config import PipelineConfig

CONFIG_FILE = "sparsepipe-config.yaml"
METADATA_KEY = "sparsepipe"  # job metadata: the command line the job runs, marking it as ours


def job_server(cluster: str | None, configured: str | None, timeout_s: float) -> tuple[str, ClusterAccess]:
    """The job server (Ray dashboard) URL of the cluster that `--cluster` names, and how we reach it.

    An http(s):// address is the job server itself; HOST:PORT is the cluster's GCS, which knows its dashboard.
    """
    address = resolve_address(cluster, configured)
    if address.startswith(("http://", "https://")):
        check_reachable(address, timeout_s)
        return address.rstrip("/"), ClusterAccess(address, enable_token_auth(), address)
    access = open_cluster(address, timeout_s)
    if not access.dashboard:
        raise ClusterError(
            f"the Ray cluster at {address} runs no job server: start its head with --include-dashboard=true, "
            "or pass the job server's address as --cluster http://HOST:PORT"
        )
    return f"http://{access.dashboard}", access


def client(url: str) -> Any:
    from ray.job_submission import JobSubmissionClient

    try:
        return JobSubmissionClient(url)
    except Exception as error:  # connection refused, 401/403 from a token-protected job server
        raise ClusterError(f"the job server at {url} refused us: {_one_line(error)}") from None


def _one_line(error: Exception) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def detached_config(config: PipelineConfig) -> dict[str, Any]:
    """The resolved config as the job will load it: a local store as an absolute path (the job's working
    directory is a temporary folder), and no cluster address (inside the job RAY_ADDRESS names the cluster)."""
    data = config.model_dump(mode="json")
    if "://" not in data["store"]:
        data["store"] = str(Path(data["store"]).expanduser().resolve())
    data["execution"]["address"] = None
    return data


def entrypoint(config: PipelineConfig, target: str, forced: set[str], verify_inputs: bool) -> list[str]:
    command = ["python", "-m", "sparsepipe.pipeline", "run", target, "--preset", config.preset]
    command += ["--config", CONFIG_FILE, "--cluster", "auto"]
    for stage in sorted(forced):
        command += ["--force", stage]
    return command + (["--verify-inputs"] if verify_inputs else [])


def submit(
    url: str,
    access: ClusterAccess,
    config: PipelineConfig,
    target: str,
    forced: set[str],
    verify_inputs: bool,
    env: dict[str, str],
) -> str:
    """Submit the driver as a Ray Job; returns its id."""
    command = shlex.join(entrypoint(config, target, forced, verify_inputs))
    submission_id = f"sparsepipe-{target}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    with tempfile.TemporaryDirectory(prefix="sparsepipe-job-") as workdir:
        (Path(workdir) / CONFIG_FILE).write_text(yaml.safe_dump(detached_config(config), sort_keys=False))
        runtime_env = {"working_dir": workdir, "env_vars": {**env, **access.env}}
        try:
            return client(url).submit_job(
                entrypoint=command,
                submission_id=submission_id,
                runtime_env=runtime_env,
                metadata={METADATA_KEY: command},
            )
        except ClusterError:
            raise
        except Exception as error:
            raise ClusterError(f"the job server at {url} did not take the job: {_one_line(error)}") from None


def list_jobs(url: str) -> list[dict[str, Any]]:
    rows = []
    for job in client(url).list_jobs():
        rows.append(
            {
                "id": job.submission_id or job.job_id,
                "status": str(job.status.value if hasattr(job.status, "value") else job.status),
                "sparsepipe": METADATA_KEY in (job.metadata or {}),
                "start_time": (job.start_time or 0) / 1000,
                "end_time": (job.end_time or 0) / 1000 or None,
                "entrypoint": job.entrypoint,
                "message": job.message,
            }
        )
    return sorted(rows, key=lambda row: row["start_time"])


def logs(url: str, job_id: str) -> str:
    return _call(url, "get_job_logs", job_id)


def follow(url: str, job_id: str) -> Iterator[str]:
    """The job's log as it grows, until the job ends."""
    stream = client(url).tail_job_logs(job_id)
    loop = asyncio.new_event_loop()
    try:
        while True:
            try:
                yield loop.run_until_complete(stream.__anext__())
            except StopAsyncIteration:
                return
            except Exception as error:  # no such job, or the server went away
                raise ClusterError(f"job {job_id}: {_one_line(error)}") from None
    finally:
        loop.close()


def stop(url: str, job_id: str) -> bool:
    return bool(_call(url, "stop_job", job_id))


def status(url: str, job_id: str) -> str:
    value = _call(url, "get_job_status", job_id)
    return str(getattr(value, "value", value))


def _call(url: str, method: str, job_id: str) -> Any:
    try:
        return getattr(client(url), method)(job_id)
    except ClusterError:
        raise
    except Exception as error:  # no such job, or the server went away
        raise ClusterError(f"job {job_id}: {_one_line(error)}") from None

"""A real Ray head started the standard way (`ray start --head --block`), on loopback, for tests.

Its own temp dir and ports, so it never meets another Ray on the machine; stopped by PID (the `ray start`
process and every process whose command line names its temp dir), never by `ray stop`, which ends every
Ray process on the machine.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

RAY = str(Path(sys.executable).with_name("ray"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RayHead:
    def __init__(self, token: str | None, num_cpus: int = 2, dashboard: bool = False, env: dict | None = None):
        self.token = token
        self.num_cpus = num_cpus
        self.dashboard = dashboard
        # Short: Ray's unix sockets live under the temp dir (108-byte path limit).
        self.temp_dir = tempfile.mkdtemp(prefix="rh", dir="/tmp")
        self.port = free_port()
        self.dashboard_port = free_port()
        self.extra_env = env or {}
        self.process: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def client_env(self) -> dict[str, str]:
        """What a client needs to reach this head (with its token, when it has one)."""
        return {"RAY_AUTH_TOKEN": self.token} if self.token else {}

    def start(self, timeout_s: float = 300) -> "RayHead":
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_AUTH", "RAY_ADDRESS"))}
        # The cluster's `python` is the one with sparsepipe installed, as in infra/'s image (detached jobs run it).
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        env.setdefault("RAY_DASHBOARD_STARTUP_TIMEOUT_S", "300")  # 60 by default: too short on a busy 2-core box
        env.update(self.extra_env)
        env["RAY_AUTH_MODE"] = "token" if self.token else "disabled"
        if self.token:
            env["RAY_AUTH_TOKEN"] = self.token
        worker_low = random.randrange(10000, 20000, 100)  # below the ephemeral ports free_port() hands out
        command = [
            RAY,
            "start",
            "--head",
            "--block",
            "--node-ip-address=127.0.0.1",
            f"--port={self.port}",
            f"--temp-dir={self.temp_dir}",
            f"--num-cpus={self.num_cpus}",
            "--object-store-memory=150000000",
            f"--node-manager-port={free_port()}",
            f"--object-manager-port={free_port()}",
            f"--ray-client-server-port={free_port()}",
            f"--dashboard-agent-listen-port={free_port()}",
            f"--dashboard-agent-grpc-port={free_port()}",
            f"--runtime-env-agent-port={free_port()}",
            f"--metrics-export-port={free_port()}",
            f"--min-worker-port={worker_low}",
            f"--max-worker-port={worker_low + 99}",
            "--disable-usage-stats",
        ]
        if self.dashboard:
            command += [
                "--include-dashboard=true",
                "--dashboard-host=127.0.0.1",
                f"--dashboard-port={self.dashboard_port}",
            ]
        else:
            command += ["--include-dashboard=false"]
        self.log = open(Path(self.temp_dir) / "ray-start.log", "w")
        self.process = subprocess.Popen(
            command, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            if self.process.poll() is not None:
                log = self.read_log()
                self.stop()  # whatever it started before failing, and its temp dir
                raise RuntimeError(f"ray start exited {self.process.returncode}: {log[-3000:]}")
            if self._ready():
                return self
            time.sleep(0.5)
        log = self.read_log()
        self.stop()
        raise RuntimeError(f"the Ray head did not come up in {timeout_s}s: {log[-3000:]}")

    def _ready(self) -> bool:
        if "This command will now block forever" not in self.read_log():
            return False
        if not self.dashboard:
            return True
        try:
            headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
            request = urllib.request.Request(f"{self.dashboard_url}/api/version", headers=headers)
            with urllib.request.urlopen(request, timeout=2):
                return True
        except OSError:
            return False

    def read_log(self) -> str:
        return (Path(self.temp_dir) / "ray-start.log").read_text(errors="replace")

    def own_pids(self) -> list[int]:
        """Processes that belong to this head: their command line names its temp dir, or they are in its session."""
        pids = []
        session = self.process.pid if self.process else None
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                sid = os.getsid(int(entry.name))
            except (OSError, ProcessLookupError):
                continue
            if self.temp_dir in cmdline or (session is not None and sid == session):
                pids.append(int(entry.name))
        return pids

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        deadline = time.time() + 10
        while (pids := self.own_pids()) and time.time() < deadline:
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGTERM if time.time() < deadline - 5 else signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.5)
        for pid in self.own_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if getattr(self, "log", None):
            self.log.close()
        shutil.rmtree(self.temp_dir, ignore_errors=True)

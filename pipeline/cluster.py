"""Reaching an existing Ray cluster: its address, its authentication token, its job server.

Ray 2.60 starts `ray start --head` clusters with token authentication on, but a
client that connects by explicit address turns token mode on only when told to
(RAY_AUTH_MODE=token); otherwise it retries "Authentication token is missing"
for about 20 s and ends in a bare ConnectionError.  So before ray.init we look
for a token where Ray keeps one (RAY_AUTH_TOKEN, then the file RAY_AUTH_TOKEN_PATH,
then ~/.ray/auth_token), switch token mode on when one is found (a cluster
without authentication accepts a client that sends a token), and ask the GCS
one question with that token.  A rejection becomes a ClusterAuthError with one
line naming the fix, instead of the retry wall.
"""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

AUTH_MODE, AUTH_TOKEN, AUTH_TOKEN_PATH = "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"
TOKEN_FIX = (
    "set RAY_AUTH_TOKEN to the cluster's token (`ray get-auth-token` on its head node prints it; on KubeRay, "
    "the cluster's token secret), or RAY_AUTH_TOKEN_PATH to a file that holds it"
)


class ClusterError(RuntimeError):
    """No Ray cluster answers at the given address, or it cannot be used."""


class ClusterAuthError(ClusterError):
    """The cluster answers but refuses us: token authentication without the right token."""


@dataclass(frozen=True)
class Token:
    value: str
    source: str  # where it was found, for messages (never the token itself)


def default_token_file() -> Path:
    """Ray's default token file (`ray get-auth-token --generate` writes it)."""
    return Path.home() / ".ray" / "auth_token"


def find_token() -> Token | None:
    """The authentication token Ray would use, from its standard places in Ray's order."""
    value = os.environ.get(AUTH_TOKEN, "").strip()
    if value:
        return Token(value, AUTH_TOKEN)
    path = os.environ.get(AUTH_TOKEN_PATH)
    if path:
        try:
            return Token(Path(path).expanduser().read_text().strip(), f"{AUTH_TOKEN_PATH}={path}")
        except OSError as error:
            raise ClusterAuthError(f"{AUTH_TOKEN_PATH}={path} cannot be read ({error.strerror}); {TOKEN_FIX}") from None
    default = default_token_file()
    if default.is_file():
        text = default.read_text().strip()
        if text:
            return Token(text, str(default))
    return None


def enable_token_auth() -> Token | None:
    """Turn on Ray's token mode in this process when a token is available and the mode is not set explicitly.

    Returns the token in use (None: no token, or RAY_AUTH_MODE says authentication is off).
    """
    mode = os.environ.get(AUTH_MODE, "").strip().lower()
    if mode and mode != "token":
        return None
    token = find_token()
    if token is None:
        if mode == "token":  # Ray's core worker aborts the process on token mode without a token
            raise ClusterAuthError(f"{AUTH_MODE}=token but no authentication token was found; {TOKEN_FIX}")
        return None
    if not mode:
        os.environ[AUTH_MODE] = "token"
        _refresh_ray_config()
    return token


def _refresh_ray_config() -> None:
    """Ray caches its config (authentication mode included) at import; re-read it from the environment."""
    from ray._raylet import Config

    Config.initialize("")


def auth_env(token: Token | None) -> dict[str, str]:
    """What the cluster's own processes (jobs, workers) need to authenticate as we do.

    The token travels by value: a RAY_AUTH_TOKEN_PATH or ~/.ray file on this machine is not on the cluster's nodes.
    """
    env = {name: value for name, value in os.environ.items() if name.startswith("RAY_AUTH_")}
    env.pop(AUTH_TOKEN_PATH, None)
    if token is not None:
        env[AUTH_TOKEN] = token.value
    return env


def resolve_address(cluster: str | None, configured: str | None) -> str:
    """The address a --cluster option means: its value, or (bare, `auto`) execution.address, then RAY_ADDRESS."""
    address = cluster if cluster not in (None, "", "auto") else (configured or os.environ.get("RAY_ADDRESS"))
    if not address:
        raise ClusterError(
            "--cluster needs an address: pass --cluster HOST:PORT, set execution.address, or set RAY_ADDRESS"
        )
    return address


def check_reachable(address: str, timeout_s: float) -> None:
    """Fail fast when nothing listens: ray.init would retry a dead GCS for minutes."""
    host, port = split_address(address)
    try:
        with socket.create_connection((host, port), timeout=min(timeout_s, 5.0)):
            pass
    except OSError as error:
        raise ClusterError(
            f"no Ray cluster answers at {address} ({error}). Start one with `ray start --head --port {port}` "
            "or pass the address of a running cluster to --cluster (or set RAY_ADDRESS)."
        ) from None


def split_address(address: str) -> tuple[str, int]:
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise ClusterError(f"cluster address {address!r} is not HOST:PORT (e.g. 127.0.0.1:6379)")
    return host, int(port)


@contextlib.contextmanager
def _stderr_captured() -> Iterator[Path]:
    """Ray's C++ client logs each failed RPC straight to file descriptor 2; keep those lines out of our output."""
    with tempfile.TemporaryFile() as sink:
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            yield Path(f"/proc/self/fd/{sink.fileno()}")
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def probe(address: str, timeout_s: float, token: Token | None) -> str | None:
    """Ask the cluster's GCS one authenticated question. Returns its dashboard (job server) address, if it has one."""
    from ray._private import ray_constants
    from ray._raylet import GcsClient
    from ray.exceptions import AuthenticationError

    host, port = split_address(address)
    try:
        with _stderr_captured():
            client = GcsClient(address=f"{host}:{port}")
            dashboard = client.internal_kv_get(
                ray_constants.DASHBOARD_ADDRESS.encode(),
                ray_constants.KV_NAMESPACE_DASHBOARD,
                timeout=max(1.0, timeout_s),
            )
    except AuthenticationError:
        sent = f"the token from {token.source}" if token else "no token (none in RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH"
        sent += "" if token else f" or {default_token_file()})"
        raise ClusterAuthError(
            f"the Ray cluster at {address} uses token authentication and refused {sent}; {TOKEN_FIX}"
        ) from None
    except Exception as error:  # a GCS that is not one, or one that does not answer in time
        raise ClusterError(f"the Ray cluster at {address} does not answer ({type(error).__name__}: {error})") from None
    return dashboard.decode() if dashboard else None


@dataclass(frozen=True)
class ClusterAccess:
    address: str
    token: Token | None
    dashboard: str | None  # host:port of the job server, None without a dashboard

    @property
    def env(self) -> dict[str, str]:
        return auth_env(self.token)


def open_cluster(address: str, timeout_s: float) -> ClusterAccess:
    """Check that a cluster answers at `address` and accepts us; set up this process's authentication for it."""
    check_reachable(address, timeout_s)
    if address.startswith("ray://"):  # Ray Client: its server authenticates the connection itself
        return ClusterAccess(address, enable_token_auth(), None)
    if not os.environ.get(AUTH_MODE, "").strip():
        # A token file left by a local Ray (~/.ray/auth_token) must not switch us to token mode for a cluster
        # without authentication: its workers, started in token mode, could not join it. Ask without one first.
        try:
            return ClusterAccess(address, None, probe(address, timeout_s, None))
        except ClusterAuthError:
            pass
    token = enable_token_auth()
    return ClusterAccess(address, token, probe(address, timeout_s, token))

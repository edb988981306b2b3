"""What makes a MANIFEST valid, and what makes a committed artifact intact.

Two kinds of damage are told apart:

* a manifest file that exists but is not a manifest (truncated, empty, `{}`):
  `BadManifest`.  It is never trusted, but always accounted for: `verify`
  reports it, `status`/`plan` skip it with a warning, a rebuild takes the next
  free generation, and `gc` keeps every attempt of its key.
* a valid manifest whose files no longer match it (missing, resized, changed):
  the problems `Store.check` returns.  Such an artifact is DAMAGED, never HIT.

Checking scales with what is likely: every file's existence and size is checked
from one listing; a file is re-hashed when it changed after the commit (its
ctime/mtime, or S3 LastModified, is later than the manifest's `committed_at`, or
its S3 ETag differs from the one recorded at commit),
and every file is re-hashed when asked (`--verify-inputs`, `verify`) or when the
manifest says it was written on another host.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass
from typing import Any

MANIFEST_NAME = re.compile(r"MANIFEST\.(\d+)\.json$")
# Seconds of clock slack between the writer and the timestamps of the filesystem (a false alarm only costs a re-hash).
TIMESTAMP_SLACK_S = 0.0
_REQUIRED: dict[str, type] = {"stage": str, "key": str, "generation": int, "attempt": str, "files": dict}


def generation_of(path: str) -> int | None:
    match = MANIFEST_NAME.search(path)
    return int(match.group(1)) if match else None


def manifest_problem(data: Any) -> str | None:
    """Why parsed manifest JSON is not a usable manifest, or None."""
    if not isinstance(data, dict):
        return f"not a JSON object (a {type(data).__name__})"
    for name, kind in _REQUIRED.items():
        if name not in data:
            return f"missing field {name!r}"
        value = data[name]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            return f"field {name!r} is not a {kind.__name__}"
    for relative, info in data["files"].items():
        if (
            not isinstance(info, dict)
            or not isinstance(info.get("size"), int)
            or not isinstance(info.get("sha256"), str)
        ):
            return f"file entry {relative!r} has no size and sha256"
    return None


@dataclass(frozen=True)
class BadManifest:
    """A manifest file that exists but cannot be used."""

    path: str
    problem: str

    @property
    def generation(self) -> int | None:
        return generation_of(self.path)

    @property
    def stage(self) -> str:
        return self.path.rstrip("/").split("/")[-3]

    @property
    def key(self) -> str:
        return self.path.rstrip("/").split("/")[-2]

    def describe(self) -> str:
        return f"{self.path}: {self.problem}"


def written_elsewhere(manifest_data: dict[str, Any]) -> bool:
    """True when the manifest says its files were written by another host."""
    host = (manifest_data.get("provenance") or {}).get("host")
    return bool(host) and host != socket.gethostname()


def changed_after(info: dict[str, Any], committed_at: float) -> bool:
    """True when a listed file's timestamps are later than the commit (edited, replaced or renamed since)."""
    stamps = []
    for name in ("mtime", "created", "LastModified"):
        stamp = info.get(name)
        if hasattr(stamp, "timestamp"):
            stamp = stamp.timestamp()
        if isinstance(stamp, (int, float)):
            stamps.append(float(stamp))
    return bool(stamps) and committed_at > 0 and max(stamps) > committed_at + TIMESTAMP_SLACK_S


def etag_changed(listed: dict[str, Any], recorded: dict[str, Any]) -> bool:
    """True when an object store reports another ETag than the one recorded at commit (it was overwritten)."""
    etag = listed.get("ETag")
    return bool(etag) and "etag" in recorded and str(etag).strip('"') != recorded["etag"]


def summarize(problems: list[str], limit: int = 2) -> str:
    shown = "; ".join(problems[:limit])
    return shown + (f" (+{len(problems) - limit} more)" if len(problems) > limit else "")

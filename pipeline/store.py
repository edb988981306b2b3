"""The artifact store: folders of files committed by a create-only MANIFEST, over fsspec.

Layout under the store root (a local folder or s3://bucket/prefix):

    <stage>/<key>/attempts/<uuid>/...           data of one attempt, invisible until committed
    <stage>/<key>/MANIFEST.<gen:04d>.json       the commit record, created last and create-only
    <stage>/<key>/progress/<gen:04d>/...        resumable state of a running cell

An artifact is the highest generation whose manifest exists.  Creating the
manifest is atomic and exclusive (a hard link locally, `If-None-Match: *` on S3
through s3fs' "xb" mode), so of two racing writers exactly one commits and the
other adopts the winner's artifact.  `--force` commits generation + 1 the same
way.  Nothing committed is ever overwritten or deleted, except by `gc`, which
only removes attempts that no manifest file (valid or not) might reference,
and resume state (`progress/`) of generations already committed.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, BinaryIO, Iterator

import fsspec

from .integrity import BadManifest, changed_after, etag_changed, generation_of, manifest_problem
from .retry import DEFAULT_RETRY_S, retry_call
from .retry import is_transient as _transient

SCHEMA = 1
MANIFEST_PREFIX = "MANIFEST."
HASH_CHUNK = 1 << 20


FETCH_PREFIX = ".fetch-"  # a download in flight inside the local cache; renamed to the digest when complete


def local_cache_root() -> Path:
    """Where artifacts of S3 stores are cached on this machine (one folder per manifest digest)."""
    return Path(os.environ.get("SPARSEPIPE_CACHE", Path.home() / ".cache" / "sparsepipe"))


class StoreError(RuntimeError):
    """The store cannot be reached or holds something it should not."""


def sha256_stream(handle: BinaryIO) -> str:
    """sha256 of everything left in an open binary file (local or fsspec), read in chunks."""
    digest = hashlib.sha256()
    while chunk := handle.read(HASH_CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


def sha256_file(path: Path) -> str:
    with open(path, "rb") as handle:
        return sha256_stream(handle)


def _file_mode() -> int:
    """The mode a plain new file gets under this process's umask (0644 under the usual 022)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _cached_copy_damaged(folder: Path, manifest: "Manifest", rehash: bool = False) -> bool:
    """A cached download is checked by size on every use (it was hashed when fetched), re-hashed on request."""
    for relative, info in manifest.files.items():
        try:
            if (folder / relative).stat().st_size != info["size"]:
                return True
            if rehash and sha256_file(folder / relative) != info["sha256"]:
                return True
        except OSError:
            return True
    return False


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


@dataclass(frozen=True)
class StoreSpec:
    """Everything a process needs to open the same store (sent to Ray workers)."""

    url: str
    endpoint_url: str | None = None
    region: str | None = None
    retry_s: float = DEFAULT_RETRY_S  # how long transient store errors are retried (execution.store_retry_s)

    def __post_init__(self) -> None:
        # A relative local store means the driver's folder; Ray Train workers run in other folders.
        if self.is_local:
            absolute = str(Path(self.url.removeprefix("file://")).expanduser().resolve())
            object.__setattr__(self, "url", absolute)

    @property
    def is_local(self) -> bool:
        return "://" not in self.url or self.url.startswith("file://")

    def open(self, create: bool = True, retry_open: bool = True) -> "Store":
        return Store(self, create=create, retry_open=retry_open)


@dataclass
class Manifest:
    raw: bytes
    path: str

    @cached_property
    def data(self) -> dict[str, Any]:
        return json.loads(self.raw)

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.raw).hexdigest()

    @property
    def stage(self) -> str:
        return self.data["stage"]

    @property
    def key(self) -> str:
        return self.data["key"]

    @property
    def cell(self) -> str:
        return self.data.get("cell", "")

    @property
    def generation(self) -> int:
        return self.data["generation"]

    @property
    def attempt(self) -> str:
        return self.data["attempt"]

    @property
    def files(self) -> dict[str, dict[str, Any]]:
        return self.data["files"]

    @property
    def metrics(self) -> dict[str, Any]:
        return self.data.get("metrics", {})

    @property
    def size(self) -> int:
        return sum(f["size"] for f in self.files.values())


@dataclass
class CommitRecord:
    """What the runner knows about a unit when it commits it."""

    stage: str
    key: str
    cell: str
    preimage: dict[str, Any]
    parents: dict[str, dict[str, str]]
    metrics: dict[str, Any] = field(default_factory=dict)
    started: float = 0.0
    finished: float = 0.0


def provenance() -> dict[str, Any]:
    from importlib import metadata

    info: dict[str, Any] = {"host": socket.gethostname(), "python": platform.python_version(), "pid": os.getpid()}
    for package in ("sparsepipe", "torch", "ray"):
        try:
            info[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            info[package] = None
    info["git_commit"] = git_commit()
    return info


def git_commit() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        result = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


class Store:
    def __init__(self, spec: StoreSpec, create: bool = True, retry_open: bool = True):
        self.spec = spec
        if spec.is_local:
            self.fs = fsspec.filesystem("file")
            self.root = spec.url
            if create:
                self.fs.makedirs(self.root, exist_ok=True)
        else:
            protocol, _, path = spec.url.partition("://")
            options: dict[str, Any] = {"use_listings_cache": False, "skip_instance_cache": True}
            if protocol == "s3":
                endpoint = spec.endpoint_url or os.environ.get("AWS_ENDPOINT_URL")
                client_kwargs = {}
                if endpoint:
                    client_kwargs["endpoint_url"] = endpoint
                if spec.region:
                    client_kwargs["region_name"] = spec.region
                options["client_kwargs"] = client_kwargs
            self.fs = fsspec.filesystem(protocol, **options)
            self.root = path.rstrip("/")
            if retry_open:
                self._io("reaching the store", self._check_reachable)
            else:
                self._check_reachable()

    def _check_reachable(self) -> None:
        bucket = self.root.split("/")[0]
        try:
            self.fs.ls(bucket)
        except FileNotFoundError:
            raise StoreError(
                f"the store {self.spec.url} does not exist: bucket {bucket!r} not found; create it first"
            ) from None
        except Exception as error:  # botocore raises many kinds; all mean "unreachable"
            if getattr(self, "_retrying", False) and _transient(error):
                raise
            endpoint = self.spec.endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or "AWS"
            raise StoreError(
                f"cannot reach the store {self.spec.url} at {endpoint}: {error}. Check AWS_ENDPOINT_URL and "
                "credentials."
            ) from None

    def _io(self, what: str, function, *args, **kwargs):
        """A store operation, retried on transient errors for spec.retry_s seconds."""
        self._retrying = True
        try:
            return retry_call(function, *args, budget_s=self.spec.retry_s, what=f"{what} ({self.spec.url})", **kwargs)
        except StoreError:
            raise
        except Exception as error:
            if _transient(error):
                raise StoreError(
                    f"cannot reach the store {self.spec.url} ({what}) after retrying for {self.spec.retry_s:.0f}s: "
                    f"{type(error).__name__}: {error}"
                ) from None
            raise
        finally:
            self._retrying = False

    # ------------------------------------------------------------------ paths

    def _path(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def artifact_dir(self, stage: str, key: str) -> str:
        return self._path(stage, key)

    def url_of(self, path: str) -> str:
        return path if self.spec.is_local else f"{self.spec.url.partition('://')[0]}://{path}"

    # ---------------------------------------------------------------- lookups

    def _manifest_paths(self, stage: str, key: str) -> list[str]:
        try:
            entries = self._io("listing", self.fs.ls, self.artifact_dir(stage, key), detail=False)
        except FileNotFoundError:
            return []
        return sorted((p for p in entries if generation_of(p) is not None), key=lambda p: generation_of(p) or 0)

    def load_manifest(self, path: str) -> Manifest | BadManifest | None:
        """The manifest at `path`; a BadManifest when the file exists but is not one; None when absent."""
        try:
            raw = self._io("reading a manifest", self.fs.cat_file, path)
        except FileNotFoundError:
            return None
        try:
            data = json.loads(raw)
        except ValueError as error:
            return BadManifest(path, f"unreadable ({len(raw)} bytes, not JSON: {error})" if raw else "empty (0 bytes)")
        problem = manifest_problem(data)
        if problem is not None:
            return BadManifest(path, f"not a manifest: {problem}")
        manifest = Manifest(raw=raw, path=path)
        manifest.__dict__["data"] = data  # the cached_property, already parsed
        return manifest

    def _read_manifest(self, path: str) -> Manifest | None:
        found = self.load_manifest(path)
        return found if isinstance(found, Manifest) else None

    def lookup(self, stage: str, key: str) -> Manifest | None:
        """The committed artifact of (stage, key): its newest valid generation, or None."""
        for path in reversed(self._manifest_paths(stage, key)):
            manifest = self._read_manifest(path)
            if manifest is not None:
                return manifest
        return None

    def manifests_of(self, stage: str, key: str) -> list[Manifest | BadManifest]:
        """Every manifest file of (stage, key), oldest generation first."""
        return [m for m in (self.load_manifest(p) for p in self._manifest_paths(stage, key)) if m is not None]

    def bad_manifests(self, stage: str, key: str) -> list[BadManifest]:
        return [m for m in self.manifests_of(stage, key) if isinstance(m, BadManifest)]

    def next_generation(self, stage: str, key: str) -> int:
        """The first generation no manifest file (valid or not) occupies."""
        paths = self._manifest_paths(stage, key)
        return 0 if not paths else max(generation_of(p) or 0 for p in paths) + 1

    def scan_manifests(self) -> Iterator[Manifest | BadManifest]:
        """Every manifest file in the store: valid ones as Manifest, the others as BadManifest."""
        pattern = self._path("*", "*", f"{MANIFEST_PREFIX}*.json")
        for path in sorted(self._io("listing manifests", self.fs.glob, pattern)):
            found = self.load_manifest(path)
            if found is not None:
                yield found

    def iter_manifests(self) -> Iterator[Manifest]:
        for found in self.scan_manifests():
            if isinstance(found, Manifest):
                yield found

    # ----------------------------------------------------------------- commit

    def commit(
        self, record: CommitRecord, local_dir: Path, generation: int, attempt: str | None = None
    ) -> tuple[Manifest, bool]:
        """Upload `local_dir` as an attempt and create the manifest of `generation`.

        Returns (manifest, won): won is False when another writer committed this
        generation first; the returned manifest is then theirs.
        """
        attempt = attempt or uuid.uuid4().hex
        files = {}
        for path in sorted(p for p in Path(local_dir).rglob("*") if p.is_file()):
            relative = path.relative_to(local_dir).as_posix()
            files[relative] = {"size": path.stat().st_size, "sha256": sha256_file(path)}
        attempt_dir = self._path(record.stage, record.key, "attempts", attempt)
        for relative in files:
            target = f"{attempt_dir}/{relative}"
            self._io("creating a folder", self.fs.makedirs, target.rsplit("/", 1)[0], exist_ok=True)
            self._io("uploading", self.fs.put_file, str(Path(local_dir) / relative), target)
        for relative, info in files.items():
            described = self._io("checking an upload", self.fs.info, f"{attempt_dir}/{relative}")
            uploaded = described.get("size")
            etag = described.get("ETag")
            if etag and not self.spec.is_local:
                info["etag"] = str(etag).strip('"')  # lets a listing reveal a later overwrite (see check)
            if uploaded != info["size"]:
                raise StoreError(f"upload of {relative} to {attempt_dir} is {uploaded} bytes, expected {info['size']}")
        body = {
            "schema": SCHEMA,
            "stage": record.stage,
            "key": record.key,
            "cell": record.cell,
            "generation": generation,
            "attempt": attempt,
            "files": files,
            "preimage": record.preimage,
            "parents": record.parents,
            "metrics": record.metrics,
            "timings": {
                "started": record.started,
                "finished": record.finished,
                "seconds": round(record.finished - record.started, 3),
            },
            "provenance": provenance(),
            "committed_at": time.time(),
        }
        raw = json.dumps(body, indent=2, sort_keys=True, default=str).encode("utf-8")
        path = self._path(record.stage, record.key, f"{MANIFEST_PREFIX}{generation:04d}.json")
        if self._io("creating the manifest", self.create_exclusive, path, raw):
            return Manifest(raw=raw, path=path), True
        winner = self.load_manifest(path)
        if isinstance(winner, Manifest) and winner.raw == raw:
            return winner, True  # our own write, whose reply a transient error lost
        if not isinstance(winner, Manifest):
            problem = winner.problem if winner is not None else "it vanished"
            raise StoreError(
                f"{path} exists but cannot be used ({problem}); run again: the next run builds generation "
                f"{self.next_generation(record.stage, record.key)}"
            )
        return winner, False

    def create_exclusive(self, path: str, data: bytes) -> bool:
        """Create `path` with `data` atomically, only if absent. False when it already exists."""
        if self.spec.is_local:
            directory = Path(path).parent
            directory.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=directory, prefix=".manifest-", delete=False) as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
                os.fchmod(handle.fileno(), _file_mode())  # readable like the data files, not mkstemp's 0600
            try:
                os.link(handle.name, path)
                return True
            except FileExistsError:
                return False
            finally:
                os.unlink(handle.name)
        try:
            with self.fs.open(path, "xb") as handle:
                handle.write(data)
            return True
        except FileExistsError:
            return False

    # ------------------------------------------------------------------ reads

    def attempt_url(self, manifest: Manifest) -> str:
        return self.url_of(self._path(manifest.stage, manifest.key, "attempts", manifest.attempt))

    def materialize(self, manifest: Manifest, cache_root: Path | None = None, verify: bool = False) -> Path:
        """A local folder with the artifact's files: the attempt itself for local stores, a cached copy otherwise."""
        attempt_dir = self._path(manifest.stage, manifest.key, "attempts", manifest.attempt)
        if self.spec.is_local:
            return Path(attempt_dir)
        cache_root = cache_root or local_cache_root()
        target = cache_root / manifest.digest
        done = target / ".complete"
        if done.exists():
            if not _cached_copy_damaged(target, manifest, rehash=verify):
                return target
            shutil.rmtree(target, ignore_errors=True)  # a damaged cached copy: fetch again
        cache_root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=cache_root, prefix=FETCH_PREFIX))
        try:
            self._download_into(staging, attempt_dir, manifest)
            (staging / ".complete").write_text(manifest.digest)
            try:
                os.rename(staging, target)
            except OSError:  # another process cached it first
                pass
        finally:
            shutil.rmtree(staging, ignore_errors=True)  # a failed or lost race leaves no partial copy behind
        return target

    def _download_into(self, folder: Path, attempt_dir: str, manifest: Manifest) -> None:
        for relative, info in manifest.files.items():
            local = folder / relative
            local.parent.mkdir(parents=True, exist_ok=True)
            try:
                self._io("downloading", self.fs.get_file, f"{attempt_dir}/{relative}", str(local))
            except FileNotFoundError:
                raise StoreError(
                    f"{relative} of {manifest.stage}/{manifest.key} is missing from the store, so the artifact does "
                    "not match its manifest; run `sparsepipe verify`"
                ) from None
            if sha256_file(local) != info["sha256"]:
                raise StoreError(
                    f"{relative} of {manifest.stage}/{manifest.key} does not match its manifest; run `sparsepipe "
                    "verify`"
                )

    def verify(self, manifest: Manifest) -> list[str]:
        """Problems found by re-hashing every file of the artifact (empty when intact)."""
        return self.check(manifest, full=True)

    def _hash(self, path: str) -> str:
        def read() -> str:
            with self.fs.open(path, "rb") as handle:
                return sha256_stream(handle)

        return self._io("hashing", read)

    def check(self, manifest: Manifest, full: bool = False) -> list[str]:
        """Problems of a committed artifact's files (empty when intact).

        Always: every file exists with its manifest size (one listing).  Re-hashed:
        files changed after the commit, or every file when `full` (see integrity.py).
        """
        attempt_dir = self._path(manifest.stage, manifest.key, "attempts", manifest.attempt)
        try:
            listing = self._io("listing an artifact", self.fs.find, attempt_dir, detail=True)
        except FileNotFoundError:
            listing = {}
        committed_at = float(manifest.data.get("committed_at") or 0.0)
        problems = []
        for relative, info in manifest.files.items():
            path = f"{attempt_dir}/{relative}"
            entry = listing.get(path)
            if entry is None:
                problems.append(f"{relative}: missing")
                continue
            if entry.get("size") != info["size"]:
                problems.append(f"{relative}: {entry.get('size')} bytes, the manifest says {info['size']}")
                continue
            if full or changed_after(entry, committed_at) or etag_changed(entry, info):
                try:
                    actual = self._hash(path)
                except FileNotFoundError:
                    problems.append(f"{relative}: missing")
                    continue
                if actual != info["sha256"]:
                    problems.append(
                        f"{relative}: sha256 {actual[:12]}… does not match the manifest's {info['sha256'][:12]}…"
                    )
        return problems

    # --------------------------------------------------------------- progress

    def progress_area(self, stage: str, key: str, generation: int) -> "StoreProgressArea":
        return StoreProgressArea(self, self._path(stage, key, "progress", f"{generation:04d}"))

    # --------------------------------------------------------------------- gc

    def garbage(self, older_than_s: float = 0.0) -> list[str]:
        """Attempt folders no manifest references, last touched more than `older_than_s` ago.

        A key with any manifest file that cannot be read keeps all its attempts: that
        manifest might reference any of them.
        """
        referenced: set[str] = set()
        protected_keys: set[str] = set()
        for found in self.scan_manifests():
            if isinstance(found, Manifest):
                referenced.add(self._path(found.stage, found.key, "attempts", found.attempt))
            else:
                protected_keys.add(self._path(found.stage, found.key))
        now = time.time()
        orphans = []
        for attempts_dir in self._io("listing attempts", self.fs.glob, self._path("*", "*", "attempts")):
            if attempts_dir.rsplit("/", 1)[0] in protected_keys:
                continue
            for attempt in self._io("listing attempts", self.fs.ls, attempts_dir, detail=False):
                if attempt in referenced:
                    continue
                if older_than_s > 0 and now - self._newest_mtime(attempt) < older_than_s:
                    continue
                orphans.append(attempt)
        return sorted(orphans)

    def finished_progress(self, older_than_s: float = 0.0) -> list[str]:
        """`progress/<gen>` folders whose generation (or a later one) is committed: resume state nobody needs."""
        committed: dict[str, int] = {}
        for manifest in self.iter_manifests():
            folder = self._path(manifest.stage, manifest.key)
            committed[folder] = max(committed.get(folder, -1), manifest.generation)
        now = time.time()
        done = []
        for progress_dir in self._io("listing progress", self.fs.glob, self._path("*", "*", "progress")):
            newest = committed.get(progress_dir.rsplit("/", 1)[0])
            if newest is None:
                continue
            for folder in self._io("listing progress", self.fs.ls, progress_dir, detail=False):
                name = folder.rstrip("/").rsplit("/", 1)[-1]
                if not name.isdigit() or int(name) > newest:
                    continue
                if older_than_s > 0 and now - self._newest_mtime(folder) < older_than_s:
                    continue
                done.append(folder)
        return sorted(done)

    def _newest_mtime(self, folder: str) -> float:
        newest = 0.0
        for path in self.fs.find(folder):
            info = self.fs.info(path)
            stamp = info.get("mtime") or info.get("LastModified") or info.get("created")
            if hasattr(stamp, "timestamp"):
                stamp = stamp.timestamp()
            newest = max(newest, float(stamp or 0.0))
        return newest

    def remove(self, path: str) -> None:
        self._io("removing", self.fs.rm, path, recursive=True)


class StoreProgressArea:
    """The ProgressArea of one cell, kept in the store so a run killed anywhere resumes."""

    def __init__(self, store: Store, root: str):
        self.store = store
        self.root = root

    def put(self, name: str, local_file: Path) -> None:
        target = f"{self.root}/{name}"
        self.store._io("saving progress", self.store.fs.makedirs, target.rsplit("/", 1)[0], exist_ok=True)
        if self.store.spec.is_local:
            staging = f"{target}.{uuid.uuid4().hex}.tmp"
            self.store.fs.put_file(str(local_file), staging)
            os.replace(staging, target)
        else:
            self.store._io(
                "saving progress", self.store.fs.put_file, str(local_file), target
            )  # a single PUT replaces atomically

    def get(self, name: str, local_file: Path) -> bool:
        try:
            self.store._io("reading progress", self.store.fs.get_file, f"{self.root}/{name}", str(local_file))
            return True
        except FileNotFoundError:
            return False

    def exists(self, name: str) -> bool:
        return self.store._io("reading progress", self.store.fs.exists, f"{self.root}/{name}")

    def list(self, prefix: str = "") -> list[str]:
        try:
            found = self.store._io("listing progress", self.store.fs.find, self.root)
        except FileNotFoundError:
            return []
        names = [p[len(self.root) + 1 :] for p in found]
        return sorted(n for n in names if n.startswith(prefix) and not n.endswith(".tmp"))

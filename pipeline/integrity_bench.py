"""What checking inputs costs: the quick check (sizes + timestamps) against a full re-hash, on one artifact.

    python -m sparsepipe.pipeline.integrity_bench --store ./artifacts [--stage STAGE] [--repeats 5] [--s3-copy]

The artifact is the newest of STAGE, by default the committed artifact with the most files.

With --s3-copy the artifact is also committed to a loopback S3 server (moto, started here) and
checked there: the quick check is one listing; a full check downloads and hashes every file.
Prints JSON.  BENCHMARKS.md, "Input checks", has the figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

from .store import CommitRecord, Manifest, Store, StoreSpec


def _time(function, repeats: int) -> dict[str, float]:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        problems = function()
        times.append(time.perf_counter() - started)
        assert problems == [], problems
    return {"median_s": round(statistics.median(times), 4), "min_s": round(min(times), 4)}


def measure(store: Store, manifest: Manifest, repeats: int) -> dict[str, Any]:
    return {
        "store": store.spec.url,
        "files": len(manifest.files),
        "bytes": manifest.size,
        "quick_check": _time(lambda: store.check(manifest), repeats),
        "full_rehash": _time(lambda: store.check(manifest, full=True), max(1, repeats // 2)),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default="./artifacts")
    parser.add_argument("--stage", default=None, help="default: the artifact with the most files")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--s3-copy", action="store_true")
    args = parser.parse_args(argv)
    store = StoreSpec(args.store).open(create=False)
    manifests = [m for m in store.iter_manifests() if args.stage is None or m.stage == args.stage]
    if not manifests:
        raise SystemExit(f"no {args.stage or 'committed'} artifact in {args.store}")
    if args.stage is None:
        manifest = max(manifests, key=lambda m: (len(m.files), m.data.get("committed_at", 0)))
    else:
        manifest = max(manifests, key=lambda m: m.data.get("committed_at", 0))
    results = [measure(store, manifest, args.repeats)]
    if args.s3_copy:
        import os
        import subprocess
        import sys

        server = subprocess.Popen(
            [sys.executable, "-m", "sparsepipe.infra.s3_server", "--port", "0", "--bucket", "bench"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            line = server.stdout.readline().strip()
            os.environ.update(dict(item.split("=", 1) for item in line.removeprefix("export ").split()))
            remote = StoreSpec("s3://bench/integrity").open()
            record = CommitRecord(stage=manifest.stage, key=manifest.key, cell=manifest.cell, preimage={}, parents={})
            copy, _ = remote.commit(record, store.materialize(manifest), 0)
            results.append(measure(remote, copy, args.repeats))
        finally:
            server.terminate()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

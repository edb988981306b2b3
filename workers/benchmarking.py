"""What `sparsepipe bench` and the benchmark functions share: option errors, this machine's CPUs, a private Ray.

Kept out of workers/stage.py, which every stage imports: a change here changes no stage's cache key.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator


class BenchmarkOptionError(ValueError):
    """A benchmark option this machine cannot measure (e.g. more workers than CPUs); a usage error."""


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity where the OS has one, else all of them)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@contextmanager
def private_local_ray(num_cpus: int | None = None) -> Iterator[None]:
    """A Ray instance of this process alone for the length of the block (no dashboard, no worker logs)."""
    import ray

    # Ray starts its workers at niceness 15; the pipeline's local Ray runs them at 0 (see runner.connect), and a
    # benchmark that compares Ray workers with this process must not handicap them on a loaded machine.
    os.environ.setdefault("RAY_worker_niceness", "0")
    ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        yield
    finally:
        ray.shutdown()

"""Data-parallel cells the cluster cannot hold fail before any work starts, naming the resources."""

from __future__ import annotations

import pytest

from sparsepipe.pipeline.cluster import ClusterError
from sparsepipe.pipeline.runner import check_placeable
from sparsepipe.workers.stage import Cell, Resources


def _cell(workers: int, cpus: float = 1.0, gpus: float = 0.0) -> Cell:
    return Cell("pretrain", "base", {}, {}, Resources(num_cpus=cpus, num_gpus=gpus, actor=True, workers=workers))


def test_too_many_workers_for_the_cpus_is_refused_naming_them():
    with pytest.raises(
        ClusterError, match=r"pretrain/base needs 3 training workers x 1 CPU = 3 CPU, but the cluster has 2 CPU"
    ):
        check_placeable([_cell(3)], {"CPU": 2.0})


def test_workers_that_fit_pass_and_gpus_count_only_where_there_are_gpus():
    check_placeable([_cell(2), _cell(1, cpus=8)], {"CPU": 2.0})
    check_placeable([_cell(2, gpus=1.0)], {"CPU": 4.0})  # no GPUs: the workers train on the CPU
    with pytest.raises(ClusterError, match="2 GPU, but the cluster has 1 GPU"):
        check_placeable([_cell(2, gpus=1.0)], {"CPU": 4.0, "GPU": 1.0})

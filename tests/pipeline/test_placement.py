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


def test_an_autoscaling_cluster_is_judged_by_what_its_groups_can_grow_to(local_ray):
    import ray._raylet
    from ray.core.generated import autoscaler_pb2
    from ray.experimental.internal_kv import _internal_kv_put

    from sparsepipe.pipeline.runner import placeable_resources

    assert placeable_resources()["CPU"] == 2.0 and "GPU" not in placeable_resources()  # no autoscaler: what is there
    # What KubeRay's autoscaler records for infra/kuberay.yaml's gpu-train group: 4 pods of 64 CPU + 4 GPU, from zero.
    config = autoscaler_pb2.ClusterConfig(
        node_group_configs=[
            autoscaler_pb2.NodeGroupConfig(name="gpu-train", resources={"CPU": 64, "GPU": 4}, min_count=0, max_count=4)
        ]
    )
    _internal_kv_put(
        ray._raylet.GCS_AUTOSCALER_CLUSTER_CONFIG_KEY,
        config.SerializeToString(),
        namespace=ray._raylet.GCS_AUTOSCALER_STATE_NAMESPACE,
    )
    resources = placeable_resources()
    assert resources["GPU"] == 16.0 and resources["CPU"] == 256.0
    check_placeable([_cell(8, cpus=16, gpus=1.0)], resources)  # waits for the autoscaler instead of failing
    with pytest.raises(ClusterError, match="needs 32 training workers x 1 GPU = 32 GPU, but the cluster has 16 GPU"):
        check_placeable([_cell(32, cpus=1, gpus=1.0)], resources)

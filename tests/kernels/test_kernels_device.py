"""Device choice and naming (kernels/device.py)."""

from __future__ import annotations

import torch

from sparsepipe.kernels.device import device_name, pick_device


def test_no_gpus_means_cpu():
    assert pick_device(0) == "cpu" and pick_device(0.0) == "cpu"


def test_gpus_mean_cuda_only_where_it_exists():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert pick_device(1) == expected and pick_device() == expected


def test_device_name_is_a_nonempty_string():
    assert isinstance(device_name("cpu"), str) and device_name("cpu")

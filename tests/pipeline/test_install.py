"""Install on an ordinary laptop (issue 13, item 14): triton only where it has wheels, kernels without it,
and `make setup`'s choice of torch build."""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[2]


def _triton_requirement() -> Requirement:
    dependencies = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    return next(Requirement(d) for d in dependencies if Requirement(d).name == "triton")


@pytest.mark.parametrize(
    "platform, machine, wanted",
    [
        ("linux", "x86_64", True),
        ("linux", "aarch64", True),
        ("darwin", "arm64", False),
        ("darwin", "x86_64", False),
        ("win32", "AMD64", False),
        ("linux", "ppc64le", False),
    ],
)
def test_triton_is_a_dependency_only_where_it_has_wheels(platform, machine, wanted):
    assert _triton_requirement().marker.evaluate({"sys_platform": platform, "platform_machine": machine}) is wanted


def test_kernels_run_their_references_when_triton_cannot_be_imported():
    code = (
        "import sys; sys.modules['triton'] = None\n"  # `import triton` raises ImportError, find_spec says absent
        "import torch\n"
        "from sparsepipe.kernels import abstopk, weight_topk_mask, dispatch\n"
        "assert not dispatch.triton_installed()\n"
        "x = torch.randn(4, 64)\n"
        "y = abstopk(x, 8)\n"
        "assert int((y != 0).sum(-1).max()) <= 8\n"
        "m = weight_topk_mask(torch.randn(32, 32), 64)\n"
        "assert int(m.sum()) == 64\n"
        "print('ok')\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("SPARSEPIPE_KERNELS", "TRITON_INTERPRET")}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]


@pytest.fixture
def cpu_index(tmp_path):
    """A loopback HTTP server standing in for the CPU wheel index."""
    (tmp_path / "index" / "torch").mkdir(parents=True)
    (tmp_path / "index" / "torch" / "index.html").write_text("<html></html>")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "index"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _torch_args(tmp_path: Path, index: str, gpu: bool, pip_torch_args: str = "") -> str:
    bin_dir = tmp_path / ("bin-gpu" if gpu else "bin-nogpu")
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "nvidia-smi"  # shadows any real one
    fake.write_text("#!/bin/sh\necho 'GPU 0: Fake (UUID: GPU-0)'\nexit 0\n" if gpu else "#!/bin/sh\nexit 9\n")
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    command = [
        "make",
        "-s",
        "--no-print-directory",
        "-C",
        str(REPO),
        "torch-args",
        f"TORCH_CPU_INDEX={index}",
        f"PYTHON={sys.executable}",
    ]
    if pip_torch_args:
        command.append(f"PIP_TORCH_ARGS={pip_torch_args}")
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.mark.skipif(shutil.which("make") is None or sys.platform != "linux", reason="needs make on Linux")
def test_make_setup_chooses_the_cpu_index_only_without_a_gpu_and_when_reachable(tmp_path, cpu_index):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    assert _torch_args(tmp_path, cpu_index, gpu=False) == f"--index-url {cpu_index}"
    assert _torch_args(tmp_path, cpu_index, gpu=True) == ""  # a GPU: the plain install
    assert _torch_args(tmp_path, closed, gpu=False) == ""  # index unreachable: the plain install
    assert _torch_args(tmp_path, cpu_index, gpu=False, pip_torch_args="--index-url X") == "--index-url X"

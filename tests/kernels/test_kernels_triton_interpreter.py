"""The Triton kernels equal the reference, run by Triton's CPU interpreter.

TRITON_INTERPRET must be set before triton is imported, and other tests in
this pytest process import it without; so the cases run in a child process
(triton_interpreter_cases.py), once per session, and each group is one test.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sparsepipe.kernels.dispatch import triton_installed

CASES_SCRIPT = Path(__file__).with_name("triton_interpreter_cases.py")

# The Triton interpreter emulates every program instance in Python: correct, and about half a minute.
pytestmark = [pytest.mark.skipif(not triton_installed(), reason="triton is not installed"), pytest.mark.slow]


@pytest.fixture(scope="module")
def interpreter_results() -> list[dict]:
    python_path = [str(CASES_SCRIPT.parent), os.environ.get("PYTHONPATH", "")]  # for kernel_oracles
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": os.pathsep.join(filter(None, python_path))}
    env.pop("SPARSEPIPE_KERNELS", None)
    run = subprocess.run([sys.executable, str(CASES_SCRIPT)], env=env, capture_output=True, text=True, timeout=300)
    results = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    if run.returncode != 0 or not results:
        pytest.fail(f"interpreter run failed (exit {run.returncode}):\n{run.stderr[-4000:]}")
    return results


@pytest.mark.parametrize("group", ["abstopk", "row_topk_mask", "weight_topk_mask"])
def test_triton_matches_reference_under_the_interpreter(interpreter_results, group):
    cases = [result for result in interpreter_results if result["group"] == group]
    assert cases, f"no {group} cases ran"
    failures = [f"{result['case']}:\n{result['error']}" for result in cases if result["error"]]
    assert not failures, f"{len(failures)}/{len(cases)} {group} cases differ:\n" + "\n".join(failures[:5])

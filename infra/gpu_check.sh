#!/usr/bin/env bash
# The device check for a machine with one NVIDIA GPU (issue 22), in under 10 minutes on one H100:
# the CUDA-only tests, the Triton kernels run for real against their references, `sparsepipe bench all`,
# the estimate of a short `small` run and that run itself, all into one JSON file.
#
#   infra/gpu_check.sh --dry-run          # list what it would run (any machine)
#   infra/gpu_check.sh [--out FILE]       # on the GPU machine, from the repository root
#
# It runs on a stock CUDA image with torch and Triton but without Ray, pydantic or s3fs: sparsepipe is
# installed there without dependencies, the wheels it lacks come from --wheels DIR (default .whl; fetch them
# beforehand on a machine with network: `infra/gpu_check.sh --fetch-wheels`), and `sparsepipe run` runs the
# cells in its own process where Ray is absent (pipeline/inprocess.py). With Ray installed it runs on a
# private local Ray instance as usual. Each step has its own time limit; a failed step is recorded and the
# next one runs. Exit status: 0 when every step passed, 1 otherwise.
set -uo pipefail

OUT_FILE="gpu-check.json"
WHEELS=".whl"
DRY_RUN=0
FETCH=0
PY="${PYTHON:-python3}"
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY_RUN=1 ;;
    --fetch-wheels) FETCH=1 ;;
    --out) OUT_FILE="$2"; shift ;;
    --wheels) WHEELS="$2"; shift ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "gpu_check.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

# What the image lacks that sparsepipe imports on this path (Ray and s3fs are not needed: in-process, local store).
# The versions the CPU venv of `make setup` resolved when this was written.
WHEEL_SPECS="pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5"
if [ "$FETCH" = 1 ]; then
  mkdir -p "$WHEELS"
  # The image's Python is 3.12 on x86_64 (.library/device/KINDS.md).
  exec "$PY" -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d "$WHEELS" $WHEEL_SPECS
fi

STORE="${GPU_CHECK_STORE:-/tmp/sparsepipe-gpu-check-store}"
LOGS="${GPU_CHECK_LOGS:-/tmp/sparsepipe-gpu-check-logs}"
# The small preset at its real shapes (4 layers, d_model 512, n_ctx 256, vocab 2048, batch 64) with only the
# step counts, pair counts and CARBS budget cut, plus an 8 MB corpus (the image's site-packages are GBs of
# Python; tokenizing them is CPU work this check does not need). Prune trials ask for the GPU.
SMALL=(--preset small --store "$STORE"
  --set tokenize.corpus.max_bytes=8000000
  --set pretrain.train.steps=100 --set pretrain.train.eval_every=100 --set pretrain.train.checkpoint_every=100
  --set dense.train.steps=100 --set dense.train.eval_every=100 --set dense.train.checkpoint_every=100
  --set bridges.train.steps=60 --set bridges.train.eval_every=30 --set bridges.train.checkpoint_every=30
  --set 'prune.tasks=["single_double_quote"]'
  --set prune.steps=50 --set prune.batch_pairs=16 --set prune.eval_pairs=64
  --set tune.iterations=1 --set tune.trials_per_iteration=2 --set tune.gpus_per_trial=1)

# name | seconds allowed | command
STEPS=(
  "environment|20|nvidia-smi -L; $PY -c 'import torch, triton; print(torch.__version__, torch.version.cuda, triton.__version__, torch.cuda.get_device_name(0))'"
  "install|40|if [ -d '$WHEELS' ]; then $PY -m pip install -q --no-index --no-deps --no-compile --target /tmp/gpu-check-site $WHEELS/*.whl; fi && $PY -m pip install -q --no-index --no-deps --no-build-isolation -e ."
  "cuda_tests|100|$PY -m pytest -q -p no:cacheprovider tests/kernels/test_kernels_gpu.py tests/kernels/test_kernels_device.py tests/kernels/test_kernels_triton_compile.py tests/nn/test_precision.py"
  "bench|120|$PY -m sparsepipe.pipeline bench all --json --out $LOGS/bench.json"
  "estimate|20|$PY -m sparsepipe.pipeline plan --estimate --device h100 --json ${SMALL[*]@Q} > $LOGS/estimate.json"
  "small_run|290|$PY -m sparsepipe.pipeline run full ${SMALL[*]@Q} --set execution.require_gpus=true --json > $LOGS/run.json"
)

if [ "$DRY_RUN" = 1 ]; then
  total=0
  echo "gpu_check.sh would run, in order (results into $OUT_FILE):"
  for step in "${STEPS[@]}"; do
    IFS='|' read -r name limit command <<<"$step"
    total=$((total + limit))
    printf '  %-11s at most %3d s: %s\n' "$name" "$limit" "$command"
  done
  echo "at most $total s in all (each step is cut at its limit); store $STORE, logs $LOGS"
  exit 0
fi

rm -rf "$STORE" "$LOGS"
mkdir -p "$LOGS"
export PYTHONPATH="/tmp/gpu-check-site${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
failed=0
for step in "${STEPS[@]}"; do
  IFS='|' read -r name limit command <<<"$step"
  echo "== $name (at most $limit s)"
  started=$(date +%s.%N)
  timeout "$limit" bash -c "$command" >"$LOGS/$name.log" 2>&1
  rc=$?
  ended=$(date +%s.%N)
  echo "$name $rc $started $ended" >>"$LOGS/steps.txt"
  tail -n 5 "$LOGS/$name.log"
  [ "$rc" = 0 ] || failed=1
done

"$PY" - "$LOGS" "$OUT_FILE" <<'EOF'
import json, sys
from pathlib import Path

logs, out = Path(sys.argv[1]), Path(sys.argv[2])
steps = []
for line in (logs / "steps.txt").read_text().splitlines():
    name, rc, started, ended = line.split()
    steps.append({"step": name, "rc": int(rc), "timed_out": rc == "124", "seconds": round(float(ended) - float(started), 1),
                  "log_tail": (logs / f"{name}.log").read_text(errors="replace")[-4000:]})
result = {"steps": steps, "ok": all(s["rc"] == 0 for s in steps)}
for name in ("bench", "estimate", "run"):
    path = logs / f"{name}.json"
    try:
        result[name] = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        result[name] = {"missing": str(error)}
out.write_text(json.dumps(result, indent=2))
print(f"wrote {out}: " + ", ".join(f"{s['step']} rc {s['rc']} ({s['seconds']} s)" for s in steps))
EOF
exit "$failed"

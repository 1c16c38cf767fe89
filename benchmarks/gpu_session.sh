#!/usr/bin/env bash
# The CUDA checks of issue 15 in one command, for a GPU machine with torch (a CUDA build), OpenCV, numpy and pytest
# but no ROS: the agreement and per-stage timing of benchmarks/gpu_check.py, then the cuda-marked tests (test_cuda.py,
# and the device cases of test_device_proposals.py).
#
#   bash benchmarks/gpu_session.sh                      # on the GPU machine, from anywhere
#   bash benchmarks/gpu_session.sh --device cpu --frames 3 --crops 4   # a dry run here (arguments go to gpu_check.py)
#
# Writes machine.txt, gpu_check.md and cuda_tests.log into $OUT (default: out/gpu); exits non-zero when either failed.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${OUT:-$root/out/gpu}"
python="${PYTHON:-python3}"
mkdir -p "$out"
cd "$root"
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
"$python" - <<'PY' | tee "$out/machine.txt"
import platform, torch
gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'
print(f'{platform.node()}: Python {platform.python_version()}, torch {torch.__version__} (CUDA {torch.version.cuda}), GPU {gpu}')
PY
"$python" benchmarks/gpu_check.py "$@" | tee "$out/gpu_check.md"
check=${PIPESTATUS[0]}
"$python" -m pytest -m cuda test/test_cuda.py test/test_device_proposals.py -q -p no:cacheprovider 2>&1 | tee "$out/cuda_tests.log"
tests=${PIPESTATUS[0]}
echo "gpu_check.py exit $check, cuda tests exit $tests; outputs in $out"
[ "$check" -eq 0 ] && [ "$tests" -eq 0 ]

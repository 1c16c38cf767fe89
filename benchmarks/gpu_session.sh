#!/usr/bin/env bash
# The CUDA checks in one command, for a GPU machine with python3, torch (a CUDA build), OpenCV, numpy, scipy, tqdm,
# pytest and onnxruntime but no ROS: first every import the run needs (one line naming what is missing, exit 2, before any long
# work); then the agreement and per-stage timing of benchmarks/gpu_check.py; then the device matrix (every cuda case
# in test/: pytest -m cuda test); then the rest of the suite that runs without ROS (pytest -m "not cuda" test; test
# modules that need ROS are skipped, saying so).
#
#   bash benchmarks/gpu_session.sh                      # on the GPU machine, from anywhere
#   bash benchmarks/gpu_session.sh --device cpu --frames 3 --crops 4   # a dry run here (arguments go to gpu_check.py)
#
# STN_GPU_SESSION_CPU_TESTS=0 leaves out the last step (the dry run's test does). Writes machine.txt, gpu_check.md,
# cuda_tests.log and cpu_tests.log into $OUT (default: out/gpu); exits non-zero when any step failed.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${OUT:-$root/out/gpu}"
python="${PYTHON:-python3}"
cuda=1
for arg in "$@"; do [ "$arg" = cpu ] && cuda=0; done  # --device cpu: the dry run needs no CUDA
mkdir -p "$out"
cd "$root"
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
NEED_CUDA=$cuda "$python" - <<'PY' || exit 2
import importlib, os, sys
# What gpu_check.py and the tests that run without ROS import (pip names in brackets where they differ).
modules = {'torch': 'torch', 'cv2': 'opencv-python-headless', 'numpy': 'numpy', 'scipy': 'scipy', 'tqdm': 'tqdm',
           'pytest': 'pytest', 'onnxruntime': 'onnxruntime', 'stn_ros': 'stn_ros (this checkout, on PYTHONPATH)'}
missing = []
for module, package in modules.items():
    try:
        importlib.import_module(module)
    except Exception as error:  # an ImportError, or a broken install that raises on import
        missing.append(f'{package} ({type(error).__name__}: {error})')
if os.environ['NEED_CUDA'] == '1' and 'torch' in sys.modules and not sys.modules['torch'].cuda.is_available():
    torch = sys.modules['torch']
    missing.append(f'a CUDA device for torch {torch.__version__} (CUDA build: {torch.version.cuda})')
if missing:
    print(f'gpu_session: cannot run, missing: {"; ".join(missing)}', file=sys.stderr)
    sys.exit(2)
PY
"$python" - <<'PY' | tee "$out/machine.txt"
import platform, torch
gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'
print(f'{platform.node()}: Python {platform.python_version()}, torch {torch.__version__} (CUDA {torch.version.cuda}), '
      f'GPU {gpu} (x{torch.cuda.device_count()})')
PY
# A hung test stops its run (SIGINT: pytest still prints what ran and where it hung), with or without pytest-timeout.
limit() { if command -v timeout >/dev/null; then timeout --signal=INT --kill-after=60 "$@"; else "${@:2}"; fi; }
pytest_run() { limit "$1" "$python" -m pytest -p no:cacheprovider -q "${@:2}"; }
"$python" benchmarks/gpu_check.py "$@" | tee "$out/gpu_check.md"
check=${PIPESTATUS[0]}
pytest_run 1800 -m cuda test 2>&1 | tee "$out/cuda_tests.log"
tests=${PIPESTATUS[0]}
cpu_tests=0
if [ "${STN_GPU_SESSION_CPU_TESTS:-1}" != 0 ]; then
  pytest_run 2400 -m 'not cuda' test 2>&1 | tee "$out/cpu_tests.log"
  cpu_tests=${PIPESTATUS[0]}
fi
echo "gpu_check.py exit $check, cuda tests exit $tests, cpu tests (no ROS) exit $cpu_tests; outputs in $out"
[ "$check" -eq 0 ] && [ "$tests" -eq 0 ] && [ "$cpu_tests" -eq 0 ]

#!/usr/bin/env bash
# The main job: set up .venv if needed, then run the grasp pipeline demo (synthetic_camera -> stn_node ->
# grasp_quality_node over real ROS 2 topics, loopback only) and write out/demo.png. Extra arguments go
# to stn_demo (see stn_demo --help).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup_venv.sh"
cd "$root"
exec "$root/.venv/bin/stn_demo" "$@"

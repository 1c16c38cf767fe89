#!/usr/bin/env bash
# The main job: set up .venv if needed, then run the self-check (rclpy on loopback + one STN pass).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup_venv.sh"
cd "$root"
exec "$root/.venv/bin/stn_selfcheck" "$@"

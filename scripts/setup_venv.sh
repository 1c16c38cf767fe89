#!/usr/bin/env bash
# Create (or bring up to date) .venv in the repo root with real ROS 2 wheels, torch, OpenCV and the
# package itself (editable). Quick when nothing changed: it reinstalls only when requirements.txt or
# the package metadata changed since the last successful run.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
python="${STN_ROS_PYTHON:-python3}"

version="$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
if [ "$version" != "3.11" ]; then
  echo "setup_venv: the ROS 2 (Kilted) PyPI wheels need CPython 3.11; $python is $version." >&2
  echo "            Set STN_ROS_PYTHON to a python3.11 executable." >&2
  exit 1
fi
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"

stamp="$venv/.stn_ros-setup"
wanted="$(cd "$root" && cat requirements.txt setup.py setup.cfg package.xml | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  echo "setup_venv: installing into $venv (about a minute the first time)"
  pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check)
  # This machine's pip config lists local wheel folders; drop pip's notes about the absent ones.
  quiet_notes() { grep -v "is ignored: it is neither a file nor a directory" >&2 || true; }
  "${pip[@]}" -r "$root/requirements.txt" 2> >(quiet_notes)
  "${pip[@]}" --no-deps -e "$root" 2> >(quiet_notes)
  echo "$wanted" > "$stamp"
fi

#!/usr/bin/env bash
# Create (or bring up to date) .venv in the repo root with real ROS 2 wheels, torch, OpenCV, the package itself
# (editable) and its interface package stn_ros_interfaces (built with cmake into .venv: scripts/build_interfaces.sh).
# Quick when nothing changed: it reinstalls only when requirements.txt or the package metadata changed since the
# last successful run, and rebuilds the interfaces only when their files changed.
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

# The interfaces (the GetGrasps service): without cmake and a C/C++ compiler the nodes still run, without the service
# (they say so at start), and its tests skip; the next run tries again.
interfaces="$(cd "$root" && cat scripts/build_interfaces.sh scripts/wheel_include_dirs.cmake \
  $(find stn_ros_interfaces -type f | LC_ALL=C sort) | sha256sum | cut -d' ' -f1)"
interfaces_stamp="$venv/.stn_ros_interfaces-setup"
if [ "$(cat "$interfaces_stamp" 2>/dev/null)" != "$interfaces" ]; then
  missing=""
  for tool in cmake cc c++; do command -v "$tool" > /dev/null || missing="$missing $tool"; done
  if [ -n "$missing" ]; then
    echo "setup_venv: not building stn_ros_interfaces (missing:$missing): grasp_quality_node runs without ~/get_grasps" >&2
  else
    echo "setup_venv: building stn_ros_interfaces into $venv (about 20 s)"
    bash "$root/scripts/build_interfaces.sh" "$venv"
    echo "$interfaces" > "$interfaces_stamp"
  fi
fi

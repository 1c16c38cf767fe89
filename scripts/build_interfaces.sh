#!/usr/bin/env bash
# Build stn_ros_interfaces (the GetGrasps service, an ament_cmake + rosidl package) and install it into the virtual
# environment's prefix, where the ROS wheels put their own message packages: its Python package lands in
# site-packages and its libraries in <venv>/lib, which ros-wheels-bootstrapper puts on the library path at
# interpreter start. So rclpy imports it with no setup script sourced. About 20 s (cmake and a C compiler needed).
# Usage: build_interfaces.sh <venv>. On a robot, colcon builds the same package instead (README, "On a robot").
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$1"
python="$venv/bin/python"
build="$venv/.build/stn_ros_interfaces"
mkdir -p "$venv/.build"
python_include="$("$python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
numpy_include="$("$python" -c 'import numpy; print(numpy.get_include())')"
generator=()
if command -v ninja > /dev/null; then generator=(-G Ninja); fi
if [ -f "$build/CMakeCache.txt" ] && ! grep -q "^CMAKE_GENERATOR:INTERNAL=${generator[1]:-Unix Makefiles}$" "$build/CMakeCache.txt"; then
  rm -rf "$build"  # made with another generator (ninja came or went): cmake refuses to switch in place
fi
# The generators find the wheels' typesupports through AMENT_PREFIX_PATH and run this interpreter's tools (PATH).
# wheel_include_dirs.cmake: the wheels' exported targets name their builder's Python and numpy include folders.
export AMENT_PREFIX_PATH="$venv" PATH="$venv/bin:$PATH"
cmake -S "$root/stn_ros_interfaces" -B "$build" "${generator[@]}" \
  -DCMAKE_PREFIX_PATH="$venv" -DCMAKE_INSTALL_PREFIX="$venv" -DBUILD_TESTING=OFF \
  -DPython3_EXECUTABLE="$python" -DCMAKE_PROJECT_INCLUDE="$root/scripts/wheel_include_dirs.cmake" \
  -DSTN_PYTHON_INCLUDE="$python_include" -DSTN_NUMPY_INCLUDE="$numpy_include" > "$build.log" 2>&1 \
  && cmake --build "$build" --target install --parallel 2 >> "$build.log" 2>&1 \
  || { tail -n 40 "$build.log" >&2; echo "build_interfaces: failed, the whole log: $build.log" >&2; exit 1; }
"$python" -c 'from stn_ros_interfaces.srv import GetGrasps' \
  || { echo "build_interfaces: built, but rclpy's interpreter cannot import stn_ros_interfaces" >&2; exit 1; }

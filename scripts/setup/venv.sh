#!/usr/bin/env bash
# Create or refresh the project virtual environment. Idempotent: when none of its inputs changed since
# the last successful run, it returns at once. Usage: scripts/setup/venv.sh [venv-dir]   (default .venv)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
venv=${1:-$root/.venv}
cd "$root"

inputs_hash() {
  { find scripts/setup ros2_ws/src/stare_interfaces -type f -print0 | sort -z | xargs -0 sha256sum
    sha256sum pyproject.toml; } | sha256sum | cut -d' ' -f1
}
stamp="$venv/.stare-setup-stamp"
want=$(inputs_hash)
if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  echo "[setup] $venv is up to date"
  exit 0
fi

start=$(date +%s)
python=${STARE_PYTHON:-$(command -v python3.11 || command -v python3 || true)}
if [[ -z "$python" ]] || ! "$python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
  echo "[setup] error: Python 3.11 is required (set STARE_PYTHON to its path)" >&2
  exit 1
fi
if [[ ! -x "$venv/bin/python" ]]; then
  echo "[setup] creating $venv with $python"
  "$python" -m venv "$venv"
fi
rm -f "$stamp"
pip=("$venv/bin/python" -m pip install --disable-pip-version-check -q)
constraints=(-c scripts/setup/constraints.txt)
# ros.sh installs with plain pip: the same pins reach it through the environment.
export PIP_CONSTRAINT="$root/scripts/setup/constraints.txt"

echo "[setup] 1/6 torch 2.13.0 (CPU build; an unpinned torch would pull a multi-GB CUDA build)"
"${pip[@]}" --upgrade pip
"${pip[@]}" torch==2.13.0
echo "[setup] 2/6 ManiSkill3 3.0.1, then numpy<2 and opencv<4.12 (the motion planner needs numpy 1.x)"
"${pip[@]}" "${constraints[@]}" mani_skill==3.0.1
"${pip[@]}" "${constraints[@]}" "numpy<2" "opencv-python<4.12"
echo "[setup] 3/6 ROS 2 Jazzy wheels, rosbags and the stare_interfaces package"
bash scripts/setup/ros.sh "$venv"
echo "[setup] 4/6 learning and test libraries"
"${pip[@]}" "${constraints[@]}" transformers peft safetensors tokenizers tensorboard tqdm pyyaml pyarrow \
  pytest pytest-timeout hypothesis
echo "[setup] 5/6 the stare package (editable: stare_policy, sim_training and console scripts)"
# setuptools' editable build is chatty about deprecations: keep its output for failures only.
build_log=$(mktemp)
if ! "${pip[@]}" "${constraints[@]}" --no-deps --no-build-isolation -e . >"$build_log" 2>&1; then
  cat "$build_log" >&2; rm -f "$build_log"; exit 1
fi
rm -f "$build_log"
echo "[setup] 6/6 Mesa lavapipe Vulkan driver for the simulator's renderer"
bash scripts/setup/lavapipe.sh "$venv/vulkan"

"$venv/bin/python" - <<'PY'
import numpy, torch
assert numpy.__version__.startswith("1."), f"numpy {numpy.__version__} is 2.x: the motion planner would crash"
assert torch.__version__.startswith("2.13.0"), torch.__version__
PY
echo "$want" > "$stamp"
echo "[setup] done in $(( $(date +%s) - start )) s"

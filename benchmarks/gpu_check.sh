#!/usr/bin/env bash
# The GPU figures of docs/benchmarks.md ("Scale-out / GPU"), in one short run on a CUDA machine after
# `make setup` (the project's own machines have no GPU). Every part runs even when an earlier one fails:
#   1. the GPU, whether the simulator renders on it, and the policy on CUDA against the CPU
#      (tests/stare_policy/test_policy_cuda.py: greedy actions, sampling around them, log pi);
#   2. policy inference (batch 1 and 8, eager and compiled) and SFT training throughput on the GPU;
#   3. evaluation overhead: closed-loop episodes with the policy on the GPU against the raw rendered step
#      rate of the same CPU-simulator workers (benchmarks/policy_inference.py's eval part);
#   4. stare-eval of the shipped checkpoint (CPU simulator workers, policy on the GPU);
#   5. a few StA-PPO iterations with the policy on the GPU (CPU simulator workers): env steps/s vs raw;
#   6. the same with ManiSkill3's GPU simulation (needs SAPIEN's PhysX GPU library, fetched on first use).
# Usage: DATA=data/demos/PickCube-v1 bash benchmarks/gpu_check.sh      (any dataset of the task, for frames)
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
RUN=${RUN:-runs/gpu-check}
CKPT=${CKPT:-checkpoints/pick-cube-ipi}
DATA=${DATA:?set DATA to a dataset of PickCube-v1 (stare-demos --task PickCube-v1 --episodes 8 --out DIR)}
WORKERS=${WORKERS:-16}        # CPU simulator processes for parts 3-5
GPU_ENVS=${GPU_ENVS:-64}      # envs of the one GPU simulation in part 6
EPISODES=${EPISODES:-64}      # stare-eval episodes in part 4
DEVICE=${DEVICE:-cuda}        # the policy's device (cpu: a dry run of this script on a CPU machine)
POLICY_PARTS=${POLICY_PARTS:-infer train eval}  # benchmarks/policy_inference.py's parts in part 2-3
SKIP=${SKIP:-}                # names of parts to leave out, e.g. SKIP="gpu sta-ppo-gpu-sim"
mkdir -p "$RUN"
failed=()
part() {  # part NAME SECONDS COMMAND...: run a bounded part, keep going when it fails
  local name=$1 limit=$2; shift 2
  if [[ " $SKIP " == *" $name "* ]]; then echo; echo "== $name: skipped"; return; fi
  echo; echo "== $name ($(date -u +%H:%M:%S))"
  local t0=$SECONDS
  timeout --kill-after=10 "$limit" "$@"; local rc=$?
  echo "== $name: exit $rc after $((SECONDS - t0)) s"
  [[ $rc == 0 ]] || failed+=("$name")
}

part gpu 30 nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
part policy-cuda 120 "$PY" -m pytest -q -p no:cacheprovider tests/stare_policy/test_policy_cuda.py
part render 90 "$PY" - "$CKPT" <<'PY'
import sys, time
import torch
from sim_training.envs import make_env
from sim_training.envs.observation import policy_inputs
from sim_training.tasks import get_task
spec = get_task("PickCube-v1")
print("torch", torch.__version__, "cuda", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
t0 = time.perf_counter()
env = make_env(spec)
obs, _ = env.reset(seed=0)
print("render device:", getattr(getattr(env.unwrapped, "backend", None), "render_device", "?"), f"({time.perf_counter() - t0:.1f} s to build)")
image = policy_inputs(obs, spec)["image"]
print("policy image", image.shape, image.dtype, "std", float(image.std()))
env.close()
PY
part policy 200 "$PY" benchmarks/policy_inference.py --checkpoint "$CKPT" --data "$DATA" --device "$DEVICE" \
    --parts $POLICY_PARTS --threads 4 --repeats 200 --workers "$WORKERS" --episodes "$((2 * WORKERS))"
part stare-eval 150 "$PY" -m sim_training.evaluation.cli --checkpoint "$CKPT" --task PickCube-v1 --episodes "$EPISODES" \
    --workers "$WORKERS" --sim-backend cpu --device "$DEVICE" --quiet --out "$RUN/eval" --json "$RUN/eval.json"
ppo_rate() {
  "$PY" - "$1" <<'PY'
import json, sys
rows = [json.loads(x) for x in open(f"{sys.argv[1]}/progress.jsonl")]
train = [r["env_steps_per_s"] for r in rows[1:]] or [rows[-1]["env_steps_per_s"]]
print(f"{sys.argv[1]}: {rows[-1]['env_steps']} env steps; training {sum(train) / len(train):.0f} env steps/s "
      f"(after the first iteration) vs raw simulator {rows[-1]['sim_steps_per_s']:.0f} with the same envs")
PY
}
part sta-ppo-cpu-sim 150 "$PY" -m sim_training.train.cli sta-ppo --checkpoint "$CKPT" --task PickCube-v1 \
    --out "$RUN/sta-ppo-cpu-sim" --overwrite --quiet sim_backend=cpu device="$DEVICE" num_envs="$WORKERS" \
    rollout_steps=20 iterations=3 minibatch_size=80 epochs=1 sim_rate_steps=20
[[ -f "$RUN/sta-ppo-cpu-sim/progress.jsonl" ]] && ppo_rate "$RUN/sta-ppo-cpu-sim"
part sta-ppo-gpu-sim 120 "$PY" -m sim_training.train.cli sta-ppo --checkpoint "$CKPT" --task PickCube-v1 \
    --out "$RUN/sta-ppo-gpu-sim" --overwrite --quiet sim_backend=gpu device=cuda num_envs="$GPU_ENVS" \
    rollout_steps=20 iterations=3 minibatch_size=320 epochs=1 sim_rate_steps=20
[[ -f "$RUN/sta-ppo-gpu-sim/progress.jsonl" ]] && ppo_rate "$RUN/sta-ppo-gpu-sim"

echo; echo "parts that failed: ${failed[*]:-none}"
[[ ${#failed[@]} == 0 ]]

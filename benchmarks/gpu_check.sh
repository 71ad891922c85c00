#!/usr/bin/env bash
# The GPU figures of docs/benchmarks.md ("Scale-out"), in one short run on a CUDA machine (the project's
# machines have none; run it where one is lent, e.g. through the device tool, after `make setup`):
#   1. a few hundred steps of StA-PPO with 64 envs in one ManiSkill3 GPU simulation, from the shipped
#      checkpoint (the policy on the same GPU);
#   2. stare-eval of the shipped checkpoint with 128 envs of the GPU simulation, 256 episodes.
# Prints the GPU, PPO's env steps/s against the raw simulator rate, and the evaluation's success rate.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-runs/gpu-check}
ENVS=${ENVS:-64}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
"$PY" -m sim_training.train.cli sta-ppo --checkpoint checkpoints/pick-cube-sft --task PickCube-v1 \
    --out "$OUT/sta-ppo" --overwrite --quiet sim_backend=gpu device=cuda num_envs="$ENVS" rollout_steps=8 \
    iterations="${ITERATIONS:-4}" minibatch_size=128 epochs=1 sim_rate_steps=20
"$PY" - "$OUT/sta-ppo" <<'PY'
import json, sys
rows = [json.loads(x) for x in open(f"{sys.argv[1]}/progress.jsonl")]
print(f"sta-ppo: {rows[-1]['env_steps']} env steps, {sum(r['env_steps_per_s'] for r in rows[1:]) / max(len(rows) - 1, 1):.0f}"
      f" env steps/s training vs raw simulator {rows[-1]['sim_steps_per_s']:.0f}")
PY
"$PY" -m sim_training.evaluation.cli --checkpoint checkpoints/pick-cube-sft --task PickCube-v1 --episodes 256 \
    --workers "${EVAL_ENVS:-128}" --sim-backend gpu --device cuda --quiet --out "$OUT/eval" --json "$OUT/eval.json"

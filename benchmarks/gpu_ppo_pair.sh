#!/usr/bin/env bash
# PPO and StA-PPO side by side on one CUDA machine, from the same checkpoint with the same config and seeds.
# The two runs share the machine (each has its own CPU simulator workers; both policies are on the one GPU), so
# they see the same load, and a time limit cuts both at about the same budget. Each run's checkpoint is kept at
# every budget in BUDGETS (iterations; the run is resumed from one budget to the next), ready for stare-eval.
# Prints each run's training env steps/s against the raw simulator rate with the same workers.
# Usage (after `make setup` on a CUDA machine):
#   bash benchmarks/gpu_ppo_pair.sh                                    # StackCube-v1 from checkpoints/stack-cube-sft-long
#   CKPT=... TASK=PickCube-v1 CONFIG=... BUDGETS="10 20" bash benchmarks/gpu_ppo_pair.sh
# Then, on any machine: stare-eval --checkpoint $RUN/sta-ppo-it48 --task StackCube-v1 --episodes 100 ...
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
CKPT=${CKPT:-checkpoints/stack-cube-sft-long}
TASK=${TASK:-StackCube-v1}
CONFIG=${CONFIG:-sim_training/train/configs/ppo_stack_cube_gpu.yaml}
RUN=${RUN:-runs/gpu-ppo-pair}
BUDGETS=${BUDGETS:-24 48}     # iterations at which a copy of each run is kept
LIMIT=${LIMIT:-1800}          # seconds for everything; a stage that runs past it is stopped (its last save stays)
OVERRIDES=${OVERRIDES:-}      # extra key=value overrides for both runs, e.g. "device=cpu num_envs=1"
METHODS=(ppo sta-ppo)
mkdir -p "$RUN"
deadline=$((SECONDS + LIMIT))

for budget in $BUDGETS; do
  left=$((deadline - SECONDS))
  if ((left < 30)); then echo "== no time left for $budget iterations"; break; fi
  echo "== up to $budget iterations ($(date -u +%H:%M:%S), ${left} s left)"
  for m in "${METHODS[@]}"; do
    timeout --kill-after=15 "$left" "$PY" -m sim_training.train.cli "$m" --checkpoint "$CKPT" --task "$TASK" \
      --out "$RUN/$m" --config "$CONFIG" --quiet iterations="$budget" $OVERRIDES > "$RUN/$m.log" 2>&1 &
  done
  wait
  for m in "${METHODS[@]}"; do
    tail -n 3 "$RUN/$m.log"
    rm -rf "$RUN/$m-it$budget" && cp -r "$RUN/$m" "$RUN/$m-it$budget"
  done
done

"$PY" - "$RUN" "${METHODS[@]}" <<'PY'
import json, sys
from pathlib import Path
run = Path(sys.argv[1])
for m in sys.argv[2:]:
    path = run / m / "progress.jsonl"
    if not path.exists():
        print(f"{m}: no progress.jsonl"); continue
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    train = [r["env_steps_per_s"] for r in rows[1:]] or [rows[-1]["env_steps_per_s"]]
    rate, raw = sum(train) / len(train), rows[-1]["sim_steps_per_s"]
    print(f"{m}: {rows[-1]['iteration']} iterations, {rows[-1]['env_steps']} env steps; training {rate:.1f} env steps/s "
          f"(after the first iteration) vs raw simulator {raw:.1f} with the same workers ({rate / raw:.0%})")
    print("  training success by iteration:", " ".join(
        f"{r['iteration']}:{r['success_rate']:.2f}" for r in rows if r.get("success_rate") is not None))
PY

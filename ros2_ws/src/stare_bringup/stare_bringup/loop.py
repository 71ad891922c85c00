"""`stare-loop`: the closed loop in simulation, in one command, on one running node graph.

    stare-loop --task PickCube-v1 --checkpoint checkpoints/pick-cube-sft --out runs/loop \\
        --record-episodes 50 --eval-episodes 100 [--method sta-tpo] [k=v retrain overrides ...]

1. record: M episodes through ROS with the current checkpoint (seeds from --record-seed-start), bags in
   <out>/bags; 2. before: N episodes on held-out seeds (--eval-seed-start); 3. retrain: `stare-retrain` on
   the recorded bags (a separate process; the graph keeps running) into <out>/retrain; 4. swap: the new
   checkpoint into the running policy_server through its LoadCheckpoint service; 5. after: the same N
   held-out seeds again. <out>/loop.json holds both success rates with 95 % Wilson intervals, the
   retraining summary and the swap time.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from stare_bringup.cli import DEFAULT_CHECKPOINT, RunningGraph, call_service, graph_params, run_episodes


def parse_args(argv):
    p = argparse.ArgumentParser(prog="stare-loop", description=__doc__.split("\n\n")[0])
    p.add_argument("--task", default="PickCube-v1")
    p.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT, help="the deployed policy: recorder, start, reference")
    p.add_argument("--out", required=True, type=Path, help="bags, the new checkpoint and loop.json go here")
    p.add_argument("--record-episodes", type=int, default=50)
    p.add_argument("--eval-episodes", type=int, default=100)
    p.add_argument("--record-seed-start", type=int, default=1_000_000)
    p.add_argument("--eval-seed-start", type=int, default=3_000_000,
                   help="held-out seeds: never recorded, never demonstrated")
    p.add_argument("--skip-before", action="store_true", help="do not evaluate the old checkpoint first")
    p.add_argument("--max-steps", type=int, default=None, help="episode length (default: the task's)")
    p.add_argument("--method", choices=("sta-tpo", "tpo"), default="sta-tpo")
    p.add_argument("overrides", nargs="*", help="key=value overrides for stare-retrain (TPOConfig)")
    args = p.parse_args(argv)
    if args.record_episodes <= 0 or args.eval_episodes < 0:
        p.error("--record-episodes must be positive and --eval-episodes >= 0")
    if args.eval_seed_start < args.record_seed_start + args.record_episodes and \
            args.eval_seed_start + args.eval_episodes > args.record_seed_start:
        p.error("the evaluation seeds overlap the recorded ones")
    return args


def rate(results: list[dict]) -> dict:
    from sim_training.evaluation.report import wilson_interval

    wins = sum(r["outcome"] == "success" for r in results)
    lo, hi = wilson_interval(wins, len(results))
    return {"episodes": len(results), "successes": wins, "success_rate": wins / len(results) if results else None,
            "ci95": [lo, hi], "seeds": [results[0]["seed"], results[-1]["seed"]] if results else []}


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    graph_args = argparse.Namespace(sim=True, task=args.task, checkpoint=args.checkpoint, record=str(args.out / "bags"),
                                    params=[], seed_start=None, max_steps=args.max_steps, realtime=False)
    try:
        nodes, params, _ = graph_params(graph_args)
    except ValueError as err:
        print(f"stare-loop: error: {err}", file=sys.stderr)
        return 1
    from stare_bringup.graph import keep_discovery_local
    from stare_interfaces.srv import LoadCheckpoint

    keep_discovery_local()  # the simulated robot is this machine (before rclpy.init, where rmw reads it)
    output_dir = Path(params["episode_logger"]["output_dir"])
    new = (args.out / "retrain").resolve()
    summary: dict = {"task": args.task, "checkpoint": params["policy_server"]["checkpoint"], "new_checkpoint": str(new)}
    t0 = time.perf_counter()
    try:
        with RunningGraph(nodes, params) as graph:
            def episodes(n: int, seed: int, phase: str) -> list[dict]:
                print(f"stare-loop: {phase}: {n} episodes from seed {seed}", flush=True)
                results = run_episodes(graph.context, graph.runner, output_dir, n, seed, graph.stop)
                if len(results) < n:
                    raise RuntimeError(f"{phase}: interrupted after {len(results)} of {n} episodes")
                return results

            recorded = episodes(args.record_episodes, args.record_seed_start, "record")
            summary["recorded"] = rate(recorded)
            if args.eval_episodes and not args.skip_before:
                summary["before"] = rate(episodes(args.eval_episodes, args.eval_seed_start, "before"))
            print(f"stare-loop: retrain from {len(recorded)} bags into {new}", flush=True)
            retrain_json = args.out / "retrain.json"
            run = subprocess.run([sys.executable, "-m", "sim_training.retrain.cli", "--bags", *[r["bag"] for r in recorded],
                                  "--checkpoint", params["policy_server"]["checkpoint"], "--out", str(new),
                                  "--method", args.method, "--json", str(retrain_json), "--quiet", *args.overrides])
            if run.returncode != 0:
                raise RuntimeError(f"stare-retrain exited with {run.returncode}")
            summary["retrain"] = json.loads(retrain_json.read_text())
            t_swap = time.perf_counter()
            response = call_service(graph.runner.create_client(LoadCheckpoint, "/policy_server/load_checkpoint"),
                                    LoadCheckpoint.Request(path=str(new)), 300.0, graph.stop)
            if response is None:
                raise RuntimeError("interrupted while the new checkpoint loaded")
            if not response.success:
                raise RuntimeError(f"LoadCheckpoint {new}: {response.message}")
            summary["swap_seconds"] = round(time.perf_counter() - t_swap, 2)
            print(f"stare-loop: policy_server now runs {new} ({response.message})", flush=True)
            if args.eval_episodes:
                summary["after"] = rate(episodes(args.eval_episodes, args.eval_seed_start, "after"))
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"stare-loop: error: {err}", file=sys.stderr)
        return 1
    summary["seconds"] = round(time.perf_counter() - t0, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "loop.json").write_text(json.dumps(summary, indent=1) + "\n")
    line = ", ".join(f"{k} {summary[k]['successes']}/{summary[k]['episodes']}" for k in ("before", "after") if k in summary)
    print(f"stare-loop: {args.task}: {line or 'no evaluation'}; {args.out / 'loop.json'}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

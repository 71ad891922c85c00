"""`stare-bringup`: the STARE node graph in one process (what `ros2 launch stare_bringup
policy.launch.py` starts on a ROS install), and with --sim a closed-loop run of N episodes through ROS.

    stare-bringup --sim --task PickCube-v1 --episodes 5 --checkpoint checkpoints/pick-cube-sft \\
        --record runs/bringup/bags --json runs/bringup/summary.json

Each episode is started by the /episode/start service (seeds from --seed-start, stare-eval's default),
ends at success or the time limit (the sim_bridge), and is saved as one bag by the episode_logger; the
per-episode line shows the outcome, the stage timeline of the online (proprioceptive) segmenter and the
bag. Without --episodes it runs until interrupted (SIGINT/SIGTERM). Without --sim it starts the robot
graph (dry_run by default) and waits.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from pathlib import Path

DEFAULT_CHECKPOINT = "checkpoints/pick-cube-sft"
TRAIN_HINT = ("train one first, e.g.\n"
              "  .venv/bin/stare-demos --task PickCube-v1 --episodes 100 --out data/demos/PickCube-v1 --workers 2\n"
              f"  .venv/bin/stare-train sft --data data/demos/PickCube-v1 --out {DEFAULT_CHECKPOINT}\n"
              "or pass --checkpoint DIR")
SEED_START = 1_000_000
"""stare-eval's first evaluation seed: the same seeds give comparable success rates."""
EPISODE_TIMEOUT_S = 900.0
"""Longest wait for one episode's bag (a 100-step episode takes ~10 s; a loaded machine is slower)."""


def parse_args(argv):
    p = argparse.ArgumentParser(prog="stare-bringup", description=__doc__.split("\n\n")[0])
    p.add_argument("--sim", action="store_true", help="add sim_bridge: ManiSkill3 as the robot")
    p.add_argument("--task", default=None, help="task (env id), default PickCube-v1")
    p.add_argument("--episodes", type=int, default=None, help="with --sim: exit after N episodes")
    p.add_argument("--checkpoint", default=None, help=f"policy checkpoint (with --sim default {DEFAULT_CHECKPOINT})")
    p.add_argument("--record", default=None, help="directory for the episode bags (default: runs/bringup/bags)")
    p.add_argument("--json", default=None, help="write the run's summary here")
    p.add_argument("--params", action="append", default=[], help="extra parameter file(s), layered last")
    p.add_argument("--seed-start", type=int, default=None, help="seed of the first episode (default 1000000)")
    p.add_argument("--realtime", action="store_true", help="with --sim: real-time simulation at the control rate "
                   "(default lock-step)")
    p.add_argument("--max-steps", type=int, default=None, help="with --sim: episode length (default: the task's)")
    args = p.parse_args(argv)
    if args.episodes is not None and args.episodes <= 0:
        p.error("--episodes must be positive")
    if args.episodes is not None and not args.sim:
        p.error("--episodes needs --sim (on a robot, episodes are started by the /episode/start service)")
    return args


def graph_params(args) -> tuple[tuple[str, ...], dict[str, dict], float]:
    """Nodes, their parameters (files + command line) and the control rate."""
    from stare_bringup.graph import ROBOT_NODES, SIM_NODES, load_params, param_files

    params = load_params(param_files(args.sim, args.params))
    nodes = SIM_NODES if args.sim else ROBOT_NODES
    task = args.task or params.get("policy_server", {}).get("task", "PickCube-v1")
    checkpoint = args.checkpoint or params.get("policy_server", {}).get("checkpoint") or (
        DEFAULT_CHECKPOINT if args.sim else "")
    if checkpoint and not Path(checkpoint).is_dir():
        raise ValueError(f"checkpoint {checkpoint} not found; {TRAIN_HINT}")
    checkpoint = str(Path(checkpoint).resolve()) if checkpoint else ""
    rate = float(params.get("policy_server", {}).get("control_rate_hz", 20.0))
    if args.sim:
        from sim_training.tasks import get_task

        rate = float(get_task(task).control_freq)  # the task's spec is the one source of the control rate
    for node in nodes:
        params.setdefault(node, {})["task"] = task
    params["policy_server"].update(checkpoint=checkpoint, control_rate_hz=rate)
    params["episode_logger"].update(checkpoint=checkpoint, output_dir=str(Path(args.record or "runs/bringup/bags")))
    if args.sim:
        bridge = params["sim_bridge"]
        if args.seed_start is not None:
            bridge["seed_start"] = args.seed_start
        if args.max_steps is not None:
            bridge["max_episode_steps"] = args.max_steps
        if args.realtime:
            bridge.update(mode="realtime", control_rate_hz=rate)
            params["policy_server"]["act_on"] = "timer"
    return nodes, params, rate


def _episode_record(output_dir: Path, episode_id: str) -> dict:
    for line in reversed((output_dir / "episodes.jsonl").read_text().splitlines()):
        record = json.loads(line)
        if record["episode_id"] == episode_id:
            return record
    raise RuntimeError(f"episode {episode_id} missing from {output_dir / 'episodes.jsonl'}")


def _timeline(stages: list[dict]) -> str:
    return " -> ".join(f"{s['name']} {s['t']:.1f}s" for s in stages) or "(no stage states)"


def call_service(client, request, timeout_s: float, stop: threading.Event):
    """The response of one call from a node spun elsewhere (None if `stop` was set while waiting);
    RuntimeError when the service is not up within 30 s or does not answer within `timeout_s`."""
    if not client.wait_for_service(timeout_sec=30.0):
        raise RuntimeError(f"{client.srv_name} did not come up within 30 s")
    future = client.call_async(request)
    deadline = time.monotonic() + timeout_s
    while not future.done() and time.monotonic() < deadline and not stop.is_set():
        time.sleep(0.01)
    if future.done():
        return future.result()
    if stop.is_set():
        return None
    raise RuntimeError(f"{client.srv_name}: no response in {timeout_s:.0f} s")


def run_episodes(context, runner, output_dir: Path, episodes: int | None, seed_start: int,
                 stop: threading.Event) -> list[dict]:
    """Start episodes one after another through /episode/start and wait for each one's SAVED event."""
    from stare_interfaces.msg import EpisodeEvent
    from stare_interfaces.srv import StartEpisode
    from stare_ros.ros_common import EVENTS

    saved: dict[str, EpisodeEvent] = {}
    runner.create_subscription(EpisodeEvent, "/episode/events",
                               lambda e: saved.__setitem__(e.episode_id, e) if e.event == EpisodeEvent.SAVED else None,
                               EVENTS)
    client = runner.create_client(StartEpisode, "/episode/start")
    results, n = [], 0
    while not stop.is_set() and context.ok() and (episodes is None or n < episodes):
        response = call_service(client, StartEpisode.Request(seed=seed_start + n), 30.0, stop)
        if response is None:
            break  # stopped while waiting
        if not response.success:
            raise RuntimeError(f"/episode/start failed: {response.message}")
        deadline = time.monotonic() + EPISODE_TIMEOUT_S
        while response.episode_id not in saved and time.monotonic() < deadline and not stop.is_set():
            time.sleep(0.02)
        if response.episode_id not in saved:
            if stop.is_set():
                break
            raise RuntimeError(f"episode {response.episode_id} did not end within {EPISODE_TIMEOUT_S:.0f} s")
        record = _episode_record(output_dir, response.episode_id)
        n += 1
        results.append(record)
        print(f"episode {n}{'/' + str(episodes) if episodes else ''} seed {record['seed']}: "
              f"{'success' if record['outcome'] == 'success' else 'failure (' + record['outcome'] + ')'} "
              f"in {record['steps']} steps | {_timeline(record['stages'])} | bag {record['bag']}", flush=True)
    return results


class RunningGraph:
    """The node graph spinning in this process (a context manager): `runner` is a helper node for
    service calls and subscriptions, `stop` is set by SIGINT/SIGTERM."""

    def __init__(self, nodes, params):
        self.nodes, self.params = nodes, params
        self.stop = threading.Event()
        self.built, self.spinner = [], None

    def __enter__(self) -> "RunningGraph":
        import rclpy
        from rclpy.executors import MultiThreadedExecutor

        from stare_bringup.graph import build

        self.context = rclpy.context.Context()
        rclpy.init(context=self.context, signal_handler_options=rclpy.signals.SignalHandlerOptions.NO)
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: self.stop.set())
        self.executor = MultiThreadedExecutor(num_threads=6, context=self.context)
        try:
            self.built = build(self.context, self.nodes, self.params)
            self.runner = rclpy.create_node("stare_bringup", context=self.context)
            self.built.append(self.runner)
            for node in self.built:
                self.executor.add_node(node)
            self.spinner = threading.Thread(target=self.executor.spin, daemon=True)
            self.spinner.start()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        import rclpy

        from stare_ros.ros_common import stop_executor

        # Stop spinning before anything is destroyed: callbacks in flight would find their nodes gone.
        stop_executor(self.executor)
        if self.spinner is not None:
            self.spinner.join(timeout=5.0)
        for node in reversed(self.built):
            close = getattr(node, "close", None)
            if close is not None:
                close()
            node.destroy_node()
        rclpy.try_shutdown(context=self.context)


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        nodes, params, rate = graph_params(args)
    except ValueError as err:
        print(f"stare-bringup: error: {err}", file=sys.stderr)
        return 1

    if args.sim:
        from stare_bringup.graph import keep_discovery_local

        keep_discovery_local()  # before rclpy.init, where rmw reads it
    code, results = 0, []
    output_dir = Path(params["episode_logger"]["output_dir"])
    try:
        with RunningGraph(nodes, params) as graph:
            print(f"stare-bringup: {', '.join(nodes)} running ({'lock-step' if args.sim and not args.realtime else 'real-time'}"
                  f" {rate:g} Hz, checkpoint {params['policy_server']['checkpoint'] or 'none'}, bags in {output_dir})",
                  flush=True)
            if args.sim:
                seed_start = params["sim_bridge"].get("seed_start", SEED_START)
                results = run_episodes(graph.context, graph.runner, output_dir, args.episodes, seed_start, graph.stop)
            else:
                while not graph.stop.is_set() and graph.context.ok():
                    time.sleep(0.1)
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"stare-bringup: error: {err}", file=sys.stderr)
        code = 1

    if args.sim and results:
        successes = sum(r["outcome"] == "success" for r in results)
        print(f"{args.task or params['policy_server']['task']}: {successes}/{len(results)} successes", flush=True)
    if args.json and args.sim:
        summary = {"task": params["policy_server"]["task"], "episodes": len(results),
                   "successes": sum(r["outcome"] == "success" for r in results),
                   "bags": [r["bag"] for r in results], "stages": [[s["name"] for s in r["stages"]] for r in results],
                   "control_rate_hz": rate, "mode": "realtime" if args.realtime else "lockstep",
                   "checkpoint": params["policy_server"]["checkpoint"], "seeds": [r["seed"] for r in results],
                   "outcomes": [r["outcome"] for r in results], "steps": [r["steps"] for r in results]}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(summary, indent=1) + "\n")
    return code


if __name__ == "__main__":
    raise SystemExit(main())

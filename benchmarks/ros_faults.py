"""Faults and load on the running policy_server and stage_segmenter (issue 8, items 2 and 3): the long run
of `tests/ros/stare_ros/test_policy_server_faults.py`, printing the rows of the tables in
docs/reliability.md.

    .venv/bin/python benchmarks/ros_faults.py --compile --swap-to OTHER_CHECKPOINT --trials 20 --swaps 2
    .venv/bin/python benchmarks/ros_faults.py --server bringup ...   # nodes in this process, as stare-bringup

The policy_server runs as on a robot: act_on timer at --rate, stale_after_s --stale, fed the real
observation of a PickCube reset. `--server process` (default) starts each node as its own process
(`python -m stare_ros.nodes.<node>`, single-threaded executor, as under `ros2 launch`); `--server bringup`
builds them in this process on a multi-threaded executor, as `stare-bringup` does (the probe and its 1 kHz
publisher then share the interpreter with the nodes: a pessimistic load figure). Faults, each injected
at a random moment while the arm moves (`tests/ros/fault_probe.py`):

- stale image / stale joint state: the stream stops; reaction = first zero-motion command minus the moment
  the last message became older than stale_after_s (must be within one control period + slack);
- e-stop: /policy_server/estop engaged; reaction = service call -> first e-stop hold, then 10 ticks must
  hold (latched), then release -> motion;
- checkpoint swap: LoadCheckpoint alternately with --swap-to and --checkpoint; "reaction" = the longest
  interval between consecutive PolicyActions over the swap; survived = no control period without a
  command (`SwapTrial.missed_ticks`); the ticks during the load are holds;
- load: images at 5x the control rate and joint states at 1 kHz, against a quiet stretch (both at the
  control rate) in the same run.

"Commands out of limits" counts motion commands that left with a stale input, under e-stop, from the old
policy after the swap's tick in flight, and any command outside the safety layer's limits.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "ros"))  # the probe and harness the tests use

SLACK_S = 0.25
"""Scheduling slack on top of one control period for the staleness reaction (the tests' bound)."""


def _pct(values, q) -> str:
    return f"{np.percentile(values, q) * 1e3:.0f}" if len(values) else "-"


def _row(name, injections, survived, bad, reactions, note="") -> str:
    r = np.asarray(reactions, float)
    timing = f"{_pct(r, 50)} / {_pct(r, 99)} / {r.max() * 1e3:.0f} ms" if len(r) else "-"
    return f"| {name} | {injections} | {survived} | {bad} | {timing} | {note} |"


def _mark(segmenter, robot):
    try:
        return segmenter.mark(robot)
    except AssertionError:  # a segmenter that drops every marker: reported as such
        return None


def _observation(task: str):
    from stare_ros.sim_robot import SimRobot

    robot = SimRobot(task)
    try:
        return robot.reset(1_000_000)
    finally:
        robot.close()


def _expected_raw(checkpoint: str, obs, base_pose) -> np.ndarray:
    from fault_probe import INSTRUCTION

    from stare_policy.policy import VLAPolicy
    from stare_ros.conversions import TcpPose

    q = np.asarray(obs.qpos, np.float64)
    proprio = {"qpos": q, "tcp_pose": TcpPose(base_pose).world(q[:7]), "goal_pos": np.asarray(obs.goal)}
    return np.asarray(VLAPolicy.load(checkpoint).act(obs.image, INSTRUCTION, proprio))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", default=str(REPO / "checkpoints" / "pick-cube-sft"))
    p.add_argument("--swap-to", default=None, help="the other checkpoint for the swaps (default: --checkpoint "
                   "itself, which measures the gaps but cannot tell the policies apart)")
    p.add_argument("--task", default="PickCube-v1")
    p.add_argument("--rate", type=float, default=20.0, help="control rate (Hz)")
    p.add_argument("--stale", type=float, default=0.5, help="stale_after_s (policy.yaml's 0.5)")
    p.add_argument("--trials", type=int, default=20, help="injections per staleness kind and of the e-stop")
    p.add_argument("--swaps", type=int, default=4)
    p.add_argument("--load-seconds", type=float, default=10.0, help="each of the quiet and loaded stretches")
    p.add_argument("--server", choices=("process", "bringup"), default="process")
    p.add_argument("--compile", action="store_true", help="compile_policy (policy.yaml's), else eager")
    p.add_argument("--torch-threads", type=int, default=1, help="policy_server torch_threads (0: torch's default, "
                   "one per core: 6x slower inference here when other jobs share the 2 cores)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    os.environ.update(ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", ROS_DOMAIN_ID=os.environ.get("ROS_DOMAIN_ID", "78"),
                      ROS_LOG_DIR=tempfile.mkdtemp(prefix="stare-faults-log-"))
    swap_to = args.swap_to or args.checkpoint
    period = 1.0 / args.rate
    params = {"checkpoint": str(args.checkpoint), "control_rate_hz": args.rate, "stale_after_s": args.stale,
              "act_on": "timer", "dry_run": False, "compile_policy": args.compile,
              "torch_threads": args.torch_threads}
    obs = _observation(args.task)

    from fault_probe import (Actions, Robot, SegmenterProbe, estop_trial, load_window, stale_trial, start_node,
                             stop_nodes, swap_trial, wait_until)
    from ros_harness import Graph

    from stare_ros.config import PolicyServerConfig

    config = PolicyServerConfig(**params)
    # what each checkpoint answers to the streamed observation, computed before any node starts
    raws = {c: _expected_raw(c, obs, config.base_pose) for c in {str(args.checkpoint), str(swap_to)}}
    procs = []
    graph = Graph()
    if args.server == "process":
        procs = [start_node("policy_server", params), start_node("stage_segmenter", {"task": args.task})]
    else:
        from stare_ros.nodes.policy_server import PolicyServer
        from stare_ros.nodes.stage_segmenter import StageSegmenter

        graph.start(PolicyServer, **params)
        graph.start(StageSegmenter, task=args.task)
    probe = graph.node("fault_probe")
    actions, segmenter = Actions(probe), SegmenterProbe(probe)
    robot = Robot(probe, obs.image, obs.qpos, obs.goal, {"image": args.rate, "joints": args.rate})
    rng = np.random.default_rng(args.seed)
    rows, load_rows = [], []
    try:
        wait_until(lambda: robot.pubs["joints"].get_subscription_count() >= 2, 600.0, "the nodes' subscriptions")
        actions.wait_moving(time.time(), 600.0, n=5)  # the first ticks are slower (allocations)

        for kind, name in (("image", "stale image (stream stopped)"), ("joints", "stale joint state (stream stopped)")):
            trials = [stale_trial(robot, actions, kind, args.stale, period, rng) for _ in range(args.trials)]
            ok = [t for t in trials if t.moving_after_threshold == 0 and t.reaction_s <= period + SLACK_S]
            rows.append(_row(name, len(trials), len(ok), sum(t.moving_after_threshold for t in trials),
                             [t.reaction_s for t in trials],
                             f"within {period * 1e3:.0f} ms + {SLACK_S * 1e3:.0f} ms slack: {len(ok)}/{len(trials)}; "
                             f"recovery median {np.median([t.recovered_s for t in trials]) * 1e3:.0f} ms"))
        trials = [estop_trial(probe, actions, period, rng) for _ in range(args.trials)]
        ok = [t for t in trials if t.moving_after_response == 0 and t.latched_ticks >= 10]
        rows.append(_row("e-stop during motion", len(trials), len(ok), sum(t.moving_after_response for t in trials),
                         [t.reaction_s for t in trials],
                         f"motion commands between call and hold: max {max(t.moving_after_call for t in trials)}; "
                         f"latched >= 10 ticks: {sum(t.latched_ticks >= 10 for t in trials)}/{len(trials)}; "
                         f"release -> motion median {np.median([t.resumed_s for t in trials]) * 1e3:.0f} ms"))

        swaps, old_after, wrong = [], 0, 0
        for i in range(args.swaps):
            old, new = (str(args.checkpoint), str(swap_to)) if i % 2 == 0 else (str(swap_to), str(args.checkpoint))
            time.sleep(3.0)  # a stretch of normal ticks before each swap, to compare with
            t = swap_trial(probe, actions, new, period)
            assert t.ok, t.message
            after = np.asarray(t.raw_after)
            is_old = np.all(np.abs(after - raws[old]) <= 1e-4, axis=1)
            is_new = np.all(np.abs(after - raws[new]) <= 1e-4, axis=1)
            if old != new:
                first = int(is_old[0] and not is_new[0])
                old_after += first
                wrong += int((~is_new[first:]).sum())
            swaps.append(t)
            print(f"swap {i + 1} to {Path(new).name}: answered after {t.load_s:.2f} s, longest interval over it "
                  f"{t.max_gap_swap_s * 1e3:.0f} ms, before it {t.max_gap_before_s * 1e3:.0f} ms", file=sys.stderr)
        missed = [t for t in swaps if t.missed_ticks]
        rows.append(_row("checkpoint swap (LoadCheckpoint) in motion", len(swaps), len(swaps) - len(missed), wrong,
                         [t.max_gap_swap_s for t in swaps],
                         f"missed ticks {sum(t.missed_ticks for t in swaps)}; "
                         f"reaction = longest tick interval over the swap; outside swaps max "
                         f"{max(t.max_gap_before_s for t in swaps) * 1e3:.0f} ms; load median "
                         f"{np.median([t.load_s for t in swaps]) * 1e3:.0f} ms; old-policy action in flight at the "
                         f"answer: {old_after}/{len(swaps)}" + ("" if args.swap_to else "; same checkpoint")))

        for name, rates in (("quiet: images and joints at the control rate", {"image": args.rate, "joints": args.rate}),
                            ("loaded: images 5x, joints 1 kHz", {"image": 5 * args.rate, "joints": 1000.0})):
            robot.rates.update(rates)
            time.sleep(1.0)
            marks = [_mark(segmenter, robot)]
            actions.wait_moving(time.time(), 10.0, n=2)  # past the marker's hold
            w = load_window(robot, actions, args.load_seconds, args.stale)
            marks.append(_mark(segmenter, robot))
            segmented = "no answer to a marker in 10 s"
            if None not in marks:
                (lag0, count0, sent0), (lag1, count1, sent1) = marks
                segmented = f"{count1 - count0}/{sent1 - sent0} | {max(lag0, lag1) * 1e3:.1f} ms"
            load_rows.append(
                f"| {name} | {w.sent['image'] / w.seconds:.0f} Hz / {w.sent['joints'] / w.seconds:.0f} Hz "
                f"| {w.tick_hz:.1f} Hz | {w.gap_p99_ms:.0f} / {w.gap_max_ms:.0f} ms "
                f"| {w.age_p50_ms:.1f} / {w.age_p99_ms:.1f} ms | {w.image_age_violations} | {segmented} |")
        bad_limits = actions.out_of_limits(config)
        alive = all(proc.poll() is None for proc in procs)
    finally:
        robot.close()
        stop_nodes(procs)
        graph.close()

    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} cores, load average {load[0]:.1f} (1 min); server: {args.server}; "
          f"{args.rate:g} Hz timer, stale_after_s {args.stale:g}, {'compiled' if args.compile else 'eager'} "
          f"{args.torch_threads or 'default'} torch thread(s) "
          f"{Path(args.checkpoint).name}; nodes alive at the end: {alive}; commands outside the safety limits "
          f"(all {len(actions.got)} published): {bad_limits}\n")
    print("| fault class | injections | survived | commands out of limits | reaction median / p99 / max | notes |")
    print("| --- | --- | --- | --- | --- | --- |")
    print("\n".join(rows))
    print("\n| stream | sent image / joints | policy ticks | tick interval p99 / max "
          "| image stamp -> command p50 / p99 | stale commands | segmenter processed/sent | segmenter lag (marker) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    print("\n".join(load_rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

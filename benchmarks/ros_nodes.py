"""ROS 2 figures of issue 6: policy_server latency (image stamp -> command publish) and the highest
rate it keeps up with, and the resident memory of each node. Every node runs as its own process
(`python -m stare_ros.nodes.<node> --ros-args -p ...`), as under `ros2 launch`, so its RSS is its own;
the camera + joint stream and the latency probe run in this process, over loopback DDS.

    .venv/bin/python benchmarks/ros_nodes.py --checkpoint checkpoints/pick-cube-sft --rates 10,20,30 --seconds 20

Inputs are the real observation of a PickCube reset (policy camera image, joints, goal). The
policy_server acts on each new image (act_on=observation), so the latency is transport + inference +
safety + publish, without waiting for a timer tick. A rate is "kept up with" when at least 99 % of the
images get a command. Prints a Markdown table and, with --json, writes the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

NODE_ARGS = {
    "policy_server": lambda a: ["-p", f"checkpoint:={a.checkpoint}", "-p", "act_on:=observation",
                                "-p", "stale_after_s:=5.0", "-p", "dry_run:=true",
                                "-p", f"compile_policy:={'false' if a.eager else 'true'}",
                                "-p", f"torch_threads:={a.torch_threads}"],
    "stage_segmenter": lambda a: [],
    "episode_logger": lambda a: ["-p", f"output_dir:={a.bags}"],
    "sim_bridge": lambda a: [],
}


def _rss_mb(pid: int) -> tuple[float, float]:
    """Current and peak resident set size (MB) of a process, from /proc."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


def _observation(task: str):
    from stare_ros.sim_robot import SimRobot

    robot = SimRobot(task)
    try:
        return robot.reset(1_000_000), robot.joint_names
    finally:
        robot.close()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--task", default="PickCube-v1")
    p.add_argument("--rates", default="10,20,30", help="image rates (Hz) to try, comma-separated")
    p.add_argument("--seconds", type=float, default=20.0, help="measured seconds per rate")
    p.add_argument("--nodes", default=",".join(NODE_ARGS), help="nodes to start, comma-separated (policy_server "
                   "is needed for the latency)")
    p.add_argument("--torch-threads", type=int, default=0, help="policy_server torch_threads (0: torch's default)")
    p.add_argument("--eager", action="store_true", help="policy_server without compile_policy")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    args.bags = tempfile.mkdtemp(prefix="stare-bench-bags-")
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", ROS_DOMAIN_ID=os.environ.get("ROS_DOMAIN_ID", "77"),
               ROS_LOG_DIR=tempfile.mkdtemp(prefix="stare-bench-log-"))
    os.environ.update(env)

    # sim_bridge is measured for its memory only: on a domain of its own, so that its simulated robot does not
    # feed the policy_server observations (and render) while the latency is measured
    alone = dict(env, ROS_DOMAIN_ID=str(int(env["ROS_DOMAIN_ID"]) + 1))
    procs = {name: subprocess.Popen([sys.executable, "-m", f"stare_ros.nodes.{name}", "--ros-args", *make(args)],
                                    env=alone if name == "sim_bridge" else env, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
             for name, make in NODE_ARGS.items() if name in args.nodes.split(",")}
    obs, names = _observation(args.task)

    import rclpy
    from geometry_msgs.msg import PointStamped
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import Image, JointState
    from std_msgs.msg import String

    from stare_interfaces.msg import PolicyAction
    from stare_ros.ros_common import LATCHED, RELIABLE, to_seconds

    rclpy.init()
    node = rclpy.create_node("bench")
    image_pub = node.create_publisher(Image, "/camera/image_raw", RELIABLE)
    joint_pub = node.create_publisher(JointState, "/joint_states", RELIABLE)
    node.create_publisher(String, "/instruction", LATCHED).publish(String(data="pick up the red cube and move it to the green goal"))
    goal = PointStamped()
    goal.point.x, goal.point.y, goal.point.z = map(float, obs.goal)
    node.create_publisher(PointStamped, "/goal_point", LATCHED).publish(goal)
    latencies: list[float] = []
    answered: set[int] = set()
    """10-microsecond buckets of the observation stamps the server answered: the server carries stamps as
    float seconds (about 0.2 us resolution today), so a stamp may come back a few hundred ns off."""

    def on_action(msg: PolicyAction) -> None:
        if len(msg.raw) == 7:
            stamp = to_seconds(msg.observation_stamp)
            answered.add(round(stamp * 1e5))
            latencies.append(to_seconds(msg.header.stamp) - stamp)

    node.create_subscription(PolicyAction, "/policy_server/action", on_action, RELIABLE)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    h, w = obs.image.shape[:2]

    def publish() -> int:
        now = node.get_clock().now()
        image = Image(height=h, width=w, encoding="rgb8", step=w * 3, data=obs.image.tobytes())
        joints = JointState(name=names, position=obs.qpos.tolist())
        image.header.stamp = joints.header.stamp = now.to_msg()
        joint_pub.publish(joints)
        image_pub.publish(image)
        return now.nanoseconds // 10_000

    deadline = time.monotonic() + 600  # a compiled policy compiles before the server subscribes
    subscribers = len({"policy_server", "episode_logger"} & set(procs))
    while image_pub.get_subscription_count() < subscribers and time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.1)
    # warm-up: the first inferences are slower (allocations)
    for _ in range(20):
        publish()
        end = time.monotonic() + 0.2
        while time.monotonic() < end:
            executor.spin_once(timeout_sec=0.01)
    results = []
    for rate in [float(r) for r in args.rates.split(",")]:
        latencies.clear()
        answered.clear()
        sent = []
        start = time.monotonic()
        n = int(args.seconds * rate)
        for i in range(n):
            sent.append(publish())
            while time.monotonic() < start + (i + 1) / rate:
                executor.spin_once(timeout_sec=max(0.0, min(0.005, start + (i + 1) / rate - time.monotonic())))
        end = time.monotonic() + 2.0
        while time.monotonic() < end:
            executor.spin_once(timeout_sec=0.01)
        got = sum(bool({s - 1, s, s + 1} & answered) for s in sent)
        lat = np.array(latencies) * 1000
        results.append({"rate_hz": rate, "images": n, "answered": got,
                        "p50_ms": float(np.percentile(lat, 50)) if len(lat) else None,
                        "p99_ms": float(np.percentile(lat, 99)) if len(lat) else None})
    rss = {name: _rss_mb(proc.pid) for name, proc in procs.items() if proc.poll() is None}
    for proc in procs.values():
        proc.terminate()
    for proc in procs.values():
        proc.wait(timeout=30)
    executor.shutdown()
    node.destroy_node()
    rclpy.try_shutdown()

    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} cores, load average {load[0]:.1f} (1 min) during the run\n")
    print("| image rate | images | answered | latency p50 | latency p99 |")
    print("| --- | --- | --- | --- | --- |")
    for r in results:
        print(f"| {r['rate_hz']:g} Hz | {r['images']} | {r['answered']} ({r['answered'] / r['images']:.1%}) | "
              f"{r['p50_ms']:.1f} ms | {r['p99_ms']:.1f} ms |")
    kept = [r["rate_hz"] for r in results if r["answered"] >= 0.99 * r["images"]]
    print(f"\nhighest rate kept up with: {max(kept):g} Hz" if kept else "\nno rate kept up with")
    print("\n| node | RSS | peak RSS |\n| --- | --- | --- |")
    for name, (now_mb, peak_mb) in rss.items():
        print(f"| {name} | {now_mb:.0f} MB | {peak_mb:.0f} MB |")
    if args.json:
        Path(args.json).write_text(json.dumps({"latency": results, "rss_mb": rss, "load_avg": load,
                                               "checkpoint": args.checkpoint}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

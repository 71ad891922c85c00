"""Bag -> episode conversion rate: writes N episode bags with the episode_logger's recorder
(`stare_ros.recorder.EpisodeRecorder`, every topic it records in lock-step simulation, messages serialized
as CDR by `rosbags` with the same type hashes as rosidl), then reads them back with
`sim_training.bags.read_bags` and prints episodes per second.

    .venv/bin/python benchmarks/bag_conversion.py --episodes 40 --steps 100 --size 128

With --dataset it also times writing the episodes as a STARE dataset (compressed .npz) and exporting
them to LeRobot v3 (parquet + mp4), which are dominated by compression and video encoding.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from sim_training.bags import read_bags
from stare_ros.config import DEFAULT_RECORDED, PANDA_ARM_JOINTS, PANDA_FINGER_JOINTS
from stare_ros.recorder import EpisodeInfo, EpisodeRecorder, typestore

TASK = "PickCube-v1"
STAGES = ("Reach", "Grasp", "Transport", "Settle")
PERIOD_NS = 50_000_000  # 20 Hz


def write_bag(recorder: EpisodeRecorder, index: int, steps: int, size: int, rng: np.random.Generator) -> Path:
    store = typestore()
    types, ser = store.types, store.serialize_cdr

    def stamp(ns):
        return types["builtin_interfaces/msg/Time"](sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)

    def header(ns, frame=""):
        return types["std_msgs/msg/Header"](stamp=stamp(ns), frame_id=frame)

    def write(topic, ns, msg):
        recorder.write(topic, ns, ser(msg, msg.__msgtype__))

    t0 = 1_800_000_000 * 1_000_000_000 + index * 100 * 1_000_000_000
    episode_id = f"bench-{index:04d}"
    instruction = "pick up the red cube and move it to the green goal"
    recorder.start(EpisodeInfo(episode_id, TASK, instruction, "bench", index, t0))
    event = types["stare_interfaces/msg/EpisodeEvent"]
    write("/episode/events", t0, event(header=header(t0), event=0, episode_id=episode_id, task=TASK,
                                       instruction=instruction, seed=index, outcome="", steps=0, bag_path=""))
    write("/instruction", t0, types["std_msgs/msg/String"](data=instruction))
    goal = types["geometry_msgs/msg/Point"](x=0.05, y=-0.02, z=0.2)
    write("/goal_point", t0, types["geometry_msgs/msg/PointStamped"](header=header(t0, "world"), point=goal))
    names = [*PANDA_ARM_JOINTS, *PANDA_FINGER_JOINTS]
    q = np.array([0.0, np.pi / 8, 0.0, -5 * np.pi / 8, 0.0, 3 * np.pi / 4, np.pi / 4, 0.04, 0.04])
    base = rng.integers(0, 256, (size // 8, size // 8, 3), np.uint8).repeat(8, 0).repeat(8, 1)
    stage = -1
    for k in range(steps + 1):
        ns = t0 + (k + 1) * PERIOD_NS
        q = q + rng.normal(0.0, 0.005, 9)
        write("/joint_states", ns, types["sensor_msgs/msg/JointState"](
            header=header(ns, "panda_link0"), name=names, position=q, velocity=np.zeros(9), effort=np.zeros(0)))
        image = np.roll(base, k, axis=1)
        write("/camera/image_raw", ns, types["sensor_msgs/msg/Image"](
            header=header(ns, "camera"), height=size, width=size, encoding="rgb8", is_bigendian=0, step=size * 3,
            data=image.reshape(-1)))
        write("/camera/camera_info", ns, types["sensor_msgs/msg/CameraInfo"](
            header=header(ns, "camera"), height=size, width=size, distortion_model="plumb_bob", d=np.zeros(5),
            k=np.eye(3).ravel(), r=np.eye(3).ravel(), p=np.zeros(12),
            binning_x=0, binning_y=0, roi=types["sensor_msgs/msg/RegionOfInterest"](
                x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)))
        if k * len(STAGES) // (steps + 1) != stage or k % 10 == 0:  # on change, and at 2 Hz
            stage = k * len(STAGES) // (steps + 1)
            write("/stage_state", ns + 1_000_000, types["stare_interfaces/msg/StageState"](
                header=header(ns), task=TASK, stage_index=stage, stage_name=STAGES[stage], num_stages=len(STAGES),
                stage_start=stamp(ns), confidence=1.0, regressed=False, event=""))
            recorder.note_stage(stage, STAGES[stage], ns)
        action = rng.uniform(-1.0, 1.0, 7).astype(np.float32)
        sent = ns + 5_000_000
        vector3 = types["geometry_msgs/msg/Vector3"]
        twist = types["geometry_msgs/msg/Twist"](linear=vector3(*(action[:3] * 2.0)),
                                                 angular=vector3(*(action[3:6] * 2.0)))
        write("/gripper_command", sent, types["std_msgs/msg/Float64"](data=float(action[6])))
        write("/servo_node/delta_twist_cmds", sent, types["geometry_msgs/msg/TwistStamped"](
            header=header(sent, "panda_link0"), twist=twist))
        write("/policy_server/action", sent, types["stare_interfaces/msg/PolicyAction"](
            header=header(sent), observation_stamp=stamp(ns), raw=action, command=action, held=False, reason=""))
    end = t0 + (steps + 2) * PERIOD_NS
    write("/episode/events", end, event(header=header(end), event=1, episode_id=episode_id, task=TASK,
                                        instruction=instruction, seed=index, outcome="success", steps=steps,
                                        bag_path=""))
    return recorder.stop("success", steps)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=40)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--size", type=int, default=128, help="image height and width")
    parser.add_argument("--repeats", type=int, default=3, help="reads of the whole set; the best is reported")
    parser.add_argument("--dataset", action="store_true", help="also time the STARE dataset and LeRobot export")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="bench-bags-"))
    try:
        recorder = EpisodeRecorder(root / "bags", dict(entry.split(":", 1) for entry in DEFAULT_RECORDED))
        rng = np.random.default_rng(0)
        start = time.perf_counter()
        for i in range(args.episodes):
            write_bag(recorder, i, args.steps, args.size, rng)
        written = time.perf_counter() - start
        size_mb = sum(f.stat().st_size for f in (root / "bags").rglob("*.mcap")) / 2**20
        print(f"wrote {args.episodes} bags of {args.steps} steps ({args.size}x{args.size} images): "
              f"{size_mb:.0f} MiB in {written:.1f} s")
        timings, cpu = [], []
        for _ in range(args.repeats):
            result = None  # the previous set's memory goes back first
            start, start_cpu = time.perf_counter(), time.process_time()
            result = read_bags([root / "bags"])
            timings.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
            assert len(result.episodes) == args.episodes and not result.skipped, result.summary()
            assert all(len(e) == args.steps for e in result.episodes)
        rate, cpu_rate = args.episodes / min(timings), args.episodes / min(cpu)
        load = os.getloadavg()[0]
        report = {"episodes": args.episodes, "steps": args.steps, "image_size": args.size,
                  "bag_mib": round(size_mb, 1), "read_seconds": [round(t, 3) for t in timings],
                  "episodes_per_second": round(rate, 1), "episodes_per_cpu_second": round(cpu_rate, 1),
                  "load_average": round(load, 2), "cpus": os.cpu_count(),
                  "machine": f"{platform.node()} ({platform.machine()})"}
        print(f"bag -> episodes: {rate:.1f} episodes/s (best of {args.repeats}: "
              f"{', '.join(f'{t:.2f}' for t in timings)} s for {args.episodes}); {cpu_rate:.1f} episodes per "
              f"CPU-second (one process); load average {load:.1f} on {os.cpu_count()} CPUs")
        if args.dataset:
            from sim_training.bags.lerobot_v3 import export_lerobot
            from sim_training.bags.stare_dataset import export_stare

            for name, export in (("stare dataset", export_stare), ("lerobot v3", export_lerobot)):
                start = time.perf_counter()
                export(result.episodes, root / name.replace(" ", "-"))
                seconds = time.perf_counter() - start
                report[f"{name.replace(' ', '_')}_episodes_per_second"] = round(args.episodes / seconds, 1)
                print(f"episodes -> {name}: {args.episodes / seconds:.1f} episodes/s")
        if args.json:
            args.json.write_text(json.dumps(report, indent=1))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

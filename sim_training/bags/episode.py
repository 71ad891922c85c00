"""From a bag's messages to one episode in the dataset format (docs/data-format.md).

One step per control tick. A tick is a command and the observation it answered: a PolicyAction that the
policy computed (not a hold) carries the stamp of the camera image it was computed from, and that image
plus the joint state of the same stamp are the step's observation. Bags without PolicyAction (a
teleoperated robot, another stack) give one tick per TwistStamped command, paired with the newest image
at or before its stamp and the gripper command sent with it (the newest within half a control period),
converted back to the normalised action. Only the first command for an observation counts, and no more
ticks than the episode's recorded step count (in lock-step simulation the policy also answers the final
observation, which is never executed; a bag without the count keeps that answer as a last step).

Stage labels come from the StageState stream (the online segmenter's word at each observation stamp); a
bag without it is segmented offline by the same proprioceptive separator the stage_segmenter runs."""

from __future__ import annotations

import json
from bisect import bisect_right
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from sim_training.bags.config import MESSAGE_TYPES, ROBOT_JOINTS, BagReaderConfig
from sim_training.bags.errors import BagError
from sim_training.bags.source import BagContents
from sim_training.bags.tcp import tcp_poses
from sim_training.data import Episode
from sim_training.tasks import TaskSpec, UnknownTaskError, get_task
from stare_policy.stages import UNKNOWN, ProprioSegmenter
from stare_ros.conversions import InputError, image_array, joint_positions, twist_to_action
from stare_ros.recorder import typestore

STAMP_MATCH_NS = 1_000
"""Stamps written through float seconds (`to_stamp`) may differ by rounding: equal within 1 us."""
UNKNOWN_STAGE = UNKNOWN
"""Steps before the first StageState, and tasks without stages."""
EVENT_START, EVENT_STOP = 0, 1
"""stare_interfaces/EpisodeEvent's START and STOP."""


@lru_cache(maxsize=1)
def _store():
    return typestore()


def _ns(stamp) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


class _Stream:
    """One topic's messages, deserialized lazily, with their log times."""

    def __init__(self, contents: BagContents, topic: str, msgtype: str):
        self.bag, self.topic, self.msgtype = contents.path, topic, msgtype
        self.raw = contents.messages.get(topic, [])

    def __len__(self) -> int:
        return len(self.raw)

    def decode(self) -> list[tuple[int, object]]:
        store, out = _store(), []
        for i, (log_ns, data) in enumerate(self.raw):
            try:
                out.append((log_ns, store.deserialize_cdr(data, self.msgtype)))
            except Exception as err:  # rosbags' serde errors, a short buffer
                raise BagError(self.bag, f"message {i} on {self.topic} is not a valid {self.msgtype}: {err}") from None
        return out


def _nearest(stamps: list[int], wanted: int, tolerance_ns: int) -> int | None:
    """Index of the stamp in the sorted `stamps` closest to `wanted`, if within the tolerance."""
    i = bisect_right(stamps, wanted)
    best = min((j for j in (i - 1, i) if 0 <= j < len(stamps)), key=lambda j: abs(stamps[j] - wanted), default=None)
    return best if best is not None and abs(stamps[best] - wanted) <= tolerance_ns else None


def _metadata(contents: BagContents, events: list, config: BagReaderConfig) -> dict:
    """Task, instruction, seed, outcome, steps: the bag's custom_data first, then its episode events."""
    custom = {k.removeprefix("stare."): v for k, v in contents.custom.items() if k.startswith("stare.")}
    start = next((e for _, e in events if e.event == EVENT_START), None)
    stop = next((e for _, e in reversed(events) if e.event == EVENT_STOP), None)
    first = start or stop
    task = custom.get("task") or (first.task if first else "") or config.task
    if not task:
        raise BagError(contents.path, "no task: neither stare.task in custom_data nor an episode event; "
                                      "pass the task (BagReaderConfig.task, --task)")
    outcome = custom.get("outcome") or (stop.outcome if stop else "") or ("killed" if contents.truncated else "unknown")
    seed = custom.get("seed") or (str(first.seed) if first else "")
    steps = custom.get("steps") or (str(stop.steps) if stop else "")
    try:
        stages = json.loads(custom.get("stages") or "[]")
    except json.JSONDecodeError:
        stages = []
    return {
        "task": task, "outcome": outcome, "seed": int(seed) if seed.lstrip("-").isdigit() else -1,
        "steps": int(steps) if steps.isdigit() else 0, "instruction": custom.get("instruction") or "",
        "episode_id": custom.get("episode_id") or (first.episode_id if first else contents.path.name),
        "checkpoint": custom.get("checkpoint", ""), "stage_timeline": stages,
    }


def _check_topics(contents: BagContents, config: BagReaderConfig) -> dict[str, str]:
    topics = {name: getattr(config.topics, name) for name in MESSAGE_TYPES}
    for name, topic in topics.items():
        have = contents.types.get(topic)
        if have is not None and have != MESSAGE_TYPES[name]:
            raise BagError(contents.path, f"topic {topic} is {have}, expected {MESSAGE_TYPES[name]}")
    missing = [topics[n] for n in ("image", "joint_states") if topics[n] not in contents.types]
    if topics["action"] not in contents.types and not (
            topics["twist"] in contents.types and topics["gripper"] in contents.types):
        missing.append(f"{topics['action']} (or {topics['twist']} + {topics['gripper']})")
    if missing:
        present = ", ".join(sorted(contents.types)) or "none"
        raise BagError(contents.path, f"missing required topic(s) {', '.join(missing)} (topics in the bag: {present})")
    return topics


def _policy_ticks(actions: list, images: list[int]) -> list[tuple[int, int, np.ndarray, np.ndarray]]:
    """(image index, log ns, command, raw) per PolicyAction the policy computed, first answer per image."""
    ticks, seen = [], set()
    for log_ns, msg in actions:
        if msg.held or len(msg.raw) != 7 or len(msg.command) != 7:
            continue
        i = _nearest(images, _ns(msg.observation_stamp), STAMP_MATCH_NS)
        if i is None or i in seen:
            continue
        seen.add(i)
        ticks.append((i, log_ns, np.asarray(msg.command, np.float32), np.asarray(msg.raw, np.float32)))
    return ticks


def _twist_ticks(twists: list, grippers: list, images: list[int], rate_hz: float, config: BagReaderConfig):
    """(image index, log ns, action, NaN raw) per TwistStamped command, first command per image."""
    ticks, seen = [], set()
    gripper_log = [log for log, _ in grippers]
    nan = np.full(7, np.nan, np.float32)
    for log_ns, msg in twists:
        i = bisect_right(images, _ns(msg.header.stamp) or log_ns) - 1
        if i < 0 or i in seen:
            continue
        seen.add(i)
        # published together with the twist, but logged by another subscription: up to half a period apart
        g = bisect_right(gripper_log, log_ns + int(0.5e9 / rate_hz)) - 1
        t = msg.twist
        action = twist_to_action([t.linear.x, t.linear.y, t.linear.z], [t.angular.x, t.angular.y, t.angular.z],
                                 grippers[g][1].data if g >= 0 else 1.0, rate_hz, config.pos_scale_m,
                                 config.rot_scale_rad)
        ticks.append((i, log_ns, action, nan))
    return ticks


def _stages(spec: TaskSpec, stage_msgs: list, stamps: np.ndarray, qpos: np.ndarray, actions: np.ndarray,
            bag) -> tuple[np.ndarray, str]:
    """Per-step stage index and where it came from ('stage_state', 'offline' or 'none')."""
    if spec.stages is None:
        return np.full(len(stamps), UNKNOWN_STAGE, np.int8), "none"
    names = spec.stages.names
    if stage_msgs:
        labelled = []
        for _, msg in stage_msgs:
            if msg.stage_index >= len(names) or msg.stage_name != names[msg.stage_index]:
                raise BagError(bag, f"StageState {msg.stage_index} {msg.stage_name!r} is not a stage of "
                                    f"{spec.env_id} ({', '.join(names)})")
            labelled.append((_ns(msg.header.stamp), msg.stage_index))
        labelled.sort(key=lambda s: s[0])  # stable: equal stamps keep their log order
        order = [s for s, _ in labelled]
        return np.array([labelled[i][1] if (i := bisect_right(order, int(s)) - 1) >= 0 else UNKNOWN_STAGE
                         for s in stamps], np.int8), "stage_state"
    segmenter = ProprioSegmenter(spec.stages)
    gripper = np.r_[1.0, actions[:-1, 6]] if len(actions) else np.zeros(0)
    labels = [segmenter.step(q.tolist(), float(g), s * 1e-9) for q, g, s in zip(qpos, gripper, stamps)]
    return np.array(labels, np.int8), "offline"  # the separator's UNKNOWN is -1 too


@dataclass
class _Tick:
    image: object
    joints: object
    log_ns: int
    """When the command was logged."""
    action: np.ndarray
    raw: np.ndarray


def _ticks(stream: dict[str, _Stream], spec: TaskSpec, steps: int, config: BagReaderConfig) -> list[_Tick]:
    """Complete ticks (command, image, joint state) in observation order, at most `steps` (0: no limit)."""
    images = sorted(stream["image"].decode(), key=lambda m: _ns(m[1].header.stamp))
    image_stamps = [_ns(m.header.stamp) for _, m in images]
    joints = sorted(stream["joint_states"].decode(), key=lambda m: _ns(m[1].header.stamp))
    joint_stamps = [_ns(m.header.stamp) for _, m in joints]
    if len(stream["action"]):
        commands = _policy_ticks(stream["action"].decode(), image_stamps)
    else:
        rate = config.control_rate_hz or float(spec.control_freq)
        commands = _twist_ticks(stream["twist"].decode(), stream["gripper"].decode(), image_stamps, rate, config)
    commands.sort(key=lambda c: image_stamps[c[0]])
    tolerance = max(int(config.joint_tolerance_s * 1e9), STAMP_MATCH_NS)
    ticks = []
    for i, log_ns, action, raw in commands:
        j = _nearest(joint_stamps, image_stamps[i], tolerance)
        if j is not None:
            ticks.append(_Tick(images[i][1], joints[j][1], log_ns, action, raw))
    if not ticks:
        raise BagError(stream["image"].bag, f"no complete control tick ({len(images)} images, {len(joints)} joint "
                                            f"states, {len(commands)} commands that answer a recorded image)")
    return ticks[:steps] if steps else ticks


def _observations(ticks: list[_Tick], spec: TaskSpec, bag) -> tuple[np.ndarray, np.ndarray]:
    """Images (T, H, W, 3) uint8 RGB of the task's camera size and joint positions (T, J) by the robot's names."""
    names, h, w = ROBOT_JOINTS[spec.robot], spec.camera.height, spec.camera.width
    images, qpos = np.empty((len(ticks), h, w, 3), np.uint8), np.empty((len(ticks), len(names)), np.float32)
    order: dict[tuple[str, ...], list[int]] = {}  # joint order of a name list, checked once per list
    for k, tick in enumerate(ticks):
        try:
            images[k] = image_array(tick.image, h, w)
            joint_names, position = tuple(tick.joints.name), tick.joints.position
            if joint_names not in order:
                joint_positions(joint_names, position, names)  # the policy_server's checks: names, count
                order[joint_names] = [joint_names.index(name) for name in names]
            if len(position) != len(joint_names):
                raise InputError(f"joint state has {len(joint_names)} names but {len(position)} positions")
            qpos[k] = np.asarray(position)[order[joint_names]]
        except InputError as err:
            raise BagError(bag, f"step {k}: {err}") from None
    if not np.isfinite(qpos).all():
        raise BagError(bag, f"step {int(np.flatnonzero(~np.isfinite(qpos).all(axis=1))[0])}: joint state has "
                            "non-finite positions")
    return images, qpos


def build_episode(contents: BagContents, config: BagReaderConfig) -> Episode:
    bag = contents.path
    if not contents.types:
        raise BagError(bag, "empty bag: no topics, no messages")
    topics = _check_topics(contents, config)
    stream = {name: _Stream(contents, topic, MESSAGE_TYPES[name]) for name, topic in topics.items()}
    if contents.message_count == 0:
        raise BagError(bag, "empty bag: no messages on the episode's topics")
    meta = _metadata(contents, stream["episode_events"].decode(), config)
    try:
        spec = get_task(meta["task"])
    except UnknownTaskError as err:
        raise BagError(bag, str(err)) from None
    if spec.robot not in ROBOT_JOINTS:
        raise BagError(bag, f"no joint names known for robot {spec.robot!r} of {spec.env_id}")

    ticks = _ticks(stream, spec, meta["steps"], config)
    images, qpos = _observations(ticks, spec, bag)
    actions = np.stack([t.action for t in ticks])
    stamps = np.array([_ns(t.image.header.stamp) for t in ticks], np.int64)
    arrays = {"image": images, "qpos": qpos, "tcp_pose": tcp_poses(qpos[:, :7], config.base_pose),
              "action": actions, "raw_action": np.stack([t.raw for t in ticks]), "stamp_ns": stamps}
    arrays["stage"], stage_source = _stages(spec, stream["stage_state"].decode(), stamps, qpos, actions, bag)
    goals = stream["goal"].decode()
    if spec.goal_inputs and goals:  # latched at the start; the newest one logged before each command
        goal_log = [log for log, _ in goals]
        points = [goals[max(bisect_right(goal_log, t.log_ns) - 1, 0)][1].point for t in ticks]
        arrays[spec.goal_inputs[0]] = np.array([[p.x, p.y, p.z] for p in points], np.float32)
    success = meta["outcome"] == "success"
    arrays["flag.success"] = np.zeros(len(ticks), bool)
    arrays["flag.success"][-1] = success
    instruction = meta["instruction"]
    if not instruction and len(stream["instruction"]):
        instruction = stream["instruction"].decode()[-1][1].data
    extra = {"source": "bag", "bag": str(bag), "episode_id": meta["episode_id"], "task": spec.env_id,
             "checkpoint": meta["checkpoint"], "outcome": meta["outcome"],
             "truncated": contents.truncated or meta["outcome"] in ("killed", "write_error"),
             "stage_names": list(spec.stages.names) if spec.stages else [], "stage_source": stage_source,
             "stage_timeline": meta["stage_timeline"]}
    return Episode(arrays, meta["seed"], instruction or spec.instruction, success, extra)

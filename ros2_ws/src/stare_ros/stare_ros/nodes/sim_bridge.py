"""sim_bridge: a ManiSkill3 env as the robot. Publishes joint states, the camera image and camera_info
each control step, applies the latest command, resets on an episode START event and ends the episode
(STOP event) at success or the time limit. Success and privileged stage labels go to /sim/eval/*, for
evaluation only.

Modes: 'lockstep' advances one step per PolicyAction whose observation stamp is the latest published
observation's (deterministic: every observation gets exactly one action; a held action for it gets the
observation republished instead); 'realtime' steps at the
control rate with the latest twist + gripper command, holding still without a fresh one."""

from __future__ import annotations

import threading

import numpy as np
from geometry_msgs.msg import PointStamped, TwistStamped
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Bool, Float64, String

from stare_interfaces.msg import EpisodeEvent, PolicyAction, StageState
from stare_ros.config import PolicyServerConfig, SimBridgeConfig, Topics
from stare_ros.conversions import twist_to_action
from stare_ros.ros_common import EVENTS, LATCHED, RELIABLE, declare_config, now_seconds, run_node, to_seconds, to_stamp
from stare_ros.sim_robot import SimObservation, SimRobot

SCALES = PolicyServerConfig()


class SimBridge(Node):
    def __init__(self, **kwargs):
        super().__init__("sim_bridge", **kwargs)
        self.config = cfg = declare_config(self, SimBridgeConfig)
        from sim_training.tasks import UnknownTaskError

        try:
            self.robot = SimRobot(cfg.task, cfg.max_episode_steps)
        except UnknownTaskError as err:  # one-line error at start-up
            raise ValueError(f"sim_bridge: bad parameter: task: unknown task {cfg.task!r}") from None
        self.rate_hz = cfg.control_rate_hz or self.robot.control_rate_hz
        self.topics = topics = Topics()
        self._group = MutuallyExclusiveCallbackGroup()  # the simulator is driven from one thread at a time
        self._lock = threading.Lock()
        self.joint_pub = self.create_publisher(JointState, topics.joint_states, RELIABLE)
        self.image_pub = self.create_publisher(Image, topics.image, RELIABLE)
        self.info_pub = self.create_publisher(CameraInfo, topics.camera_info, RELIABLE)
        self.instruction_pub = self.create_publisher(String, topics.instruction, LATCHED)
        self.goal_pub = self.create_publisher(PointStamped, topics.goal, LATCHED)
        self.event_pub = self.create_publisher(EpisodeEvent, topics.episode_events, EVENTS)
        self.success_pub = self.create_publisher(Bool, "/sim/eval/success", RELIABLE)
        self.stage_pub = self.create_publisher(StageState, "/sim/eval/stage", RELIABLE)
        self.create_subscription(EpisodeEvent, topics.episode_events, self._on_event, EVENTS,
                                 callback_group=self._group)
        if cfg.mode == "lockstep":
            self.create_subscription(PolicyAction, topics.action, self._on_action, RELIABLE, callback_group=self._group)
        else:
            self.create_subscription(TwistStamped, topics.twist, self._on_twist, RELIABLE)
            self.create_subscription(Float64, topics.gripper, self._on_gripper, RELIABLE)
        self.create_timer(1.0 / self.rate_hz, self._on_timer, callback_group=self._group)
        self.episode: EpisodeEvent | None = None
        self.next_seed = cfg.seed_start
        self.obs_stamp: float | None = None
        self._published_at = 0.0
        self._twist: tuple[float, np.ndarray] | None = None
        self._gripper = 1.0
        self.stage_start, self._priv_stage = None, None

    # -- episodes --------------------------------------------------------------------------------------
    def _on_event(self, event: EpisodeEvent) -> None:
        if event.event != EpisodeEvent.START:
            return
        if event.task and event.task != self.config.task:
            self.get_logger().error(f"episode {event.episode_id} is for {event.task}, this bridge simulates "
                                    f"{self.config.task}: ending it")
            self._stop(event, "aborted", 0)
            return
        seed = event.seed if event.seed >= 0 else self.next_seed
        self.next_seed = seed + 1
        obs = self.robot.reset(seed)
        self.episode = event
        self.episode.seed = seed
        self._twist, self._gripper = None, 1.0
        instruction = event.instruction or self.robot.spec.instruction
        self.instruction_pub.publish(String(data=instruction))
        if obs.goal is not None:
            goal = PointStamped()
            goal.header.stamp, goal.header.frame_id = self.get_clock().now().to_msg(), "world"
            goal.point.x, goal.point.y, goal.point.z = map(float, obs.goal)
            self.goal_pub.publish(goal)
        self.get_logger().info(f"episode {event.episode_id}: seed {seed}, '{instruction}'")
        self._publish(obs)

    def _stop(self, episode: EpisodeEvent, outcome: str, steps: int) -> None:
        stop = EpisodeEvent(event=EpisodeEvent.STOP, episode_id=episode.episode_id, task=self.config.task,
                            instruction=episode.instruction, seed=episode.seed, outcome=outcome, steps=steps)
        stop.header.stamp = self.get_clock().now().to_msg()
        self.event_pub.publish(stop)

    # -- commands --------------------------------------------------------------------------------------
    def _on_action(self, msg: PolicyAction) -> None:
        if self.episode is None or self.obs_stamp is None or len(msg.command) != 7:
            return
        if abs(to_seconds(msg.observation_stamp) - self.obs_stamp) > 1e-6:
            return  # a command for another observation (or a watchdog hold): lock-step ignores it
        if msg.held:
            # The policy ran but its action was held (inputs aged past the policy_server's threshold
            # while it ran): offer the same state again, freshly stamped, rather than step with zero motion.
            self._publish(self.robot.obs)
            return
        self._advance(np.asarray(msg.command, np.float32))

    def _on_twist(self, msg: TwistStamped) -> None:
        t = msg.twist
        with self._lock:
            self._twist = (now_seconds(self), np.array([t.linear.x, t.linear.y, t.linear.z,
                                                        t.angular.x, t.angular.y, t.angular.z]))

    def _on_gripper(self, msg: Float64) -> None:
        if np.isfinite(msg.data):
            self._gripper = float(np.clip(msg.data, -1.0, 1.0))

    def _on_timer(self) -> None:
        now = now_seconds(self)
        if self.config.mode == "lockstep":
            if self.episode is not None and now - self._published_at > self.config.lockstep_timeout_s:
                self._publish(self.robot.obs)  # the command may have been lost, or nobody listened yet
            return
        if self.episode is None:
            if self.robot.obs is not None:
                self._publish(self.robot.obs)
            return
        with self._lock:
            twist = self._twist if self._twist is not None and now - self._twist[0] < 2.0 / self.rate_hz else None
            self._twist = None
        if twist is None:
            action = np.zeros(7, np.float32)  # no fresh command: hold still
            action[6] = self._gripper
        else:
            v = twist[1]
            action = twist_to_action(v[:3], v[3:], self._gripper, self.rate_hz, SCALES.pos_scale_m,
                                     SCALES.rot_scale_rad)
        self._advance(action)

    def _advance(self, action: np.ndarray) -> None:
        obs = self.robot.step(action)
        self._publish(obs)
        if obs.done:
            episode, self.episode = self.episode, None
            self.get_logger().info(f"episode {episode.episode_id}: {obs.outcome} after {obs.step} steps")
            self._stop(episode, obs.outcome, obs.step)

    # -- observations -------------------------------------------------------------------------------------
    def _publish(self, obs: SimObservation) -> None:
        cfg = self.config
        self._published_at = now = now_seconds(self)
        stamp = to_stamp(now)
        self.obs_stamp = now
        joints = JointState(name=self.robot.joint_names, position=obs.qpos.tolist(), velocity=obs.qvel.tolist())
        joints.header.stamp, joints.header.frame_id = stamp, cfg.base_frame
        h, w = obs.image.shape[:2]
        image = Image(height=h, width=w, encoding="rgb8", is_bigendian=0, step=w * 3, data=obs.image.tobytes())
        image.header.stamp, image.header.frame_id = stamp, cfg.camera_frame
        k = self.robot.camera_matrix()
        info = CameraInfo(height=h, width=w, distortion_model="plumb_bob", d=[0.0] * 5, k=k.ravel().tolist(),
                          r=[1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0],
                          p=[k[0, 0], 0.0, k[0, 2], 0.0, 0.0, k[1, 1], k[1, 2], 0.0, 0.0, 0.0, 1.0, 0.0])
        info.header = image.header
        self.joint_pub.publish(joints)
        self.image_pub.publish(image)
        self.info_pub.publish(info)
        if obs.step > 0:
            self.success_pub.publish(Bool(data=obs.success))
        if obs.stage is not None:
            if obs.step == 0 or obs.stage != self._priv_stage:
                self.stage_start, self._priv_stage = stamp, obs.stage
            names = self.robot.stage_names
            stage = StageState(task=cfg.task, stage_index=obs.stage, stage_name=names[obs.stage],
                               num_stages=len(names), confidence=1.0)
            stage.header.stamp, stage.stage_start = stamp, self.stage_start
            self.stage_pub.publish(stage)

    def close(self) -> None:
        self.robot.close()


def main(args=None) -> int:
    return run_node(SimBridge, args)


if __name__ == "__main__":
    raise SystemExit(main())

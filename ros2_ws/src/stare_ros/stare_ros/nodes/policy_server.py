"""policy_server: the VLA at a fixed control rate on the latest camera image, joint state and
instruction, behind the safety layer. Publishes the twist (MoveIt Servo), the gripper command, the
raw and sent action (PolicyAction) and diagnostics; serves e-stop and LoadCheckpoint."""

from __future__ import annotations

import sys
import threading

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PointStamped, TwistStamped
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64, String
from std_srvs.srv import SetBool

from stare_interfaces.msg import PolicyAction
from stare_interfaces.srv import LoadCheckpoint
from stare_ros.config import PolicyServerConfig, Topics
from stare_ros.conversions import (InputError, action_to_twist, goal_point, image_array, input_stamp,
                                   instruction_text, joint_positions)
from stare_ros.policy_runner import PolicyRunner, Tick
from stare_ros.ros_common import LATEST, LATCHED, RELIABLE, declare_config, diagnostics, now_seconds, run_node, to_seconds, to_stamp


class PolicyServer(Node):
    def __init__(self, **kwargs):
        super().__init__("policy_server", **kwargs)
        self.config = cfg = declare_config(self, PolicyServerConfig)
        if cfg.gil_switch_interval_s:
            sys.setswitchinterval(min(sys.getswitchinterval(), cfg.gil_switch_interval_s))
        self.runner = PolicyRunner(cfg)
        topics = Topics()
        inputs, control, services = (MutuallyExclusiveCallbackGroup() for _ in range(3))
        self.twist_pub = self.create_publisher(TwistStamped, topics.twist, RELIABLE)
        self.gripper_pub = self.create_publisher(Float64, topics.gripper, RELIABLE)
        self.action_pub = self.create_publisher(PolicyAction, topics.action, RELIABLE)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", RELIABLE)
        self.create_subscription(Image, topics.image, self._on_image, LATEST, callback_group=inputs)
        self.create_subscription(JointState, topics.joint_states, self._on_joints, LATEST, callback_group=inputs)
        self.create_subscription(String, topics.instruction, self._on_instruction, LATCHED, callback_group=inputs)
        self.create_subscription(PointStamped, topics.goal, self._on_goal, LATCHED, callback_group=inputs)
        self._serve_apart(f"{self.get_fully_qualified_name()}")
        period = 1.0 / cfg.control_rate_hz
        self.create_timer(period, self._on_timer, callback_group=control)
        self.create_timer(cfg.diagnostics_period_s, self._publish_diagnostics, callback_group=services)
        self._last_publish = 0.0
        self._last_level = None
        self._publish_lock = threading.RLock()

    def _serve_apart(self, prefix: str) -> None:
        """Serve e-stop and LoadCheckpoint (as <node>/estop, <node>/load_checkpoint) from a helper node
        spun on its own thread: however this node is spun (a launched node on one thread), an e-stop
        never waits behind the control loop, and loading (and compiling) a checkpoint never stops it."""
        from rclpy.executors import SingleThreadedExecutor

        self._service_node = Node(f"{self.get_name()}_services", namespace=self.get_namespace(), context=self.context)
        self._service_node.create_service(SetBool, f"{prefix}/estop", self._on_estop)
        self._service_node.create_service(LoadCheckpoint, f"{prefix}/load_checkpoint", self._on_load)
        self._service_executor = SingleThreadedExecutor(context=self.context)
        self._service_executor.add_node(self._service_node)
        self._service_thread = threading.Thread(target=self._spin_services, name="policy_server_services", daemon=True)
        self._service_thread.start()

    def _spin_services(self) -> None:
        try:
            self._service_executor.spin()
        except Exception:  # the context shut down under it (SIGINT/SIGTERM): nothing left to serve
            pass

    def destroy_node(self) -> None:
        from stare_ros.ros_common import stop_executor

        stop_executor(self._service_executor)
        self._service_thread.join(timeout=5.0)
        self._service_node.destroy_node()
        super().destroy_node()

    # -- inputs: bad messages are rejected (hold + diagnostics), never raised ------------------------
    def _on_image(self, msg: Image) -> None:
        hw = self.runner.image_hw
        try:
            if hw is None:
                raise InputError("no checkpoint loaded, the image size is unknown")
            stamp = input_stamp(to_seconds(msg.header.stamp), now_seconds(self), self.config.max_future_stamp_s)
            self.runner.set_image(image_array(msg, *hw), stamp)
        except InputError as err:
            self._reject("image", str(err))
            return
        self._act_if_observation_ready()

    def _on_joints(self, msg: JointState) -> None:
        cfg = self.config
        try:
            q = joint_positions(msg.name, msg.position, (*cfg.arm_joints, *cfg.finger_joints))
            stamp = input_stamp(to_seconds(msg.header.stamp), now_seconds(self), cfg.max_future_stamp_s)
            self.runner.set_joints(q, stamp)
        except InputError as err:
            self._reject("joints", str(err))
            return
        self._act_if_observation_ready()

    def _on_instruction(self, msg: String) -> None:
        try:
            self.runner.set_instruction(instruction_text(msg.data, self.config.max_instruction_chars))
        except InputError as err:
            self._reject("instruction", str(err))

    def _on_goal(self, msg: PointStamped) -> None:
        try:
            self.runner.set_goal(goal_point(msg.point))
        except InputError as err:
            self._reject("goal", str(err))

    def _reject(self, kind: str, reason: str) -> None:
        with self._publish_lock:  # no action read before this input may be published after its hold
            self.runner.reject(kind, reason)
            self._publish(self.runner.tick(now_seconds(self)))
        self.get_logger().warn(f"bad {kind}: {reason}", throttle_duration_sec=1.0)

    # -- control ----------------------------------------------------------------------------------------
    def _act_if_observation_ready(self) -> None:
        if self.config.act_on == "observation":
            tick = self.runner.tick(now_seconds(self), new_observation_only=True)
            if tick is not None:
                self._publish(tick)

    def _on_timer(self) -> None:
        now = now_seconds(self)
        if self.config.act_on == "timer":
            self._publish(self.runner.tick(now))
            return
        # Lock-step: act on observations as they come (here too, should one wait for its goal or
        # instruction); when nothing was sent for a period and the policy may not act, say why.
        tick = self.runner.tick(now, new_observation_only=True)
        if tick is not None:
            self._publish(tick)
        elif now - self._last_publish >= 1.0 / self.config.control_rate_hz:
            hold = self.runner.idle_hold(now)
            if hold is not None:
                self._publish(hold)

    def _publish(self, tick: Tick) -> None:
        with self._publish_lock:
            self._publish_locked(tick)

    def _publish_locked(self, tick: Tick) -> None:
        cfg = self.config
        command = tick.command
        if self.runner.safety.estopped and "e-stop" not in command.reasons:
            # engaged while the policy ran: a tick that started before says so first, whatever else held it
            command = self.runner.safety.hold("e-stop", *(command.reasons if command.held else []))
        if not command.held and tick.rejections != self.runner.rejections:  # a bad input came meanwhile
            command = self.runner.safety.hold("bad input while the policy ran")
        clock = self.get_clock().now()
        if (not command.held and tick.inputs_stamp is not None
                and clock.nanoseconds * 1e-9 - tick.inputs_stamp > cfg.stale_after_s):
            command = self.runner.safety.hold("stale inputs at publish")  # the last check, on the clock
        now = clock.to_msg()
        gripper = Float64(data=float(command.action[6]))
        twist = TwistStamped()
        twist.header.stamp, twist.header.frame_id = now, cfg.frame_id
        linear, angular = action_to_twist(command.action, cfg.control_rate_hz, cfg.pos_scale_m, cfg.rot_scale_rad)
        (twist.twist.linear.x, twist.twist.linear.y, twist.twist.linear.z) = map(float, linear)
        (twist.twist.angular.x, twist.twist.angular.y, twist.twist.angular.z) = map(float, angular)
        action = PolicyAction(raw=[] if tick.raw is None else tick.raw.tolist(), command=command.action.tolist(),
                              held=command.held, reason=command.reason)
        action.header.stamp, action.header.frame_id = now, cfg.frame_id
        if tick.observation_stamp is not None:
            action.observation_stamp = to_stamp(tick.observation_stamp)
        self.gripper_pub.publish(gripper)
        self.twist_pub.publish(twist)
        self.action_pub.publish(action)
        self._last_publish = now_seconds(self)
        status = self.runner.status()
        if status.level != self._last_level:
            self._publish_diagnostics()

    # -- services and diagnostics ----------------------------------------------------------------------
    def _on_estop(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        if request.data:
            self.runner.safety.engage_estop()
            self._publish(self.runner.tick(now_seconds(self)))
            response.message = "e-stop engaged: zero motion until released"
        else:
            self.runner.safety.release_estop()
            response.message = "e-stop released"
        self.get_logger().warn(response.message)
        response.success = True
        self._publish_diagnostics()
        return response

    def _on_load(self, request: LoadCheckpoint.Request, response: LoadCheckpoint.Response):
        try:
            self.runner.load(request.path)
        except Exception as err:  # any failure leaves the running policy in place
            response.success, response.message = False, f"{type(err).__name__}: {err}"
            self.get_logger().error(f"LoadCheckpoint {request.path}: {response.message}")
        else:
            response.success, response.message = True, f"loaded {request.path}"
            self.get_logger().info(response.message)
        self._publish_diagnostics()
        return response

    def _publish_diagnostics(self) -> None:
        status = self.runner.status()
        self._last_level = status.level
        self.diag_pub.publish(diagnostics(self, "stare: policy_server", status.level, status.message, status.values))


def main(args=None) -> int:
    return run_node(PolicyServer, args)


if __name__ == "__main__":
    raise SystemExit(main())

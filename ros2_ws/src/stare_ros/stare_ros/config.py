"""Every node's parameters: one typed dataclass per node, a docstring per field. A node declares each
field as a ROS parameter with the dataclass default, reads the values back and builds the dataclass,
whose checks turn a bad parameter into a one-line error at start-up."""

from __future__ import annotations

from dataclasses import dataclass

PANDA_ARM_JOINTS = tuple(f"panda_joint{i}" for i in range(1, 8))
PANDA_FINGER_JOINTS = ("panda_finger_joint1", "panda_finger_joint2")


def _positive(name: str, value: float) -> None:
    if not value > 0:
        raise ValueError(f"{name} must be positive, got {value}")


@dataclass
class Topics:
    """Topic names shared by the nodes (each node reads the ones it needs)."""

    image: str = "/camera/image_raw"
    camera_info: str = "/camera/camera_info"
    joint_states: str = "/joint_states"
    instruction: str = "/instruction"
    goal: str = "/goal_point"
    twist: str = "/servo_node/delta_twist_cmds"
    gripper: str = "/gripper_command"
    action: str = "/policy_server/action"
    stage_state: str = "/stage_state"
    episode_events: str = "/episode/events"


@dataclass
class SafetyConfig:
    """The safety layer between the policy and the robot. Actions are in the policy's normalised
    pd_ee_delta_pose space: translation and rotation in [-1, 1] times `pos_scale_m` / `rot_scale_rad`
    per control step, gripper in [-1, 1] (+1 open)."""

    action_limit: float = 1.0
    """Every action dimension is clipped to [-action_limit, action_limit]."""
    pos_scale_m: float = 0.1
    """Metres of TCP translation per control step for a normalised action of 1 (ManiSkill3's
    pd_ee_delta_pose `pos_upper`)."""
    rot_scale_rad: float = 0.1
    """Radians of TCP rotation per step for a normalised action of 1 (`rot_upper`)."""
    max_step_translation_m: float = 0.05
    """Longest TCP translation per control step; longer commands are scaled down, keeping direction."""
    max_step_rotation_rad: float = 0.1
    """Largest TCP rotation per control step (axis-angle norm); larger ones are scaled down."""
    workspace_min: tuple[float, ...] = (-0.2, -0.45, -0.05)
    """Lower corner of the box the TCP must stay in (metres, robot base frame). A command that would
    leave it is cut at the box; from outside only motion back towards it passes."""
    workspace_max: tuple[float, ...] = (1.0, 0.45, 0.9)
    """Upper corner of the workspace box (metres, robot base frame)."""
    stale_after_s: float = 0.5
    """An image or joint state older than this (by its header stamp) stops the arm: zero motion."""
    dry_run: bool = False
    """Run the policy and publish its raw action, but command zero motion (true on real hardware
    configs until someone decides otherwise)."""

    def __post_init__(self) -> None:
        for name in ("action_limit", "pos_scale_m", "rot_scale_rad", "max_step_translation_m",
                     "max_step_rotation_rad", "stale_after_s"):
            _positive(name, getattr(self, name))
        if len(self.workspace_min) != 3 or len(self.workspace_max) != 3:
            raise ValueError("workspace_min and workspace_max need 3 values (x, y, z)")
        if any(lo >= hi for lo, hi in zip(self.workspace_min, self.workspace_max)):
            raise ValueError(f"workspace_min {self.workspace_min} must be below workspace_max {self.workspace_max}")


@dataclass
class PolicyServerConfig(SafetyConfig):
    """policy_server: runs the VLA on the latest camera image, joint state and instruction."""

    checkpoint: str = ""
    """Policy checkpoint directory (`VLAPolicy.load`); empty: start without a policy (zero motion until
    LoadCheckpoint)."""
    task: str = "PickCube-v1"
    """Env id the checkpoint was trained for: picks the default instruction."""
    instruction: str = ""
    """Instruction until one arrives on the instruction topic; empty: the task's canonical one."""
    control_rate_hz: float = 20.0
    """Policy ticks per second (timer mode) and the rate that converts actions to twists."""
    act_on: str = "timer"
    """'timer': act at control_rate_hz on the latest inputs; 'observation': act once per new camera
    image + joint state pair with the same stamp (lock-step simulation)."""
    device: str = "cpu"
    """Torch device for the policy."""
    torch_threads: int = 0
    """Threads for the policy's tensor operations (`torch.set_num_threads`); 0: torch's default (one per
    core). On a small machine shared with the camera driver and other nodes, 1 can give a shorter tail."""
    gil_switch_interval_s: float = 0.001
    """Python's GIL switch interval for this node's process (`sys.setswitchinterval`, lowered, never
    raised); 0 leaves Python's 5 ms. Inference is a chain of short torch calls that each give up the GIL
    and then wait for it while subscription callbacks run on other threads: at 5 ms a tick of a small
    policy took 0.5-1.8 s instead of 0.04 s beside a 50 Hz joint-state stream."""
    compile_policy: bool = False
    """Greedy actions through one `torch.compile`d graph (`VLAPolicy.compile`): about 2.5x faster on a
    CPU. The graph is compiled when the checkpoint loads, for the instruction the server starts with
    (tens of seconds, less when inductor's on-disk cache has it); a new instruction length compiles again."""
    frame_id: str = "panda_link0"
    """Frame of the twist command (the robot base)."""
    base_pose: tuple[float, ...] = (-0.615, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0)
    """Pose of the robot base in the world frame the policy was trained in (x y z qw qx qy qz); the TCP
    pose the policy reads is forward kinematics from the joint states, moved into that frame."""
    arm_joints: tuple[str, ...] = PANDA_ARM_JOINTS
    finger_joints: tuple[str, ...] = PANDA_FINGER_JOINTS
    diagnostics_period_s: float = 1.0
    """Diagnostics are published this often and at once when the status changes."""
    max_future_stamp_s: float = 0.1
    """An image or joint state stamped more than this ahead of the node's clock is refused (a hold):
    a future stamp would keep a frozen input "fresh" past stale_after_s. Room for clock skew between
    the camera's machine and this one."""
    max_instruction_chars: int = 500
    """A longer instruction is refused (a hold until a usable one arrives): the policy's time grows with
    the prompt's length (a 30,000-character one took 5 s a tick), and a tick must not take that long."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _positive("control_rate_hz", self.control_rate_hz)
        _positive("diagnostics_period_s", self.diagnostics_period_s)
        _positive("max_instruction_chars", self.max_instruction_chars)
        if not 0 <= self.gil_switch_interval_s <= 0.1:
            raise ValueError(f"gil_switch_interval_s must be in [0, 0.1] s, got {self.gil_switch_interval_s}")
        if self.max_future_stamp_s < 0:
            raise ValueError(f"max_future_stamp_s must be >= 0, got {self.max_future_stamp_s}")
        if self.torch_threads < 0:
            raise ValueError(f"torch_threads must be >= 0, got {self.torch_threads}")
        if self.act_on not in ("timer", "observation"):
            raise ValueError(f"act_on must be 'timer' or 'observation', got {self.act_on!r}")
        if len(self.base_pose) != 7:
            raise ValueError("base_pose needs 7 values: x y z qw qx qy qz")
        if len(self.arm_joints) != 7 or len(self.finger_joints) != 2:
            raise ValueError("arm_joints needs 7 names and finger_joints 2")


@dataclass
class StageSegmenterConfig:
    """stage_segmenter: the proprioceptive StARe separator online from joint states."""

    task: str = "PickCube-v1"
    """Env id whose stage spec (`stare_policy.stages.tasks`) is used; an episode START event with a
    task replaces it."""
    publish_rate_hz: float = 2.0
    """StageState is published on every change and at this rate."""
    arm_joints: tuple[str, ...] = PANDA_ARM_JOINTS
    finger_joints: tuple[str, ...] = PANDA_FINGER_JOINTS

    def __post_init__(self) -> None:
        _positive("publish_rate_hz", self.publish_rate_hz)
        if len(self.arm_joints) != 7 or len(self.finger_joints) != 2:
            raise ValueError("arm_joints needs 7 names and finger_joints 2")


DEFAULT_RECORDED = (
    "/camera/image_raw:sensor_msgs/msg/Image",
    "/camera/camera_info:sensor_msgs/msg/CameraInfo",
    "/joint_states:sensor_msgs/msg/JointState",
    "/instruction:std_msgs/msg/String",
    "/goal_point:geometry_msgs/msg/PointStamped",
    "/servo_node/delta_twist_cmds:geometry_msgs/msg/TwistStamped",
    "/gripper_command:std_msgs/msg/Float64",
    "/policy_server/action:stare_interfaces/msg/PolicyAction",
    "/stage_state:stare_interfaces/msg/StageState",
    "/episode/events:stare_interfaces/msg/EpisodeEvent",
    "/diagnostics:diagnostic_msgs/msg/DiagnosticArray",
)


@dataclass
class EpisodeLoggerConfig:
    """episode_logger: one rosbag2 (MCAP) bag per episode."""

    output_dir: str = "bags"
    """Bags are written to <output_dir>/<episode_id>/; <output_dir>/episodes.jsonl indexes them."""
    topics: tuple[str, ...] = DEFAULT_RECORDED
    """Recorded topics as 'name:package/msg/Type'."""
    task: str = "PickCube-v1"
    """Task written into the metadata when a StartEpisode request names none."""
    checkpoint: str = ""
    """Checkpoint written into the metadata (the policy that ran)."""

    def __post_init__(self) -> None:
        for entry in self.topics:
            name, _, msgtype = entry.partition(":")
            if not name.startswith("/") or msgtype.count("/") != 2:
                raise ValueError(f"topics entry {entry!r} is not '/name:package/msg/Type'")


@dataclass
class SimBridgeConfig:
    """sim_bridge: a ManiSkill3 env as the robot."""

    task: str = "PickCube-v1"
    mode: str = "lockstep"
    """'lockstep': advance one step per PolicyAction for the latest observation (deterministic);
    'realtime': step at the control rate with the latest twist + gripper command (zero motion without)."""
    control_rate_hz: float = 0.0
    """Steps per second in real-time mode; 0: the task's control frequency."""
    seed_start: int = 1_000_000
    """Seed of the first episode started with seed -1 (then +1 each); stare-eval's default start."""
    lockstep_timeout_s: float = 2.0
    """Lock-step: republish the observation (fresh stamp) when no command came for this long."""
    max_episode_steps: int = 0
    """0: the task's episode length."""
    base_frame: str = "panda_link0"
    camera_frame: str = "camera_optical_frame"

    def __post_init__(self) -> None:
        if self.mode not in ("lockstep", "realtime"):
            raise ValueError(f"mode must be 'lockstep' or 'realtime', got {self.mode!r}")
        if self.control_rate_hz < 0 or self.max_episode_steps < 0:
            raise ValueError("control_rate_hz and max_episode_steps must be >= 0")
        _positive("lockstep_timeout_s", self.lockstep_timeout_s)

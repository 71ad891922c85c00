"""policy_server under faults while the arm moves (issue 8, item 2; issue 7's hot swap): a camera or joint
stream stopped at a random moment, the e-stop engaged mid-motion, a checkpoint swapped in through
LoadCheckpoint while the control timer runs. Real node (act_on: timer, as on a robot) on the harness's
multi-threaded executor (as `stare-bringup` runs it), real publishers of a real PickCube demo frame,
loopback DDS; `fault_probe` injects and measures. A node started as `ros2 launch` starts it (own process,
single-threaded executor) stops ticking while it loads a checkpoint: `benchmarks/ros_faults.py` measures it.

These tests assert behaviour with bounds wide enough for a loaded 2-core machine; the figures (reaction
time distributions over many trials, gaps at the swap) come from `benchmarks/ros_faults.py`."""

from __future__ import annotations

import numpy as np
import pytest
from fault_probe import INSTRUCTION, STALE_REASONS, Actions, Robot, estop_trial, stale_trial, swap_trial

from stare_ros.nodes.policy_server import PolicyServer

pytestmark = pytest.mark.filterwarnings("ignore:module 'sre_:DeprecationWarning")
RATE_HZ = 20.0
PERIOD_S = 1.0 / RATE_HZ
STALE_S = 0.3
SLACK_S = 0.25
"""Scheduling slack on top of one control period: the tick that finds the input stale may wait for the
tick in flight (inference) and for a core on a machine running other jobs (load average ~5 on 2 cores)."""
SWAP_SLACK_S = 0.45
"""The swap's slack: in this in-process harness the load's Python work (model construction) shares one
interpreter with the executor's threads and the probe's publishers, and on a loaded CI machine ticks near
the swap ran up to 0.32 s apart while the load took 1.2 s. A launched server has its own process:
`benchmarks/ros_faults.py` measures its intervals (docs/reliability.md)."""
TRIALS = 3
SHIPPED = "checkpoints/pick-cube-sft"


class Setup:
    def __init__(self, ros, checkpoint, episode, **params):
        self.server = ros.start(PolicyServer, checkpoint=str(checkpoint), control_rate_hz=RATE_HZ,
                                stale_after_s=STALE_S, act_on="timer", **params)
        self.probe = ros.node("probe")
        self.actions = Actions(self.probe)
        self.episode = episode
        self.robot = Robot(self.probe, episode.arrays["image"][0], episode.arrays["qpos"][0],
                           episode.arrays["goal_pos"][0], {"image": RATE_HZ, "joints": 50.0})

    def expected_raw(self, checkpoint) -> np.ndarray:
        """The raw action `VLAPolicy` itself gives for the frame the robot streams."""
        from stare_policy.policy import VLAPolicy
        from stare_ros.conversions import TcpPose

        q = self.episode.arrays["qpos"][0]
        proprio = {"qpos": q, "tcp_pose": TcpPose(self.server.config.base_pose).world(q[:7]),
                   "goal_pos": self.episode.arrays["goal_pos"][0]}
        return np.asarray(VLAPolicy.load(checkpoint).act(self.episode.arrays["image"][0], INSTRUCTION, proprio))


@pytest.fixture
def episode(real_demos):
    return real_demos("PickCube-v1").episode(0)


@pytest.fixture
def setup(ros, tiny_checkpoint, episode):
    s = Setup(ros, tiny_checkpoint, episode)
    yield s
    s.robot.close()


@pytest.mark.parametrize("kind", ["image", "joints"])
def test_a_stopped_stream_stops_the_arm_within_one_period(setup, kind):
    rng = np.random.default_rng(8)
    for _ in range(TRIALS):
        trial = stale_trial(setup.robot, setup.actions, kind, STALE_S, PERIOD_S, rng)
        assert any(r in trial.reason for r in STALE_REASONS), trial
        assert trial.reaction_s <= PERIOD_S + SLACK_S, trial
        assert trial.moving_after_threshold == 0, trial
    # no motion command, in the trials or between them, left with an image older than the threshold or
    # outside the safety limits
    assert setup.actions.image_age_violations(STALE_S) == 0
    assert setup.actions.out_of_limits(setup.server.config) == 0


def test_estop_during_motion_holds_from_the_next_tick_until_released(setup):
    rng = np.random.default_rng(8)
    for _ in range(TRIALS):
        trial = estop_trial(setup.probe, setup.actions, PERIOD_S, rng, latched_ticks=10)
        assert trial.moving_after_response == 0, trial
        assert trial.latched_ticks >= 10, trial
        assert trial.resumed_s <= 5.0, trial  # released: the next ticks move again (slack for a loaded machine)


def test_checkpoint_swap_during_motion_misses_no_tick(setup, tiny_checkpoint, repo_root):
    """Issue 7: the running policy_server switches to a new checkpoint through LoadCheckpoint without
    dropping a control tick (the ticks during the load are holds), and acts with the new policy from the
    answer on."""
    new = repo_root / SHIPPED
    old_raw, new_raw = setup.expected_raw(tiny_checkpoint), setup.expected_raw(new)
    assert not np.allclose(old_raw, new_raw, atol=1e-3), "the two checkpoints should act differently here"
    trial = swap_trial(setup.probe, setup.actions, str(new), PERIOD_S)
    assert trial.ok, trial.message
    assert setup.server.runner.checkpoint == str(new)
    # Ticks keep coming (holds) while the new policy loads beside the running one: at least half the ticks
    # the load's duration holds were published during it (a server that stopped ticking for the load
    # publishes none, however short the load)...
    assert trial.commands_during_load >= 0.5 * trial.load_s / PERIOD_S - 1, trial
    # ... and no interval at the swap is longer than a tick that waited for the interpreter the load shares
    assert trial.max_gap_swap_s <= PERIOD_S + SWAP_SLACK_S, trial
    # ... the old policy acted until the swap, the new one after it (but for the tick in flight at the
    # answer, which read the old policy before the swap).
    assert trial.raw_before and len(trial.raw_after) >= 2
    np.testing.assert_allclose(trial.raw_before, np.broadcast_to(old_raw, (len(trial.raw_before), 7)), atol=1e-5)
    first = 1 if np.allclose(trial.raw_after[0], old_raw, atol=1e-5) else 0
    np.testing.assert_allclose(trial.raw_after[first:], np.broadcast_to(new_raw, (len(trial.raw_after) - first, 7)),
                               atol=1e-5)


"""The paper's motivating example on real simulated episodes: a rollout that reached and grasped but
failed to place must score lower (better) Reach and Grasp costs than one that never reached."""

import numpy as np

from sim_training.envs import make_env
from sim_training.stages.rollouts import STATE_OBS, replay
from stare_policy.stages import segment_privileged, stage_spec, summarize


def test_reached_and_grasped_but_dropped_beats_never_reached(real_demos):
    dataset = real_demos("PickCube-v1")
    demo = dataset.episode(0)
    spec = stage_spec("PickCube-v1")
    transport = segment_privileged(demo.arrays, spec)[0].entries()[spec.index("Transport")]

    dropped = demo.arrays["action"].copy()
    dropped[transport + 5:, -1] = 1.0  # open the gripper on the way to the goal
    away = np.zeros_like(demo.arrays["action"])
    away[:, 2], away[:, -1] = 0.3, 1.0  # drift upwards, gripper open: never gets near the cube

    env = make_env(dataset.spec, obs_mode=STATE_OBS)
    try:
        rollouts = {name: replay(env, dataset.spec, demo.seed, actions)
                    for name, actions in (("dropped", dropped), ("away", away))}
    finally:
        env.close()
    summaries = {}
    for name, arrays in rollouts.items():
        seg, m = segment_privileged(arrays, spec)
        summaries[name] = summarize(seg, m, spec, success=bool(arrays["flag.success"][-1]))
        assert not arrays["flag.success"][-1]
    dropped_s, away_s = summaries["dropped"], summaries["away"]
    assert dropped_s.furthest == "Transport" and away_s.furthest == "Reach"
    assert dropped_s.costs[0] < away_s.costs[0]  # Reach
    assert dropped_s.costs[1] < away_s.costs[1]  # Grasp
    assert dropped_s.stages[0].completed and not away_s.stages[0].completed

"""Stage-shaped rewards on the real simulator: single env, ManiSkill's batched vector env with partial
resets, AsyncVectorEnv workers, and (on a CUDA machine) a GPU batch."""

import numpy as np
import pytest
import torch

from sim_training.envs import make_env
from sim_training.envs.shaped_reward import ShapedReward, make_shaped_vector_env
from stare_policy.stages import segment_privileged, stage_spec

GAMMA = 0.95


def test_shaped_returns_telescope_on_a_replayed_demo(real_demos):
    demo = real_demos("StackCube-v1").episode(0)
    spec = stage_spec("StackCube-v1")
    env = ShapedReward(make_env("StackCube-v1", obs_mode="state_dict", reward_mode="sparse"), gamma=GAMMA)
    try:
        env.reset(seed=demo.seed)
        phi_start = float(env.phi[0])
        terms, stages = [], []
        for action in demo.arrays["action"]:
            _, reward, _, _, info = env.step(action[None])
            assert isinstance(reward, torch.Tensor) and reward.dtype == torch.float32
            assert reward.item() == pytest.approx(float(info["success"]) + info["shaping"].item(), abs=1e-6)
            terms.append(info["shaping"].item())
            stages.append(info["stage"].item())
        phi_end = info["stage_potential"].item()
    finally:
        env.close()
    discounted = sum(GAMMA ** t * f for t, f in enumerate(terms))
    assert discounted == pytest.approx(GAMMA ** len(terms) * phi_end - phi_start, abs=1e-9)
    assert np.all(np.diff(stages) >= 0) and stages[-1] == len(spec) - 1 and phi_end > len(spec) - 1
    # Online stages (state after step t, command of step t) match the offline labels of step t + 1.
    offline = segment_privileged(demo.arrays, spec)[0].entries()
    online = [stages.index(k) + 1 for k in range(1, len(spec))]
    assert all(abs(a - b) <= 1 for a, b in zip(online, offline[1:]))


def test_partial_resets_of_a_batched_vector_env_restart_the_stage():
    from mani_skill.vector.wrappers.gymnasium import ManiSkillVectorEnv

    base = ShapedReward(make_env("PickCube-v1", obs_mode="state_dict", max_episode_steps=4), gamma=GAMMA)
    env = ManiSkillVectorEnv(base, 1, ignore_terminations=True, auto_reset=True)
    try:
        env.reset(seed=0)
        first = base.phi.copy()
        for t in range(6):
            _, reward, _, truncated, info = env.step(torch.zeros(1, 7))
            if truncated.item():  # the step's own info moved to final_info; the env restarted
                assert info["final_info"]["stage"].item() == 0
                assert base.separator.stage[0] == 0 and base.phi[0] != first[0]  # a new initial state
            else:
                assert info["stage"].item() == 0 and torch.isfinite(reward).all()
    finally:
        env.close()


def test_async_vector_env_workers_shape_their_own_rewards():
    envs = make_shaped_vector_env("PushCube-v1", 2, gamma=GAMMA, obs_mode="state_dict", max_episode_steps=3)
    try:
        envs.reset(seed=[0, 1])
        seen = 0
        for _ in range(5):
            _, reward, _, _, info = envs.step(np.zeros((2, 7), np.float32))
            assert reward.shape == (2,) and np.isfinite(reward).all()
            if "stage" in info:
                seen += int(info["_stage"].sum())
                assert set(info["stage"][info["_stage"]]) <= {0, 1}
        assert seen >= 6  # steps that returned stage info (autoreset steps do not)
    finally:
        envs.close()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="GPU-batched simulation needs CUDA")
def test_gpu_batched_env_shapes_every_env():
    envs = make_shaped_vector_env("PickCube-v1", 8, sim_backend="gpu", obs_mode="state_dict", gamma=GAMMA)
    try:
        envs.reset(seed=0)
        for _ in range(3):
            _, reward, _, _, info = envs.step(torch.zeros(8, 7, device="cuda"))
            assert reward.shape == (8,) and reward.is_cuda and info["stage"].shape == (8,)
    finally:
        envs.close()

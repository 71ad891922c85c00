"""`stare-train ppo` / `sta-ppo` on the real simulator with a real (tiny, briefly trained) policy: GAE with
truncation bootstrapping, the env path, StA-PPO's shaped reward, end-to-end runs, resuming after a kill, and
one-line errors for bad input."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from tiny_checkpoint import tiny_checkpoint  # noqa: F401  (a fixture)

from data_parallel import torchrun
from sim_training.tasks import get_task
from sim_training.train.cli import main as train_main
from sim_training.train.ppo import PPOConfig, PPOError, check_config, collect, gae
from sim_training.train.ppo_envs import EnvStepper, make_rl_envs
from stare_policy.model.vla import action_temperature
from stare_policy.policy import VLAPolicy

REPO = Path(__file__).resolve().parents[3]
SMALL = ["num_envs=2", "rollout_steps=6", "max_episode_steps=4", "minibatch_size=6", "epochs=1", "sim_rate_steps=2",
         "num_threads=1"]


def _progress(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "progress.jsonl").read_text().splitlines()]


def _state(out: Path) -> dict:
    return json.loads((out / "trainer_state.json").read_text())


# ---- GAE on hand-made arrays -----------------------------------------------------------------------------------
def test_gae_bootstraps_a_truncation_from_the_final_value_and_a_termination_from_nothing():
    gamma, lam = 0.9, 0.5
    rewards = np.array([[1.0, 1.0], [2.0, 2.0], [0.5, 0.5]])
    values = np.array([[10.0, 10.0], [20.0, 20.0], [30.0, 30.0]])
    ended = np.array([[False, False], [True, True], [False, False]])  # both episodes end at t = 1 ...
    terminated = ended & np.array([True, False])  # ... env 0 by termination, env 1 by the time limit
    truncated = ended & np.array([False, True])
    final_values = np.where(truncated, 7.0, 0.0)
    last_value = np.array([40.0, 40.0])
    adv, ret = gae(rewards, values, terminated, truncated, final_values, last_value, gamma, lam)

    # t = 2: the rollout's end bootstraps from last_value in both envs.
    np.testing.assert_allclose(adv[2], 0.5 + gamma * 40.0 - 30.0)
    # t = 1: termination -> no successor value; truncation -> V(s_final), never V of the next episode's start.
    np.testing.assert_allclose(adv[1], [2.0 - 20.0, 2.0 + gamma * 7.0 - 20.0])
    # t = 0: an ordinary step; the trace runs on into t = 1 (same episode) but not across the episode end.
    delta0 = 1.0 + gamma * 20.0 - 10.0
    np.testing.assert_allclose(adv[0], delta0 + gamma * lam * adv[1])
    np.testing.assert_allclose(ret, adv + values)


def test_gae_with_lambda_one_gives_discounted_returns():
    rng = np.random.default_rng(0)
    rewards, values = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    no = np.zeros((5, 3), bool)
    _, ret = gae(rewards, values, no, no, np.zeros((5, 3)), np.zeros(3), 0.95, 1.0)
    expected = sum(0.95 ** t * rewards[t] for t in range(5))
    np.testing.assert_allclose(ret[0], expected)


# ---- the env path ---------------------------------------------------------------------------------------------
def test_rollout_bootstraps_truncated_episodes_from_their_final_observation(tiny_checkpoint):
    policy = VLAPolicy.load(tiny_checkpoint)
    spec = get_task("PickCube-v1")
    envs = make_rl_envs(spec, 1, stage_aware=False, gamma=0.9, max_episode_steps=3)
    try:
        stepper = EnvStepper(envs, spec, first_seed=500)
        finals = []
        step = stepper.step
        stepper.step = lambda actions: finals.append(step(actions)) or finals[-1]  # keep what the env returned
        obs = stepper.reset()
        rollout, _ = collect(policy, stepper, obs, 5, spec.instruction, 1.0, torch.Generator().manual_seed(0))
    finally:
        envs.close()
    assert rollout.truncated[:, 0].tolist() == [False, False, True, False, False]
    assert not rollout.terminated.any()  # a tiny policy does not succeed
    assert [(e.seed, e.length) for e in rollout.episodes] == [(500, 3)]
    assert stepper.next_seed == 502
    # The bootstrap value is V(s_final) of the ending step's observation, not V of the next episode's start.
    image, proprio = stepper.inputs(finals[2].final_obs)
    v_final = policy.step(image, spec.instruction, proprio).value.item()
    assert rollout.final_values[2, 0] == pytest.approx(v_final, abs=1e-6)
    assert rollout.final_values[2, 0] != pytest.approx(rollout.values[3, 0], abs=1e-6)
    adv, ret = gae(rollout.rewards, rollout.values, rollout.terminated, rollout.truncated, rollout.final_values,
                   rollout.last_value, 0.9, 0.95)
    assert np.isfinite(adv).all() and np.isfinite(ret).all()
    assert adv[2, 0] == pytest.approx(rollout.rewards[2, 0] + 0.9 * v_final - rollout.values[2, 0])


def test_a_policy_with_another_tasks_goal_input_collects_where_that_input_is_absent():
    """The StackCube checkpoint was fine-tuned from PickCube's and reads its goal position; StackCube has none,
    so the policy reads zeros there, as in SFT (the StackCube IPI run once stopped at its first PPO step on this)."""
    policy = VLAPolicy.load(REPO / "checkpoints" / "stack-cube-sft")
    spec = get_task("StackCube-v1")
    assert "goal_pos" in policy.processor.config.proprio_keys and "goal_pos" not in spec.goal_inputs
    envs = make_rl_envs(spec, 1, stage_aware=True, gamma=0.9, max_episode_steps=2)
    try:
        stepper = EnvStepper(envs, spec, first_seed=500)
        rollout, _ = collect(policy, stepper, stepper.reset(), 3, spec.instruction, 1.0,
                             torch.Generator().manual_seed(0))
    finally:
        envs.close()
    assert "goal_pos" not in rollout.proprio  # the policy's input path supplies it, at collection and update
    assert rollout.truncated[:, 0].tolist() == [False, True, False]
    assert np.isfinite(rollout.final_values).all() and rollout.final_values[1, 0] != 0.0
    assert np.isfinite(rollout.last_value).all()


def test_a_greedy_prefix_windowed_rollout_records_its_centres_and_the_update_takes_log_pi_on_them():
    """PPO with `window` and `greedy_prefix`: sampled bins stay near the greedy action, the gripper is the
    greedy one, and the update's log pi of the unchanged policy equals the rollout's (ratio 1), because it
    is taken on the windows and greedy prefixes the rollout sampled with."""
    policy = VLAPolicy.load(REPO / "checkpoints" / "stack-cube-sft-15k")
    spec = get_task("StackCube-v1")
    envs = make_rl_envs(spec, 1, stage_aware=True, gamma=0.9, max_episode_steps=10)
    temperature = action_temperature(3.0, 0.0)
    try:
        stepper = EnvStepper(envs, spec, first_seed=500)
        rollout, _ = collect(policy, stepper, stepper.reset(), 4, spec.instruction, temperature,
                             torch.Generator().manual_seed(0), window=2, greedy_prefix=True)
    finally:
        envs.close()
    assert rollout.centres.shape == rollout.bins.shape == (4, 1, 7)
    assert (rollout.bins - rollout.centres).abs().max() <= 2 and (rollout.bins != rollout.centres).any()
    inputs = policy.inputs(rollout.images[:, 0], spec.instruction, {k: v[:, 0] for k, v in rollout.proprio.items()})
    greedy = policy.step(rollout.images[:, 0], spec.instruction, {k: v[:, 0] for k, v in rollout.proprio.items()})
    assert torch.equal(rollout.centres[:, 0], greedy.bins), "with a greedy prefix the centres are the greedy action"
    assert torch.equal(rollout.bins[..., 6], rollout.centres[..., 6]), "the gripper is the greedy one"
    log_prob, _, _ = policy.evaluate(inputs, rollout.bins[:, 0], temperature, 2, rollout.centres[:, 0], True)
    torch.testing.assert_close(log_prob, rollout.log_probs[:, 0], atol=1e-3, rtol=1e-4)
    sampled_prefix, _, _ = policy.evaluate(inputs, rollout.bins[:, 0], temperature, 2, rollout.centres[:, 0])
    assert not torch.allclose(sampled_prefix, log_prob, atol=1e-3), "the prefix the tokens follow matters"
    with pytest.raises(PPOError, match="sampling window"):
        check_config(PPOConfig(window=-1))


def test_shaped_reward_only_in_sta_ppo():
    spec = get_task("PickCube-v1")
    actions = np.tile(np.array([[0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0]], np.float32), (1, 1))  # move down: Reach
    rewards = {}
    for stage_aware in (False, True):
        envs = make_rl_envs(spec, 1, stage_aware=stage_aware, gamma=0.99)
        try:
            envs.reset(seed=[3])
            seen = []
            for _ in range(3):
                _, reward, _, _, info = envs.step(actions)
                shaping = info.get("shaping", np.zeros(1))
                np.testing.assert_allclose(reward, info["sparse_reward"] + shaping, atol=1e-9)
                seen.append((reward.copy(), "shaping" in info, shaping.copy()))
        finally:
            envs.close()
        rewards[stage_aware] = seen
    assert not any(has for _, has, _ in rewards[False])
    assert all(has for _, has, _ in rewards[True])
    assert any(abs(shaping).max() > 1e-4 for _, _, shaping in rewards[True])  # the TCP moved: the Reach potential rose
    # Same seed and actions: the two rewards differ by exactly the shaping term.
    for (plain, _, _), (shaped, _, shaping) in zip(rewards[False], rewards[True]):
        np.testing.assert_allclose(shaped - shaping, plain, atol=1e-9)


# ---- end to end -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("algorithm", ["sta-ppo"])  # plain PPO runs end to end in the data-parallel test below
def test_short_run_writes_a_loadable_checkpoint_and_its_progress(tiny_checkpoint, tmp_path, capsys, algorithm):
    out = tmp_path / "run"
    args = [algorithm, "--checkpoint", str(tiny_checkpoint), "--task", "PickCube-v1", "--out", str(out), "--quiet",
            "iterations=2", *SMALL]
    if algorithm == "sta-ppo":  # and a greedy gripper token beside the sampled arm (log pi over the arm only)
        args.append("gripper_temperature=0")
    assert train_main(args) == 0
    rows = _progress(out)
    assert [(r["iteration"], r["env_steps"]) for r in rows] == [(1, 12), (2, 24)]
    for row in rows:
        for key in ("advantage_mean", "return_mean", "pg_loss", "v_loss", "approx_kl", "clip_frac", "entropy",
                    "env_steps_per_s", "sim_steps_per_s"):
            assert np.isfinite(row[key]), (key, row)
        assert row["episodes"] >= 2 and row["success_rate"] == 0.0
    shaping = [r["shaping_mean"] for r in rows]
    assert all(s == 0.0 for s in shaping) if algorithm == "ppo" else any(s != 0.0 for s in shaping)
    state = _state(out)
    assert state["algorithm"] == algorithm and state["iteration"] == 2 and state["next_seed"] > 100_000
    assert state["config"]["gripper_temperature"] == (0.0 if algorithm == "sta-ppo" else None)
    assert list((tmp_path / "run.logs").glob("events.out.tfevents.*")), "no TensorBoard log"
    policy = VLAPolicy.load(out)  # the value head is in the checkpoint and was trained
    before, after = load_file(str(tiny_checkpoint / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert any(k.startswith("value_head") for k in after)
    assert not torch.equal(before["value_head.2.weight"], after["value_head.2.weight"])
    assert policy.model.config == VLAPolicy.load(tiny_checkpoint).model.config
    assert "training" in capsys.readouterr().out
    # Rerunning a finished run resumes it and has nothing left to do.
    assert train_main(args) == 0
    assert "iteration 2/2" in capsys.readouterr().out and len(_progress(out)) == 2


def test_resumes_after_a_kill(tiny_checkpoint, tmp_path):
    out = tmp_path / "run"
    args = [sys.executable, "-m", "sim_training.train.cli", "ppo", "--checkpoint", str(tiny_checkpoint), "--task",
            "PickCube-v1", "--out", str(out), "--quiet", "save_every=1", *SMALL]
    proc = subprocess.Popen([*args, "iterations=1000"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 900  # a guard against hangs; a loaded machine is slow
    while not (out / "trainer_state.json").exists():
        assert proc.poll() is None and time.time() < deadline, proc.stdout.read().decode()[-2000:]
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    saved = _state(out)["iteration"]
    assert saved >= 1
    resumed = subprocess.run([*args, f"iterations={saved + 1}"], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"iteration {saved}/{saved + 1}" in resumed.stdout
    rows = _progress(out)
    assert [r["iteration"] for r in rows] == list(range(1, saved + 2))
    assert rows[-1]["env_steps"] == 12 * (saved + 1)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temporary checkpoint left behind"


# ---- bad input --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("override, message", [
    ("bogus=1", "unknown config key 'bogus'"),
    ("temperature=0", "temperature must be > 0"),
    ("rollout_steps=0", "rollout_steps must be positive"),
    ("clip=wide", "clip: expected float"),
    ("sim_backend=tpu", "sim_backend must be"),
])
def test_bad_config_is_one_line(tmp_path, capsys, override, message):
    args = ["ppo", "--checkpoint", str(REPO / "checkpoints" / "pick-cube-sft"), "--task", "PickCube-v1", "--out",
            str(tmp_path / "run"), override]
    assert train_main(args) == 1
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err


def test_bad_task_checkpoint_and_foreign_out_are_one_line(tmp_path, capsys):
    ckpt = str(REPO / "checkpoints" / "pick-cube-sft")
    assert train_main(["sta-ppo", "--checkpoint", ckpt, "--task", "NoSuchTask-v0", "--out", str(tmp_path / "a")]) == 1
    assert "unknown task" in capsys.readouterr().err
    assert train_main(["ppo", "--checkpoint", str(tmp_path), "--task", "PickCube-v1", "--out", str(tmp_path / "b")]) == 1
    assert "--checkpoint" in capsys.readouterr().err
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "file").write_text("mine")
    assert train_main(["ppo", "--checkpoint", ckpt, "--task", "PickCube-v1", "--out", str(tmp_path / "other")]) == 1
    assert "not a resumable ppo run" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert train_main(["ppo", "--checkpoint", ckpt, "--task", "PickCube-v1", "--out", str(tmp_path / "c"),
                           "sim_backend=gpu"]) == 1
        assert "needs CUDA" in capsys.readouterr().err


def test_two_ranks_split_the_envs_and_stay_in_sync(tiny_checkpoint, tmp_path):
    out = tmp_path / "run"
    run = torchrun(["ppo", "--checkpoint", str(tiny_checkpoint), "--task", "PickCube-v1", "--out", str(out),
                    "--quiet", "iterations=2", *SMALL, "sim_rate_steps=0"])  # num_envs=2: one env per rank
    assert run.returncode == 0, run.stderr[-3000:]
    state = _state(out)
    assert state["world_size"] == 2 and len(set(state["rank_fingerprints"])) == 1  # identical weights on both ranks
    rows = _progress(out)
    assert [(r["iteration"], r["env_steps"]) for r in rows] == [(1, 12), (2, 24)]
    # episodes of 4 steps, 6 steps per env and iteration: each rank finishes at least one per iteration
    assert all(r["episodes"] >= 2 for r in rows) and all(r["shaping_mean"] == 0.0 for r in rows)  # PPO: no shaping
    assert state["next_seed"] >= 100_000 + 4
    VLAPolicy.load(out)

"""`stare-eval` on a real checkpoint in the real simulator: JSON, table, plot, playable videos; the GPU
code path (batched waves) on a CPU-batched env; the Wilson interval."""

import dataclasses
import shutil
import json

import imageio.v2 as imageio
import numpy as np
import pytest

from sim_training.evaluation.cli import main as eval_main
from sim_training.evaluation.paired import read_outcomes
from sim_training.evaluation.report import wilson_interval
from sim_training.evaluation.rollout import run_async, run_waves
from sim_training.tasks import TASKS


def test_stare_eval_writes_json_table_plot_and_videos(tiny_checkpoint, tmp_path, capsys):
    out, summary = tmp_path / "eval", tmp_path / "summary.json"
    code = eval_main(["--checkpoint", str(tiny_checkpoint), "--task", "PickCube-v1", "--episodes", "2", "--workers",
                      "2", "--videos", "1", "--out", str(out), "--json", str(summary), "--quiet"])
    assert code == 0
    data = json.loads(summary.read_text())
    assert {"task", "episodes", "success_rate", "ci95", "mean_length", "stage_completion", "seeds"} <= set(data)
    assert data["task"] == "PickCube-v1" and data["episodes"] == 2 and data["seeds"] == [1_000_000, 1_000_001]
    assert 0 <= data["ci95"][0] <= data["success_rate"] <= data["ci95"][1] <= 1
    assert [e["seed"] for e in data["per_episode"]] == [1_000_000, 1_000_001]
    assert all(1 <= e["length"] <= TASKS["PickCube-v1"].max_episode_steps for e in data["per_episode"])
    assert data["mean_length"] == pytest.approx(np.mean([e["length"] for e in data["per_episode"]]))
    assert list(data["stage_completion"]) == data["stages"] and data["stages"][0] == "Reach"
    task, episodes = read_outcomes([summary])  # what stare-compare pairs by seed
    assert task == "PickCube-v1" and sorted(episodes) == data["seeds"]
    assert sum(e.success for e in episodes.values()) == round(data["success_rate"] * 2)
    table = (out / "results.md").read_text()
    assert table.startswith("| task | episodes | success | 95 % CI | mean length |") and "| PickCube-v1 | 2 |" in table
    assert table in capsys.readouterr().out
    assert (out / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((out / "PickCube-v1.json").read_text())["seeds"] == data["seeds"]
    (video,) = data["videos"]
    frames = np.stack(imageio.mimread(video, memtest=False))
    first = data["per_episode"][0]
    assert frames.shape == (first["length"], 256, 256, 3)


def test_workers_take_the_next_seed_when_an_episode_ends(tiny_checkpoint):
    from sim_training.evaluation.stages import make_eval_env
    from stare_policy.policy import VLAPolicy

    spec = dataclasses.replace(TASKS["PickCube-v1"], max_episode_steps=3)
    env, names = make_eval_env(spec, 2)
    policy = VLAPolicy.load(tiny_checkpoint)

    def act(images, proprio):
        return policy.act(images, spec.instruction, proprio)

    try:
        records, stats = run_async(env, spec, act, [7, 8, 9, 7], video_episodes=4)
    finally:
        env.close()
    assert names and [r.seed for r in records] == [7, 8, 9, 7]
    # An episode ends at the time limit or at its first success (some seeds put the goal on the cube).
    assert all(1 <= r.length <= 3 and (r.length == 3 or r.success) for r in records)
    assert stats.env_steps == sum(r.length for r in records)
    assert records[0].length == records[3].length
    assert all(r.furthest_stage is not None for r in records)
    # A seed replays exactly, whichever worker runs it and whatever ran there before.
    for a, b in zip(records[0].frames, records[3].frames):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(records[0].frames[0], records[1].frames[0])


def test_worker_groups_taking_turns_play_the_same_episodes_as_lockstep(tiny_checkpoint):
    from sim_training.evaluation.stages import make_eval_env
    from stare_policy.policy import VLAPolicy

    spec = dataclasses.replace(TASKS["PickCube-v1"], max_episode_steps=3)
    policy = VLAPolicy.load(tiny_checkpoint)
    batches = []

    def act(images, proprio):
        batches.append(len(images))
        return policy.act(images, spec.instruction, proprio)

    seeds = [7, 8, 9, 10, 7]
    lockstep_env, _ = make_eval_env(spec, 2)
    groups = [make_eval_env(spec, 1)[0], make_eval_env(spec, 1)[0]]
    try:
        lockstep, lockstep_stats = run_async(lockstep_env, spec, act, seeds, video_episodes=5)
        batches.clear()
        grouped, grouped_stats = run_async(groups, spec, act, seeds, video_episodes=5)
    finally:
        for env in (lockstep_env, *groups):
            env.close()
    assert set(batches) == {1}  # the policy acted for one group at a time
    assert [r.seed for r in grouped] == seeds
    assert grouped_stats.env_steps == sum(r.length for r in grouped)
    for a, b in zip(lockstep, grouped):
        assert (a.length, a.success) == (b.length, b.success)
        assert len(b.frames) == b.length
        np.testing.assert_array_equal(a.frames[0], b.frames[0])  # each seed starts where it does in lockstep
    for a, b in zip(grouped[0].frames, grouped[4].frames):  # and replays exactly in either group
        np.testing.assert_array_equal(a, b)


def test_the_batched_gpu_code_path_on_a_cpu_batch(tiny_checkpoint):
    from mani_skill.vector.wrappers.gymnasium import ManiSkillVectorEnv

    from sim_training.envs import make_env
    from stare_policy.policy import VLAPolicy

    spec = dataclasses.replace(TASKS["PickCube-v1"], max_episode_steps=4)
    env = ManiSkillVectorEnv(make_env(spec), 1, ignore_terminations=True, auto_reset=True)
    policy = VLAPolicy.load(tiny_checkpoint)
    seen = []
    try:
        records, stats = run_waves(env, spec, lambda im, pr: policy.act(im, spec.instruction, pr), [5, 6],
                                   video_episodes=1, on_episode=seen.append)
    finally:
        env.close()
    assert [r.seed for r in records] == [5, 6] and seen == records
    assert [r.length for r in records] == [4, 4] and stats.env_steps == 8
    assert len(records[0].frames) == 4 and not records[1].frames


@pytest.mark.parametrize("wins, n, lo, hi", [(0, 10, 0.0, 0.2775), (5, 10, 0.2366, 0.7634), (10, 10, 0.7225, 1.0),
                                            (60, 100, 0.5020, 0.6906)])
def test_wilson_interval(wins, n, lo, hi):
    assert wilson_interval(wins, n) == pytest.approx((lo, hi), abs=1e-4)


def test_bad_input_is_one_line(tiny_checkpoint, tmp_path, capsys):
    with pytest.raises(SystemExit):
        eval_main(["--checkpoint", str(tiny_checkpoint), "--task", "NoSuchTask-v0"])
    assert "unknown task 'NoSuchTask-v0'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        eval_main(["--checkpoint", str(tiny_checkpoint), "--task", "PickCube-v1", "--episodes", "0"])
    assert "--episodes must be positive" in capsys.readouterr().err
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{")
    assert eval_main(["--checkpoint", str(tmp_path / "broken"), "--task", "PickCube-v1"]) == 1
    err = capsys.readouterr().err.strip()
    assert "config.json is corrupt" in err and len(err.splitlines()) == 1


def test_a_checkpoint_trained_through_another_camera_is_refused(tiny_checkpoint, tmp_path, capsys):
    moved = tmp_path / "old-camera"
    shutil.copytree(tiny_checkpoint, moved)
    config = json.loads((moved / "config.json").read_text())
    for task in config["tasks"]:
        task["camera"] = {"name": "base_camera", "width": 128, "height": 128}  # ManiSkill3's default pose
    (moved / "config.json").write_text(json.dumps(config))
    assert eval_main(["--checkpoint", str(moved), "--task", "PickCube-v1", "--episodes", "1", "--quiet"]) == 1
    err = capsys.readouterr().err.strip()
    assert "seen through" in err and "would not measure the policy" in err and len(err.splitlines()) == 1

"""`stare-curve`: evaluation results of checkpoints at several budgets, read back and drawn."""

import json

from sim_training.evaluation.curve import main
from sim_training.evaluation.report import summarize, write_json
from sim_training.evaluation.rollout import EpisodeRecord


def _result(tmp_path, name, wins, env_steps=None, seed_start=1_000_000, task="StackCube-v1"):
    """A stare-eval JSON (written as stare-eval writes it) of a checkpoint directory whose trainer took env_steps."""
    ckpt = tmp_path / name
    ckpt.mkdir()
    if env_steps is not None:
        (ckpt / "trainer_state.json").write_text(json.dumps({"algorithm": "ppo", "env_steps": env_steps}))
    records = [EpisodeRecord(seed_start + i) for i in range(10)]
    for r in records[:wins]:
        r.success = True
    path = tmp_path / f"{name}.json"
    write_json(path, summarize(task, records, {}, {"checkpoint": str(ckpt)}).to_dict())
    return str(path)


def test_points_are_placed_at_the_checkpoints_env_steps(tmp_path, capsys):
    sft = _result(tmp_path, "sft", 5)
    ppo = [_result(tmp_path, f"ppo-{n}", w, n) for n, w in ((9600, 7), (4800, 6))]
    out = tmp_path / "curve.png"
    assert main(["--series", "PPO", sft, *ppo, "--out", str(out)]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG"
    points = json.loads(out.with_suffix(".json").read_text())["series"]["PPO"]
    assert [(p["env_steps"], p["success_rate"]) for p in points] == [(0, 0.5), (4800, 0.6), (9600, 0.7)]
    assert "PPO: 0: 50% " in capsys.readouterr().out


def test_unlike_evaluations_are_refused(tmp_path, capsys):
    a = _result(tmp_path, "a", 5)
    other_seeds = _result(tmp_path, "b", 5, 4800, seed_start=500_000)
    other_task = _result(tmp_path, "c", 5, 4800, task="PickCube-v1")
    out = str(tmp_path / "x.png")
    assert main(["--series", "A", a, "--series", "B", other_seeds, "--out", out]) == 1
    assert "different seeds" in capsys.readouterr().err
    assert main(["--series", "A", a, other_task, "--out", out]) == 1
    assert "different tasks" in capsys.readouterr().err
    assert main(["--series", "A", str(tmp_path / "missing.json"), "--out", out]) == 1
    assert "cannot read" in capsys.readouterr().err
    assert main(["--series", "A", "--out", out]) == 1
    assert "no evaluation JSON" in capsys.readouterr().err

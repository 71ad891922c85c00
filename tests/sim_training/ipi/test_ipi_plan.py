"""What `stare-ipi` plans to run, and the config errors it raises before running anything."""

import json

import pytest

from sim_training.ipi.cli import main as ipi_main, parse
from sim_training.ipi.config import EvalSection, IPIConfig, RolloutsSection
from stare_policy.typed_config import to_dict
from sim_training.ipi.methods import METHODS, label, phase_chains
from sim_training.ipi.pipeline import Pipeline, plan

CKPT = "<a checkpoint directory>"


def test_ipi_alone_is_sft_then_sta_tpo_then_sta_ppo_each_evaluated():
    assert [p.name for p in plan(["sft", "ipi"])] == [
        "sft", "eval:sft", "rollouts", "sft+sta-tpo", "eval:sft+sta-tpo", "sft+sta-tpo+sta-ppo",
        "eval:sft+sta-tpo+sta-ppo"]


def test_the_ablation_runs_each_shared_phase_once_parents_first():
    phases = plan(list(METHODS))
    names = [p.name for p in phases]
    assert len(names) == len(set(names))
    assert names.count("rollouts") == 1 and names.count("sft+sta-tpo") == 1
    for p in phases:  # every checkpoint a phase starts from was made before it
        if p.kind != "eval" and len(p.chain) > 1:
            assert names.index("+".join(("sft", *p.chain[:-1]))) < names.index(p.name)
    assert set(phase_chains(list(METHODS))) == {c[:i] for c in METHODS.values() for i in range(len(c) + 1)}
    # interaction-only baselines need no rollouts
    assert "rollouts" not in [p.name for p in plan(["sft", "sft-ppo", "sft-sta-ppo"])]
    assert label("ipi") == "SFT -> StA-TPO -> StA-PPO (IPI)"


@pytest.mark.parametrize("args, message", [
    ([], "task: give --task"),
    (["--task", "NoSuchTask-v9", "--sft-checkpoint", CKPT], "task:"),
    (["--task", "PickCube-v1"], "SFT needs `demos`"),
    (["--task", "PickCube-v1", "--sft-checkpoint", CKPT, "sft.stepz=3"], "unknown config key sft.stepz"),
    (["--task", "PickCube-v1", "--sft-checkpoint", CKPT, "ppo.num_envs=many"], "ppo.num_envs: expected int"),
    (["--task", "PickCube-v1", "--sft-checkpoint", CKPT, "rollouts.temperature=0"], "rollouts.temperature"),
    (["--task", "PickCube-v1", "--sft-checkpoint", CKPT, "eval.episodez=3"], "unknown config key"),
    (["--task", "PickCube-v1", "--sft-checkpoint", CKPT, "rollouts.window=-2"], "rollouts.window must be >= 0"),
    (["--task", "PickCube-v1", "--sft-checkpoint", CKPT, "ppo.window=-2"], "sampling window"),
    (["--task", "PickCube-v1", "--sft-checkpoint", CKPT, "rollouts.gripper_temperature=0", "tpo.gripper_temperature=1"],
     "tpo.gripper_temperature (1) must equal rollouts.gripper_temperature (0"),
    (["--task", "PickCube-v1", "--demos", "/nonexistent/demos"], "demos:"),
    (["--task", "PickCube-v1", "--sft-checkpoint", "/nonexistent/ckpt"], "sft_checkpoint: /nonexistent/ckpt"),
])
def test_bad_configs_are_refused_with_the_key_named(tmp_path, capsys, args, message):
    (tmp_path / "ckpt").mkdir()
    args = [str(tmp_path / "ckpt") if a == CKPT else a for a in args]
    assert ipi_main(["--out", str(tmp_path / "run"), *args]) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists(), "nothing is written for a refused config"


def _finished_run(out, cfg) -> None:
    out.mkdir()
    phases = {p.name: {"status": "done", "seconds": 1.0} for p in plan(list(METHODS))}
    (out / "ipi.json").write_text(json.dumps({"config": to_dict(cfg), "phases": phases}))


def _redone(out, cfg) -> dict[str, bool]:
    pipe = Pipeline(cfg, out, list(METHODS), log=lambda text: None)
    return {name: rec["status"] != "done" for name, rec in pipe.state["phases"].items()}


def test_a_changed_config_redoes_only_the_phases_it_can_change(tmp_path):
    before = IPIConfig(task="PickCube-v1", sft_checkpoint=str(tmp_path), tpo={"lr": 2e-5})
    _finished_run(tmp_path / "tpo", before)
    redone = _redone(tmp_path / "tpo", IPIConfig(task="PickCube-v1", sft_checkpoint=str(tmp_path), tpo={"lr": 3e-6}))
    assert sorted(n for n, r in redone.items() if r) == sorted(
        f"{e}{c}" for e in ("", "eval:") for c in ("sft+tpo", "sft+sta-tpo", "sft+tpo+ppo", "sft+sta-tpo+sta-ppo"))

    _finished_run(tmp_path / "eval", before)
    redone = _redone(tmp_path / "eval", IPIConfig(task="PickCube-v1", sft_checkpoint=str(tmp_path),
                                                  tpo={"lr": 2e-5}, eval=EvalSection(episodes=7)))
    assert all(r == name.startswith("eval:") for name, r in redone.items())

    _finished_run(tmp_path / "rollouts", before)
    redone = _redone(tmp_path / "rollouts", IPIConfig(task="PickCube-v1", sft_checkpoint=str(tmp_path),
                                                      tpo={"lr": 2e-5}, rollouts=RolloutsSection(per_state=2)))
    assert redone["rollouts"] and redone["eval:sft+sta-tpo+sta-ppo"]
    assert not redone["sft+ppo"] and not redone["eval:sft"]

    _finished_run(tmp_path / "gap", before)  # a key of the shared tpo section that TPO alone reads
    redone = _redone(tmp_path / "gap", IPIConfig(task="PickCube-v1", sft_checkpoint=str(tmp_path),
                                                 tpo={"lr": 2e-5, "success_step_gap": 1}))
    assert sorted(n for n, r in redone.items() if r) == sorted(
        f"{e}{c}" for e in ("", "eval:") for c in ("sft+tpo", "sft+tpo+ppo"))

    _finished_run(tmp_path / "free", before)
    assert not any(_redone(tmp_path / "free", IPIConfig(task="PickCube-v1", sft_checkpoint=str(tmp_path),
                                                        tpo={"lr": 2e-5}, eval=EvalSection(workers=1))).values())


def test_a_redone_checkpoint_is_trained_afresh_not_resumed(tmp_path):
    _finished_run(tmp_path / "run", IPIConfig(task="PickCube-v1", sft_checkpoint=str(tmp_path), ppo={"lr": 1e-6}))
    pipe = Pipeline(IPIConfig(task="PickCube-v1", sft_checkpoint=str(tmp_path), ppo={"lr": 2e-6}), tmp_path / "run",
                    list(METHODS), log=lambda text: None)
    configs = pipe._write_configs()
    argv = {p.name: pipe._argv(p, configs)[1] for p in pipe.phases if p.kind != "sft"}
    assert "--overwrite" in argv["sft+ppo"] and "--overwrite" in argv["sft+tpo+ppo"]
    assert "--overwrite" not in argv["eval:sft+ppo"]
    assert pipe.record("sft+tpo")["status"] == "done", "TPO does not read the PPO section"


def test_a_failed_phase_is_retried_on_a_rerun_and_blocks_only_what_needs_it(tmp_path):
    cfg = IPIConfig(task="PickCube-v1", demos=("d",))
    pipe = Pipeline(cfg, tmp_path / "run", list(METHODS))
    pipe.record("sft+tpo")["status"] = "failed"  # e.g. the rollouts gave TPO no pairs
    blocked = {p.name: pipe._blocked_by(p) for p in pipe.phases}
    assert blocked["sft+tpo"] is None, "a failed phase is tried again"
    assert blocked["eval:sft+tpo"] == blocked["sft+tpo+ppo"] == "sft+tpo"
    assert blocked["sft+sta-tpo"] is None and blocked["sft+ppo"] is None
    pipe.record("sft")["status"] = "failed"
    blocked = {p.name: pipe._blocked_by(p) for p in pipe.phases}
    assert blocked["sft"] is None and blocked["rollouts"] == blocked["eval:sft"] == "sft"


def test_a_phase_that_raises_is_recorded_as_failed_and_the_others_still_run(tmp_path, monkeypatch, capsys):
    """An exception inside one phase's command (a bug, not a refused input) must not end the whole run."""
    pipe = Pipeline(IPIConfig(task="PickCube-v1", sft_checkpoint=CKPT), tmp_path / "run", ["sft", "sft-tpo", "sft-ppo"])
    ran = []

    def phase_command(phase, configs):
        def main(argv):
            ran.append(phase.name)
            if phase.name == "sft+tpo":
                raise ValueError("a bug in TPO")
            return 0
        return main, [phase.kind]

    monkeypatch.setattr(pipe, "_argv", phase_command)
    monkeypatch.setattr(pipe, "_env_steps", lambda phase: 0)
    assert pipe.run() == 1
    assert "ValueError: a bug in TPO" in capsys.readouterr().err
    assert ran == ["eval:sft", "rollouts", "sft+tpo", "sft+ppo", "eval:sft+ppo"]
    phases = json.loads((tmp_path / "run" / "ipi.json").read_text())["phases"]
    assert phases["sft+tpo"] == {**phases["sft+tpo"], "status": "failed", "reason": "raised ValueError: a bug in TPO"}
    assert phases["eval:sft+tpo"]["status"] == "failed" and phases["eval:sft+ppo"]["status"] == "done"


def test_ppo_success_is_taken_over_the_last_ended_episodes_not_per_iteration():
    from sim_training.ipi.report import windowed_success

    rows = [{"env_steps": 100, "episodes": 0, "success_rate": None},
            {"env_steps": 200, "episodes": 2, "success_rate": 0.5},
            {"env_steps": 300, "episodes": 2, "success_rate": 1.0},
            {"env_steps": 400, "episodes": 1, "success_rate": 0.0}]
    assert windowed_success(rows, window=20) == [(200, 0.5), (300, 0.75), (400, 0.6)]
    assert windowed_success(rows, window=3) == [(200, 0.5), (300, 0.75), (400, 2 / 3)]  # whole iterations


def test_a_curve_holds_a_target_from_its_last_rise_to_stay():
    from sim_training.ipi.report import holds_from

    points = [(100, 0.5), (200, 0.8), (300, 0.6), (400, 0.75), (500, 0.9)]
    assert holds_from(points, 0.7) == 400  # 200 rose above it, but 300 fell back
    assert holds_from(points, 0.5) == 100 and holds_from(points, 0.95) is None


def test_the_moving_average_starts_with_what_it_has():
    from sim_training.ipi.report import moving_average

    assert moving_average([(1, 0.0), (2, 1.0), (3, 1.0), (4, 0.0)], window=2) == [(1, 0.0), (2, 0.5), (3, 1.0), (4, 0.5)]


def test_overrides_written_after_methods_stay_overrides(capsys):
    args = parse(["--out", "runs/x", "--methods", "sft-sta-ppo", "sft-ppo", "ppo.lr=5e-7", "ppo.iterations=144"])
    assert args.methods == ["sft-sta-ppo", "sft-ppo"] and args.overrides == ["ppo.lr=5e-7", "ppo.iterations=144"]
    for bad, message in ((["--methods", "nope"], "invalid choice 'nope'"), (["--methods", "eval.episodes=3"], "no method")):
        with pytest.raises(SystemExit):
            parse(["--out", "runs/x", *bad])
        assert message in capsys.readouterr().err


def test_section_overrides_keep_numbers_numbers():
    """YAML 1.1 reads `5e-7` as a string; the section would echo it so in ipi.json."""
    from sim_training.ipi.cli import with_sections
    from sim_training.ipi.config import IPIConfig

    cfg = with_sections(IPIConfig(), ["ppo.lr=5e-7", "ppo.iterations=3", "tpo.beta=1.0e1", "rollouts.workers=2"])
    assert cfg.ppo["lr"] == 5e-7 and isinstance(cfg.ppo["lr"], float)
    assert cfg.ppo["iterations"] == 3 and cfg.tpo["beta"] == 10.0

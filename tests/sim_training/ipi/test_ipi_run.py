"""`stare-ipi` end to end on the real simulator with a tiny budget: SFT on real demos, real rollouts, StA-TPO,
StA-PPO and an evaluation after each; killed (SIGKILL) in the middle of a phase, then resumed."""

import json
import os
import signal
import subprocess
import sys
import time

from tiny_checkpoint import TINY

from sim_training.ipi.cli import main as ipi_main

BUDGET = [*(f"sft.{o}" for o in TINY), "sft.steps=2", "sft.val_every=2",
          "rollouts.initial_states=1", "rollouts.per_state=2", "rollouts.max_steps=6",
          "tpo.steps=2", "tpo.steps_per_side=3", "tpo.num_threads=1",
          "ppo.iterations=2", "ppo.num_envs=2", "ppo.rollout_steps=6", "ppo.max_episode_steps=4",
          "ppo.minibatch_size=6", "ppo.epochs=1", "ppo.sim_rate_steps=2", "ppo.num_threads=1",
          "eval.episodes=1", "eval.workers=1"]


def test_ipi_runs_every_phase_and_resumes_after_a_kill_mid_phase(real_demos, tmp_path, capsys):
    out = tmp_path / "ipi"
    args = ["--task", "PickCube-v1", "--demos", str(real_demos("PickCube-v1").root), "--out", str(out), "--quiet",
            *BUDGET]
    proc = subprocess.Popen([sys.executable, "-m", "sim_training.ipi.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    deadline, seen = time.monotonic() + 600, []
    try:
        for line in proc.stdout:  # kill it as StA-PPO (phase 6 of 7) starts, with 5 phases done
            seen.append(line)
            if "phase 6/7: sft+sta-tpo+sta-ppo" in line or time.monotonic() > deadline:
                time.sleep(3.0)
                break
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert any("phase 6/7" in line for line in seen), "".join(seen[-20:])
    state = json.loads((out / "ipi.json").read_text())
    done = [name for name, rec in state["phases"].items() if rec["status"] == "done"]
    assert done == ["sft", "eval:sft", "rollouts", "sft+sta-tpo", "eval:sft+sta-tpo"]
    sft_seconds = state["phases"]["sft"]["seconds"]

    capsys.readouterr()
    assert ipi_main(args) == 0
    printed = capsys.readouterr().out
    assert "phase 1/7" not in printed and "phase 6/7: sft+sta-tpo+sta-ppo" in printed, "only what was left ran"
    state = json.loads((out / "ipi.json").read_text())
    assert all(rec["status"] == "done" for rec in state["phases"].values()) and len(state["phases"]) == 7
    assert state["phases"]["sft"]["seconds"] == sft_seconds
    ppo = json.loads((out / "sft+sta-tpo+sta-ppo" / "trainer_state.json").read_text())
    assert ppo["algorithm"] == "sta-ppo" and ppo["iteration"] == 2
    assert state["phases"]["sft+sta-tpo+sta-ppo"]["env_steps"] == ppo["env_steps"] == 24
    assert state["phases"]["rollouts"]["env_steps"] > 0

    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["methods"]) == ["sft", "ipi"]
    for method in summary["methods"].values():
        assert method["status"] == "done" and method["episodes"] == 1 and 0 <= method["success_rate"] <= 1
    assert summary["methods"]["ipi"]["env_steps"] == 24 + state["phases"]["rollouts"]["env_steps"]
    paired = summary["methods"]["ipi"]["against_sft"]  # the same seed, episode by episode
    assert paired["episodes"] == 1 and paired["won"] + paired["lost"] + paired["both"] + paired["neither"] == 1
    assert paired["method_rate"] == summary["methods"]["ipi"]["success_rate"]
    assert paired["baseline_rate"] == summary["methods"]["sft"]["success_rate"]
    assert "against_sft" not in summary["methods"]["sft"]
    if paired["both"]:
        assert paired["method_length"] > 0 and paired["baseline_length"] > 0
    assert "| SFT -> StA-TPO -> StA-PPO (IPI) |" in (out / "summary.md").read_text()
    for name in ("curves_ppo.png", "curves_tpo.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

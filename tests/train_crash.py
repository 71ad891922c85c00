"""kill -9 injected into training commands (issue 8, item 5), shared by
tests/sim_training/train/test_crash_safety.py (a bounded sample) and benchmarks/crash_safety.py (the long run).

One command line (`stare-train ...`) is run again and again on the same --out, each run killed with SIGKILL:
either right inside a checkpoint write (as soon as `atomic_directory`'s temporary directory appears, plus a
random delay) or at a random moment. After every kill: the checkpoint in --out loads (`checkpoint.load`,
trainer state, optimizer), holds no torn file, and never goes back in steps; the next run resumes from
exactly its step; a last run without a kill finishes and leaves no temporary directory behind.

Runs are forked from this process after the imports, so a run costs its work and not an interpreter start
(~20 s on a loaded 2-core machine); the code path is `stare-train`'s `main`. The parent only forks, waits
and kills; the checks run in forked children too, so the parent's torch never starts a thread pool that a
fork would inherit broken."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

RESUMED = re.compile(r"(?:step|iteration) (\d+)/(\d+)")
PPO_SMALL = ["num_envs=2", "rollout_steps=4", "max_episode_steps=4", "minibatch_size=4", "epochs=1", "sim_rate_steps=2",
             "num_threads=1"]
"""The smallest PPO run (two CPU env workers, 8 env steps per iteration)."""


@dataclass
class Kill:
    run: int
    mode: str
    after_s: float
    """Seconds from the run's start to the kill."""
    seconds: float = 0.0
    """The run's wall time (to its kill or its end)."""
    in_write: bool = False
    """The kill left a temporary checkpoint directory: it landed inside a checkpoint write."""
    killed: bool = False
    saved: int | None = None
    """The step (iteration) of the checkpoint in --out after the kill; None before the first save."""
    resumed_from: int | None = None
    problems: list[str] = field(default_factory=list)


def _fork(work, log: Path) -> int:
    pid = os.fork()
    if pid == 0:  # the child: never returns into the parent's code (pytest, atexit)
        code = 70
        try:
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            import torch

            torch.set_num_threads(1)
            code = int(work() or 0)
        except BaseException as err:  # noqa: BLE001
            os.write(2, f"{type(err).__name__}: {err}\n".encode())
        finally:
            os._exit(code)
    return pid


_exited: dict[int, int] = {}


def _poll(pid: int) -> int | None:
    """The child's exit code once it has ended (reaped once, remembered)."""
    if pid not in _exited:
        done, status = os.waitpid(pid, os.WNOHANG)
        if not done:
            return None
        _exited[pid] = os.waitstatus_to_exitcode(status)
    return _exited[pid]


def _wait(pid: int, timeout_s: float) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        code = _poll(pid)
        if code is not None:
            return code
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    raise TimeoutError(f"run {pid} did not finish in {timeout_s} s")


def _stale(out: Path) -> list[Path]:
    return sorted(out.parent.glob(f".{out.name}.tmp-*")) + sorted(out.parent.glob(f"{out.name}.old"))


def inspect(out: Path, step_key: str) -> dict:
    """(In a child) what a later run or a user finds in --out: does it load, which step, torn files."""
    from safetensors.torch import load_file

    from sim_training.train.state import read_train_state
    from stare_policy.model import checkpoint
    from stare_policy.policy import VLAPolicy

    if not out.exists():
        return {"exists": False}
    torn = []
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        try:
            if path.suffix == ".safetensors":
                load_file(str(path))
            elif path.suffix == ".json":
                json.loads(path.read_text())
            elif path.suffix == ".jsonl":
                [json.loads(line) for line in path.read_text().splitlines()]
        except Exception as err:  # noqa: BLE001
            torn.append(f"{path.relative_to(out)}: {type(err).__name__}: {err}")
    ckpt = checkpoint.load(out)
    VLAPolicy.load(out)
    state = read_train_state(out)
    moments = load_file(str(out / "optimizer.safetensors"))
    grouped = sum(len(g["params"]) for g in state["optimizer"]["param_groups"])
    if not moments or max(int(key.split(".")[0]) for key in moments) >= grouped:
        torn.append(f"optimizer moments {sorted(moments)[:3]}... for {grouped} parameters")
    rows = []
    if (out / "progress.jsonl").is_file():
        rows = [json.loads(line)[step_key] for line in (out / "progress.jsonl").read_text().splitlines()]
    return {"exists": True, "step": state[step_key], "torn": torn, "progress": rows}


def _check(out: Path, step_key: str, log: Path) -> dict:
    result = out.parent / "inspect.json"
    result.unlink(missing_ok=True)

    def work() -> int:
        result.write_text(json.dumps(inspect(out, step_key)))
        return 0

    code = _wait(_fork(work, log), 300)
    if code != 0 or not result.exists():
        return {"exists": True, "error": log.read_text()[-1500:]}
    return json.loads(result.read_text())


def crash_resume(argv: list[str], out: Path, rng: np.random.Generator, kills: int, mode: str, step_key: str = "step",
                 target: int | None = None, random_s: tuple[float, float] = (0.3, 3.0), write_delay_s: float = 0.03,
                 timeout_s: float = 600) -> tuple[list[Kill], list[str]]:
    """Run `stare-train argv` `kills` times with a SIGKILL each (`mode`: 'write' or 'random'), then once to
    the end. Returns the kills and the problems of the final run (empty: it finished as it should)."""
    import importlib

    import stare_policy.policy  # noqa: F401  (what `inspect` needs, imported once before the forks)
    from sim_training.train.cli import ALGORITHMS
    from sim_training.train.cli import main as train_main

    importlib.import_module(ALGORITHMS[argv[0]][0])
    results: list[Kill] = []
    saved: int | None = None
    final_problems: list[str] = []
    for run in range(kills + 1):
        last = run == kills
        log = out.parent / f"run{run}.log"
        t0, before = time.monotonic(), set(_stale(out))
        pid = _fork(lambda: train_main(argv), log)
        kill = Kill(run, mode, 0.0)
        if not last:
            if mode == "write":  # inside the first or second write (the second while --out has none yet)
                nth, seen = (2 if saved is None else int(rng.integers(1, 3))), set()
                while len(seen) < nth and time.monotonic() - t0 < timeout_s and _poll(pid) is None:
                    seen |= {p.name for p in _stale(out) if ".tmp-" in p.name} - {p.name for p in before}
                    time.sleep(0.001)
                time.sleep(rng.uniform(0.0, write_delay_s))
            else:
                time.sleep(rng.uniform(*random_s))
            kill.after_s = time.monotonic() - t0
            if _poll(pid) is None:
                os.kill(pid, signal.SIGKILL)
                kill.killed = True
            kill.in_write = bool([p for p in set(_stale(out)) - before if ".tmp-" in p.name])
        try:
            code = _wait(pid, timeout_s)
        except TimeoutError as err:
            kill.problems.append(str(err))
            code = None
        kill.seconds = time.monotonic() - t0
        text = log.read_text(errors="replace")
        first = RESUMED.search(text)
        kill.resumed_from = int(first.group(1)) if first else None
        if first and kill.resumed_from != (saved or 0):
            kill.problems.append(f"run {run} started at {kill.resumed_from}, the last checkpoint holds {saved}")
        if code == -signal.SIGKILL:
            kill.killed = True
        elif code not in (0, None) or (code == 0 and not last and kill.killed):
            kill.problems.append(f"run {run} exited {code}: {text[-800:]}")
        state = _check(out, step_key, out.parent / f"check{run}.log")
        if "error" in state:
            kill.problems.append(f"--out does not load after run {run}: {state['error']}")
        elif state["exists"]:
            kill.saved = state["step"]
            if state["torn"]:
                kill.problems.append(f"torn files: {state['torn']}")
            if saved is not None and kill.saved < saved:
                kill.problems.append(f"the checkpoint went back from {saved} to {kill.saved}")
            if state["progress"] and state["progress"] != list(range(1, len(state["progress"]) + 1)):
                kill.problems.append(f"progress.jsonl rows {state['progress']}")
            saved = kill.saved
        elif saved is not None:
            kill.problems.append("--out vanished")
        if last:
            if code != 0:
                final_problems.append(f"the final run exited {code}: {text[-800:]}")
            if target is not None and saved != target:
                final_problems.append(f"the final run ended at {saved}, not {target}")
            if _stale(out):
                final_problems.append(f"left behind: {[p.name for p in _stale(out)]}")
            final_problems += kill.problems
        else:
            results.append(kill)
    return results, final_problems


def failed_rollouts(demos: Path, out: Path, steps: int = 8) -> Path:
    """TPO's losers without a simulator: each demo's first `steps` steps as a failed rollout of its seed
    (the kills test checkpointing, not learning; test_tpo.py trains on real rollouts)."""
    from sim_training.data import Dataset, DatasetWriter, Episode

    dataset = Dataset(demos)
    with DatasetWriter(out, dataset.spec) as writer:
        for episode in dataset:
            arrays = {k: (v if k == "initial_state" else v[:steps]) for k, v in episode.arrays.items()}
            writer.add(Episode(arrays, episode.seed, episode.instruction, False, dict(episode.extra)))
        writer.commit()
    return out

"""Collect N expert demonstrations for a task into a dataset, in one or several worker processes."""

from __future__ import annotations

import multiprocessing as mp
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

from tqdm import tqdm

from sim_training.data import DatasetWriter
from sim_training.demos.expert import DemoResult, ExpertDemoGenerator, planner_solution
from sim_training.demos.scripted import HOLD_STEPS, ScriptedDemoGenerator, script_for
from sim_training.envs.assets import require_assets
from sim_training.tasks import TaskSpec, get_task


@dataclass
class CollectionReport:
    task: str
    expert: str
    """'planner' or 'scripted' (TaskSpec.expert, or the caller's choice)."""
    requested: int
    written: int
    attempts: int
    planner_success_rate: float
    """Fraction of attempted seeds on which the motion planner reached the goal (1 for scripted experts)."""
    conversion_success_rate: float
    """Fraction of planned episodes that still succeed after conversion to end-effector control."""
    seconds: float
    demos_per_second: float
    workers: int
    out: str

    def to_dict(self) -> dict:
        return asdict(self)


EXPERTS = ("planner", "scripted")
_generator: ExpertDemoGenerator | ScriptedDemoGenerator | None = None


def _init_worker(spec: TaskSpec, expert: str, hold_steps: int = HOLD_STEPS, action_noise: float = 0.0) -> None:
    import torch

    torch.set_num_threads(1)
    global _generator
    _generator = (ScriptedDemoGenerator(spec, hold_steps, action_noise) if expert == "scripted"
                  else ExpertDemoGenerator(spec))


def _generate(seed: int) -> DemoResult:
    assert _generator is not None
    return _generator.generate(seed)


def _results(spec: TaskSpec, expert: str, hold_steps: int, action_noise: float, seeds: range,
             workers: int) -> Iterator[DemoResult]:
    """Demo results in seed order, computed in-process or by a pool of spawned workers."""
    if workers == 1:
        _init_worker(spec, expert, hold_steps, action_noise)
        try:
            yield from map(_generate, seeds)
        finally:
            _generator.close()
        return
    init = (spec, expert, hold_steps, action_noise)
    with mp.get_context("spawn").Pool(workers, initializer=_init_worker, initargs=init) as pool:
        yield from pool.imap(_generate, seeds, chunksize=1)
        # Leaving the block terminates seeds still in flight once enough demos are written.


def collect_demos(
    task: str | TaskSpec,
    episodes: int,
    out: str | Path,
    *,
    workers: int = 1,
    seed_start: int = 0,
    max_attempts: int | None = None,
    keep_failed: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    expert: str | None = None,
    hold_steps: int = HOLD_STEPS,
    action_noise: float = 0.0,
) -> CollectionReport:
    """Run the task's expert (`expert` overrides `spec.expert`) on seeds seed_start, seed_start+1, ...
    until `episodes` demos are written (scripted experts record `hold_steps` more steps after success,
    and with `action_noise` > 0 execute perturbed commands while recording their own: `perturb`).

    Only successful demos are kept unless `keep_failed`. Gives up after `max_attempts` seeds
    (default 3 * episodes + 10) so a task the expert rarely solves cannot loop forever.
    """
    spec = get_task(task)
    if episodes <= 0:
        raise ValueError(f"--episodes must be positive, got {episodes}")
    if workers <= 0:
        raise ValueError(f"--workers must be positive, got {workers}")
    expert = expert or spec.expert
    if expert not in EXPERTS:
        raise ValueError(f"expert must be one of {EXPERTS}, got {expert!r}")
    if action_noise and expert != "scripted":
        raise ValueError("action_noise needs a closed-loop (scripted) expert: a planner's open-loop "
                         "trajectory cannot correct a perturbation")
    if expert == "scripted":
        script_for(spec)
    else:
        planner_solution(spec)
    require_assets(spec)
    max_attempts = max_attempts or 3 * episodes + 10
    seeds = range(seed_start, seed_start + max_attempts)

    start = time.monotonic()
    attempts = planned = converted = 0
    source = {"kind": "motion_planner", "planner_control_mode": "pd_joint_pos", "seed_start": seed_start,
              "keep_failed": keep_failed}
    if expert == "scripted":
        source = {"kind": "scripted", "seed_start": seed_start, "keep_failed": keep_failed,
                  "hold_steps": hold_steps, "action_noise": action_noise}
    with DatasetWriter(out, spec, overwrite=overwrite, source=source) as writer:
        bar = tqdm(total=episodes, desc=f"demos {spec.env_id}", unit="demo", disable=not progress)
        for result in _results(spec, expert, hold_steps, action_noise, seeds, workers):
            attempts += 1
            planned += result.planned
            converted += result.planned and result.success
            if result.episode is not None and (result.success or keep_failed):
                writer.add(result.episode)
                bar.update(1)
            bar.set_postfix(planner_ok=f"{planned}/{attempts}")
            if len(writer) == episodes:
                break
        bar.close()
        if len(writer) < episodes:
            raise RuntimeError(
                f"only {len(writer)} of {episodes} demos succeeded in {attempts} attempts "
                f"(planner success {planned}/{attempts}); raise --max-attempts"
            )
        writer.commit()
    seconds = time.monotonic() - start
    return CollectionReport(
        task=spec.env_id,
        expert=expert,
        requested=episodes,
        written=len(writer),
        attempts=attempts,
        planner_success_rate=planned / attempts,
        conversion_success_rate=converted / planned if planned else 0.0,
        seconds=round(seconds, 2),
        demos_per_second=round(len(writer) / seconds, 4),
        workers=workers,
        out=str(out),
    )

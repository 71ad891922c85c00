"""`stare-train tpo` / `stare-train sta-tpo`: preference optimisation of the VLA on its own rollouts.

    stare-rollouts --checkpoint checkpoints/pick-cube-sft --task PickCube-v1 --initial-states 32 --per-state 4 \\
                   --out data/rollouts/pick-sft
    stare-train tpo     --checkpoint checkpoints/pick-cube-sft --data data/rollouts/pick-sft --out runs/tpo-pick
    stare-train sta-tpo --checkpoint checkpoints/pick-cube-sft --data data/rollouts/pick-sft --out runs/sta-tpo-pick

The SFT checkpoint is both the starting policy and the frozen reference. Rollouts are labelled by StARe's
privileged separator and paired among those from one initial state (`sim_training.preference.pairs`):
TPO compares whole trajectories (success over failure); StA-TPO compares stages (both completed stage
k-1, lower stage cost wins) over the steps of that stage, with the stage cost as a lambda-weighted
penalty (`cost_weight`). Everything else is the same code: that is the whole delta.

Each update takes `pairs_per_step` pairs, `steps_per_side` timesteps sampled from each side (GRAPE sums over
8-step windows; sampling keeps a CPU step short), q = mean per-step log pi_theta - log pi_ref. `--out` is a
checkpoint with trainer state and `progress.jsonl` (DPO loss, margin, preference accuracy, winner NLL per
step); rerunning the same command after a kill resumes. TensorBoard: `<out>.logs/`.
"""

from __future__ import annotations

import argparse
import copy
import json
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from tqdm import tqdm

from sim_training.train import TrainError, distributed
from sim_training.train.state import load_optimizer, read_train_state, save_train_state
from stare_policy.model import checkpoint
from stare_policy.model.vla import Temperature, action_temperature
from stare_policy.policy import VLAPolicy
from stare_policy.typed_config import apply_overrides, load_yaml, to_dict

if TYPE_CHECKING:
    from sim_training.preference.pairs import PairingRule

PROGRESS_FILE = "progress.jsonl"


@dataclass(frozen=True)
class TPOConfig:
    steps: int = 200
    """Optimizer updates in total (a resumed run continues up to this)."""
    pairs_per_step: int = 1
    """Pairs whose losses are averaged in one update (GRAPE: 1)."""
    steps_per_side: int = 8
    """Timesteps sampled from each side of a pair per update (all of them when fewer)."""
    beta: float = 0.1
    """DPO temperature (GRAPE's value)."""
    nll_weight: float = 0.0
    """alpha of a likelihood term on the preferred side, loss + alpha * mean(-log pi_theta) over the winner's
    sampled steps (RPO-style, both methods): DPO alone can lower both sides' likelihoods and so move greedy
    actions that no pair asked to change; 0 is plain (StA-)TPO."""
    cost_weight: float = 1.0
    """lambda of StA-TPO's stage-cost penalty q^ = q - lambda * l_k (sign configurable); TPO ignores it."""
    tie_tolerance: float = 0.0
    """StA-TPO pairing: stage costs closer than this are a tie, broken only by stage completion (else no pair)."""
    pair_failures: bool = True
    """StA-TPO pairing: pair two rollouts that both failed a stage (False: one of them must have completed it)."""
    success_step_gap: int | None = None
    """TPO pairing: also prefer, of two successes from one start, the one that succeeded this many steps
    sooner (None: only success over failure; near-greedy rollouts rarely fail, which may leave no pair)."""
    temperature: float = 1.0
    """Temperature at which log pi is taken (that of the rollouts)."""
    gripper_temperature: float | None = None
    """The gripper token's (that of the rollouts' `--gripper-temperature`); None: `temperature`."""
    lr: float = 2e-5
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    seed: int = 0
    save_every: int = 50
    num_threads: int = 0
    device: str = "auto"


class TPOError(TrainError):
    """Bad input for TPO (config, data without pairs, an --out of another run)."""


def build_parser(algorithm: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"stare-train {algorithm}", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, type=Path, help="SFT checkpoint: the start and the reference")
    parser.add_argument("--data", required=True, nargs="+", type=Path, help="rollout datasets (stare-rollouts)")
    parser.add_argument("--out", required=True, type=Path, help="checkpoint directory (resumed if it exists)")
    parser.add_argument("--config", default=None, help="YAML file of TPOConfig fields")
    parser.add_argument("--overwrite", action="store_true", help="start afresh even if --out holds a run")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("overrides", nargs="*", help="key=value config overrides, e.g. steps=50 beta=0.2")
    return parser


@dataclass(frozen=True)
class Side:
    episode: int
    steps: np.ndarray
    cost: float = 0.0


def pairing_rule(cfg: TPOConfig, **grouping) -> PairingRule:
    """The `PairingRule` of a config's pairing fields (grouping: `group_by`, `max_initial_distance_m`)."""
    from sim_training.preference.pairs import PairingRule

    return PairingRule(**grouping, tie_tolerance=cfg.tie_tolerance, pair_failures=cfg.pair_failures,
                       success_step_gap=cfg.success_step_gap)


def load_pairs(paths: list[Path], stage_aware: bool, rule: PairingRule | None = None):
    """(episodes, [(winner Side, loser Side)], task spec) of the rollout datasets, paired by `rule` (default:
    `PairingRule()`)."""
    from sim_training.data import Dataset
    from sim_training.preference.pairs import LabelledRollout, PairingRule, stage_pairs, trajectory_pairs
    from stare_policy.stages import segment_privileged, stage_spec, summarize

    episodes, specs = [], set()
    for path in paths:
        dataset = Dataset(path)
        specs.add(dataset.spec.env_id)
        episodes += [dataset.episode(i) for i in range(len(dataset))]
    if len(specs) != 1:
        raise TPOError(f"rollouts of one task expected, got {sorted(specs)}")
    task = specs.pop()
    stages = stage_spec(task)
    labelled = []
    for i, e in enumerate(episodes):
        seg, m = segment_privileged(e.arrays, stages)
        # a start is an (initial state, dataset) pair only via its seed: rollouts of one seed share a start
        labelled.append(LabelledRollout(e.seed, seg, summarize(seg, m, stages, e.success), e.success))
    if stage_aware:
        pairs = [(Side(p.winner, p.winner_steps, p.winner_cost), Side(p.loser, p.loser_steps, p.loser_cost))
                 for p in stage_pairs(labelled, rule=rule or PairingRule())]
    else:
        pairs = [(Side(p.winner, np.arange(len(episodes[p.winner]))), Side(p.loser, np.arange(len(episodes[p.loser]))))
                 for p in trajectory_pairs(labelled, rule or PairingRule())]
    return episodes, pairs, task


def step_log_probs(policy: VLAPolicy, episode, steps: np.ndarray, temperature: Temperature) -> torch.Tensor:
    """log pi of the episode's recorded actions at `steps` (with gradients when enabled)."""
    arrays = episode.arrays
    proprio = {k: arrays[k][steps] for k in policy.processor.config.proprio_keys if k in arrays}
    inputs = policy.inputs(arrays["image"][steps], episode.instruction, proprio)
    log_prob, _, _ = policy.evaluate(inputs, arrays["action"][steps], temperature)
    return log_prob


def main(argv: list[str] | None = None, *, stage_aware: bool = False) -> int:
    algorithm = "sta-tpo" if stage_aware else "tpo"
    args = build_parser(algorithm).parse_args(argv)
    cfg = check_config(apply_overrides(load_yaml(args.config, TPOConfig) if args.config else TPOConfig(), args.overrides))
    episodes, pairs, task = load_pairs(args.data, stage_aware, pairing_rule(cfg))
    if not pairs:
        raise TPOError(f"the rollouts give no {'stage' if stage_aware else 'success/failure'} pairs from a shared "
                       "initial state (more rollouts per state, a higher temperature, or for TPO "
                       "success_step_gap=N to rank successes by their length)")
    return train_on_pairs(cfg, start=args.checkpoint, out=args.out, episodes=episodes, pairs=pairs, task=task,
                          stage_aware=stage_aware, record={"data": [str(p) for p in args.data]},
                          overwrite=args.overwrite, quiet=args.quiet)


def check_config(cfg: TPOConfig) -> TPOConfig:
    bad = [k for k in ("steps", "pairs_per_step", "steps_per_side", "save_every", "lr") if getattr(cfg, k) <= 0]
    if bad or cfg.beta <= 0 or cfg.temperature <= 0:
        raise TPOError(f"{', '.join(bad) or 'beta/temperature'} must be positive")
    if not cfg.nll_weight >= 0:
        raise TPOError(f"nll_weight must be >= 0, got {cfg.nll_weight}")
    if cfg.gripper_temperature is not None and cfg.gripper_temperature < 0:
        raise TPOError(f"gripper_temperature must be >= 0 or null, got {cfg.gripper_temperature}")
    try:
        pairing_rule(cfg)  # the pairing fields are checked where they are used
    except ValueError as err:
        raise TPOError(str(err)) from None
    return cfg


def train_on_pairs(cfg: TPOConfig, *, start: Path, out: Path, episodes: list, pairs: list, task: str,
                   stage_aware: bool, record: dict, overwrite: bool = False, quiet: bool = False) -> int:
    """The preference round itself, from `start` (also the frozen reference) into `out`: shared by
    `stare-train tpo | sta-tpo` (simulated rollouts) and `stare-retrain` (robot bags). `record` goes into
    the trainer state (which data the round used)."""
    from sim_training.preference.losses import log_ratio, preference_loss, winner_nll

    algorithm = "sta-tpo" if stage_aware else "tpo"
    device = distributed.pick_device(cfg.device)
    d = distributed.setup(device)
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    checkpoint.recover(out)
    prior = None if overwrite else read_train_state(out)
    if prior is None and out.exists() and not overwrite:
        raise TPOError(f"{out} exists and is not a resumable {algorithm} run (pass --overwrite to replace it)")
    if prior is not None and (prior.get("algorithm"), prior.get("start_checkpoint")) != (algorithm, str(start)):
        raise TPOError(f"{out} holds a {prior.get('algorithm')} run from {prior.get('start_checkpoint')}; "
                       "pass --overwrite or use another --out")
    temperature = action_temperature(cfg.temperature, cfg.gripper_temperature)
    reference = VLAPolicy.load(start, device)
    policy = VLAPolicy.load(out if prior is not None else start, device)
    # Eval mode with gradients: batch norms keep their SFT statistics, so the policy equals its reference at
    # the start (the loss is log 2) and log-ratios measure only what the updates changed.
    reference.model.eval().requires_grad_(False)
    policy.model.eval()
    params = [p for p in policy.model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    step, history = 0, []
    if prior is not None:
        load_optimizer(out, optimizer, prior)
        step = prior["step"]
        path = out / PROGRESS_FILE
        history = [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.is_file() else []
    ref_cache: dict[tuple[int, int], float] = {}

    def reference_log_probs(side: Side) -> torch.Tensor:
        missing = [int(t) for t in side.steps if (side.episode, int(t)) not in ref_cache]
        if missing:
            with torch.no_grad():
                values = step_log_probs(reference, episodes[side.episode], np.array(missing), temperature)
            ref_cache.update({(side.episode, t): float(v) for t, v in zip(missing, values)})
        return torch.tensor([ref_cache[(side.episode, int(t))] for t in side.steps], device=device)

    def save() -> None:
        fingerprints = distributed.check_in_sync(policy.model, d)
        if d.main:
            with checkpoint.atomic_directory(out) as tmp:
                checkpoint.save(tmp, policy.model, policy.processor, policy.tasks)
                save_train_state(tmp, optimizer, {"algorithm": algorithm, "step": step, "config": to_dict(cfg),
                                                  "start_checkpoint": str(start), "task": task, **record,
                                                  "pairs": len(pairs),
                                                  "world_size": d.world, "rank_fingerprints": fingerprints})
                (tmp / PROGRESS_FILE).write_text("".join(json.dumps(row) + "\n" for row in history))
        distributed.barrier(d)

    stop = {"signal": 0}
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _: stop.update(signal=signum))
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(out.with_name(out.name + ".logs"))) if d.main else None
    if d.main:
        print(f"{algorithm}: {task}, {len(episodes)} rollouts, {len(pairs)} pairs, step {step}/{cfg.steps}, "
              f"{d.world} rank(s)", flush=True)
    bar = tqdm(total=cfg.steps, initial=step, disable=quiet or not d.main, unit="step", dynamic_ncols=True)
    while step < cfg.steps:
        # Every rank draws the step's pairs and their step subsets alike and takes every N-th pair; the loss of
        # each is divided by the global pairs_per_step, so the summed gradient is what one process computes.
        rng = np.random.default_rng([cfg.seed, step])
        drawn = []
        for index in rng.choice(len(pairs), size=cfg.pairs_per_step, replace=len(pairs) < cfg.pairs_per_step):
            drawn.append([Side(side.episode, side.steps if len(side.steps) <= cfg.steps_per_side else np.sort(
                rng.choice(side.steps, cfg.steps_per_side, replace=False)), side.cost) for side in pairs[index]])
        optimizer.zero_grad()
        losses, nlls, margins = [], [], []
        for sides in drawn[d.rank :: d.world]:
            log_probs = [step_log_probs(policy, episodes[s.episode], s.steps, temperature) for s in sides]
            q = [log_ratio(lp, reference_log_probs(s)) for lp, s in zip(log_probs, sides)]
            weight = cfg.cost_weight if stage_aware else 0.0
            pref = preference_loss(q[0], q[1], cfg.beta, sides[0].cost, sides[1].cost, weight)
            nll = winner_nll(log_probs[0])
            ((pref + cfg.nll_weight * nll) / cfg.pairs_per_step).backward()
            losses.append(pref.item())
            nlls.append(nll.item())
            margins.append((q[0] - q[1]).item())
        distributed.average_gradients(params, d, mean=False)  # each rank's loss carries 1 / pairs_per_step
        torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
        optimizer.step()
        step += 1
        sums = distributed.all_sum(torch.tensor([sum(losses), sum(margins), sum(m > 0 for m in margins), len(margins),
                                                 float(stop["signal"]), sum(nlls)], dtype=torch.float64), d).tolist()
        row = {"step": step, "loss": sums[0] / sums[3], "margin": sums[1] / sums[3], "accuracy": sums[2] / sums[3],
               "winner_nll": sums[5] / sums[3], "pairs": int(sums[3])}
        history.append(row)
        for key in ("loss", "margin", "accuracy", "winner_nll"):
            if writer:
                writer.add_scalar(f"{algorithm}/{key}", row[key], step)
        bar.update(1)
        bar.set_postfix(loss=f"{row['loss']:.4f}", margin=f"{row['margin']:+.4f}")
        if sums[4] > 0:
            stop["signal"] = stop["signal"] or signal.SIGTERM
            break
        if step % cfg.save_every == 0 or step == cfg.steps:
            save()
    bar.close()
    if writer:
        writer.close()
    if stop["signal"]:
        save()
        if d.main:
            print(f"{algorithm}: stopped by signal at step {step}; checkpoint saved to {out} (rerun to resume)",
                  flush=True)
        distributed.teardown(d)
        return 128 + stop["signal"]
    if d.main:
        print(f"{algorithm}: done, {step} steps over {len(pairs)} pairs; checkpoint {out}", flush=True)
    distributed.teardown(d)
    return 0


if __name__ == "__main__":
    sys.exit(main())

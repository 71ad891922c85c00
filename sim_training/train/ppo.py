"""`stare-train ppo` / `stare-train sta-ppo`: online RL of the VLA policy in simulation, from an SFT checkpoint.

    stare-train ppo     --checkpoint checkpoints/pick-cube-sft --task PickCube-v1 --out runs/ppo-pick \\
                        [--config sim_training/train/configs/ppo_pick_cube.yaml] [iterations=50 num_envs=2]
    stare-train sta-ppo --checkpoint ... --task ... --out runs/sta-ppo-pick ...

Clipped PPO (CleanRL's layout; RL4VLA's recipe for token VLAs): each iteration samples `rollout_steps`
actions per env at `temperature`, computes GAE (a time-limit truncation bootstraps from V(s_final), a
termination does not), then runs `epochs` passes of minibatch updates of the clipped surrogate, a (clipped)
value loss and an entropy bonus. log pi is the sum over the 7 action tokens at the sampling temperature;
the value head reads the hidden state before the first action token (stare_policy.model.vla).

PPO's reward is RL4VLA's sparse grasp/success potential; StA-PPO is the same code with StARe's stage-potential
shaping added to it (`stage_aware`, which only chooses the env wrappers in `ppo_envs.make_rl_envs`).

`--out` is a policy checkpoint (value head included) that also carries the trainer state and
`progress.jsonl` (one row per iteration: env steps, success of finished episodes, env steps/s, losses, KL).
Rerunning the same command after a kill resumes from the last saved iteration. TensorBoard: `<out>.logs/`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from sim_training.envs.gpu_physics import GPU_SIM_BACKENDS
from sim_training.train import TrainError, distributed
from sim_training.train.ppo_envs import EnvStepper, Episode, make_rl_envs
from sim_training.train.state import load_optimizer, read_train_state, save_train_state
from stare_policy.model import checkpoint
from stare_policy.model.vla import Temperature, action_temperature, check_window
from stare_policy.policy import VLAPolicy
from stare_policy.typed_config import apply_overrides, from_dict, load_yaml, to_dict

PROGRESS_FILE = "progress.jsonl"


@dataclass(frozen=True)
class PPOConfig:
    iterations: int = 100
    """PPO iterations in total (a resumed run continues up to this); each collects num_envs * rollout_steps."""
    num_envs: int = 2
    """Parallel envs: CPU worker processes, or the size of the GPU batch."""
    rollout_steps: int = 64
    """Control steps per env per iteration (episodes carry over between iterations)."""
    sim_backend: str = "cpu"
    """'cpu' (AsyncVectorEnv workers) or 'gpu' (one ManiSkill3 GPU batch; needs CUDA, the policy runs there too)."""
    max_episode_steps: int | None = None
    """Time limit of an episode; None: the task spec's."""
    terminate_on_success: bool = True
    """End an episode at its first success (no bootstrapping past it), as evaluation counts success. [P]"""
    temperature: float = 1.0
    """Sampling temperature of the action tokens (> 0); log pi, entropy and KL are taken at it too."""
    gripper_temperature: float | None = None
    """Temperature of the gripper token; None: `temperature`. 0: the gripper is taken greedily and left out of
    log pi, entropy and KL, so PPO explores and learns the arm only (docs/training.md)."""
    window: int | None = None
    """Sampled tokens stay within this many bins of the greedy one; log pi, entropy and KL are taken on that
    window (centred where it was when sampling). None: the whole range (docs/training.md)."""
    greedy_prefix: bool = False
    """Sample each token given the greedy tokens before it (`VLA.sample`), so exploration stays near the
    greedy action that evaluation takes; log pi is taken on the same conditionals (docs/training.md)."""
    gamma: float = 0.99
    """Discount; also the gamma of StA-PPO's shaping term gamma * Phi(s') - Phi(s)."""
    gae_lambda: float = 0.95
    epochs: int = 2
    """Passes over each iteration's samples."""
    minibatch_size: int = 32
    lr: float = 3e-5
    """AdamW learning rate of the policy (everything but the value head)."""
    value_lr: float = 3e-4
    """Learning rate of the value head (fresh after SFT, which does not train it)."""
    weight_decay: float = 0.0
    value_warmup_iterations: int = 0
    """First iterations that train the value head only (the policy is not changed while V is still random)."""
    clip: float = 0.2
    """Clip range of the probability ratio."""
    value_clip: float | None = 0.2
    """Clip range of the value update around the rollout's value (None: unclipped value loss)."""
    vf_coef: float = 0.5
    ent_coef: float = 0.0
    max_grad_norm: float = 1.0
    target_kl: float | None = None
    """Stop an iteration's epochs early once the approximate KL to the rollout policy exceeds this."""
    norm_advantages: bool = True
    """Normalise advantages over each iteration's batch."""
    instruction: str | None = None
    """The instruction given to the policy; None: the task's canonical one."""
    seed: int = 0
    """Seeds sampling and minibatch order (per iteration, so a resumed run draws as an unbroken one would)."""
    env_seed: int = 100_000
    """Seed of the first training episode; each new episode takes the next (evaluation starts at 1,000,000)."""
    save_every: int = 1
    """Save the checkpoint (and progress.jsonl) every this many iterations."""
    sim_rate_steps: int = 8
    """Steps per env of random actions timed before training, for the raw simulator rate (0: skip)."""
    env_timeout_s: float = 1800.0
    """Longest wait for the CPU workers' step or reset before giving up."""
    num_threads: int = 0
    """torch intra-op threads of the learner process (0: torch's default)."""
    device: str = "auto"
    """'auto' (CUDA when available), 'cpu' or 'cuda'."""


RESUMABLE_CHANGES = {"iterations", "save_every", "sim_rate_steps", "env_timeout_s", "num_threads", "device"}
"""Config keys that may differ when a run is resumed; any other change needs a fresh --out."""


class PPOError(TrainError):
    """Bad input for PPO (config, task, an --out that belongs to another run)."""


def build_parser(algorithm: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"stare-train {algorithm}", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, type=Path, help="policy checkpoint to start from (SFT)")
    parser.add_argument("--task", required=True, help="task env id, e.g. PickCube-v1")
    parser.add_argument("--out", required=True, type=Path, help="checkpoint directory (resumed if it exists)")
    parser.add_argument("--config", type=str, default=None, help="YAML file of PPOConfig fields")
    parser.add_argument("--logdir", type=Path, default=None, help="TensorBoard directory (default <out>.logs)")
    parser.add_argument("--overwrite", action="store_true", help="start afresh even if --out holds a run")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("overrides", nargs="*", help="key=value config overrides, e.g. iterations=20 num_envs=4")
    return parser


# ---- the algorithm ---------------------------------------------------------------------------------------------
@dataclass
class Rollout:
    """`rollout_steps` x `num_envs` transitions (arrays are (T, N, ...))."""

    images: torch.Tensor
    proprio: dict[str, np.ndarray]
    bins: torch.Tensor
    log_probs: torch.Tensor
    centres: torch.Tensor | None
    """`ActionSample.centres` of each step (None without a window or greedy prefix)."""
    values: np.ndarray
    rewards: np.ndarray
    shaping: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    final_values: np.ndarray
    """V(s_final) where an episode was truncated at t (0 elsewhere)."""
    last_value: np.ndarray
    """(N,) V of the observation after the last step."""
    episodes: list[Episode]
    """Episodes that ended during the rollout."""
    policy_s: float = 0.0
    sim_s: float = 0.0


def collect(policy: VLAPolicy, stepper: EnvStepper, obs: dict, steps: int, instruction: str, temperature: Temperature,
            generator: torch.Generator | None = None, stop=lambda: False,
            window: int | None = None, greedy_prefix: bool = False) -> tuple[Rollout | None, dict]:
    """Act `steps` times in every env; returns (rollout, next observation), or (None, obs) if `stop()`."""
    n = stepper.n

    images, proprios, bins, log_probs, centres, values = [], [], [], [], [], []
    rewards, shaping, terminated, truncated = (np.zeros((steps, n)) for _ in range(4))
    terminated, truncated = terminated.astype(bool), truncated.astype(bool)
    final_values, episodes, policy_s, sim_s = np.zeros((steps, n)), [], 0.0, 0.0
    for t in range(steps):
        if stop():
            return None, obs
        image, proprio = stepper.inputs(obs)
        t0 = time.perf_counter()
        out = policy.step(image, instruction, proprio, temperature=temperature, generator=generator, window=window,
                          greedy_prefix=greedy_prefix)
        policy_s += time.perf_counter() - t0
        images.append(torch.as_tensor(image))
        proprios.append(proprio)
        bins.append(out.bins.clone())  # clones: outside inference mode, so that the update may use them
        log_probs.append(out.log_prob.clone())
        centres.append(None if out.centres is None else out.centres.clone())
        values.append(out.value.float().cpu().numpy())
        t0 = time.perf_counter()
        step = stepper.step(out.action)
        sim_s += time.perf_counter() - t0
        rewards[t], shaping[t], terminated[t], truncated[t] = step.reward, step.shaping, step.terminated, step.truncated
        if step.final_obs is not None:  # bootstrap a time-limit truncation from the value of where it stopped
            final_image, final_proprio = stepper.inputs(step.final_obs)
            final_values[t, step.truncated] = policy.step(final_image, instruction, final_proprio).value.float().cpu().numpy()
        episodes += step.finished
        obs = step.obs
    image, proprio = stepper.inputs(obs)
    last_value = policy.step(image, instruction, proprio).value.float().cpu().numpy()
    rollout = Rollout(torch.stack(images), {k: np.stack([p[k] for p in proprios]) for k in proprios[0]},
                      torch.stack(bins), torch.stack(log_probs), None if centres[0] is None else torch.stack(centres),
                      np.stack(values), rewards, shaping, terminated,
                      truncated, final_values, last_value, episodes, policy_s, sim_s)
    return rollout, obs


def gae(rewards: np.ndarray, values: np.ndarray, terminated: np.ndarray, truncated: np.ndarray,
        final_values: np.ndarray, last_value: np.ndarray, gamma: float, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """Generalised advantage estimates and returns of (T, N) transitions.

    The successor value of step t is V(s_{t+1}) within an episode, `last_value` after the rollout's last
    step, `final_values[t]` where the episode was truncated at t (the env reset, so s_{t+1} belongs to the
    next episode), and 0 where it terminated. The GAE trace stops at both kinds of episode end.
    """
    advantages = np.zeros_like(rewards, dtype=np.float64)
    running = np.zeros(rewards.shape[1])
    for t in reversed(range(len(rewards))):
        next_value = last_value if t == len(rewards) - 1 else values[t + 1]
        next_value = np.where(terminated[t], 0.0, np.where(truncated[t], final_values[t], next_value))
        delta = rewards[t] + gamma * next_value - values[t]
        running = delta + gamma * lam * ~(terminated[t] | truncated[t]) * running
        advantages[t] = running
    return advantages, advantages + values


def update(policy: VLAPolicy, optimizer: torch.optim.Optimizer, rollout: Rollout, advantages: np.ndarray,
           returns: np.ndarray, cfg: PPOConfig, instruction: str, rng: np.random.Generator,
           params: list[torch.nn.Parameter], d: distributed.Dist = distributed.Dist()) -> dict[str, float]:
    """`epochs` passes of minibatch PPO updates; returns the last epoch's mean losses, KL, clip fraction.

    Data-parallel: each rank holds its own envs' samples; advantages are normalised over all ranks' samples,
    each rank takes minibatch_size / N of them per minibatch, gradients are averaged over ranks, and the
    early stop on KL uses the mean over ranks, so every rank takes the same steps."""
    device = policy.device
    flat = lambda x: x.reshape(-1, *x.shape[2:])  # noqa: E731  (T, N, ...) -> (T * N, ...)
    images, bins, old_logp = flat(rollout.images), flat(rollout.bins), flat(rollout.log_probs).to(device)
    centres = None if rollout.centres is None else flat(rollout.centres)
    proprio = {k: flat(v) for k, v in rollout.proprio.items()}
    adv = torch.as_tensor(flat(advantages), dtype=torch.float32, device=device)
    if cfg.norm_advantages:
        moments = distributed.all_sum(torch.stack([adv.sum(), (adv ** 2).sum(), adv.new_tensor(float(len(adv)))]).double(), d)
        count = moments[2].item()
        if count > 1:
            mean = moments[0] / count
            std = ((moments[1] - count * mean ** 2) / (count - 1)).clamp_min(0).sqrt()
            adv = (adv - mean.float()) / (std.float() + 1e-8)
    ret = torch.as_tensor(flat(returns), dtype=torch.float32, device=device)
    old_values = torch.as_tensor(flat(rollout.values), dtype=torch.float32, device=device)
    total = len(adv)
    minibatch = max(1, cfg.minibatch_size // d.world)
    for epoch in range(cfg.epochs):
        sums: dict[str, float] = {}
        order = rng.permutation(total)
        for start in range(0, total, minibatch):
            mb = order[start : start + minibatch]
            inputs = policy.inputs(images[mb], instruction, {k: v[mb] for k, v in proprio.items()})
            logp, entropy, value = policy.evaluate(inputs, bins[mb], sampling_temperature(cfg), cfg.window,
                                                   None if centres is None else centres[mb], cfg.greedy_prefix)
            log_ratio = logp - old_logp[mb]
            ratio = log_ratio.exp()
            pg_loss = torch.max(-adv[mb] * ratio, -adv[mb] * ratio.clamp(1 - cfg.clip, 1 + cfg.clip)).mean()
            v_loss = (value - ret[mb]) ** 2
            if cfg.value_clip is not None:
                clipped = old_values[mb] + (value - old_values[mb]).clamp(-cfg.value_clip, cfg.value_clip)
                v_loss = torch.max(v_loss, (clipped - ret[mb]) ** 2)
            v_loss = 0.5 * v_loss.mean()
            loss = pg_loss - cfg.ent_coef * entropy.mean() + cfg.vf_coef * v_loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            distributed.average_gradients(params, d)
            grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
            optimizer.step()
            with torch.no_grad():
                stats = {"pg_loss": pg_loss.item(), "v_loss": v_loss.item(), "entropy": entropy.mean().item(),
                         "approx_kl": ((ratio - 1) - log_ratio).mean().item(),
                         "clip_frac": ((ratio - 1).abs() > cfg.clip).float().mean().item(),
                         "grad_norm": grad_norm.item()}
            for key, value_ in stats.items():
                sums[key] = sums.get(key, 0.0) + value_ * len(mb) / total
        if cfg.target_kl is not None:
            kl = distributed.all_sum(torch.tensor([sums["approx_kl"]], dtype=torch.float64), d).item() / d.world
            if kl > cfg.target_kl:
                break
    var = np.var(returns)
    sums["explained_variance"] = float(1 - np.var(returns - rollout.values) / var) if var > 0 else float("nan")
    sums["epochs"] = epoch + 1
    return sums


# ---- plumbing ------------------------------------------------------------------------------------------------
def sampling_temperature(cfg: PPOConfig) -> Temperature:
    """What rollouts sample at and updates evaluate at: the two must agree for the PPO ratio."""
    return action_temperature(cfg.temperature, cfg.gripper_temperature)


def check_config(cfg: PPOConfig) -> None:
    """PPOError for a config no run could use (also checked by `stare-ipi` before anything runs)."""
    positive = {k: getattr(cfg, k) for k in ("iterations", "num_envs", "rollout_steps", "epochs", "minibatch_size",
                                              "save_every", "lr", "value_lr")}
    bad = [k for k, v in positive.items() if v <= 0]
    if bad:
        raise PPOError(f"{', '.join(bad)} must be positive")
    if cfg.temperature <= 0:
        raise PPOError(f"temperature must be > 0 for PPO (it samples and needs log pi), got {cfg.temperature}")
    if cfg.gripper_temperature is not None and cfg.gripper_temperature < 0:
        raise PPOError(f"gripper_temperature must be >= 0 or null, got {cfg.gripper_temperature}")
    if not 0 < cfg.gamma <= 1 or not 0 <= cfg.gae_lambda <= 1:
        raise PPOError("gamma must be in (0, 1] and gae_lambda in [0, 1]")
    if cfg.sim_backend not in ("cpu", *GPU_SIM_BACKENDS):
        raise PPOError(f"sim_backend must be 'cpu' or 'gpu', got {cfg.sim_backend!r}")
    if cfg.max_episode_steps is not None and cfg.max_episode_steps <= 0:
        raise PPOError("max_episode_steps must be positive (or null for the task's)")
    try:
        check_window(cfg.window)
    except ValueError as err:
        raise PPOError(str(err)) from None


def _check_resume(prior: dict, cfg: PPOConfig, algorithm: str, start: Path, task: str) -> PPOConfig:
    """The resumed run's config (with allowed changes from `cfg`), or PPOError if the runs differ."""
    if prior.get("algorithm") != algorithm:
        raise PPOError(f"the run in --out was trained with {prior.get('algorithm')!r}, not {algorithm} "
                       "(use another --out)")
    old = to_dict(from_dict(PPOConfig, prior["config"]))
    new = to_dict(cfg)
    changed = sorted(k for k in new if new[k] != old[k] and k not in RESUMABLE_CHANGES)
    if changed:
        raise PPOError(f"--out holds a run with a different config ({', '.join(changed)}); pass --overwrite or "
                       "use another --out")
    if (prior.get("start_checkpoint"), prior.get("task")) != (str(start), task):
        raise PPOError(f"--out holds a run from {prior.get('start_checkpoint')} on {prior.get('task')}; pass "
                       "--overwrite or use another --out")
    return from_dict(PPOConfig, {**old, **{k: new[k] for k in RESUMABLE_CHANGES}})


def sim_rate(env, steps: int) -> float | None:
    """Env steps/s of the bare vector env (its workers and reward wrappers) under random actions."""
    if steps <= 0:
        return None
    env.reset(seed=0)
    env.step(env.action_space.sample())  # the first step of a fresh worker pays for lazy set-up: not timed
    t0 = time.perf_counter()
    for _ in range(steps):
        env.step(env.action_space.sample())
    return steps * env.num_envs / (time.perf_counter() - t0)


def main(argv: list[str] | None = None, *, stage_aware: bool = False) -> int:
    algorithm = "sta-ppo" if stage_aware else "ppo"
    args = build_parser(algorithm).parse_args(argv)

    # ---- configuration -------------------------------------------------------------------------------------
    cfg = load_yaml(args.config, PPOConfig) if args.config else PPOConfig()
    cfg = apply_overrides(cfg, args.overrides)
    check_config(cfg)
    from sim_training.tasks import UnknownTaskError, get_task

    try:
        spec = get_task(args.task)
    except UnknownTaskError as err:
        raise PPOError(str(err)) from None
    device = distributed.pick_device(cfg.device)
    d = distributed.setup(device)
    if cfg.num_envs % d.world or cfg.minibatch_size % d.world:
        raise PPOError(f"num_envs ({cfg.num_envs}) and minibatch_size ({cfg.minibatch_size}) must be divisible by "
                       f"the {d.world} data-parallel ranks")
    if cfg.sim_backend in GPU_SIM_BACKENDS and device.type != "cuda":
        raise PPOError("sim_backend=gpu needs CUDA (and the policy on it); this machine has none: use sim_backend=cpu")
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    out, logdir = args.out, args.logdir or args.out.with_name(args.out.name + ".logs")
    checkpoint.recover(out)
    prior = None if args.overwrite else read_train_state(out)
    if prior is None and out.exists() and not args.overwrite:
        raise PPOError(f"{out} exists and is not a resumable {algorithm} run (pass --overwrite to replace it)")
    if prior is not None:
        cfg = _check_resume(prior, cfg, algorithm, args.checkpoint, spec.env_id)
    instruction = cfg.instruction or spec.instruction

    # ---- model ---------------------------------------------------------------------------------------------
    torch.manual_seed(cfg.seed)
    try:
        policy = VLAPolicy.load(out if prior is not None else args.checkpoint, device)
    except checkpoint.CheckpointError as err:
        raise PPOError(f"--checkpoint: {err}") from None
    model = policy.model
    # Eval mode throughout: the ResNet tower's batch norms must use their (SFT) running statistics both when
    # acting and when updating, or log pi of the update would not be the acting policy's.
    model.eval()
    value_params = list(model.value_head.parameters())
    policy_params = [p for p in model.parameters() if p.requires_grad and all(p is not v for v in value_params)]
    for p in value_params:
        p.requires_grad_(True)  # SFT froze it
    optimizer = torch.optim.AdamW([{"params": policy_params, "lr": cfg.lr}, {"params": value_params, "lr": cfg.value_lr}],
                                  weight_decay=cfg.weight_decay, betas=(0.9, 0.999))
    iteration, env_steps, elapsed, next_seed, history = 0, 0, 0.0, cfg.env_seed, []
    if prior is not None:
        load_optimizer(out, optimizer, prior)
        iteration, env_steps, elapsed = prior["iteration"], prior["env_steps"], prior.get("elapsed_s", 0.0)
        next_seed = prior["next_seed"]
        history = [row for row in _read_progress(out) if row["iteration"] <= iteration]

    def save() -> None:
        fingerprints = distributed.check_in_sync(model, d)
        # The next run's first seed: past every rank's, so a resumed run replays no episode.
        following = int(distributed.all_max(torch.tensor([float(stepper.next_seed)]), d).item())
        if d.main:
            with checkpoint.atomic_directory(out) as tmp:
                checkpoint.save(tmp, model, policy.processor, policy.tasks)
                save_train_state(tmp, optimizer, {
                    "algorithm": algorithm, "iteration": iteration, "env_steps": env_steps, "next_seed": following,
                    "config": to_dict(cfg), "start_checkpoint": str(args.checkpoint), "task": spec.env_id,
                    "elapsed_s": elapsed, "sim_steps_per_s": raw_rate, "world_size": d.world,
                    "rank_fingerprints": fingerprints,
                })
                (tmp / PROGRESS_FILE).write_text("".join(json.dumps(row) + "\n" for row in history))
        distributed.barrier(d)

    # ---- environments --------------------------------------------------------------------------------------
    from sim_training.envs import MissingAssetsError

    try:
        envs = make_rl_envs(spec, cfg.num_envs // d.world, stage_aware=stage_aware, gamma=cfg.gamma, sim_backend=cfg.sim_backend,
                            max_episode_steps=cfg.max_episode_steps)
    except MissingAssetsError as err:
        raise PPOError(str(err)) from None
    stop = {"signal": 0}

    def on_signal(signum, _frame):
        stop["signal"] = signum

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    try:
        raw_rate = sim_rate(envs, cfg.sim_rate_steps)
        if raw_rate is not None:  # every rank's simulators together
            raw_rate = distributed.all_sum(torch.tensor([raw_rate], dtype=torch.float64), d).item()
        stepper = EnvStepper(envs, spec, first_seed=next_seed + d.rank, seed_stride=d.world,
                             terminate_on_success=cfg.terminate_on_success, timeout_s=cfg.env_timeout_s)
        obs = stepper.reset()
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(logdir)) if d.main else None
        n_params = sum(p.numel() for p in policy_params + value_params)
        if d.main:
            print(f"{algorithm}: {spec.env_id}, {cfg.num_envs} {cfg.sim_backend} env(s) x {cfg.rollout_steps} steps per "
                  f"iteration, {n_params / 1e6:.2f} M trainable parameters on {device} x {d.world} rank(s), raw "
                  f"simulator {raw_rate or float('nan'):.1f} env steps/s, iteration {iteration}/{cfg.iterations}",
                  flush=True)
        bar = tqdm(total=cfg.iterations, initial=iteration, disable=args.quiet or not d.main, unit="it",
                   dynamic_ncols=True)

        # ---- training loop -------------------------------------------------------------------------------------
        while iteration < cfg.iterations:
            t_start = time.perf_counter()
            generator = torch.Generator(device=device).manual_seed((cfg.seed * 1_000_003 + iteration) * d.world + d.rank)
            # Alone, a signal stops mid-rollout; data-parallel ranks stop together at the end of an iteration.
            rollout, obs = collect(policy, stepper, obs, cfg.rollout_steps, instruction, sampling_temperature(cfg), generator,
                                   stop=lambda: stop["signal"] != 0 and not d.enabled, window=cfg.window,
                                   greedy_prefix=cfg.greedy_prefix)
            if rollout is None:
                break
            t_collect = time.perf_counter() - t_start
            advantages, returns = gae(rollout.rewards, rollout.values, rollout.terminated, rollout.truncated,
                                      rollout.final_values, rollout.last_value, cfg.gamma, cfg.gae_lambda)
            warmup = iteration < cfg.value_warmup_iterations
            for p in policy_params:
                p.requires_grad_(not warmup)
            order_seed = [cfg.seed, iteration] if d.rank == 0 else [cfg.seed, iteration, d.rank]
            stats = update(policy, optimizer, rollout, advantages, returns, cfg, instruction,
                           np.random.default_rng(order_seed), policy_params + value_params, d)
            iteration += 1
            steps = cfg.rollout_steps * cfg.num_envs
            env_steps += steps
            seconds = time.perf_counter() - t_start
            elapsed += seconds
            done = [Episode(0, length=int(n), ret=float(r), success=bool(w)) for w, n, r in distributed.gather_rows(
                torch.tensor([[e.success, e.length, e.ret] for e in rollout.episodes], dtype=torch.float64).reshape(-1, 3),
                d).tolist()]
            row = {
                "iteration": iteration, "env_steps": env_steps, "episodes": len(done),
                "success_rate": float(np.mean([e.success for e in done])) if done else None,
                "episode_length": float(np.mean([e.length for e in done])) if done else None,
                "episode_return": float(np.mean([e.ret for e in done])) if done else None,
                "reward_mean": float(rollout.rewards.mean()), "shaping_mean": float(rollout.shaping.mean()),
                "advantage_mean": float(advantages.mean()), "return_mean": float(returns.mean()),
                "env_steps_per_s": steps / seconds, "rollout_env_steps_per_s": steps / t_collect,
                "sim_steps_per_s": raw_rate, "policy_s": rollout.policy_s, "sim_s": rollout.sim_s,
                "update_s": seconds - t_collect, "value_warmup": warmup, "elapsed_s": elapsed,
                **stats,
            }
            history.append(row)
            for key, value in row.items():
                if writer and isinstance(value, (int, float)) and value is not None and key != "iteration":
                    writer.add_scalar(f"ppo/{key}", value, env_steps)
            bar.update(1)
            bar.set_postfix(success=f"{row['success_rate']:.2f}" if done else "-", sps=f"{row['env_steps_per_s']:.1f}",
                            kl=f"{stats['approx_kl']:.4f}")
            if distributed.all_sum(torch.tensor([float(stop["signal"])]), d).item() > 0:
                stop["signal"] = stop["signal"] or signal.SIGTERM
                break  # saved below
            if iteration % cfg.save_every == 0 or iteration == cfg.iterations:
                save()
        bar.close()
        if writer:
            writer.close()
    finally:
        envs.close()
    if stop["signal"]:
        save()
        if d.main:
            print(f"{algorithm}: stopped by signal at iteration {iteration}; checkpoint saved to {out} (rerun to "
                  "resume)", flush=True)
        distributed.teardown(d)
        return 128 + stop["signal"]
    distributed.teardown(d)
    if history and d.main:
        rate = np.mean([r["env_steps_per_s"] for r in history])
        print(f"{algorithm}: done, {iteration} iterations, {env_steps} env steps in {elapsed / 60:.1f} min; training "
              f"{rate:.1f} env steps/s vs raw simulator {raw_rate or float('nan'):.1f}; checkpoint {out}", flush=True)
    return 0


def _read_progress(out: Path) -> list[dict]:
    path = out / PROGRESS_FILE
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


if __name__ == "__main__":
    sys.exit(main())

"""`stare-train sft`: imitation (supervised fine-tuning) of the VLA policy on expert demonstrations.

    stare-train sft --data data/demos/PickCube-v1 --out runs/sft-pick [--config cfg.yaml] [steps=4000 lr=3e-4]
    torchrun --nproc_per_node 2 .venv/bin/stare-train sft --data ... --out ...     # data-parallel

Reads top to bottom like a CleanRL script: config, data, model, resume, loop (sample -> augment ->
cross-entropy on the 7 action tokens -> AdamW step), periodic validation (loss, token accuracy),
checkpoints. `--out` is a policy checkpoint (stare_policy.model.checkpoint) that also carries the trainer
state; rerunning the same command after a kill resumes from it. TensorBoard logs go to `<out>.logs/`.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from sim_training.train import TrainError, distributed
from sim_training.train.augment import AugmentConfig, augment
from sim_training.train.frames import Frames, load_frames, with_goal_inputs
from sim_training.train.state import load_optimizer, read_train_state, save_train_state
from stare_policy.model import checkpoint
from stare_policy.model.config import VLAConfig
from stare_policy.model.text_tokenizer import train_text_tokenizer
from stare_policy.typed_config import apply_overrides, from_dict, load_yaml, to_dict


@dataclass(frozen=True)
class SFTConfig:
    model: VLAConfig = field(default_factory=VLAConfig)
    """The policy architecture (see stare_policy.model.config)."""
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    """Training-image augmentation."""
    steps: int = 4000
    """Optimizer steps in total (a resumed run continues up to this)."""
    batch_size: int = 32
    """Global batch size; each of N data-parallel ranks takes batch_size / N."""
    lr: float = 3e-4
    """Peak learning rate of AdamW."""
    weight_decay: float = 0.05
    """Decoupled weight decay, on matrices only (not on norms and biases)."""
    warmup_steps: int = 200
    """Linear warm-up, then cosine decay to min_lr_ratio * lr."""
    min_lr_ratio: float = 0.05
    grad_clip: float = 1.0
    """Global gradient-norm clip."""
    label_sigma: float = 0.0
    """Spread each one-hot action-token target over neighbouring bins with a Gaussian of this width (in
    bins; HL-Gauss), so that near misses cost less than far ones; 0 is OpenVLA's one-hot cross-entropy.
    Validation always reports the one-hot loss."""
    init_from: str | None = None
    """A policy checkpoint to start from (fine-tuning on new data): its weights, architecture, tokenizer
    and normalisation statistics are kept, and `model` is ignored. None: a fresh model from `model`."""
    drop_idle: float = 0.05
    """Leave out frames whose arm command is below this fraction of the normalised range in every
    dimension while the gripper command stays put (`Frames.idle`); 0 keeps every frame."""
    paraphrases: bool = True
    """Draw each sample's instruction from its task's paraphrases (else the recorded one)."""
    val_fraction: float = 0.05
    """Fraction of each task's episodes held out for validation."""
    val_every: int = 250
    val_max_frames: int = 1024
    """Validation frames per evaluation (the first ones of the held-out episodes)."""
    log_every: int = 25
    save_every: int = 500
    seed: int = 0
    num_threads: int = 0
    """torch intra-op threads per process (0: torch's default)."""
    device: str = "auto"
    """'auto' (CUDA when available), 'cpu' or 'cuda'."""


RESUMABLE_CHANGES = {"steps", "val_every", "val_max_frames", "log_every", "save_every", "num_threads", "device"}
"""Config keys that may differ when a run is resumed; any other change needs a fresh --out."""


class SFTError(TrainError):
    """Bad input for SFT (config, data, an --out that belongs to another run)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stare-train sft", description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", required=True, type=Path,
                        help="dataset directories (several tasks: multi-task training)")
    parser.add_argument("--out", required=True, type=Path, help="checkpoint directory (resumed if it exists)")
    parser.add_argument("--config", type=str, default=None, help="YAML file of SFTConfig fields")
    parser.add_argument("--logdir", type=Path, default=None, help="TensorBoard directory (default <out>.logs)")
    parser.add_argument("--overwrite", action="store_true", help="start afresh even if --out holds a run")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("overrides", nargs="*", help="key=value config overrides, e.g. steps=2000 model.text_layers=6")
    return parser


def lr_at(step: int, cfg: SFTConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


def soft_targets(bins: torch.Tensor, n_bins: int, sigma: float) -> torch.Tensor:
    """(..., n_bins) Gaussian-smoothed target distributions centred on `bins` (one-hot when sigma == 0)."""
    if sigma <= 0:
        return F.one_hot(bins, n_bins).float()
    centres = torch.arange(n_bins, device=bins.device, dtype=torch.float32)
    weights = torch.exp(-0.5 * ((centres - bins.unsqueeze(-1).float()) / sigma) ** 2)
    return weights / weights.sum(-1, keepdim=True)


def batch(frames: Frames, rows: np.ndarray, processor, bins: torch.Tensor, cfg: SFTConfig, rng: np.random.Generator,
          train: bool):
    images = torch.from_numpy(frames.images[rows])
    if train:
        images = augment(images, cfg.augment, torch.Generator().manual_seed(int(rng.integers(2**31))))
    if train and cfg.paraphrases:
        instructions = [str(rng.choice(frames.tasks[t].instructions)) for t in frames.task_index[rows]]
    else:
        instructions = [frames.instructions[i] for i in frames.instruction_index[rows]]
    proprio = {k: frames.proprio[k][rows] for k in cfg.model.proprio_keys}
    return processor(images, instructions, proprio), bins[rows]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    # ---- configuration -------------------------------------------------------------------------------------
    cfg = load_yaml(args.config, SFTConfig) if args.config else SFTConfig()
    cfg = apply_overrides(cfg, args.overrides)
    start = None
    if cfg.init_from:
        try:
            start = checkpoint.load(cfg.init_from)
        except (OSError, ValueError, checkpoint.CheckpointError) as err:
            raise SFTError(f"init_from {cfg.init_from}: {err}") from None
        cfg = dataclasses.replace(cfg, model=start.model.config)
    cfg = dataclasses.replace(cfg, model=with_goal_inputs(cfg.model, args.data))
    bad = [k for k in ("steps", "batch_size", "lr", "val_every", "log_every", "save_every") if getattr(cfg, k) <= 0]
    if bad:  # (a zero *_every would divide by zero at the first step)
        raise SFTError(f"{', '.join(bad)} must be positive")
    device = distributed.pick_device(cfg.device)
    dist = distributed.setup(device)
    if cfg.batch_size % dist.world:
        raise SFTError(f"batch_size {cfg.batch_size} is not divisible by {dist.world} ranks")
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    out, logdir = args.out, args.logdir or args.out.with_name(args.out.name + ".logs")
    checkpoint.recover(out)
    prior = None if args.overwrite else read_train_state(out)
    if prior is None and out.exists() and not args.overwrite:
        raise SFTError(f"{out} exists and is not a resumable SFT run (pass --overwrite to replace it)")
    if prior is not None:
        cfg = _check_resume(prior, cfg, args.data)

    # ---- data ----------------------------------------------------------------------------------------------
    frames = load_frames(args.data, cfg.model.proprio_keys, cfg.model.proprio_dims)
    train_rows, val_rows = frames.split(cfg.val_fraction, cfg.seed)
    if cfg.drop_idle > 0:
        idle = frames.idle(cfg.drop_idle, frames.action_stats(train_rows), cfg.model.gripper_dims)
        train_rows, val_rows = train_rows[~idle[train_rows]], val_rows[~idle[val_rows]]
    val_rows = val_rows[: cfg.val_max_frames]

    # ---- model ---------------------------------------------------------------------------------------------
    torch.manual_seed(cfg.seed)
    if prior is not None:
        ckpt = checkpoint.load(out, device)
        model, processor = ckpt.model, ckpt.processor
    elif start is not None:
        model, processor = start.model.to(device), start.processor
    else:
        from sim_training.tasks import TASKS

        corpus = [cfg.model.prompt.format(instruction=i.lower()) for s in (*TASKS.values(), *frames.tasks)
                  for i in s.instructions]
        tokenizer = train_text_tokenizer(corpus, cfg.model.text_vocab_size, cfg.model.tokenizer_phrases)
        model, processor = checkpoint.build(
            cfg.model, tokenizer, frames.action_stats(train_rows),
            frames.proprio_stats(cfg.model.proprio_keys, train_rows) if cfg.model.proprio_keys else None,
            frames.images.shape[1:3],
        )
        model.to(device)
    model.train()
    model.value_head.requires_grad_(False)  # no value targets in imitation; RL trains it
    all_bins = processor.bins(frames.actions)
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr, betas=(0.9, 0.95), fused=False,
    )
    step, elapsed, history = 0, 0.0, []
    if prior is not None:
        load_optimizer(out, optimizer, prior)
        step, elapsed, history = prior["step"], prior.get("elapsed_s", 0.0), prior.get("history", [])
    ddp_model = distributed.wrap(model, dist, device)
    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)

    def save(step: int) -> None:
        fingerprints = distributed.check_in_sync(model, dist)
        if dist.main:
            with checkpoint.atomic_directory(out) as tmp:
                checkpoint.save(tmp, model, processor, [t.to_dict() for t in frames.tasks])
                save_train_state(tmp, optimizer, {
                    "algorithm": "sft", "step": step, "config": to_dict(cfg), "data": frames.sources,
                    "elapsed_s": elapsed, "history": history, "trainable_parameters": n_params,
                    "world_size": dist.world, "rank_fingerprints": fingerprints, "train_frames": len(train_rows), "val_frames": len(val_rows),
                })
        distributed.barrier(dist)

    @torch.no_grad()
    def validate() -> dict[str, float]:
        model.eval()
        sums = torch.zeros(3, dtype=torch.float64)
        mine = val_rows[dist.rank :: dist.world]
        for start in range(0, len(mine), cfg.batch_size):
            inputs, target = batch(frames, mine[start : start + cfg.batch_size], processor, all_bins, cfg, None, False)
            logits, _ = model(inputs.to(device), target.to(device))
            target = target.to(device)
            sums += torch.tensor([F.cross_entropy(logits.flatten(0, 1), target.flatten(), reduction="sum").item(),
                                  (logits.argmax(-1) == target).sum().item(), target.numel()], dtype=torch.float64)
        sums = distributed.all_sum(sums, dist)
        model.train()
        return {"val/loss": (sums[0] / sums[2]).item(), "val/token_acc": (sums[1] / sums[2]).item()} if sums[2] else {}

    # ---- training loop ---------------------------------------------------------------------------------------
    stop = {"signal": 0}

    def on_signal(signum, _frame):
        stop["signal"] = signum

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    writer = None
    if dist.main:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(logdir))
        print(f"sft: {len(frames)} frames from {len(frames.sources)} dataset(s) ({len(train_rows)} train / "
              f"{len(val_rows)} val, idle ones left out), {len(frames.tasks)} task(s), "
              f"{n_params / 1e6:.2f} M trainable parameters, {dist.world} rank(s) on {device}, "
              f"step {step}/{cfg.steps}", flush=True)
    local_batch = cfg.batch_size // dist.world
    bar = tqdm(total=cfg.steps, initial=step, disable=not dist.main or args.quiet, unit="step", dynamic_ncols=True)

    def log_validation(step: int, **extra: float) -> None:
        metrics = validate()
        if dist.main and metrics:
            history.append({"step": step, **metrics, **extra})
            for key, value in metrics.items():
                writer.add_scalar(key, value, step)
            bar.write(f"step {step}: val loss {metrics['val/loss']:.4f}, token acc {metrics['val/token_acc']:.3f}")

    if step == 0:
        log_validation(0)  # the untrained baseline: the validation curve starts where training does
    window_start, window_samples = time.perf_counter(), 0
    while step < cfg.steps:
        t0 = time.perf_counter()
        # One global batch drawn alike on every rank, each taking its shard: N ranks see the samples one
        # process would. Augmentation and paraphrases then draw per rank (rank 0 as a lone process does).
        rng = np.random.default_rng([cfg.seed, 0, step])
        rows = rng.choice(train_rows, cfg.batch_size)[dist.rank * local_batch : (dist.rank + 1) * local_batch]
        if dist.rank:
            rng = np.random.default_rng([cfg.seed, dist.rank, step])
        inputs, target = batch(frames, rows, processor, all_bins, cfg, rng, True)
        target = target.to(device)
        logits, _ = ddp_model(inputs.to(device), target)
        soft = soft_targets(target, cfg.model.n_bins, cfg.label_sigma)
        loss = F.cross_entropy(logits.flatten(0, 1), soft.flatten(0, 1))
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, cfg)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        step += 1
        elapsed += time.perf_counter() - t0
        window_samples += cfg.batch_size
        bar.update(1)

        if dist.main and (step % cfg.log_every == 0 or step == cfg.steps):
            rate = window_samples / (time.perf_counter() - window_start)
            window_start, window_samples = time.perf_counter(), 0
            acc = (logits.argmax(-1) == target).float().mean().item()
            for key, value in {"train/loss": loss.item(), "train/token_acc": acc, "train/lr": lr_at(step - 1, cfg),
                               "train/grad_norm": grad_norm.item(), "perf/samples_per_s": rate}.items():
                writer.add_scalar(key, value, step)
            bar.set_postfix(loss=f"{loss.item():.3f}", acc=f"{acc:.2f}", sps=f"{rate:.0f}")
        if step % cfg.val_every == 0 or step == cfg.steps:
            log_validation(step, **{"train/loss": loss.item()})
        stopping = distributed.all_sum(torch.tensor([float(stop["signal"])]), dist).item() > 0
        if step % cfg.save_every == 0 or step == cfg.steps or stopping:
            save(step)
        if stopping:
            bar.close()
            if dist.main:
                print(f"sft: stopped by signal at step {step}; checkpoint saved to {out} (rerun to resume)", flush=True)
            distributed.teardown(dist)
            return distributed.exit_rank(dist, 128 + (stop["signal"] or signal.SIGTERM))
    bar.close()
    if dist.main:
        writer.close()
        print(f"sft: done, {step} steps in {elapsed / 60:.1f} min of training; checkpoint {out}", flush=True)
    distributed.teardown(dist)
    return distributed.exit_rank(dist, 0)


def _check_resume(prior: dict, cfg: SFTConfig, data: list[Path]) -> SFTConfig:
    """The resumed run's config (with allowed changes from `cfg`), or SFTError if the runs differ."""
    if prior.get("algorithm") != "sft":
        raise SFTError(f"the run in --out was trained with {prior.get('algorithm')!r}, not sft (use another --out)")
    old = from_dict(SFTConfig, prior["config"])
    new, before = to_dict(cfg), to_dict(old)
    changed = sorted(k for k in new if new[k] != before[k] and k not in RESUMABLE_CHANGES)
    if changed:
        raise SFTError(f"--out holds a run with a different config ({', '.join(changed)}); pass --overwrite or "
                       "use another --out")
    if [str(p) for p in data] != prior.get("data"):
        raise SFTError(f"--out holds a run on other data ({prior.get('data')}); pass --overwrite or use another --out")
    return from_dict(SFTConfig, {**before, **{k: new[k] for k in RESUMABLE_CHANGES}})


if __name__ == "__main__":
    sys.exit(main())

"""Data-parallel plumbing: the same training script runs alone or under `torchrun --nproc_per_node N`.

torchrun sets RANK/WORLD_SIZE/LOCAL_RANK; we then join a process group (gloo on CPU, NCCL on CUDA) and
wrap the model in DistributedDataParallel. Without torchrun everything here is a no-op.
"""

from __future__ import annotations

import os
import sys
from collections import deque
from dataclasses import dataclass

import torch
import torch.distributed as dist

from sim_training.train import TrainError


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: str = "cpu"
    """Where collectives' tensors must live: NCCL reduces CUDA tensors only."""

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


_RECENT_COLLECTIVES: deque = deque(maxlen=16)
"""The tensors of the last 16 small collectives, kept alive by Python. A gloo worker thread drops its reference
to a finished collective's tensors after `wait()` has returned; if that is the last reference, it needs the
GIL to free the tensor's Python object, while holding the process group's lock. If the main thread is then
destroying the process group (which joins those threads, GIL held), both wait forever: seen as a hang at
exit of a 2-rank `torchrun` SFT run. With Python still holding the tensors, the worker frees nothing. They
are small (counts, metrics, fingerprints) and stay until the process exits, after the process group."""


def _hold(*tensors: object) -> None:
    _RECENT_COLLECTIVES.append(tensors)


def setup(device: torch.device) -> Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend)
    return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")), str(device))


def pick_device(name: str) -> torch.device:
    """'auto', 'cpu' or 'cuda' (this rank's GPU under torchrun) as a torch device."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name not in ("cpu", "cuda"):
        raise TrainError(f"device must be 'auto', 'cpu' or 'cuda', got {name!r}")
    if name == "cuda":
        if not torch.cuda.is_available():
            raise TrainError("device=cuda, but torch sees no CUDA GPU on this machine: use device=cpu (or auto)")
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return torch.device(name)


def wrap(model: torch.nn.Module, d: Dist, device: torch.device) -> torch.nn.Module:
    if not d.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def all_sum(values: torch.Tensor, d: Dist) -> torch.Tensor:
    """Element-wise sum over ranks (pass sums and counts, then divide, for sample-weighted means)."""
    if d.enabled:
        values = values.to(d.device, copy=True)
        _hold(values)
        dist.all_reduce(values)
        values = values.cpu()
    return values


def all_max(values: torch.Tensor, d: Dist) -> torch.Tensor:
    """Element-wise maximum over ranks."""
    if d.enabled:
        values = values.to(d.device, copy=True)
        _hold(values)
        dist.all_reduce(values, op=dist.ReduceOp.MAX)
        values = values.cpu()
    return values


def gather_rows(rows: torch.Tensor, d: Dist) -> torch.Tensor:
    """Every rank's (n_r, k) rows, concatenated in rank order (n_r may differ between ranks)."""
    if not d.enabled:
        return rows
    counts = [torch.zeros(1, dtype=torch.long, device=d.device) for _ in range(d.world)]
    mine = torch.tensor([len(rows)], device=d.device)
    _hold(counts, mine)
    dist.all_gather(counts, mine)
    longest = max(int(c) for c in counts)
    padded = torch.zeros((longest, *rows.shape[1:]), dtype=rows.dtype, device=d.device)
    padded[: len(rows)] = rows.to(d.device)
    parts = [torch.empty_like(padded) for _ in range(d.world)]
    _hold(parts, padded)
    dist.all_gather(parts, padded)
    return torch.cat([part[: int(c)] for part, c in zip(parts, counts)]).cpu()


def fingerprint(model: torch.nn.Module) -> float:
    """A float64 sum of every parameter: equal on ranks that hold equal weights."""
    with torch.no_grad():
        return float(sum(p.detach().double().sum() for p in model.parameters()))


class OutOfSyncError(RuntimeError):
    """Data-parallel ranks hold different weights: their updates diverged, and a checkpoint of rank 0
    would not be what the other ranks trained."""


def check_in_sync(model: torch.nn.Module, d: Dist, rtol: float = 1e-9) -> list[float]:
    """Every rank's parameter fingerprint (one entry without torchrun); raises OutOfSyncError if they differ."""
    mine = fingerprint(model)
    if not d.enabled:
        return [mine]
    values = gather_rows(torch.tensor([[mine]], dtype=torch.float64), d)[:, 0].tolist()
    if max(values) - min(values) > rtol * max(1.0, max(abs(v) for v in values)):
        raise OutOfSyncError(f"data-parallel ranks diverged: parameter fingerprints {values}")
    return values


def average_gradients(params: list[torch.nn.Parameter], d: Dist, mean: bool = True) -> None:
    """Mean (or with `mean=False` the sum) of each gradient over ranks in one flat all-reduce: what DDP
    does for the modules it wraps, for updates whose forward passes are not one module call (a policy's
    log-probabilities)."""
    if not d.enabled:
        return
    trained = [p for p in params if p.requires_grad]
    for p in trained:
        if p.grad is None:  # unused on this rank this time: every rank must reduce the same tensors
            p.grad = torch.zeros_like(p)
    grads = [p.grad for p in trained]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)  # not held: model-sized, and the small (held) collectives after each update end a run
    if mean:
        flat /= d.world
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def barrier(d: Dist) -> None:
    if d.enabled:
        dist.barrier()


def teardown(d: Dist) -> None:
    if d.enabled and dist.is_initialized():
        dist.destroy_process_group()


def exit_rank(d: Dist, code: int) -> int:
    """`code` for a single process; a torchrun rank ends here, skipping interpreter teardown. Freeing DDP's
    reducer on the way out destroys the gloo process group, which joins gloo threads while the GIL is held; a
    thread waiting for the GIL then hangs the rank for ever (seen twice in CI with a 2-rank SFT test)."""
    if not d.enabled:
        return code
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)

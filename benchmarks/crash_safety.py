"""Crash safety (issue 8, items 4 and 5): the long run of tests/ros/stare_ros/test_episode_logger_crash.py and
tests/sim_training/train/test_crash_safety.py, printing the rows of the table in docs/reliability.md.

    .venv/bin/python benchmarks/crash_safety.py                              # 20 SIGKILLs, 5 SIGTERM, 5 SIGINT, 3 RLIMIT_FSIZE; SFT, TPO kills
    .venv/bin/python benchmarks/crash_safety.py --kills 50 --train-kills 20 --ppo-kills 3
    .venv/bin/python benchmarks/crash_safety.py --demos DIR --checkpoint DIR   # reuse demos / a tiny checkpoint

Logger: a real episode_logger process per trial (its own ROS domain), a real publisher streaming 30 Hz
224x224 images and 100 Hz joint states, the fault at a random moment (SIGKILL: from the start request on,
so some land while the bag is opened); messages lost are those sent to the open episode before the fault,
earlier than the slowest delivery seen, and missing from its (repaired) bag. Training: the same
`stare-train` command rerun on one --out, each run killed with SIGKILL inside a checkpoint write (when
`atomic_directory`'s temporary directory appears, + 0-30 ms) or at a random moment; after each kill the
checkpoint must load and the next run resume from its step; a last run finishes.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "ros"))  # the harnesses the tests use
sys.path.insert(0, str(REPO))  # first: tests/ mirrors the source tree and must not shadow its packages
sys.path.append(str(REPO / "tests"))

HEADER = ("| fault class | injections | survived | commands out of limits | messages lost (bound) | reaction median / p99 |\n"
          "| --- | --- | --- | --- | --- | --- |")
"""docs/reliability.md's table; "survived" says what held."""


def _kib(n: float) -> str:
    return f"{n / 1024:.0f} KiB"


def logger_rows(fault: str, n: int, rng: np.random.Generator, scratch: Path, first_domain: int) -> list[str]:
    from logger_crash import CHUNK_BYTES, run_trial

    trials = []
    for k in range(n):
        trial = run_trial(fault, scratch / f"{fault}-{k}", 102 + (first_domain + k) % 131, rng)
        trials.append(trial)
        print(f"  {fault} {k + 1}/{n}: {'ok' if trial.survived else trial.problems} after {trial.after_s:.2f} s, "
              f"lost {trial.lost_bytes} B ({trial.lost_bytes_in_flight} B with in-flight), "
              f"slowest delivery {trial.delivery_max_ms:.0f} ms", file=sys.stderr, flush=True)
    ok = sum(t.survived for t in trials)
    opened = f"bags open {sum(t.opened for t in trials)}/{sum(t.bags for t in trials)}"
    runs = f"unbroken runs {sum(t.contiguous for t in trials)}/{n}"
    lost = np.array([t.lost_bytes for t in trials], float)
    if fault == "SIGKILL":
        raw = np.array([t.lost_bytes_in_flight for t in trials], float)
        row = (f"| episode_logger SIGKILL at a random moment (streaming 30 Hz 224x224 images + 100 Hz joints) | {n} | "
               f"{ok}: {opened} ({sum(t.repaired for t in trials)} after `repair_bag`), {runs} | - | max "
               f"{_kib(lost.max())}, median {_kib(np.median(lost))} (< {_kib(CHUNK_BYTES)}) | - |")
        dist = (f"SIGKILL loss over {n} trials: median {_kib(np.median(lost))}, p90 {_kib(np.percentile(lost, 90))}, "
                f"max {_kib(lost.max())}; counting messages still in flight: median {_kib(np.median(raw))}, max "
                f"{_kib(raw.max())}; slowest delivery seen {max(t.delivery_max_ms for t in trials):.0f} ms; kills "
                f"{min(t.after_s for t in trials):.2f}-{max(t.after_s for t in trials):.2f} s after the start request")
        return [row, dist]
    if fault == "RLIMIT_FSIZE":
        from stare_ros.recorder import DROP_TO_FIT

        held = (f"ERROR log + 'write_error' SAVED {sum(bool(t.reported) for t in trials)}/{n}, node alive "
                f"{sum(bool(t.alive) for t in trials)}/{n}, next episode recorded {sum(bool(t.next_episode) for t in trials)}/{n}, "
                f"{opened}, exit 0 on SIGTERM {sum(t.exit_code == 0 for t in trials)}/{n}")
        return [f"| episode_logger file-size limit (RLIMIT_FSIZE {trials[0].fsize_limit / 1e6:.1f} MB) while streaming | {n} | "
                f"{ok}: {held} | - | room left under the limit max {_kib(lost.max())} "
                f"(< {_kib(CHUNK_BYTES + DROP_TO_FIT)}) | - |"]
    in_flight = max(t.lost_bytes_in_flight for t in trials)
    return [f"| episode_logger {fault} at a random moment while streaming | {n} | {ok}: bag closed "
            f"{sum(t.repaired == 0 and t.opened == t.bags for t in trials)}/{n}, exit 0 {sum(t.exit_code == 0 for t in trials)}/{n}, "
            f"{runs} | - | {int(lost.max())} B (0); in flight at the signal: max {_kib(in_flight)} | - |"]


def train_row(name: str, argv: list[str], out: Path, rng, kills: int, mode: str, target: int, step_key: str = "step") -> str:
    from train_crash import crash_resume

    t0 = time.monotonic()
    results, final = crash_resume(argv, out, rng, kills, mode, step_key=step_key, target=target)
    problems = [p for k in results for p in k.problems]
    for k in results:
        print(f"  {name} {mode} run {k.run}: killed {k.killed} after {k.after_s:.1f} s, in write {k.in_write}, "
              f"checkpoint at {k.saved}, resumed from {k.resumed_from} {k.problems or ''}", file=sys.stderr, flush=True)
    if problems or final:
        print(f"  {name}: {problems + final}", file=sys.stderr)
    ok = sum(not k.problems for k in results)
    where = ("inside a checkpoint write (temporary directory seen, + 0-30 ms)" if mode == "write"
             else "at a random moment")
    none = sum(k.saved is None for k in results)
    torn = sum("torn" in p for p in problems)
    return (f"| {name} kill -9 {where} | {len(results)} | {ok}: landed in a write {sum(k.in_write for k in results)}, "
            f"the checkpoint in --out loads with its trainer state {len(results) - none} (none written yet {none}), the "
            f"next run resumed from its step, final run to {step_key} {target} "
            f"{'ok, no temporary directory left' if not final else 'FAILED'} ({time.monotonic() - t0:.0f} s) | - | "
            f"torn files {torn}; steps since the last complete checkpoint (save_every=1: < 1 step) | - |")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kills", type=int, default=20, help="episode_logger SIGKILL trials")
    p.add_argument("--signals", type=int, default=5, help="episode_logger SIGTERM and SIGINT trials each")
    p.add_argument("--fsize", type=int, default=3, help="episode_logger RLIMIT_FSIZE trials")
    p.add_argument("--train-kills", type=int, default=8, help="SFT and TPO kills per mode (0: no training)")
    p.add_argument("--ppo-kills", type=int, default=0, help="PPO kills inside writes (slow: each run starts env workers)")
    p.add_argument("--demos", type=Path, help="PickCube-v1 demos (default: 2 planner demos made here)")
    p.add_argument("--checkpoint", type=Path, help="a tiny PickCube checkpoint (default: trained here)")
    p.add_argument("--seed", type=int, default=int(time.time()))
    p.add_argument("--keep", action="store_true", help="keep the scratch directory (bags, checkpoints, logs)")
    args = p.parse_args(argv)
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    rng = np.random.default_rng(args.seed)
    scratch = Path(tempfile.mkdtemp(prefix="stare-crash-safety-"))
    os.environ.setdefault("ROS_LOG_DIR", str(scratch / "ros_log"))
    print(f"seed {args.seed}, scratch {scratch}", file=sys.stderr)
    rows = []
    domain = os.getpid() * 7
    for fault, n in (("SIGKILL", args.kills), ("SIGTERM", args.signals), ("SIGINT", args.signals),
                     ("RLIMIT_FSIZE", args.fsize)):
        if n:
            rows += logger_rows(fault, n, rng, scratch, domain)
            domain += n
    if args.train_kills or args.ppo_kills:
        from tiny_checkpoint import TINY
        from train_crash import PPO_SMALL

        demos = args.demos
        if demos is None:
            from sim_training.demos.collect import collect_demos

            demos = scratch / "demos"
            collect_demos("PickCube-v1", 2, demos, progress=False, expert="planner")
        tiny = args.checkpoint
        if tiny is None:
            from sim_training.train.cli import main as train_main

            tiny = scratch / "tiny"
            assert train_main(["sft", "--data", str(demos), "--out", str(tiny), "--quiet", "steps=2", "val_every=2",
                               *TINY]) == 0
        n = args.train_kills
        if n:
            from train_crash import failed_rollouts

            for mode, target in (("write", 2 * n + 2), ("random", 10 * n + 2)):  # a random kill may come late
                out = scratch / f"sft-{mode}" / "ckpt"
                out.parent.mkdir()
                rows.append(train_row("SFT", ["sft", "--data", str(demos), "--out", str(out), "--quiet", "val_every=1000",
                                              "save_every=1", f"steps={target}", *TINY], out, rng, n, mode, target))
            rollouts = failed_rollouts(demos, scratch / "rollouts")
            out = scratch / "tpo" / "ckpt"
            out.parent.mkdir()
            rows.append(train_row("TPO", ["tpo", "--checkpoint", str(tiny), "--data", str(demos), str(rollouts), "--out",
                                          str(out), "--quiet", f"steps={2 * n + 2}", "steps_per_side=4", "save_every=1"],
                                  out, rng, n, "write", 2 * n + 2))
        if args.ppo_kills:
            out = scratch / "ppo" / "ckpt"
            out.parent.mkdir()
            n = args.ppo_kills
            rows.append(train_row("PPO", ["ppo", "--checkpoint", str(tiny), "--task", "PickCube-v1", "--out", str(out),
                                          "--quiet", "save_every=1", f"iterations={2 * n + 1}", *PPO_SMALL],
                                  out, rng, n, "write", 2 * n + 1, step_key="iteration"))
    print(HEADER)
    print("\n".join(r for r in rows if r.startswith("|")))
    print()
    print("\n".join(r for r in rows if not r.startswith("|")))
    if not args.keep:
        import shutil

        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

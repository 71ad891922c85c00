"""What an IPI run found: one row per method (success with its 95 % CI; against SFT on the same seeds, the seeds
won and lost with the exact McNemar test and the episode length where both solved; env steps; training time),
one row per phase, and the learning curves (PPO vs StA-PPO success over env steps; TPO vs StA-TPO loss and
preference accuracy over updates) as PNGs. Everything is read back from the run directory, so it can be
redrawn."""

from __future__ import annotations

import json
from pathlib import Path

from sim_training.evaluation.paired import CompareError, compare, outcomes
from sim_training.ipi.methods import INTERACTION, METHODS, PREFERENCE, label, lineage
from sim_training.ipi.pipeline import Pipeline


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.is_file() else []


def method_rows(pipe: Pipeline) -> dict[str, dict]:
    """Method -> its final checkpoint's evaluation and what it cost (phases shared with other methods are
    counted in each method that uses them: that is what reproducing the method alone would cost)."""
    rows, results = {}, {}
    for method in (m for m in METHODS if m in pipe.methods):
        chain = METHODS[method]
        phases = lineage(chain)
        records = [pipe.state["phases"].get(p, {}) for p in phases]
        row = {"label": label(method), "checkpoint": str(pipe.checkpoint(chain)),
               "env_steps": sum(r.get("env_steps", 0) for r in records),
               "train_seconds": round(sum(r.get("seconds", 0.0) for r in records if "given" not in r), 1)}
        evaluation = pipe.eval_json(chain)
        status = [r.get("status", "pending") for r in records]
        if all(s == "done" for s in status) and evaluation.is_file():
            result = results[method] = json.loads(evaluation.read_text())
            row.update(status="done", success_rate=result["success_rate"], ci95=result["ci95"],
                       episodes=result["episodes"], seeds=result["seeds"],
                       stage_completion=result.get("stage_completion", {}))
        else:
            failed = next((p for p, r in zip(phases, records) if r.get("status") == "failed"), None)
            row["status"] = f"failed at {failed}: {pipe.state['phases'][failed].get('reason', '')}" if failed \
                else "not finished"
        rows[method] = row
    _against_sft(rows, results)
    return rows


def _against_sft(rows: dict[str, dict], results: dict[str, dict]) -> None:
    """Each evaluated method's episodes against SFT's on the same seeds (`against_sft`): a paired test sees
    differences that two overlapping Wilson intervals hide. Results without per-episode outcomes (older
    `stare-eval` versions) leave the column empty."""
    try:
        baseline = outcomes(results["sft"])
    except (KeyError, CompareError):
        return
    for method, result in results.items():
        if method != "sft":
            try:
                rows[method]["against_sft"] = compare(outcomes(result), baseline).to_dict()
            except CompareError:
                continue


def markdown(pipe: Pipeline, rows: dict[str, dict]) -> str:
    cfg = pipe.cfg
    lines = [f"# IPI on {cfg.task}", "",
             f"Greedy evaluation, {cfg.eval.episodes} episodes from seed {cfg.eval.seed_start:,} (never used for "
             f"demos, rollouts or PPO). Env steps: simulator steps of the rollouts and PPO (demos not counted).", "",
             "| method | success | 95 % CI | against SFT: seeds won / lost (p, exact McNemar) "
             "| mean steps where both solved: method / SFT (p, Wilcoxon) | env steps | training wall-clock |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for row in rows.values():
        if row["status"] == "done":
            lo, hi = row["ci95"]
            paired = row.get("against_sft")
            cells = [f"{row['success_rate']:.0%}", f"{lo:.0%}-{hi:.0%}",
                     f"{paired['won']} / {paired['lost']} (p = {paired['p_value']:.2g})" if paired else "",
                     f"{paired['method_length']:.1f} / {paired['baseline_length']:.1f} "
                     f"(p = {paired['length_p_value']:.2g})" if paired else ""]
        else:
            cells = [row["status"], "", "", ""]
        minutes = row["train_seconds"] / 60
        lines.append(f"| {row['label']} | {' | '.join(cells)} | {row['env_steps']:,} | {minutes:.1f} min |")
    lines += ["", "| phase | status | wall-clock | env steps |", "| --- | --- | --- | --- |"]
    for phase in pipe.phases:
        rec = pipe.state["phases"].get(phase.name, {})
        status = "given" if "given" in rec else rec.get("status", "pending")
        minutes = rec.get("seconds", 0.0) / 60
        lines.append(f"| {phase.name} | {status} | {minutes:.1f} min | {rec.get('env_steps', 0):,} |")
    lines += reach_rows(pipe)
    return "\n".join(lines) + "\n"


SUCCESS_WINDOW = 20
"""PPO's curve: success over the last this many ended episodes (an iteration ends only a few)."""
UPDATE_WINDOW = 10
"""TPO's curves: loss and accuracy averaged over the last this many updates (one pair batch each)."""


def windowed_success(rows: list[dict], window: int = SUCCESS_WINDOW) -> list[tuple[int, float]]:
    """(env steps, success rate over the last `window` episodes ended by then), from PPO's progress rows."""
    ended: list[tuple[int, float]] = []  # (episodes, successes) per iteration that ended any
    points = []
    for row in rows:
        if row.get("episodes") and row.get("success_rate") is not None:
            ended.append((row["episodes"], row["success_rate"] * row["episodes"]))
        episodes = successes = 0.0
        for n, won in reversed(ended):
            episodes, successes = episodes + n, successes + won
            if episodes >= window:
                break
        if episodes:
            points.append((row["env_steps"], successes / episodes))
    return points


def holds_from(points: list[tuple[int, float]], target: float) -> int | None:
    """The env steps from which a success curve stays at or above `target` to its end (None: it ends below):
    how soon an interaction phase reached, for good, what another one ended at."""
    start = None
    for steps, success in points:
        start = (start if start is not None else steps) if success >= target else None
    return start


def reach_rows(pipe: Pipeline) -> list[str]:
    """Markdown rows: each interaction phase's final training success and the env steps from which its
    curve holds PPO's final value (issue 5: StA-PPO reaching PPO's final success in fewer env steps)."""
    curves = {p.name: windowed_success(_read_jsonl(pipe.checkpoint(p.chain) / "progress.jsonl"))
              for p in pipe.phases if p.kind in INTERACTION}
    curves = {k: v for k, v in curves.items() if v}
    baseline = curves.get("sft+ppo")
    if not baseline:
        return []
    target = baseline[-1][1]
    lines = ["", f"Training episodes (sampled, last {SUCCESS_WINDOW} ended): where each interaction phase holds "
             f"sft+ppo's final {target:.0%} from", "", "| phase | final | holds sft+ppo's final from |",
             "| --- | --- | --- |"]
    for name, points in curves.items():
        start = holds_from(points, target)
        lines.append(f"| {name} | {points[-1][1]:.0%} | {'-' if start is None else f'{start:,} env steps'} |")
    return lines


def moving_average(points: list[tuple[float, float]], window: int = UPDATE_WINDOW) -> list[tuple[float, float]]:
    """Each point's y replaced by the mean of the last `window` ys up to it."""
    ys = [y for _, y in points]
    return [(x, sum(ys[max(0, i + 1 - window): i + 1]) / min(window, i + 1)) for i, (x, _) in enumerate(points)]


def learning_curves(pipe: Pipeline) -> list[Path]:
    """PNGs of the interaction and preference phases' progress, the stage-aware variant beside its baseline
    wherever both ran: PPO's success over its last ended episodes against env steps; TPO's loss and
    preference accuracy against updates, raw (faint) and as a moving average."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    groups = [("ppo", [p for p in pipe.phases if p.kind in INTERACTION], ["success_rate"]),
              ("tpo", [p for p in pipe.phases if p.kind in PREFERENCE], ["loss", "accuracy"])]
    for name, phases, ys in groups:
        runs = {p.name: _read_jsonl(pipe.checkpoint(p.chain) / "progress.jsonl") for p in phases}
        runs = {k: v for k, v in runs.items() if v}
        if not runs:
            continue
        fig, axes = plt.subplots(1, len(ys), figsize=(5.5 * len(ys), 3.8), squeeze=False)
        for ax, y in zip(axes[0], ys):
            for run, rows in runs.items():
                if name == "ppo":
                    points = windowed_success(rows)
                    if points:
                        ax.plot(*zip(*points), marker=".", label=run)
                    continue
                points = [(r["step"], r[y]) for r in rows if r.get(y) is not None]
                if points:
                    line, = ax.plot(*zip(*points), alpha=0.25, linewidth=0.8)
                    ax.plot(*zip(*moving_average(points)), color=line.get_color(), label=run)
            ax.set_xlabel("env steps" if name == "ppo" else "update")
            ax.set_ylabel(f"success, last {SUCCESS_WINDOW} episodes" if name == "ppo"
                          else f"{y} ({UPDATE_WINDOW}-update mean)")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
        fig.suptitle(f"{pipe.cfg.task}: {'PPO vs StA-PPO' if name == 'ppo' else 'TPO vs StA-TPO'}")
        fig.tight_layout()
        path = pipe.out / f"curves_{name}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def write_summary(pipe: Pipeline) -> dict:
    rows = method_rows(pipe)
    summary = {"task": pipe.cfg.task, "methods": rows, "phases": pipe.state["phases"],
               "eval": {"episodes": pipe.cfg.eval.episodes, "seed_start": pipe.cfg.eval.seed_start}}
    (pipe.out / "summary.json").write_text(json.dumps(summary, indent=1))
    (pipe.out / "summary.md").write_text(markdown(pipe, rows))
    summary["plots"] = [str(p) for p in learning_curves(pipe)]
    return summary

"""Two policies evaluated on the same seeds, compared episode by episode.

Wilson intervals of two success rates overlap long before the difference is noise: both evaluations share
their seeds, so most episodes are solved (or failed) by both and say nothing about which policy is better.
The seeds where exactly one of them succeeded do: under "no difference" each is a fair coin, and the exact
McNemar test is a two-sided binomial test on them. Near 100 % success, where few seeds disagree, how long
the policies take on the seeds both solved still differs: those lengths are compared pairwise too
(Wilcoxon signed-rank test).

    stare-compare --baseline SFT runs/x/eval/sft.json --method IPI runs/x/eval/ipi.json \\
                  --method PPO runs/x/eval/ppo.json

A method may list several result files (e.g. seeds 1,000,000-1,000,099 and 1,000,100-1,000,399): their
episodes are pooled, and the seeds both sides ran are compared.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple


class CompareError(ValueError):
    """Results that cannot be compared: unreadable, without per-episode outcomes, other tasks, no common seed."""


class Episode(NamedTuple):
    success: bool
    length: int


@dataclass(frozen=True)
class PairedComparison:
    episodes: int
    """Seeds both evaluations ran."""
    won: int
    """Seeds only the method solved."""
    lost: int
    """Seeds only the baseline solved."""
    both: int
    neither: int
    p_value: float
    """Exact two-sided McNemar test (binomial on won vs lost at 1/2); 1.0 when they never disagree."""
    method_length: float
    """Mean episode length (env steps) of the method on the seeds both solved (0 if none)."""
    baseline_length: float
    length_p_value: float
    """Two-sided Wilcoxon signed-rank test of those paired lengths; 1.0 when they never differ."""

    @property
    def method_rate(self) -> float:
        return (self.both + self.won) / self.episodes

    @property
    def baseline_rate(self) -> float:
        return (self.both + self.lost) / self.episodes

    def to_dict(self) -> dict:
        return {**asdict(self), "method_rate": self.method_rate, "baseline_rate": self.baseline_rate}


def outcomes(result: dict, source: str = "result") -> dict[int, Episode]:
    """Seed -> (success, length), from a `stare-eval` result's per-episode records."""
    episodes = result.get("per_episode")
    if not isinstance(episodes, list) or not episodes:
        raise CompareError(f"{source} has no per-episode outcomes (re-run stare-eval: older results lack them)")
    try:
        return {int(e["seed"]): Episode(bool(e["success"]), int(e["length"])) for e in episodes}
    except (KeyError, TypeError, ValueError) as err:
        raise CompareError(f"{source} has a malformed per-episode record ({err})") from None


def compare(method: dict[int, Episode], baseline: dict[int, Episode]) -> PairedComparison:
    """The method against the baseline on the seeds both ran."""
    from scipy.stats import binomtest, wilcoxon

    seeds = sorted(method.keys() & baseline.keys())
    if not seeds:
        raise CompareError("the two evaluations share no seed")
    won = sum(method[s].success and not baseline[s].success for s in seeds)
    lost = sum(baseline[s].success and not method[s].success for s in seeds)
    solved = [s for s in seeds if method[s].success and baseline[s].success]
    p_value = binomtest(won, won + lost, 0.5).pvalue if won + lost else 1.0
    differences = [method[s].length - baseline[s].length for s in solved]
    length_p = wilcoxon(differences).pvalue if any(differences) else 1.0
    return PairedComparison(len(seeds), won, lost, len(solved), len(seeds) - won - lost - len(solved),
                            float(p_value), _mean_length(method, solved), _mean_length(baseline, solved),
                            float(length_p))


def _mean_length(episodes: dict[int, Episode], seeds: list[int]) -> float:
    return sum(episodes[s].length for s in seeds) / len(seeds) if seeds else 0.0


def read_outcomes(paths: list[Path]) -> tuple[str, dict[int, Episode]]:
    """(task, seed -> (success, length)) pooled over one side's result files."""
    task, pooled = None, {}
    for path in paths:
        try:
            result = json.loads(Path(path).read_text())
        except OSError as err:
            raise CompareError(f"cannot read {path}: {err.strerror or err}") from None
        except ValueError as err:
            raise CompareError(f"{path} is not JSON ({err})") from None
        if not isinstance(result, dict) or "task" not in result:
            raise CompareError(f"{path} is not a stare-eval result (no task)")
        if task not in (None, result["task"]):
            raise CompareError(f"{path} evaluates {result['task']}, the files before it {task}")
        task = result["task"]
        episodes = outcomes(result, str(path))
        clash = [s for s in episodes.keys() & pooled.keys() if episodes[s] != pooled[s]]
        if clash:
            raise CompareError(f"{path} and an earlier file of the same method disagree on seed {clash[0]}")
        pooled.update(episodes)
    return task, pooled


def markdown(baseline: str, rows: dict[str, PairedComparison]) -> str:
    lines = [f"| method | episodes | success | {baseline} | won / lost against {baseline} | p (exact McNemar) "
             f"| mean length where both solved: method / {baseline} | p (Wilcoxon) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, c in rows.items():
        lines.append(f"| {name} | {c.episodes} | {c.method_rate:.1%} | {c.baseline_rate:.1%} | {c.won} / {c.lost} "
                     f"| {c.p_value:.3g} | {c.method_length:.1f} / {c.baseline_length:.1f} ({c.both} seeds) "
                     f"| {c.length_p_value:.3g} |")
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stare-compare",
        description="Compare stare-eval results episode by episode against a baseline evaluated on the same seeds: "
                    "seeds won and lost, and the exact McNemar test.",
        epilog=__doc__.split("\n\n", 2)[2], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", nargs="+", required=True, metavar=("NAME", "RESULT"),
                        help="the baseline's name and its stare-eval result file(s)")
    parser.add_argument("--method", nargs="+", action="append", required=True, metavar=("NAME", "RESULT"),
                        help="a method's name and its result file(s); repeat for each method")
    parser.add_argument("--json", type=Path, help="also write the comparison here")
    return parser


def _named(spec: list[str], flag: str) -> tuple[str, list[Path]]:
    if len(spec) < 2:
        raise CompareError(f"{flag} takes a name and at least one result file, got {spec}")
    return spec[0], [Path(p) for p in spec[1:]]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        base_name, base_paths = _named(args.baseline, "--baseline")
        task, baseline = read_outcomes(base_paths)
        rows = {}
        for spec in args.method:
            name, paths = _named(spec, "--method")
            method_task, method = read_outcomes(paths)
            if method_task != task:
                raise CompareError(f"{name} evaluates {method_task}, the baseline {task}")
            rows[name] = compare(method, baseline)
    except CompareError as err:
        print(f"stare-compare: error: {err}", file=sys.stderr)
        return 2
    print(f"{task}, against {base_name} on the same seeds:\n")
    print(markdown(base_name, rows), end="")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"task": task, "baseline": base_name,
                                         "methods": {n: c.to_dict() for n, c in rows.items()}}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

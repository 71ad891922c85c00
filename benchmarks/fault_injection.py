"""Fault injection into the policy_server (issue 8, item 1): the long run of the fuzz tests in
`tests/ros/stare_ros/test_policy_server_fuzz.py`, printing the rows of the table in docs/reliability.md.

    .venv/bin/python benchmarks/fault_injection.py                       # 10,000 per message type, ROS-free
    .venv/bin/python benchmarks/fault_injection.py --dds 300             # + 300 per type through real DDS
    .venv/bin/python benchmarks/fault_injection.py --dds 100 --checkpoint checkpoints/pick-cube-sft

ROS-free: the runner + safety layer fed adversarial images, joint states, instructions and goal points the
way the node's callbacks feed them, each with an adversarial policy output (out of range, NaN, the wrong
length, an exception); reaction = message in -> command out. DDS: a real policy_server node (the stub
policy, or --checkpoint's) fed by a real publisher, one message then good inputs; reaction = good input
taken -> the first command of the next tick, which must move the arm. A message is "lost" when the node
did not take it within 10 s.
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
sys.path.insert(0, str(REPO / "tests" / "ros"))  # the generators and harnesses the tests use

HEADER = ("| fault class | injections | survived | refused + reported | commands out of limits | messages lost "
          "| recovered next tick | reaction median / p99 |\n| --- | --- | --- | --- | --- | --- | --- | --- |")


def _row(name: str, cases: list, errors: int, violations: int, lost: int, unit: float = 1e3) -> str:
    refused = [c for c in cases if c.refused]
    reactions = np.array([c.reaction_s for c in cases if np.isfinite(c.reaction_s)]) * unit
    timing = f"{np.median(reactions):.3g} / {np.percentile(reactions, 99):.3g} {'ms' if unit == 1e3 else 'us'}" \
        if len(reactions) else "-"
    return (f"| {name} | {len(cases) + errors} | {len(cases)} | {len(refused)} + "
            f"{sum(c.reported for c in refused)} | {violations} | {lost} | "
            f"{sum(c.recovered for c in cases)}/{len(cases)} | {timing} |")


def ros_free(kind: str, n: int) -> str:
    from adversarial import RAW_ACTIONS, STAMP_OFFSETS, Harness, fuzz_settings, messages
    from hypothesis import given

    harness, cases, errors = Harness(), [], [0]

    @fuzz_settings(n)
    @given(msg=messages(kind), raw=RAW_ACTIONS, offset=STAMP_OFFSETS)
    def one(msg, raw, offset):
        try:
            cases.append(harness.case(kind, msg, raw, offset))
        except Exception as err:  # counted, not raised: the soak reports what did not survive
            errors[0] += 1
            print(f"  {kind}: {type(err).__name__}: {err}", file=sys.stderr)

    one()
    return _row(f"bad {kind} (ROS-free)", cases, errors[0], sum(len(c.violations) for c in cases), 0, unit=1e6)


def dds(n: int, checkpoint: str) -> list[str]:
    from adversarial import KINDS, NOT_UTF8, DdsFuzzer, STAMP_OFFSETS, config, fuzz_settings, messages, restamp
    from hypothesis import given
    from ros_harness import Graph

    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.setdefault("ROS_DOMAIN_ID", str(150 + os.getpid() % 60))
    os.environ.setdefault("ROS_LOG_DIR", tempfile.mkdtemp(prefix="stare-fault-injection-"))
    graph = Graph()
    rows = []
    try:
        fuzz = DdsFuzzer(graph, config(), checkpoint)
        fuzz.good()
        for kind in KINDS:
            start, errors, lost, before = len(fuzz.cases), [0], fuzz.lost, len(fuzz.violations())

            @fuzz_settings(n)
            @given(msg=messages(kind, utf8_only=True, huge=(1080, 1920)), offset=STAMP_OFFSETS)
            def one(msg, offset):
                try:
                    fuzz.case(kind, restamp(msg, fuzz.clock() + offset))
                except AssertionError as err:
                    errors[0] += 1
                    print(f"  {kind}: {err}", file=sys.stderr)

            if kind == "instruction":
                for junk in NOT_UTF8 * max(1, n // 100):
                    fuzz.case("instruction", junk)
            one()
            violations = len(fuzz.violations()) - before
            rows.append(_row(f"bad {kind} (DDS{', ' + Path(checkpoint).name if checkpoint else ', stub policy'})",
                             fuzz.cases[start:], errors[0], violations, fuzz.lost - lost))
        alive = fuzz.server.context.ok()
        rows.append(f"node alive at the end: {alive}; {len(fuzz.actions)} commands and {len(fuzz.twists)} twists "
                    f"checked, {len(fuzz.violations())} beyond the limits")
    finally:
        graph.close()
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--examples", type=int, default=10_000, help="ROS-free cases per message type (0: none)")
    p.add_argument("--dds", type=int, default=0, help="cases per message type through real DDS")
    p.add_argument("--checkpoint", default="", help="DDS: a real policy instead of the stub")
    args = p.parse_args(argv)
    print(f"fault injection, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores")
    print(HEADER)
    if args.examples:
        from adversarial import KINDS

        for kind in KINDS:
            t0 = time.monotonic()
            print(ros_free(kind, args.examples), flush=True)
            print(f"  ({time.monotonic() - t0:.0f} s)", file=sys.stderr)
    if args.dds:
        for row in dds(args.dds, args.checkpoint):
            print(row, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The IPI run: a plan of phases (train, roll out, evaluate), each run by its own command in this process,
each recorded in `<out>/ipi.json` when it completes, so a rerun after a kill skips what is done and the
interrupted phase resumes from its own last checkpoint (SFT, TPO and PPO resume; rollouts and evaluations
restart). A rerun with a changed config redoes only the phases whose result the change can alter (a new
`tpo.lr` redoes the preference phases and everything after them, and keeps SFT, the rollouts and PPO).

Layout of `<out>`:
    ipi.json                 config, methods, and per phase: status, seconds, env steps
    configs/{sft,tpo,ppo}.yaml   the phase configs, as the phase commands read them
    sft/ rollouts/ sft+sta-tpo/ sft+sta-tpo+sta-ppo/ ...   checkpoints (and the rollout dataset)
    eval/<checkpoint>.json   `stare-eval` summaries (eval/<checkpoint>/ holds its table and plot)
    summary.json summary.md curves_*.png   written at the end (`sim_training.ipi.report`)
"""

from __future__ import annotations

import json
import os
import signal
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import yaml

from sim_training.ipi.config import IPIConfig
from sim_training.ipi.methods import INTERACTION, PREFERENCE, chain_name, lineage, phase_chains
from stare_policy.typed_config import ConfigError, to_dict

STATE_FILE = "ipi.json"
RESUME_FREE = ("eval.workers", "eval.compile")
"""Config keys a resumed run may change: they do not change any result."""

_SECTION = {"rollouts": "rollouts.", "tpo": "tpo.", "sta-tpo": "tpo.", "ppo": "ppo.", "sta-ppo": "ppo.",
            "eval": "eval."}
"""The config section each kind of phase reads (a TPO phase also reads the rollouts' temperatures)."""
_SFT_KEYS = ("task", "demos", "sft_checkpoint", "sft.")
_READ_BY_ONE = {"tpo.success_step_gap": "tpo", "tpo.cost_weight": "sta-tpo", "tpo.tie_tolerance": "sta-tpo",
                "tpo.pair_failures": "sta-tpo"}
"""Keys of the shared `tpo` section that one preference method alone reads: a change to one redoes that
method's phases only (TPO's pairing of successes leaves StA-TPO, and everything after it, as it was)."""


@dataclass(frozen=True)
class Phase:
    name: str
    """'sft', 'rollouts', 'sft+sta-tpo', 'eval:sft+sta-tpo', ..."""
    kind: str
    """'sft', 'rollouts', one of PREFERENCE or INTERACTION, or 'eval'."""
    chain: tuple[str, ...] = ()
    """The training phases after SFT whose checkpoint this phase makes (or evaluates)."""


def plan(methods: list[str] | tuple[str, ...]) -> list[Phase]:
    """Phases in run order: SFT, its evaluation, the rollouts if a preference method needs them, then each
    chain's training followed by its evaluation (parents before children)."""
    chains = phase_chains(methods)
    phases = [Phase("sft", "sft"), Phase("eval:sft", "eval")]
    if any(c and c[0] in PREFERENCE for c in chains):
        phases.append(Phase("rollouts", "rollouts"))
    for chain in chains[1:]:
        name = chain_name(chain)
        phases += [Phase(name, chain[-1], chain), Phase(f"eval:{name}", "eval", chain)]
    return phases


def depends_on(phase: Phase) -> tuple[str, ...]:
    """The config keys (a trailing '.' names a whole section) that can change a phase's result: its own
    section's and those of every phase its checkpoint comes from."""
    keys = list(_SFT_KEYS)
    if phase.kind == "rollouts" or (phase.chain and phase.chain[0] in PREFERENCE):
        keys.append(_SECTION["rollouts"])
    keys += [_SECTION[kind] for kind in phase.chain]
    if phase.kind == "eval":
        keys.append(_SECTION["eval"])
    return tuple(dict.fromkeys(keys))


def _affects(changed: list[str], phase: Phase) -> bool:
    keys = depends_on(phase)
    changed = [c for c in changed if c not in _READ_BY_ONE or _READ_BY_ONE[c] in phase.chain]
    return any(c == k or (k.endswith(".") and c.startswith(k)) for c in changed for k in keys)


def _flatten(data: dict, prefix: str = "") -> dict[str, object]:
    flat = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


class Pipeline:
    def __init__(self, cfg: IPIConfig, out: Path, methods: list[str], *, quiet: bool = False,
                 overwrite: bool = False, log: Callable[[str], None] = print):
        self.cfg, self.out, self.methods, self.quiet, self.log = cfg, Path(out), list(methods), quiet, log
        self.phases = plan(self.methods)
        self.state = self._open(overwrite)

    # -- state -------------------------------------------------------------------------------------------
    def _open(self, overwrite: bool) -> dict:
        path = self.out / STATE_FILE
        config = to_dict(self.cfg)
        if path.is_file() and not overwrite:
            state = json.loads(path.read_text())
            before, now = _flatten(state["config"]), _flatten(config)
            changed = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k) and k not in RESUME_FREE)
            stale = [p.name for p in self.phases if p.name in state["phases"] and _affects(changed, p)]
            for name in stale:  # redone from scratch: its output was made under the old config
                state["phases"][name] = {"status": "pending", "seconds": 0.0, "restart": True}
            if changed:
                self.log(f"stare-ipi: config changed ({', '.join(changed)}); redoing "
                         f"{', '.join(stale) if stale else 'no finished phase'}")
            state["config"] = config
            return state
        if self.out.exists() and any(self.out.iterdir()) and not path.is_file() and not overwrite:
            raise ConfigError(f"{self.out} exists and is not an IPI run (pass --overwrite to replace it)")
        if overwrite and self.out.exists():
            import shutil

            shutil.rmtree(self.out)
        return {"config": config, "phases": {}}

    def _save(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        tmp = self.out / f".{STATE_FILE}.tmp"
        tmp.write_text(json.dumps(self.state, indent=1))
        os.replace(tmp, self.out / STATE_FILE)

    def record(self, phase: str) -> dict:
        return self.state["phases"].setdefault(phase, {"status": "pending", "seconds": 0.0})

    # -- paths ---------------------------------------------------------------------------------------------
    def checkpoint(self, chain: tuple[str, ...]) -> Path:
        if not chain and self.cfg.sft_checkpoint:
            return Path(self.cfg.sft_checkpoint)
        return self.out / chain_name(chain)

    def eval_json(self, chain: tuple[str, ...]) -> Path:
        return self.out / "eval" / f"{chain_name(chain)}.json"

    def _write_configs(self) -> dict[str, Path]:
        paths = {}
        for name in ("sft", "tpo", "ppo"):
            path = self.out / "configs" / f"{name}.yaml"
            path.parent.mkdir(parents=True, exist_ok=True)
            section = dict(getattr(self.cfg, name))
            if name == "tpo":  # log pi at the rollouts' sampling distribution
                section = {"temperature": self.cfg.rollouts.temperature,
                           "gripper_temperature": self.cfg.rollouts.gripper_temperature, **section}
            path.write_text(yaml.safe_dump(section, sort_keys=False))
            paths[name] = path
        return paths

    # -- phases ----------------------------------------------------------------------------------------------
    def _argv(self, phase: Phase, configs: dict[str, Path]) -> tuple[Callable[[list[str]], int], list[str]]:
        cfg, flags = self.cfg, ["--quiet"] if self.quiet else []
        if self.record(phase.name).get("restart") and phase.kind in ("sft", *PREFERENCE, *INTERACTION):
            flags.append("--overwrite")  # a checkpoint of the old config: never resumed
        if phase.kind == "sft":
            from sim_training.train.cli import main

            return main, ["sft", "--data", *cfg.demos, "--out", str(self.checkpoint(())), "--config",
                          str(configs["sft"]), *flags]
        if phase.kind == "rollouts":
            from sim_training.preference.cli import main

            r = cfg.rollouts
            return main, ["--checkpoint", str(self.checkpoint(())), "--task", cfg.task, "--initial-states",
                          str(r.initial_states), "--per-state", str(r.per_state), "--temperature", str(r.temperature),
                          "--seed-start", str(r.seed_start), "--workers", str(r.workers), "--out",
                          str(self.out / "rollouts"), "--overwrite",
                          *(["--max-steps", str(r.max_steps)] if r.max_steps else []),
                          *(["--window", str(r.window)] if r.window is not None else []),
                          *(["--greedy-prefix"] if r.greedy_prefix else []),
                          *(["--gripper-temperature", str(r.gripper_temperature)]
                            if r.gripper_temperature is not None else []), *flags]
        if phase.kind in PREFERENCE:
            from sim_training.train.cli import main

            return main, [phase.kind, "--checkpoint", str(self.checkpoint(())), "--data", str(self.out / "rollouts"),
                          "--out", str(self.checkpoint(phase.chain)), "--config", str(configs["tpo"]), *flags]
        if phase.kind in INTERACTION:
            from sim_training.train.cli import main

            return main, [phase.kind, "--checkpoint", str(self.checkpoint(phase.chain[:-1])), "--task", cfg.task,
                          "--out", str(self.checkpoint(phase.chain)), "--config", str(configs["ppo"]), *flags]
        from sim_training.evaluation.cli import main

        e, name = cfg.eval, chain_name(phase.chain)
        return main, ["--checkpoint", str(self.checkpoint(phase.chain)), "--task", cfg.task, "--episodes",
                      str(e.episodes), "--seed-start", str(e.seed_start), "--workers", str(e.workers), "--out",
                      str(self.out / "eval" / name), "--json", str(self.eval_json(phase.chain)),
                      *(["--compile"] if e.compile else []), *flags]

    def _env_steps(self, phase: Phase) -> int:
        """Simulator steps the phase took: the rollouts' lengths, or PPO's own count."""
        if phase.kind == "rollouts":
            from sim_training.data import Dataset

            return sum(int(e["length"]) for e in Dataset(self.out / "rollouts").entries)
        if phase.kind in INTERACTION:
            return int(json.loads((self.checkpoint(phase.chain) / "trainer_state.json").read_text())["env_steps"])
        return 0

    def _blocked_by(self, phase: Phase) -> str | None:
        """The failed phase this one needs, if any (never itself: a failed phase is retried on a rerun)."""
        if phase.kind == "eval":
            needs = lineage(phase.chain)
        elif phase.kind == "rollouts":
            needs = ["sft"]
        else:
            needs = lineage(phase.chain)[:-1]
        return next((n for n in needs if self.record(n)["status"] == "failed"), None)

    def run(self) -> int:
        """Run every phase not done yet. Returns 0 if all are done, 128 + signal if a phase was stopped by one
        (rerun to resume), 1 if some failed (the others still ran where they did not depend on them)."""
        configs = self._write_configs()
        self._save()
        failed = False
        for number, phase in enumerate(self.phases, 1):
            rec = self.record(phase.name)
            if phase.kind == "sft" and self.cfg.sft_checkpoint:
                rec.update(status="done", given=self.cfg.sft_checkpoint)
                rec.pop("restart", None)
            if rec["status"] == "done":
                continue
            blocker = self._blocked_by(phase)
            if blocker:
                rec.update(status="failed", reason=f"needs {blocker}, which failed")
                self._save()
                failed = True
                continue
            main, argv = self._argv(phase, configs)
            self.log(f"stare-ipi: phase {number}/{len(self.phases)}: {phase.name}")
            handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
            start, reason = time.monotonic(), None
            try:
                code = main(argv)
            except Exception as err:  # a bug in one phase: record it and go on with what does not need that phase
                traceback.print_exc()
                code, reason = 1, f"raised {type(err).__name__}: {err}"
            finally:  # a phase's signal handlers (save and stop) must not outlive it
                for sig, handler in handlers.items():
                    signal.signal(sig, handler)
                rec["seconds"] = round(rec["seconds"] + time.monotonic() - start, 2)
                self._save()
            if code >= 128:
                self.log(f"stare-ipi: {phase.name} stopped by a signal; rerun the same command to resume")
                return code
            if code != 0:
                rec.update(status="failed", reason=reason or f"{' '.join(argv[:1])} exited {code} (see its error above)")
                self.log(f"stare-ipi: {phase.name} failed (exit {code}); going on with the phases that do not need it")
                failed = True
            else:
                rec.update(status="done", env_steps=self._env_steps(phase))
                rec.pop("reason", None)
                rec.pop("restart", None)
            self._save()
        return 1 if failed else 0

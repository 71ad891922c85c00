"""The methods IPI compares: each is the SFT checkpoint followed by a chain of training phases.

Methods that share a prefix share its phases (IPI and SFT -> StA-TPO train StA-TPO once), so an ablation
costs one run per distinct phase, and every method starts from the same SFT checkpoint and, where it uses
preferences, the same rollouts.
"""

from __future__ import annotations

PREFERENCE = ("tpo", "sta-tpo")
"""Phases that learn from the SFT policy's rollouts (with SFT as the frozen reference)."""
INTERACTION = ("ppo", "sta-ppo")
"""Phases that learn online in the simulator."""

METHODS: dict[str, tuple[str, ...]] = {
    "sft": (),
    "sft-tpo": ("tpo",),
    "sft-sta-tpo": ("sta-tpo",),
    "sft-ppo": ("ppo",),
    "sft-sta-ppo": ("sta-ppo",),
    "sft-tpo-ppo": ("tpo", "ppo"),
    "ipi": ("sta-tpo", "sta-ppo"),
}
"""Method name -> the phases after SFT. The order is the results table's row order."""

DEFAULT_METHODS = ("sft", "ipi")
"""What `stare-ipi` runs without --ablation: IPI, evaluated after each phase (SFT, StA-TPO, StA-PPO)."""

LABELS = {"sft": "SFT", "tpo": "TPO", "sta-tpo": "StA-TPO", "ppo": "PPO", "sta-ppo": "StA-PPO"}


def label(method: str) -> str:
    """'SFT -> StA-TPO -> StA-PPO (IPI)' for the results table."""
    text = " -> ".join(LABELS[p] for p in ("sft", *METHODS[method]))
    return f"{text} (IPI)" if method == "ipi" else text


def chain_name(chain: tuple[str, ...]) -> str:
    """Directory name of the checkpoint a chain of phases ends in: 'sft', 'sft+sta-tpo', ..."""
    return "+".join(("sft", *chain))


def lineage(chain: tuple[str, ...]) -> list[str]:
    """The phases a chain's checkpoint is made by, in order, itself last: SFT, the rollouts when it starts
    with a preference phase, then each training phase of the chain."""
    rollouts = ["rollouts"] if chain and chain[0] in PREFERENCE else []
    return ["sft", *rollouts, *(chain_name(chain[:i]) for i in range(1, len(chain) + 1))]


def phase_chains(methods: tuple[str, ...] | list[str]) -> list[tuple[str, ...]]:
    """Every distinct chain (prefixes included) the methods need, parents before children."""
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    chains: list[tuple[str, ...]] = [()]
    for name, chain in METHODS.items():  # the table's order, whatever order they were asked in
        if name in methods:
            chains += [chain[:i] for i in range(1, len(chain) + 1) if chain[:i] not in chains]
    return sorted(chains, key=len)

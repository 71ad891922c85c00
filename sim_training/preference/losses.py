"""TPO and StA-TPO objectives (GRAPE's trajectory DPO, and its stage-level form).

    q(tau)      = mean over tau's steps of [log pi_theta(a_t|s_t) - log pi_ref(a_t|s_t)]
    L_TPO       = -log sigmoid(beta * (q(tau+) - q(tau-)))
    q^(tau^(k)) = q(tau^(k)) - lambda * l_k(tau^(k))       (steps of stage k only)
    L_StA-TPO   = -log sigmoid(beta * (q^(tau+^(k)) - q^(tau-^(k))))
    + alpha * NLL(tau+)     (optional, both: mean -log pi_theta over the winner's steps, as in RPO)

The stage cost does not depend on theta: lambda * (l_k(tau-) - l_k(tau+)) is a per-pair margin, and its
sign (the configured lambda) decides whether a clear cost gap asks for more or less separation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def log_ratio(policy_log_probs: torch.Tensor, reference_log_probs: torch.Tensor) -> torch.Tensor:
    """q: the mean per-step log-ratio of the given steps (1-D tensors of per-step log pi)."""
    return (policy_log_probs - reference_log_probs).mean()


def preference_loss(q_winner: torch.Tensor, q_loser: torch.Tensor, beta: float,
                    cost_winner: torch.Tensor | float = 0.0, cost_loser: torch.Tensor | float = 0.0,
                    cost_weight: float = 0.0) -> torch.Tensor:
    """-log sigmoid(beta * (q^+ - q^-)) with q^ = q - cost_weight * cost; cost_weight 0 is plain TPO."""
    margin = (q_winner - cost_weight * cost_winner) - (q_loser - cost_weight * cost_loser)
    return -F.logsigmoid(beta * margin)


def winner_nll(winner_log_probs: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood of the preferred side's actions: anchors their probability, which the
    DPO term alone may lower together with the loser's (Pang et al. 2024, iterative RPO)."""
    return -winner_log_probs.mean()

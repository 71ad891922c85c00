"""TPO / StA-TPO objectives with a real (tiny, SFT-trained) VLA on real demo frames."""

import copy
import math

import numpy as np
import torch

from sim_training.preference.losses import log_ratio, preference_loss, winner_nll
from stare_policy.policy import VLAPolicy


def _steps(policy, episode, steps, actions=None):
    """Per-step log pi of an episode's actions (or the given ones) at the given steps, with gradients."""
    arrays = episode.arrays
    proprio = {k: arrays[k][steps] for k in policy.processor.config.proprio_keys}
    inputs = policy.inputs(arrays["image"][steps], episode.instruction, proprio)
    log_prob, _, _ = policy.evaluate(inputs, arrays["action"][steps] if actions is None else actions)
    return log_prob


def _perturbed_arm(episode, steps):
    """A loser: the same states with perturbed arm actions (a worse rollout from the same start)."""
    worse = episode.arrays["action"][steps].copy()
    worse[:, :3] = np.clip(worse[:, :3] + np.random.default_rng(0).normal(0, 0.5, (len(steps), 3)), -1, 1)
    return worse


def test_one_step_raises_the_preferred_margin_from_log_2(tiny_checkpoint, real_demos):
    torch.manual_seed(0)
    policy = VLAPolicy.load(tiny_checkpoint)
    reference = copy.deepcopy(policy)
    episode = real_demos("PickCube-v1").episode(0)
    steps = np.arange(0, min(len(episode), 24), 3)
    worse = _perturbed_arm(episode, steps)
    with torch.no_grad():
        ref_w, ref_l = _steps(reference, episode, steps), _steps(reference, episode, steps, worse)

    def margin_and_loss(cost_weight=0.0):
        q_w = log_ratio(_steps(policy, episode, steps), ref_w)
        q_l = log_ratio(_steps(policy, episode, steps, worse), ref_l)
        return q_w - q_l, preference_loss(q_w, q_l, beta=0.1, cost_winner=0.2, cost_loser=0.9,
                                          cost_weight=cost_weight)

    # eval mode, gradients on: the ResNet's batch norm keeps its SFT statistics (in train mode it would use the
    # batch's, and the policy would differ from its own reference before any update)
    policy.model.eval()
    margin, loss = margin_and_loss()
    assert abs(loss.item() - math.log(2)) < 1e-4, "reference == policy: q+ = q- = 0, loss log 2"
    # the stage-cost penalty of StA-TPO shifts the loss by a margin that does not depend on theta
    _, sta_loss = margin_and_loss(cost_weight=1.0)
    assert sta_loss.item() < loss.item()
    optimizer = torch.optim.AdamW([p for p in policy.model.parameters() if p.requires_grad], lr=1e-3)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    new_margin, new_loss = margin_and_loss()
    assert new_margin.item() > margin.item() and new_loss.item() < loss.item()


def test_the_likelihood_term_keeps_the_preferred_actions_likely(tiny_checkpoint, real_demos):
    """One update of DPO alone vs DPO + winner NLL from the same policy: the NLL term leaves the preferred
    side's log-likelihood higher (DPO alone may lower both sides)."""
    episode = real_demos("PickCube-v1").episode(0)
    steps = np.arange(0, min(len(episode), 24), 3)
    worse = _perturbed_arm(episode, steps)
    reference = VLAPolicy.load(tiny_checkpoint)
    reference.model.eval()
    with torch.no_grad():
        ref_w, ref_l = _steps(reference, episode, steps), _steps(reference, episode, steps, worse)

    def winner_log_likelihood_after_one_step(nll_weight):
        torch.manual_seed(0)
        policy = VLAPolicy.load(tiny_checkpoint)
        policy.model.eval()
        log_w = _steps(policy, episode, steps)
        loss = preference_loss(log_ratio(log_w, ref_w), log_ratio(_steps(policy, episode, steps, worse), ref_l), 0.1)
        assert abs(winner_nll(log_w).item() + ref_w.mean().item()) < 1e-4
        optimizer = torch.optim.SGD([p for p in policy.model.parameters() if p.requires_grad], lr=1e-2)
        (loss + nll_weight * winner_nll(log_w)).backward()
        optimizer.step()
        with torch.no_grad():
            return _steps(policy, episode, steps).mean().item()

    plain, anchored = winner_log_likelihood_after_one_step(0.0), winner_log_likelihood_after_one_step(1.0)
    assert anchored > plain and anchored > ref_w.mean().item()

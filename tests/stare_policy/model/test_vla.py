"""The VLA's decoding and learning quantities agree with each other and with their definitions."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from stare_policy.model.vla import action_temperature
from stare_policy.policy import VLAPolicy


INSTRUCTIONS = ["pick up the red cube and move it to the green goal", "push the blue cube into the target"]


def _batch(observation, n=3):
    images = np.stack([np.roll(observation["image"], 7 * i, axis=0) for i in range(n)])
    proprio = {k: np.stack([v + 0.1 * i for i in range(n)]) for k, v in observation["proprio"].items()}
    instructions = [INSTRUCTIONS[i % 2] if i != 2 else "zebra!" for i in range(n)]  # "zebra!" is unseen text
    return images, instructions, proprio


def test_kv_cache_decoding_matches_teacher_forcing(tiny_policy, observation):
    model, processor = tiny_policy
    inputs = processor(*_batch(observation))
    sample = model.sample(inputs, temperature=0.0)
    logits, before_first = model(inputs, sample.bins)
    assert logits.shape == (3, 7, 256)
    assert torch.equal(logits.argmax(-1), sample.bins), "greedy KV-cache decode differs from a full forward pass"
    log_prob, entropy, value = model.evaluate_actions(inputs, sample.bins)
    torch.testing.assert_close(log_prob, sample.log_prob, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(value, sample.value, atol=1e-5, rtol=1e-5)
    # Definitions: log pi = sum over dims of log-softmax over the 256 action-token logits only;
    # entropy = mean of the 7 categorical entropies; value from the state before the first action token.
    full = model.llava.lm_head(model._run(*model.prefix(inputs))[:, -1])
    restricted = full[:, model.action_offset:]
    assert restricted.shape[-1] == 256 and model.action_offset + 256 == model.vocab_size
    torch.testing.assert_close(restricted.float(), logits[:, 0], atol=1e-5, rtol=1e-5)
    logp = F.log_softmax(logits, -1)
    torch.testing.assert_close(log_prob, logp.gather(-1, sample.bins[..., None]).squeeze(-1).sum(-1))
    torch.testing.assert_close(entropy, -(logp.exp() * logp).sum(-1).mean(-1))
    torch.testing.assert_close(value, model.value(before_first))


def test_padded_batch_equals_single_samples(tiny_policy, observation):
    model, processor = tiny_policy
    images, instructions, proprio = _batch(observation)
    batched = model.sample(processor(images, instructions, proprio))
    for i in range(3):
        one = model.sample(processor(images[i], instructions[i], {k: v[i] for k, v in proprio.items()}))
        assert torch.equal(one.bins[0], batched.bins[i])
        torch.testing.assert_close(one.log_prob[0], batched.log_prob[i], atol=1e-4, rtol=1e-4)


def test_temperature_sampling_is_seeded_and_greedy_is_deterministic(tiny_policy, observation):
    model, processor = tiny_policy
    policy = VLAPolicy(model, processor)
    image, proprio = observation["image"], observation["proprio"]
    greedy = [policy.act(image, INSTRUCTIONS[0], proprio) for _ in range(2)]
    assert greedy[0].shape == (7,) and np.array_equal(*greedy)
    hot = [policy.act(np.stack([image] * 16), INSTRUCTIONS[0], {k: np.stack([v] * 16) for k, v in proprio.items()},
                      temperature=5.0, generator=torch.Generator().manual_seed(1)) for _ in range(2)]
    assert np.array_equal(*hot) and len(np.unique(hot[0], axis=0)) > 1
    step = policy.step(image, INSTRUCTIONS[0], proprio, temperature=1.0, generator=torch.Generator().manual_seed(2))
    log_prob, _, _ = policy.evaluate(policy.inputs(image, INSTRUCTIONS[0], proprio), step.bins)
    torch.testing.assert_close(log_prob, step.log_prob, atol=1e-4, rtol=1e-4)


def test_a_greedy_gripper_beside_sampled_arm_tokens_is_outside_log_pi(tiny_policy, observation):
    model, processor = tiny_policy
    images, _, proprio = _batch(observation, 16)
    inputs = processor(images, [INSTRUCTIONS[0]] * 16, proprio)
    temps = action_temperature(5.0, 0.0)
    assert temps == (5.0,) * 6 + (0.0,) and action_temperature(1.0, None) == 1.0
    sample = model.sample(inputs, temps, torch.Generator().manual_seed(3))
    assert len(torch.unique(sample.bins[:, :6], dim=0)) > 1, "the arm tokens are sampled"
    logits, _ = model(inputs, sample.bins)
    assert torch.equal(sample.bins[:, 6], logits[:, 6].argmax(-1)), "the gripper token is the greedy one"
    # PPO's ratio needs the same log pi from evaluation as from sampling: the arm dims at their temperature
    log_prob, entropy, _ = model.evaluate_actions(inputs, sample.bins, temps)
    torch.testing.assert_close(log_prob, sample.log_prob, atol=1e-4, rtol=1e-4)
    logp = F.log_softmax(logits[:, :6] / 5.0, -1)
    torch.testing.assert_close(log_prob, logp.gather(-1, sample.bins[:, :6, None]).squeeze(-1).sum(-1))
    torch.testing.assert_close(entropy, -(logp.exp() * logp).sum(-1).mean(-1))
    with pytest.raises(ValueError, match="one per action dimension: 7"):
        model.sample(inputs, (1.0, 1.0))


def test_a_sampling_window_keeps_tokens_near_the_greedy_bin_and_log_pi_on_that_window(tiny_policy, observation):
    model, processor = tiny_policy
    images, _, proprio = _batch(observation, 16)
    inputs = processor(images, [INSTRUCTIONS[0]] * 16, proprio)
    free = model.sample(inputs, 5.0, torch.Generator().manual_seed(4))
    assert free.centres is None and (free.bins - model(inputs, free.bins)[0].argmax(-1)).abs().max() > 3
    sample = model.sample(inputs, 5.0, torch.Generator().manual_seed(4), window=3)
    logits, _ = model(inputs, sample.bins)
    assert torch.equal(sample.centres, logits.argmax(-1)), "each window is centred on the greedy bin"
    assert (sample.bins - sample.centres).abs().max() <= 3 and len(torch.unique(sample.bins, dim=0)) > 1
    # log pi is the log-softmax over the window's 7 bins (or fewer at the range's ends)
    near = (torch.arange(256) - sample.centres[..., None]).abs() <= 3
    logp = F.log_softmax((logits / 5.0).masked_fill(~near, float("-inf")), -1)
    expected = logp.gather(-1, sample.bins[..., None]).squeeze(-1).sum(-1)
    torch.testing.assert_close(sample.log_prob, expected, atol=1e-4, rtol=1e-4)
    log_prob, entropy, _ = model.evaluate_actions(inputs, sample.bins, 5.0, 3, sample.centres)
    torch.testing.assert_close(log_prob, expected, atol=1e-4, rtol=1e-4)
    assert torch.isfinite(entropy).all() and (entropy <= np.log(7) + 1e-4).all()
    # centred elsewhere (a policy that moved since sampling), a bin outside the window: log pi very low, finite
    moved = (sample.centres + 50).clamp(max=255)
    far, _, _ = model.evaluate_actions(inputs, sample.bins, 5.0, 3, moved)
    assert torch.isfinite(far).all() and (far < -1000).all()
    for bad in (-1, 2.5, True):
        with pytest.raises(ValueError, match="sampling window"):
            model.sample(inputs, 5.0, window=bad)


def test_a_greedy_prefix_samples_every_token_after_the_greedy_ones(tiny_policy, observation):
    model, processor = tiny_policy
    images, _, proprio = _batch(observation, 16)
    inputs = processor(images, [INSTRUCTIONS[0]] * 16, proprio)
    greedy = model.sample(inputs, 0.0).bins
    temps = action_temperature(5.0, 0.0)
    sample = model.sample(inputs, temps, torch.Generator().manual_seed(5), greedy_prefix=True)
    assert torch.equal(sample.centres, greedy), "the prefix is the greedy action, whatever was sampled"
    assert torch.equal(sample.bins[:, 6], greedy[:, 6]) and (sample.bins[:, :6] != greedy[:, :6]).any()
    # log pi: each sampled token under the logits that follow the greedy tokens before it
    logits, _ = model(inputs, greedy)
    logp = F.log_softmax(logits[:, :6] / 5.0, -1)
    expected = logp.gather(-1, sample.bins[:, :6, None]).squeeze(-1).sum(-1)
    torch.testing.assert_close(sample.log_prob, expected, atol=1e-4, rtol=1e-4)
    for centres in (sample.centres, None):  # None: the policy finds its greedy prefix itself
        log_prob, _, _ = model.evaluate_actions(inputs, sample.bins, temps, centres=centres, greedy_prefix=True)
        torch.testing.assert_close(log_prob, expected, atol=1e-4, rtol=1e-4)


def test_gradients_reach_every_trained_part(tiny_policy, observation):
    model, processor = tiny_policy
    model.train()
    inputs = processor(*_batch(observation))
    bins = torch.randint(0, 256, (3, 7))
    log_prob, entropy, value = model.evaluate_actions(inputs, bins)
    (-log_prob.mean() - 0.01 * entropy.mean() + value.pow(2).mean()).backward()
    for name in ("backbone.model.vision_tower", "backbone.model.multi_modal_projector", "backbone.model.language_model",
                 "backbone.lm_head", "proprio_proj", "value_head"):
        grads = [p.grad for n, p in model.named_parameters() if n.startswith(name) and p.requires_grad]
        assert grads and all(g is not None for g in grads), name


def test_resnet_tokens_carry_their_position():
    """The convolutional tower sees coordinate channels and adds a position embedding per token: the same
    object at two places gives token sets that differ beyond a permutation of each other."""
    import pytest

    from stare_policy.model import VLAConfig, checkpoint
    from stare_policy.model.text_tokenizer import train_text_tokenizer
    from tests.stare_policy.model.conftest import ACTION_STATS, PROPRIO_STATS

    torch.manual_seed(0)
    config = VLAConfig(vision_type="resnet", vision_hidden=32, text_hidden=32, text_layers=1, text_heads=2,
                       text_intermediate=64, value_hidden=16)
    tokenizer = train_text_tokenizer([config.prompt.format(instruction=i) for i in INSTRUCTIONS], 300)
    model, _ = checkpoint.build(config, tokenizer, ACTION_STATS, PROPRIO_STATS, (128, 128))
    assert model.llava.model.vision_tower.config.num_channels == 5
    images = torch.zeros(2, 128, 128, 3, dtype=torch.uint8)
    images[0, 16:32, 16:32, 0] = 255
    images[1, 80:96, 80:96, 0] = 255
    with torch.no_grad():
        tokens = model.image_tokens(images)
    assert tokens.shape == (2, 64, 32)  # 128 px / (stride-4 stem, then two halving stages) = an 8 x 8 grid
    sorted_rows = [t[torch.argsort(t[:, 0])] for t in tokens]
    assert not torch.allclose(*sorted_rows, atol=1e-4)
    with pytest.raises(ValueError, match="resnet"):
        VLAConfig(vision_type="resnet", image_size=120, patch_size=8)  # 120 is not a multiple of 32

"""The shipped StackCube IPI policy on CUDA against the same policy on the CPU: what PPO and the rollouts
rely on (greedy actions, sampling around them, and log pi taken where they sampled) must not depend on the
device. Skipped without CUDA (CI never has one); `benchmarks/gpu_check.sh` runs it on a GPU machine."""

from pathlib import Path

import numpy as np
import pytest
import torch

from stare_policy.model.vla import action_temperature
from stare_policy.policy import VLAPolicy

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
CHECKPOINT = Path(__file__).resolve().parents[2] / "checkpoints" / "stack-cube-ipi"
BATCH = 16


@pytest.fixture(scope="module")
def policies():
    return VLAPolicy.load(CHECKPOINT, "cpu"), VLAPolicy.load(CHECKPOINT, "cuda")


@pytest.fixture(scope="module")
def observations(policies):
    cpu, _ = policies
    rng = np.random.default_rng(0)
    size = cpu.processor.config.image_size
    height, width = (size, size) if isinstance(size, int) else size
    proprio = {k: rng.normal(0.0, 0.3, (BATCH, d)).astype(np.float32)
               for k, d in zip(cpu.processor.config.proprio_keys, cpu.processor.config.proprio_dims)}
    images = rng.integers(0, 256, (BATCH, height, width, 3), dtype=np.uint8)
    return images, [cpu.default_instruction()] * BATCH, proprio


def test_greedy_logits_and_actions_agree_with_the_cpu(policies, observations):
    cpu, gpu = policies
    bins = cpu.step(*observations).bins
    logits_cpu, _ = cpu.model(cpu.inputs(*observations), bins)
    logits_gpu, _ = gpu.model(gpu.inputs(*observations), bins.cuda())
    # the logits differed by up to 0.009 on an H200 (torch 2.11; cuDNN may run convolutions in TF32)
    torch.testing.assert_close(logits_gpu.cpu(), logits_cpu, atol=3e-2, rtol=1e-2)
    top2 = logits_cpu.topk(2, -1).values
    clear = (top2[..., 0] - top2[..., 1]) > 6e-2  # a near-tie (83 % of tokens are clear here) may go either way
    assert clear.float().mean() > 0.5, "too few clear greedy tokens to compare"
    assert torch.equal(gpu.step(*observations).bins.cpu()[clear], bins[clear])


def test_sampling_around_the_greedy_action_keeps_its_log_pi_on_cuda(policies, observations):
    cpu, gpu = policies
    temps = action_temperature(0.3, 0.0)
    step = gpu.step(*observations, temperature=temps, generator=torch.Generator("cuda").manual_seed(0),
                    window=4, greedy_prefix=True)
    greedy = gpu.step(*observations).bins
    assert torch.equal(step.centres, greedy)
    assert (step.bins - greedy).abs().max() <= 4 and torch.equal(step.bins[:, 6], greedy[:, 6])
    log_prob, _, _ = gpu.evaluate(gpu.inputs(*observations), step.bins, temps, 4, step.centres, True)
    torch.testing.assert_close(log_prob, step.log_prob, atol=1e-4, rtol=1e-4)
    on_cpu, _, _ = cpu.evaluate(cpu.inputs(*observations), step.bins.cpu(), temps, 4, step.centres.cpu(), True)
    torch.testing.assert_close(on_cpu, log_prob.cpu(), atol=5e-3, rtol=1e-3)

"""The compiled greedy decoder returns what eager decoding returns, padded batches included."""

import numpy as np
import pytest
import torch
from torch._dynamo.utils import counters

from stare_policy.model.compiled_greedy import CompiledGreedy


@pytest.mark.parametrize("tiny_policy", ["resnet"], indirect=True)
def test_compiled_greedy_matches_eager_decoding(tiny_policy, observation, instructions):
    model, processor = tiny_policy
    compiled = CompiledGreedy(model)
    images = np.stack([observation["image"], observation["image"][::-1].copy()])
    proprio = {k: np.stack([v, -v]) for k, v in observation["proprio"].items()}
    for inputs in (processor(images[:1], instructions[:1], {k: v[:1] for k, v in proprio.items()}),
                   processor(images, instructions, proprio)):  # two prompt lengths: the shorter is padded
        with torch.inference_mode():
            want = model.sample(inputs)
            for call in range(2):  # the second call reuses the graph and its (reset) static cache
                compiles = counters["stats"]["unique_graphs"]
                got = compiled(inputs)
                if call:
                    assert counters["stats"]["unique_graphs"] == compiles, "the second call compiled again"
                assert torch.equal(got.bins, want.bins)
                torch.testing.assert_close(got.log_prob, want.log_prob, rtol=1e-4, atol=1e-4)
                torch.testing.assert_close(got.value, want.value, rtol=1e-4, atol=1e-4)
    assert not bool(inputs.prompt_mask.all()), "the batch should have exercised a padded prompt"

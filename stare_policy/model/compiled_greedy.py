"""Greedy action decoding compiled into one graph, for deployment latency.

Eager decoding of one action is eight small language-model calls (the prefix, then six action tokens)
whose cost on a CPU is mostly Python and dispatch overhead, not arithmetic. `torch.compile` of the whole
greedy decode (vision tower, prefix, all seven tokens) over a static KV cache (`transformers.StaticCache`,
fixed addresses, so the graph needs no dynamic shapes) removes most of it: see docs/benchmarks.md.

A graph is specialised to a batch size and prompt length; a new shape compiles a new graph (tens of
seconds on a CPU, cached on disk by inductor across processes), so this suits a server that acts on one
observation at a time with one instruction. Sampling with a temperature stays eager (`VLA.sample`).
"""

from __future__ import annotations

import threading

import torch
from transformers.cache_utils import StaticCache

from stare_policy.model.vla import VLA, ActionSample, VLAInputs


class CompiledGreedy:
    """`VLA.sample(inputs, temperature=0)` with the same result, compiled; one static cache per shape."""

    def __init__(self, model: VLA):
        self.model = model
        self._caches: dict[tuple[int, int, bool], StaticCache] = {}
        # On a CPU two more things pay at batch 1 (docs/benchmarks.md, ~25 % of an action): a C++ wrapper
        # around the generated kernels instead of Python (`cpp_wrapper`), and the vision tower's convolutions
        # in channels-last layout, which oneDNN runs faster (the weights are reordered in place; the tokens
        # still match eager decoding: tests/stare_policy/model/test_compiled_greedy.py).
        cpu = next(model.parameters()).device.type == "cpu"
        if cpu:
            model.to(memory_format=torch.channels_last)
        self._decode = torch.compile(model.decode, dynamic=False, options={"cpp_wrapper": True} if cpu else None)
        self._lock = threading.Lock()  # the static caches are shared state: one decode at a time

    def _cache(self, inputs: VLAInputs, padded: bool) -> StaticCache:
        batch, prompt = inputs.prompt_ids.shape
        key = (batch, prompt, padded)
        if key not in self._caches:
            prefix = self.model.prefix(inputs)[0].shape[1]  # image + proprio + prompt tokens, once per shape
            config = self.model.language_model.config
            cache = StaticCache(config=config, max_cache_len=prefix + self.model.config.action_dim)
            # allocated now, not on first use: a graph traced on an uninitialised cache fails its guards
            # on every later call (and recompiles)
            heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
            head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
            cache.early_initialization(batch, heads, head_dim, self.model.dtype, inputs.prompt_ids.device)
            self._caches[key] = cache
        cache = self._caches[key]
        cache.reset()
        return cache

    @torch.inference_mode()
    def __call__(self, inputs: VLAInputs) -> ActionSample:
        padded = not bool(inputs.prompt_mask.all())
        with self._lock:
            return self._decode(inputs, self._cache(inputs, padded), padded)

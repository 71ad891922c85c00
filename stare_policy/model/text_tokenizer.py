"""Text tokenizers that need no download.

The small model's tokenizer is a byte-level BPE trained on the instruction templates it will see (any
other text still encodes, byte by byte) and saved with the checkpoint as `tokenizer.json`. The large model
uses the tokenizer in its base checkpoint's directory. Both are `PreTrainedTokenizerFast`s loaded from
local files only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

PAD, BOS = "<pad>", "<s>"


def train_text_tokenizer(corpus: Iterable[str], vocab_size: int = 512, phrases: bool = True) -> PreTrainedTokenizerFast:
    """A byte-level BPE with at most `vocab_size` tokens, learned from `corpus` (deterministic).

    With `phrases`, merges may span spaces, so a prompt seen in training costs a handful of tokens instead of
    one per word: the small model's sequence is dominated by image patches, and every token costs compute.
    """
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=not phrases)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD, BOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(sorted(set(corpus)), trainer=trainer)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", special_tokens=[(BOS, tokenizer.token_to_id(BOS))]
    )
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token=PAD, bos_token=BOS)


def load_text_tokenizer(path: str | Path) -> PreTrainedTokenizerFast:
    """A tokenizer saved with `save_pretrained` in a local directory (never the hub)."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"no tokenizer directory at {path}")
    tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.unk_token or tokenizer.eos_token
    return tokenizer

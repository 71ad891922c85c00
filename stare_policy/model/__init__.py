"""The VLA model: configuration, backbone, action/text tokenizers, processor and checkpoints."""

from stare_policy.model.action_tokenizer import ActionTokenizer, MissingStatisticsError
from stare_policy.model.checkpoint import CheckpointError
from stare_policy.model.config import VLAConfig
from stare_policy.model.processor import PolicyInputError, VLAProcessor
from stare_policy.model.vla import VLA, ActionSample, VLAInputs

__all__ = [
    "ActionSample", "ActionTokenizer", "CheckpointError", "MissingStatisticsError", "PolicyInputError", "VLA",
    "VLAConfig", "VLAInputs", "VLAProcessor",
]

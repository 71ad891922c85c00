"""StARe: stage specs, privileged and proprioceptive stage separators, stage costs and potentials.

Runs without ROS and without the simulator (nothing here imports mani_skill or sim_training), so the
same code serves training, the online ROS segmenter and offline relabelling of robot bags.
"""

from stare_policy.stages.calculator import CostConfig, EpisodeSummary, potential, shaping, summarize
from stare_policy.stages.kinematics import ChainFK
from stare_policy.stages.measures import Measures, MissingStateError, compute_measures
from stare_policy.stages.privileged import PrivilegedSeparator, segment_privileged
from stare_policy.stages.proprio_batch import segment_proprio_batch
from stare_policy.stages.proprioceptive import ProprioSegmenter
from stare_policy.stages.segmentation import UNKNOWN, Segmentation, agreement, transition_errors
from stare_policy.stages.spec import Stage, StageThresholds, TaskStages
from stare_policy.stages.tasks import STAGE_SPECS, UnknownStageSpecError, stage_spec

__all__ = [
    "STAGE_SPECS", "UNKNOWN", "ChainFK", "CostConfig", "EpisodeSummary", "Measures", "MissingStateError",
    "PrivilegedSeparator", "ProprioSegmenter", "Segmentation", "Stage", "StageThresholds", "TaskStages",
    "UnknownStageSpecError", "agreement", "compute_measures", "potential", "segment_privileged",
    "segment_proprio_batch", "shaping", "stage_spec", "summarize", "transition_errors",
]

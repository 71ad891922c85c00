"""Per-stage completion counts: a stage is completed by entering the next one, or by succeeding."""

from sim_training.evaluation.rollout import EpisodeRecord
from sim_training.evaluation.stages import stage_completion


def test_a_success_completes_every_stage_even_before_the_separator_saw_them():
    records = [
        EpisodeRecord(seed=0, success=True, furthest_stage=0),  # pushed to the goal while still in Reach
        EpisodeRecord(seed=1, success=False, furthest_stage=1),  # reached, never pushed far enough
        EpisodeRecord(seed=2, success=False, furthest_stage=0),
        EpisodeRecord(seed=3, success=False, furthest_stage=None),  # no stage label at all
    ]
    assert stage_completion(("Reach", "Push"), records) == {"Reach": 0.5, "Push": 0.25}
    assert stage_completion(None, records) == {}
    assert stage_completion(("Reach",), []) == {}

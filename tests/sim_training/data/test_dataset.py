import json

import numpy as np
import pytest

from sim_training.data import Dataset, DatasetError, DatasetWriter, Episode, action_statistics
from sim_training.tasks import get_task

SPEC = get_task("PickCube-v1")


def _episode(seed: int, length: int = 6) -> Episode:
    rng = np.random.default_rng(seed)
    return Episode(
        arrays={
            "image": rng.integers(0, 255, (length, 8, 8, 3), dtype=np.uint8),
            "qpos": rng.normal(size=(length, 9)).astype(np.float32),
            "tcp_pose": rng.normal(size=(length, 7)).astype(np.float32),
            "action": rng.uniform(-1, 1, size=(length, 7)).astype(np.float32),
            "priv.cube_pose": rng.normal(size=(length, 7)).astype(np.float32),
            "flag.success": np.arange(length) == length - 1,
            "initial_state": rng.normal(size=(11,)).astype(np.float32),
        },
        seed=seed,
        instruction=SPEC.instructions[seed % len(SPEC.instructions)],
        success=True,
    )


def test_written_dataset_round_trips(tmp_path):
    episodes = [_episode(s, length=5 + s) for s in range(3)]
    with DatasetWriter(tmp_path / "ds", SPEC, source={"kind": "test"}) as writer:
        for ep in episodes:
            writer.add(ep)
        writer.commit()
    ds = Dataset(tmp_path / "ds")
    assert len(ds) == 3 and ds.spec == SPEC
    for original, loaded in zip(episodes, ds):
        assert loaded.seed == original.seed and loaded.instruction == original.instruction
        assert set(loaded.arrays) == set(original.arrays)
        for key, value in original.arrays.items():
            np.testing.assert_array_equal(loaded.arrays[key], value)
    actions = np.concatenate([ep.arrays["action"] for ep in episodes])
    np.testing.assert_allclose(ds.action_stats["q01"], np.quantile(actions, 0.01, axis=0))
    np.testing.assert_allclose(ds.action_stats["q99"], np.quantile(actions, 0.99, axis=0))
    assert ds.action_stats["count"] == len(actions)


def test_failed_write_leaves_nothing_behind(tmp_path):
    with pytest.raises(RuntimeError, match="boom"):
        with DatasetWriter(tmp_path / "ds", SPEC) as writer:
            writer.add(_episode(0))
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_existing_output_is_kept_unless_overwrite(tmp_path):
    out = tmp_path / "ds"
    with DatasetWriter(out, SPEC) as writer:
        writer.add(_episode(0))
        writer.commit()
    with pytest.raises(FileExistsError, match="--overwrite"):
        DatasetWriter(out, SPEC)
    with DatasetWriter(out, SPEC, overwrite=True) as writer:
        writer.add(_episode(1))
        writer.add(_episode(2))
        writer.commit()
    assert [e["seed"] for e in Dataset(out).entries] == [1, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_inconsistent_episode_is_rejected(tmp_path):
    ep = _episode(0)
    ep.arrays["qpos"] = ep.arrays["qpos"][:-1]
    with DatasetWriter(tmp_path / "ds", SPEC) as writer, pytest.raises(DatasetError, match="different lengths"):
        writer.add(ep)


def test_reading_a_non_dataset_or_other_version_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetError, match="not a STARE dataset"):
        Dataset(tmp_path)
    (tmp_path / "dataset.json").write_text(json.dumps({"format": "stare-dataset", "version": 99}))
    with pytest.raises(DatasetError, match="v99"):
        Dataset(tmp_path)


def test_action_statistics_per_dimension():
    actions = np.stack([np.linspace(-1, 1, 101), np.zeros(101)], axis=1)
    stats = action_statistics(actions)
    assert stats["q01"][0] == pytest.approx(-0.98) and stats["q99"][0] == pytest.approx(0.98)
    assert stats["q01"][1] == stats["q99"][1] == 0.0

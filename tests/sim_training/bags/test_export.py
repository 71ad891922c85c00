"""`stare-export` of real logger bags: LeRobot v3 (parquet + mp4 + meta json) read back with pyarrow and
ffmpeg against the format's documented schema, and the STARE dataset format read back with `Dataset`."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import TASK

from sim_training.bags import read_bag
from sim_training.bags.cli import main
from sim_training.bags.video import read_video

VIDEO = "observation.images.base_camera"
pytestmark = pytest.mark.filterwarnings("ignore:module 'sre_:DeprecationWarning")


@pytest.fixture(scope="module")
def bags(sim_bag, tmp_path_factory):
    """The logger's bag twice (a second episode, as another recording) and an empty bag."""
    from stare_ros.config import DEFAULT_RECORDED
    from stare_ros.recorder import EpisodeInfo, EpisodeRecorder

    root = tmp_path_factory.mktemp("export-bags")
    shutil.copytree(sim_bag.bag, root / "a")
    shutil.copytree(sim_bag.bag, root / "b")
    recorder = EpisodeRecorder(root, dict(entry.split(":", 1) for entry in DEFAULT_RECORDED))
    recorder.start(EpisodeInfo("c-empty", TASK, "", "", 1, 0))
    recorder.stop("aborted")
    return root


@pytest.fixture(scope="module")
def lerobot(bags, tmp_path_factory):
    out = tmp_path_factory.mktemp("lerobot") / "pick-cube"
    summary = out.with_suffix(".json")
    assert main(["--bags", str(bags), "--format", "lerobot", "--out", str(out), "--json", str(summary)]) == 0
    return out, json.loads(summary.read_text())


def test_lerobot_export_has_the_v3_layout_and_schema(lerobot, sim_bag):
    out, summary = lerobot
    n = sim_bag.steps
    assert summary["episodes"] == 2 and summary["frames"] == 2 * n
    assert [s["bag"].rsplit("/", 1)[1] for s in summary["skipped"]] == ["c-empty"]
    info = json.loads((out / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["fps"] == 20 and info["robot_type"] == "panda"
    assert (info["total_episodes"], info["total_frames"], info["total_tasks"]) == (2, 2 * n, 1)
    assert info["data_path"] == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    assert info["video_path"] == "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
    features = info["features"]
    assert features[VIDEO]["dtype"] == "video" and features[VIDEO]["shape"] == [128, 128, 3]
    assert features["observation.state"]["shape"] == [9] and features["observation.state"]["names"][0] == "panda_joint1"
    assert features["action"]["shape"] == [7]
    assert features["stage_index"] == {"dtype": "int64", "shape": [1], "names": None}
    for key in ("timestamp", "frame_index", "episode_index", "index", "task_index"):
        assert key in features

    data = pq.read_table(out / "data/chunk-000/file-000.parquet")
    assert data.num_rows == 2 * n
    assert set(data.column_names) == {k for k, ft in features.items() if ft["dtype"] != "video"}
    for key, ft in features.items():  # dtypes and shapes as declared
        if ft["dtype"] == "video":
            continue
        column = data.schema.field(key).type
        if ft["shape"] == [1]:
            assert str(column) == {"float32": "float", "string": "string"}.get(ft["dtype"], ft["dtype"]), key
        else:
            assert column.list_size == ft["shape"][0] and str(column.value_type) == "float", key
    rows = data.to_pydict()
    assert rows["index"] == list(range(2 * n)) and rows["episode_index"] == [0] * n + [1] * n
    assert rows["frame_index"] == list(range(n)) * 2 and rows["task_index"] == [0] * (2 * n)
    np.testing.assert_allclose(rows["timestamp"][:n], np.arange(n) / 20, atol=1e-6)

    episodes = pq.read_table(out / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    assert [e["episode_index"] for e in episodes] == [0, 1] and [e["length"] for e in episodes] == [n, n]
    assert [(e["dataset_from_index"], e["dataset_to_index"]) for e in episodes] == [(0, n), (n, 2 * n)]
    assert [(e[f"videos/{VIDEO}/from_timestamp"], e[f"videos/{VIDEO}/to_timestamp"]) for e in episodes] == [
        (0.0, n / 20), (n / 20, 2 * n / 20)]
    assert episodes[0]["tasks"] == ["pick up the red cube and move it to the green goal"]
    assert episodes[0]["outcome"] == "success" and episodes[0]["success"] and not episodes[0]["truncated"]
    assert len(episodes[0]["stats/action/mean"]) == 7 and np.shape(episodes[0][f"stats/{VIDEO}/mean"]) == (3, 1, 1)

    tasks = pq.read_table(out / "meta/tasks.parquet")
    assert tasks.to_pylist() == [{"task_index": 0, "task": "pick up the red cube and move it to the green goal"}]
    assert json.loads(tasks.schema.metadata[b"pandas"])["index_columns"] == ["task"]  # pandas reads it indexed by task
    stats = json.loads((out / "meta/stats.json").read_text())
    for key in ("observation.state", "action", "stage_index", VIDEO):
        assert {"min", "max", "mean", "std", "count"} <= set(stats[key])
    assert np.shape(stats[VIDEO]["mean"]) == (3, 1, 1) and 0 <= np.min(stats[VIDEO]["min"]) <= 1


def test_lerobot_export_round_trips_frames_actions_and_stage_labels(lerobot, sim_bag):
    out, _ = lerobot
    episode = read_bag(sim_bag.bag)
    n = len(episode)
    rows = pq.read_table(out / "data/chunk-000/file-000.parquet").to_pydict()
    for k in (0, 1):
        part = slice(k * n, (k + 1) * n)
        np.testing.assert_array_equal(np.array(rows["action"][part], np.float32), episode.arrays["action"])
        np.testing.assert_array_equal(np.array(rows["observation.state"][part], np.float32), episode.arrays["qpos"])
        np.testing.assert_array_equal(rows["stage_index"][part], episode.arrays["stage"])
        names = episode.extra["stage_names"]
        assert rows["stage"][part] == [names[s] if s >= 0 else "unknown" for s in episode.arrays["stage"]]
        assert rows["next.success"][part][-1] and rows["next.done"][part] == [False] * (n - 1) + [True]
    frames = np.stack(list(read_video(out / f"videos/{VIDEO}/chunk-000/file-000.mp4")))
    assert frames.shape == (2 * n, 128, 128, 3)
    images = episode.arrays["image"].astype(np.int16)
    error = np.abs(frames[n:].astype(np.int16) - images)
    # H.264 4:2:0 at crf 18: chroma is halved in each direction, which costs most of the error at 128x128
    assert error.mean() < 6.0, f"decoded frames too far from the recorded ones: {error.mean():.2f}"
    distances = np.abs(frames[:n, None].astype(np.int16) - images[None]).mean(axis=(2, 3, 4))
    nearest = distances.argmin(axis=1)
    assert (nearest == np.arange(n)).mean() >= 0.9, f"frames decode closest to other steps: {nearest.tolist()}"


def test_stare_export_is_a_dataset_of_the_bags_episodes(bags, sim_bag, tmp_path):
    from sim_training.data import Dataset

    out = tmp_path / "stare"
    assert main(["--bags", str(bags / "a"), "--format", "stare", "--out", str(out), "--quiet"]) == 0
    dataset = Dataset(out)
    episode, want = dataset.episode(0), read_bag(sim_bag.bag)
    assert dataset.spec.env_id == TASK and len(dataset) == 1 and dataset.index["source"]["kind"] == "bags"
    for key in ("image", "qpos", "tcp_pose", "action", "stage", "goal_pos"):
        np.testing.assert_array_equal(episode.arrays[key], want.arrays[key])
    assert episode.success and episode.extra["outcome"] == "success" and episode.extra["stage_source"] == "stage_state"


def test_export_refuses_bad_input_with_one_line(bags, tmp_path, capsys):
    assert main(["--bags", str(bags / "c-empty"), "--format", "lerobot", "--out", str(tmp_path / "x")]) == 1
    assert "no episode to export" in capsys.readouterr().err
    assert main(["--bags", str(tmp_path / "missing"), "--format", "lerobot", "--out", str(tmp_path / "x")]) == 1
    assert main(["--bags", str(bags), "--format", "stare", "--task", "NoSuch-v0", "--out", str(tmp_path / "x")]) == 1
    (tmp_path / "exists").mkdir()
    assert main(["--bags", str(bags), "--format", "stare", "--out", str(tmp_path / "exists")]) == 1
    assert "already exists" in capsys.readouterr().err

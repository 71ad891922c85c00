"""The sampling flags `stare-eval` and `stare-rollouts` share: the same declaration, the same refusals."""

import argparse

import pytest

from sim_training.evaluation.cli import main as eval_main
from sim_training.preference.cli import main as rollouts_main
from sim_training.sampling_args import add_sampling_arguments, sampling_error


def _parse(argv, default=0.0):
    parser = argparse.ArgumentParser()
    add_sampling_arguments(parser, default_temperature=default)
    return parser.parse_args(argv)


def test_defaults_and_values():
    args = _parse([], default=1.0)
    assert (args.temperature, args.gripper_temperature, args.window, args.greedy_prefix) == (1.0, None, None, False)
    args = _parse(["--temperature", "0.05", "--gripper-temperature", "0", "--window", "4", "--greedy-prefix"])
    assert (args.temperature, args.gripper_temperature, args.window, args.greedy_prefix) == (0.05, 0.0, 4, True)
    assert sampling_error(args) is None


@pytest.mark.parametrize("flag", ["--temperature", "--gripper-temperature", "--window"])
def test_both_commands_refuse_a_negative_value_before_loading_anything(flag, tmp_path, capsys):
    value = "-1"
    assert sampling_error(_parse([flag, value])) is not None
    rollouts = ["--checkpoint", str(tmp_path / "missing"), "--task", "PickCube-v1", "--initial-states", "1",
                "--per-state", "1", "--out", str(tmp_path / "out"), flag, value]
    assert rollouts_main(rollouts) == 2
    with pytest.raises(SystemExit) as exit_:
        eval_main(["--checkpoint", str(tmp_path / "missing"), "--task", "PickCube-v1", flag, value])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.count("must be >= 0") == 2
    assert not (tmp_path / "out").exists()

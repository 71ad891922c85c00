"""`key=value` overrides: values read as YAML, numbers kept numbers."""

from stare_policy.typed_config import parse_override_value


def test_override_values():
    assert parse_override_value("5e-7") == 5e-7 and parse_override_value("1.0e5") == 1e5
    assert parse_override_value("3") == 3 and parse_override_value("true") is True
    assert parse_override_value("[1, 2]") == [1, 2] and parse_override_value("") == ""
    assert parse_override_value("PickCube-v1") == "PickCube-v1" and parse_override_value("nan") == "nan"


def test_config_files_read_exponent_floats(tmp_path):
    """The same loader reads config files: an IPI config's untyped phase sections keep `3e-6` a number."""
    from sim_training.ipi.config import IPIConfig
    from stare_policy.typed_config import load_yaml

    path = tmp_path / "ipi.yaml"
    path.write_text("task: PickCube-v1\nppo:\n  lr: 3e-6\n  value_lr: -1E4\ntpo:\n  beta: .5e1\n")
    cfg = load_yaml(str(path), IPIConfig)
    assert cfg.ppo == {"lr": 3e-6, "value_lr": -1e4} and cfg.tpo == {"beta": 5.0}

"""`key=value` overrides: values read as YAML, numbers kept numbers."""

from stare_policy.typed_config import parse_override_value


def test_override_values():
    assert parse_override_value("5e-7") == 5e-7 and parse_override_value("1.0e5") == 1e5
    assert parse_override_value("3") == 3 and parse_override_value("true") is True
    assert parse_override_value("[1, 2]") == [1, 2] and parse_override_value("") == ""
    assert parse_override_value("PickCube-v1") == "PickCube-v1" and parse_override_value("nan") == "nan"

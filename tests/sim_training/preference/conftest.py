"""A real tiny PickCube checkpoint (tests/tiny_checkpoint.py) for the preference-objective tests."""

from tiny_checkpoint import tiny_checkpoint  # noqa: F401  (a fixture)

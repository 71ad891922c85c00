"""A real (tiny, briefly trained) policy checkpoint for the evaluation tests, made once per session."""

from tiny_checkpoint import tiny_checkpoint  # noqa: F401  (a fixture)

"""Session-wide real demos for the StARe tests (tests/stage_demos.py)."""

from stage_demos import real_demos  # noqa: F401  (a fixture)

"""Closed-loop evaluation of policies in ManiSkill3 (`stare-eval`)."""

"""Preference data and objectives: trajectory pairs (TPO) and stage-level pairs (StA-TPO) among rollouts
from the same initial state, and the DPO-style losses over them."""

"""OpenVLA action tokenisation: round trip within half a bin, clipping, gripper, token ids, statistics."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from stare_policy.model.action_tokenizer import ActionTokenizer, MissingStatisticsError

Q01 = [-0.2, -0.15, -0.3, -0.07, -0.08, -0.6, -1.0]
Q99 = [0.1, 0.16, 0.4, 0.05, 0.08, 0.8, 1.0]


def tokenizer(**kw) -> ActionTokenizer:
    return ActionTokenizer(Q01, Q99, n_bins=256, gripper_dims=(6,), token_offset=1000, **kw)


@settings(max_examples=200, deadline=None)
@given(arrays(np.float64, (5, 7), elements=st.floats(0.0, 1.0)))
def test_round_trip_is_within_half_a_bin(unit):
    tok = tokenizer()
    lo, hi = np.array(Q01), np.array(Q99)
    actions = lo + unit * (hi - lo)  # inside [q01, q99]: no clipping
    decoded = tok.decode(tok.encode(actions))
    half_bin = 0.5 * tok.bin_width * (hi - lo) / 2  # half a bin in action units (normalised span is 2)
    half_bin[6] = 0.5 * tok.bin_width  # gripper: unnormalised
    assert np.all(np.abs(decoded - actions) <= half_bin + 1e-6)


def test_edge_values_clip_to_the_outer_bins():
    tok = tokenizer()
    far = np.array([[10.0] * 7, [-10.0] * 7, Q99, Q01])
    bins = tok.to_bins(far)
    assert (bins[0] == 255).all() and (bins[1] == 0).all()
    assert (bins[2] == 255).all() and (bins[3] == 0).all()
    assert np.allclose(tok.decode(tok.encode(far[:1]))[0, :6], np.array(Q99[:6]) - 0.5 * tok.bin_width * (
        np.array(Q99[:6]) - np.array(Q01[:6])) / 2)


def test_gripper_stays_unnormalised_and_tokens_sit_at_the_end_of_the_vocabulary():
    tok = ActionTokenizer([0.0] * 7, [0.5] * 7, n_bins=256, gripper_dims=(6,), token_offset=1000)
    ids = tok.encode(np.array([[0.25, 0, 0.5, 0, 0, 0, -1.0], [0.25, 0, 0.5, 0, 0, 0, 1.0]]))
    assert ids.min() >= 1000 and ids.max() <= 1255
    assert ids[0, 6] == 1000 and ids[1, 6] == 1255  # gripper -1 / +1 map to the outer bins directly
    assert ids[0, 0] in (1127, 1128)  # the middle of [q01, q99]
    assert tok.decode(ids)[1, 6] == pytest.approx(1.0 - tok.bin_width / 2)


def test_statistics_are_required_and_checked():
    with pytest.raises(MissingStatisticsError, match="q99"):
        ActionTokenizer.from_stats({"q01": Q01})
    with pytest.raises(MissingStatisticsError, match="lack q01, q99"):
        ActionTokenizer.from_stats(None)
    with pytest.raises(MissingStatisticsError, match="q99 < q01"):
        ActionTokenizer(Q99, Q01)
    with pytest.raises(MissingStatisticsError, match="non-finite"):
        ActionTokenizer([np.nan] * 7, Q99)
    assert ActionTokenizer.from_stats({"q01": Q01, "q99": Q99}).stats() == {"q01": Q01, "q99": Q99}


def test_degenerate_dimension_does_not_divide_by_zero():
    tok = ActionTokenizer([0.0] * 7, [0.0] * 6 + [1.0])
    assert np.all(np.isfinite(tok.decode(tok.encode(np.zeros((1, 7))))))

"""dymo_sklearn/_explanation.py: the explain DataFrame and the tables behind each picture,
checked against hand-written samples (no matplotlib needed)."""

import numpy as np
import pandas as pd
import pytest
from helpers import EXPLANATION_LABELS, hand_written_explanation

from dymo_sklearn._explanation import candidate_rewards, explanation_frame, selection_fractions, transition_counts


@pytest.fixture
def explanation():
    return hand_written_explanation()


def test_explanation_frame_lists_selections_in_acceptance_order():
    """Catches selected modalities listed in modality order, predictions not mapped through the
    class labels, or a measured modality with a few recovered entries listed as missing."""
    run = {
        "selected": np.array([[False, True, True], [True, False, False], [False, False, False]]),
        "order": np.array([[0, 2, 1], [1, 0, 0], [0, 0, 0]]),  # sample 0 accepted c, then b
        "rewards": np.array([[np.nan, 0.2, 0.4], [0.3, -0.1, np.nan], [np.nan, np.nan, np.nan]]),
        # sample 1 observes c only in part: c is a partial candidate, a and b missing ones
        "candidates": np.array([[False, True, True], [True, True, True], [False, False, False]]),
        "logits": np.array([[0.0, 1.0], [2.0, 0.0], [0.0, 3.0]]),
        "logits_observed_only": np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]),
    }
    present = np.array([[True, False, False], [False, False, True], [True, True, True]])
    frame = explanation_frame(run, present, ["a", "b", "c"], np.array(["cat", "dog"]))
    assert frame["observed"].tolist() == [["a"], ["c"], ["a", "b", "c"]]
    assert frame["candidates"].tolist() == [["b", "c"], ["a", "b", "c"], []]
    assert frame["missing"].tolist() == [["b", "c"], ["a", "b"], []]
    assert frame["partial"].tolist() == [[], ["c"], []]
    assert frame["selected"].tolist() == [["c", "b"], ["a"], []]
    assert frame["step_b"].tolist() == [2, 0, 0] and frame["step_c"].tolist() == [1, 0, 0]
    np.testing.assert_array_equal(frame["reward_b"], [0.2, -0.1, np.nan])
    assert frame["prediction"].tolist() == ["dog", "cat", "dog"]
    assert frame["prediction_observed_only"].tolist() == ["cat", "cat", "dog"]


def test_selection_fractions_by_pattern(explanation):
    fractions, counts = selection_fractions(explanation)
    assert list(fractions.columns) == ["a", "b", "c"]
    # Pattern "b, c recovered": b accepted 2 of 3 times, c 1 of 3; a never a candidate.
    row = fractions.loc["recovered: b, c"]
    assert np.isnan(row["a"]) and row["b"] == pytest.approx(2 / 3) and row["c"] == pytest.approx(1 / 3)
    assert fractions.loc["recovered: a", "a"] == pytest.approx(0.5)
    assert fractions.loc["complete"].isna().all()
    assert counts.loc["recovered: b, c"].tolist() == [0, 3, 3]


def test_selection_fractions_marks_partial_modalities(explanation):
    explanation.at[0, "observed"] = ["a", "b"]
    fractions, _ = selection_fractions(explanation)
    assert "recovered: b*, c" in fractions.index


def test_selection_fractions_by_class(explanation):
    fractions, counts = selection_fractions(explanation, EXPLANATION_LABELS, by="class")
    # Class 0 (rows 3, 5): a accepted once of twice. Class 1: b 2 of 3, c 1 of 3.
    assert fractions.loc[0, "a"] == pytest.approx(0.5) and fractions.loc[1, "b"] == pytest.approx(2 / 3)
    assert counts.loc[1].tolist() == [0, 3, 3]
    with pytest.raises(ValueError, match="'pattern' or 'class'"):
        selection_fractions(explanation, by="modality")


def test_transition_counts(explanation):
    counts = transition_counts(explanation, EXPLANATION_LABELS)
    # Right with observed only: rows 2, 4, 5; right after selection: rows 0, 2, 3, 4.
    assert counts.to_dict() == {"corrected": 2, "broken": 1, "unchanged right": 2, "unchanged wrong": 1}


def test_transitions_need_matching_labels(explanation):
    with pytest.raises(ValueError, match="one label per row"):
        transition_counts(explanation, EXPLANATION_LABELS[:3])
    with pytest.raises(ValueError, match="true labels"):
        transition_counts(explanation, None)


def test_candidate_rewards_keep_every_evaluated_candidate(explanation):
    rewards = candidate_rewards(explanation)
    assert len(rewards) == 8 and rewards["accepted"].sum() == 4
    accepted = rewards[rewards["accepted"]].sort_values(["sample", "modality"])
    assert list(zip(accepted["sample"], accepted["modality"], accepted["reward"])) == [
        (0, "b", 0.3), (1, "b", 0.1), (1, "c", 0.2), (3, "a", 0.5)]
    assert 4 not in set(rewards["sample"])  # a complete sample has no candidate


def test_rejects_other_frames():
    with pytest.raises(ValueError, match="explain"):
        selection_fractions(pd.DataFrame({"x": [1]}))
